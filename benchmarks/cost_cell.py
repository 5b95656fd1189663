"""Child process of ``benchmarks.cost``: ``python benchmarks/cost_cell.py SPEC.json OUT.json``.

``benchmarks.cell`` (one ``quick_start.run``, its results and peak memory) plus the CPU seconds
of the process (``time.process_time``: every thread, no time spent waiting for a core) in each
training and each validation phase. On a machine shared with other jobs, wall seconds swing with
the load; CPU seconds of a single-threaded run (OMP_NUM_THREADS=1) count the work. A script, not a
module: it runs the plugin of whichever checkout PYTHONPATH names first (``--code`` variants).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def count_cpu(trainer_class, cpu: dict[str, list[float]]) -> None:
    """Record the process CPU seconds of every ``_train_epoch`` and ``_valid_epoch`` call."""
    for name, phase in (("_train_epoch", "train"), ("_valid_epoch", "valid")):
        inner = getattr(trainer_class, name)

        def wrapper(self, *args, _inner=inner, _phase=phase, **kwargs):
            start = time.process_time()
            try:
                return _inner(self, *args, **kwargs)
            finally:
                cpu[_phase].append(time.process_time() - start)

        setattr(trainer_class, name, wrapper)


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    from cell import (
        run_cell,
        write_outcome,
    )  # this script's sibling, whichever plugin PYTHONPATH names

    from recbole_autodenoise.trainer import AutoDenoiseTrainer

    cpu: dict[str, list[float]] = {"train": [], "valid": []}
    count_cpu(AutoDenoiseTrainer, cpu)
    outcome = run_cell(json.loads(Path(spec_path).read_text(encoding="utf-8")))
    write_outcome(out_path, {**outcome, "cpu_seconds": cpu})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
