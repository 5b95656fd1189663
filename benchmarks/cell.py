"""Child process of the grid: ``python -m benchmarks.cell SPEC.json OUT.json``.

Runs one ``quick_start.run`` and writes its results with the process's own peak memory, measured
here rather than in the parent so every cell's number is isolated: peak RSS (whole process, so it
includes the ~constant cost of importing torch/RecBole, also reported separately as
``rss_before_run_mb``) and, on GPU, ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """One ``quick_start.run`` of ``spec`` (continued from its ``resume`` checkpoint where given):
    its results, the process's peak memory and the device."""
    import torch

    from recbole_autodenoise.quick_start import run

    before = (
        _rss_mb()
    )  # CUDA is not touched before run(): RecBole's gpu_id sets CUDA_VISIBLE_DEVICES
    results = run(
        spec["model"],
        spec["dataset"],
        config_files=spec["config_files"] or None,
        config_dict=spec["config_dict"],
        saved=True,
        resume=spec.get("resume"),
    )
    on_gpu = str(results.get("device", "")).startswith("cuda")  # fresh process: peak since start
    return {
        "results": results,
        "peak_memory": {
            "peak_rss_mb": _rss_mb(),
            "rss_before_run_mb": before,
            "cuda_max_allocated_mb": torch.cuda.max_memory_allocated() / 2**20 if on_gpu else None,
        },
        "device": {
            "device": results.get("device"),
            "gpu": torch.cuda.get_device_name() if on_gpu else None,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }


def write_outcome(out_path: str, outcome: dict[str, Any]) -> None:
    tmp = Path(out_path).with_suffix(".tmp")
    tmp.write_text(json.dumps(outcome, allow_nan=True), encoding="utf-8")
    tmp.replace(out_path)


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    write_outcome(out_path, run_cell(json.loads(Path(spec_path).read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
