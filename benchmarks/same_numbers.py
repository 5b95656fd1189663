"""Do two commits compute the same numbers? ``python -m benchmarks.same_numbers --before REV
--after REV --data-path DIR --out DIR [--epochs N] [--cells NAME ...]``.

Each named cell (a model, a scheme and its keys on ml-latest-small, one seed) runs once at each
commit, in a detached worktree of that commit, as ``python -m benchmarks.cell`` with one thread. The
best validation score, the test metrics under every protocol and the epoch the run stopped at are
compared exactly (to the last digit). Prints one line per cell; exits 1 if any differs, 2 on bad
input.
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
DATASET = "ml-latest-small"
SEED = 2020
EXPLICIT = {
    "controller_credit": "explicit",
    "explicit_negatives": 1,
    "guide_batch_size": 512,
    "clean_valid_guide_ratio": 0.5,
}
# name: (model, scheme whose paper-protocol yaml is used, overrides)
CELLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "bpr-default": ("BPR", "default", {}),
    "bpr-autodenoise_s": ("BPR", "autodenoise_s", {}),
    "softmaxmf-explicit": ("SoftmaxMF", "autodenoise_s", EXPLICIT),
    "gru4rec-explicit": ("GRU4Rec", "autodenoise_s", EXPLICIT),
    "sasrec-adt_rl": ("SASRec", "adt_rl", {}),
}
COMPARED = (
    "best_valid_score",
    "best_valid_result",
    "test",
    "test_by_protocol",
    "per_query",
    "weight_study",
    "stopping",
)


def cell_spec(root: Path, name: str, data_path: str, epochs: int | None) -> dict[str, Any]:
    """The spec ``benchmarks.cell`` runs for cell ``name`` in the checkout at ``root``."""
    model, scheme, overrides = CELLS[name]
    folder = root / "benchmarks" / "properties" / "paper-protocol" / DATASET
    files = [str(folder / f"{model}-default.yaml"), str(folder / f"{model}-{scheme}.yaml")]
    config = {
        "denoise_scheme": scheme,
        "seed": SEED,
        "data_path": data_path,
        "show_progress": False,
        **overrides,
    }
    if epochs is not None:
        config["epochs"] = epochs
    return {
        "model": model,
        "dataset": DATASET,
        "config_files": sorted(set(files)),
        "config_dict": config,
    }


def compared_part(results: dict[str, Any]) -> dict[str, Any]:
    """What must be equal between the two commits: scores and stopping, not times or paths."""
    part = {key: results.get(key) for key in COMPARED}
    if isinstance(part["stopping"], dict):
        part["stopping"] = {
            key: value
            for key, value in part["stopping"].items()
            if "time" not in key and "second" not in key
        }
    return part


def run_at(
    rev: str, names: list[str], data_path: str, epochs: int | None, out: Path
) -> dict[str, Any]:
    """Runs ``names`` in a detached worktree of ``rev``; their compared parts by name."""
    found = {}
    with tempfile.TemporaryDirectory(prefix="same-numbers-") as scratch:
        tree = Path(scratch) / "tree"
        subprocess.run(
            ["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", "-q", str(tree), rev],
            check=True,
        )
        try:
            env = {
                **os.environ,
                "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
                "PYTHONPATH": str(tree),
            }
            for name in names:
                spec_file = Path(scratch) / f"{name}.spec.json"
                spec_file.write_text(
                    json.dumps(cell_spec(tree, name, data_path, epochs)), encoding="utf-8"
                )
                result_file = out / f"{rev_label(rev)}-{name}.json"
                print(f"{rev}: {name} ...", file=sys.stderr, flush=True)
                subprocess.run(
                    [sys.executable, "-m", "benchmarks.cell", str(spec_file), str(result_file)],
                    cwd=scratch,
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                outcome = json.loads(result_file.read_text(encoding="utf-8"))
                found[name] = compared_part(outcome["results"])
        finally:
            subprocess.run(
                ["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(tree)],
                check=False,
            )
    return found


def rev_label(rev: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", rev],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the commit before the change")
    parser.add_argument("--after", default="HEAD", help="the commit after it (default HEAD)")
    parser.add_argument("--data-path", required=True, help="folder holding ml-latest-small/")
    parser.add_argument("--out", required=True, help="folder for each run's results JSON")
    parser.add_argument("--epochs", type=int, default=None, help="cap every cell at N epochs")
    parser.add_argument("--cells", nargs="+", default=list(CELLS), help=f"of {list(CELLS)}")
    args = parser.parse_args(argv)
    unknown = [name for name in args.cells if name not in CELLS]
    if unknown:
        parser.error(f"unknown cells {unknown}; known: {list(CELLS)}")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    inter = Path(args.data_path) / DATASET / f"{DATASET}.inter"
    if not inter.is_file():
        parser.error(f"--data-path {args.data_path!r} has no {inter.relative_to(args.data_path)}")
    for rev in (args.before, args.after):
        probe = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"],
            capture_output=True,
        )
        if probe.returncode != 0:
            parser.error(f"{rev!r} is not a commit of this repository")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_path = str(Path(args.data_path).resolve())
    before = run_at(args.before, args.cells, data_path, args.epochs, out)
    after = run_at(args.after, args.cells, data_path, args.epochs, out)
    same = True
    for name in args.cells:
        equal = before[name] == after[name]
        same &= equal
        score = before[name]["best_valid_score"]
        print(
            f"{name:22s} {'same' if equal else 'DIFFERENT'}  best valid {score} / "
            f"{after[name]['best_valid_score']}"
        )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
