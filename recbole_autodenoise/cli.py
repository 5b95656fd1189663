"""Command line:
``python run_recbole_denoise.py --model=SASRec --dataset=ml-1m [--key=value ...]``."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from recbole_autodenoise.config import launcher_key_message, parse_cli_value


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, dict]:
    parser = argparse.ArgumentParser(
        description=(
            "Train a RecBole model with a denoising scheme and evaluate it on clean test data."
        ),
        epilog=(
            "Any other --key=value is a RecBole/plugin config override, "
            "e.g. --epochs=50 --learning_rate=1e-3."
        ),
    )
    parser.add_argument(
        "--model", "-m", default="BPR", help="RecBole model: BPR, GRU4Rec, SASRec, ..."
    )
    parser.add_argument(
        "--dataset", "-d", default="ml-100k", help="data set name (ml-100k is embedded)"
    )
    parser.add_argument(
        "--config_files", default=None, help="space-separated yaml files, applied after ours"
    )
    parser.add_argument(
        "--scheme",
        "--denoise_scheme",
        dest="scheme",
        default=None,
        help="default | heuristic | adt_tl | adt_rl | dcf | autodenoise_h | "
        "autodenoise_s | oracle (diagnostic); l2rw with --experimental=true "
        "(default: the config's denoise_scheme, as in Python: default)",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="continue a run from its checkpoint with the same settings (epochs, "
        "stopping_step and output paths may change: docs/guide.md): "
        "saved/<name>-latest.pth resumes after the last finished epoch",
    )
    args, rest = parser.parse_known_args(argv)
    overrides = {}
    for item in rest:
        if not item.startswith("--") or "=" not in item:
            parser.error(f"unrecognised argument {item!r}: overrides are written --key=value")
        key, value = item[2:].split("=", 1)
        if key == "local_rank":
            raise ValueError(f"--local_rank: {launcher_key_message()}")
        overrides[key] = parse_cli_value(value, key)
    if args.scheme is not None:
        overrides["denoise_scheme"] = args.scheme
    return args, overrides


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args, overrides = parse_args(argv)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from recbole_autodenoise.distributed import RankFailed
    from recbole_autodenoise.quick_start import run

    config_files = args.config_files.split() if args.config_files else None
    try:
        run(
            args.model,
            args.dataset,
            config_files=config_files,
            config_dict=overrides,
            resume=args.resume,
        )
    except (ValueError, FileNotFoundError, RankFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
