"""Where an epoch's time goes: cProfile of the training and the validation phase, apart.

    python -m benchmarks.profile_epoch --model BPR --dataset ml-latest-small \\
        --data-path /work/data --scheme autodenoise_s --epochs 3 [--top 25] [--set key=value ...]

Builds the run as ``quick_start.run`` does (same config, data, model and trainer), profiles every
``_train_epoch`` call into one profile and every ``_valid_epoch`` into another, and prints the top
functions of each by cumulative time, with their call counts. A profile, not a timing: on a shared
machine read the call counts and the shares of each phase, not the seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
from typing import Any, Sequence

from benchmarks.table3 import parse_sets
from recbole_autodenoise.arguments import setting


def build(model: str, dataset: str, config_dict: dict[str, Any]):
    """(trainer, train_data, valid_data), seeded as ``quick_start.run`` seeds them."""
    from recbole.utils import init_seed

    from recbole_autodenoise.config import make_config
    from recbole_autodenoise.data import create_dataset, data_preparation
    from recbole_autodenoise.model import get_model
    from recbole_autodenoise.trainer import AutoDenoiseTrainer

    config = make_config(model, dataset, None, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    recommender = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    return AutoDenoiseTrainer(config, recommender), train_data, valid_data


def profiled(trainer, name: str, profile: cProfile.Profile) -> None:
    """Run ``trainer.<name>`` under ``profile`` from now on."""
    inner = getattr(trainer, name)

    def wrapper(*args, **kwargs):
        profile.enable()
        try:
            return inner(*args, **kwargs)
        finally:
            profile.disable()

    setattr(trainer, name, wrapper)


def report(profile: cProfile.Profile, title: str, top: int) -> str:
    stream = io.StringIO()
    stats = pstats.Stats(profile, stream=stream)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    return f"===== {title} =====\n{stream.getvalue()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="BPR")
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--scheme", default="autodenoise_s")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=setting,
        help="any config key",
    )
    args = parser.parse_args(argv)
    config_dict: dict[str, Any] = {
        "denoise_scheme": args.scheme,
        "epochs": args.epochs,
        "show_progress": False,
        "state": "WARNING",
        "stopping_step": 100,
        "stopping_min_epochs": 0,
    }
    if args.data_path:
        config_dict["data_path"] = args.data_path
    config_dict.update(parse_sets(args.set))
    trainer, train_data, valid_data = build(args.model, args.dataset, config_dict)
    train_profile, valid_profile = cProfile.Profile(), cProfile.Profile()
    profiled(trainer, "_train_epoch", train_profile)
    profiled(trainer, "_valid_epoch", valid_profile)
    trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    print(
        f"model {args.model}, data set {args.dataset}, scheme {args.scheme}, {args.epochs} epochs"
    )
    print(report(train_profile, "train (all epochs)", args.top))
    print(report(valid_profile, "validation (all epochs)", args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
