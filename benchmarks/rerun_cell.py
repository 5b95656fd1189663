"""Does a study row reproduce at this checkout? ``python -m benchmarks.rerun_cell CELL_DIR ...``.

Each CELL_DIR is a finished ``select`` train cell (``train-spec.json`` and ``result.json``, e.g.
under ``benchmarks/results/confirm/<data set>-<model>.json.cells/``). The cell is trained again
here, from its own spec, in a scratch folder with one thread, and what it computed (best
validation score, the per-query validation record, every epoch's record but its times, how it
stopped, the learned weights) is compared with the row to the last digit. Prints one line per
cell; exits 1 if any differs, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def computed(result: dict[str, Any]) -> dict[str, Any]:
    """The part of a train cell's result that its code computed (not times, paths or commits)."""
    return {
        "best_valid_score": result.get("best_valid_score"),
        "valid_per_query": result.get("valid_per_query"),
        "epochs": [
            {key: value for key, value in record.items() if "seconds" not in key}
            for record in result.get("epochs", [])
        ],
        "stopping": result.get("stopping"),
        "weight_study": result.get("weight_study"),
    }


def rerun(cell: Path, scratch: Path) -> dict[str, Any]:
    spec = json.loads((cell / "train-spec.json").read_text(encoding="utf-8"))
    spec["config_dict"] = {**spec["config_dict"], "checkpoint_dir": str(scratch / "saved")}
    spec_file = scratch / "train-spec.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    out = scratch / "result.json"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "recbole_autodenoise.select.child",
            "train",
            str(spec_file),
            str(out),
        ],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{cell.name}: the re-run failed ({done.returncode}):\n{done.stderr[-4000:]}"
        )
    return json.loads(out.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cells", nargs="+", help="finished select train cell folders")
    args = parser.parse_args(argv)
    cells = [Path(cell) for cell in args.cells]
    for cell in cells:
        if not (cell / "train-spec.json").is_file() or not (cell / "result.json").is_file():
            parser.error(
                f"{cell} is not a finished select train cell (train-spec.json and result.json)"
            )
    same = True
    for cell in cells:
        row = json.loads((cell / "result.json").read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory(prefix="rerun-cell-") as scratch:
            again = rerun(cell, Path(scratch))
        equal = computed(row) == computed(again)
        same &= equal
        print(
            f"{cell.name}: {'same' if equal else 'DIFFERENT'} (row of {row.get('commit')}, "
            f"best valid {row.get('best_valid_score')} / {again.get('best_valid_score')})"
        )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
