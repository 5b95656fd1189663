"""One cell of ``select`` in its own process:
``python -m recbole_autodenoise.select.child train|test SPEC.json OUT.json``.

``train`` runs ``quick_start.run`` (the spec's settings hold ``evaluate_test: false``: the test set
is not read) and keeps the best-model checkpoint only; ``test`` rebuilds the same config and data
and evaluates that checkpoint on the clean test set (``quick_start.evaluate_checkpoint``). Both use
one thread. The outcome is written atomically to OUT.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

MODES = ("train", "test")


def run_cell(mode: str, spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from recbole_autodenoise.checkpoints import latest_file
    from recbole_autodenoise.quick_start import evaluate_checkpoint, run

    torch.set_num_threads(1)
    files = spec.get("config_files") or None
    if mode == "test":
        return evaluate_checkpoint(
            spec["model"], spec["dataset"], spec["checkpoint"], files, spec["config_dict"]
        )
    results = run(
        spec["model"],
        spec["dataset"],
        config_files=files,
        config_dict=spec["config_dict"],
        saved=True,
    )
    checkpoint = results.pop("checkpoint")
    # the best model is what the test step reads
    Path(latest_file(checkpoint)).unlink(missing_ok=True)
    results["checkpoint_name"] = (
        os.path.basename(checkpoint) if checkpoint and os.path.isfile(checkpoint) else None
    )
    return results


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in MODES:
        print(
            "usage: python -m recbole_autodenoise.select.child train|test SPEC.json OUT.json",
            file=sys.stderr,
        )
        return 2
    mode, spec_path, out_path = argv
    from recbole_autodenoise.select.machine import git_commit

    outcome = run_cell(mode, json.loads(Path(spec_path).read_text(encoding="utf-8")))
    outcome["commit"] = git_commit()  # the code that computed it (a study's rows share one)
    from recbole_autodenoise.files import atomic_write
    from recbole_autodenoise.quick_start import strict_json_payload

    with atomic_write(out_path) as handle:
        handle.write(json.dumps(strict_json_payload(outcome), allow_nan=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
