"""Training throughput of RecBole's multi-process mode (issue 14): samples per second for each
process count, speedup and scaling efficiency against one process. A benchmark, not a test.

    python -m benchmarks.ddp_throughput --model SASRec --dataset ml-latest-small \\
        --data-path /work/data --nproc 1 2

Each count is one full run (``quick_start.run``) of ``--epochs`` epochs; throughput is the training
rows of an epoch over rank 0's training time of that epoch (the ranks step together), averaged
over the epochs after the first (the first warms up; with one epoch, that epoch). Validation and
test are not timed. ``--backend gloo`` (CPU processes) is the default; ``nccl`` puts one process
on each GPU (``auto`` picks). ``--out FILE`` appends one JSON line per process count.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Any, Sequence

from recbole_autodenoise.quick_start import run


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def samples_per_second(results: dict[str, Any]) -> float:
    """Training rows per second of training, over the epochs after the first where there are
    some."""
    seconds = [record["train_seconds"] for record in results["epochs"]]
    timed = seconds[1:] or seconds
    return results["data"]["train"] / (sum(timed) / len(timed))


def measure(args: argparse.Namespace, nproc: int) -> dict[str, Any]:
    overrides = {
        "epochs": args.epochs,
        "denoise_scheme": args.scheme,
        "show_progress": False,
        "state": "WARNING",
        "nproc": nproc,
        "port": free_port(),
        "ddp_backend": args.backend,
        "stopping_min_epochs": 0,
        "train_batch_size": args.batch_size,
        "use_gpu": args.backend != "gloo",
    }
    if args.data_path:
        overrides["data_path"] = args.data_path
    results = run(args.model, args.dataset, config_dict=overrides, saved=False)
    return {
        "model": args.model,
        "dataset": args.dataset,
        "scheme": args.scheme,
        "backend": args.backend,
        "nproc": nproc,
        "device": results["device"],
        "train_rows": results["data"]["train"],
        "train_batch_size": args.batch_size,
        "epochs": args.epochs,
        "epoch_train_seconds": [record["train_seconds"] for record in results["epochs"]],
        "samples_per_second": samples_per_second(results),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Speedup against the first count, efficiency = speedup / (processes relative to it)."""
    first = rows[0]
    lines = [f"{'nproc':>5} {'samples/s':>12} {'speedup':>8} {'efficiency':>10}"]
    for row in rows:
        speedup = row["samples_per_second"] / first["samples_per_second"]
        efficiency = speedup * first["nproc"] / row["nproc"]
        lines.append(
            f"{row['nproc']:>5} {row['samples_per_second']:>12.1f} "
            f"{speedup:>8.2f} {efficiency:>10.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument(
        "--data-path", default=None, help="folder holding <dataset>/<dataset>.inter (ml-100k: none)"
    )
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--scheme", default="default")
    parser.add_argument("--backend", default="gloo", choices=["gloo", "nccl", "auto"])
    parser.add_argument(
        "--batch-size",
        type=int,
        default=2048,
        help="global train_batch_size (split over the processes)",
    )
    parser.add_argument("--out", default=None, help="append one JSON line per process count")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.nproc) or args.epochs < 1:
        parser.error("--nproc values and --epochs must be >= 1")

    rows = []
    for nproc in args.nproc:
        row = measure(args, nproc)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
    print(
        f"{args.model} on {args.dataset}, scheme {args.scheme}, backend {args.backend}, "
        f"global batch {args.batch_size}, {args.epochs} epochs per count"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
