"""How much could denoising give on *your* data? Default against the ``oracle`` scheme.

    python -m recbole_autodenoise.headroom --model=BPR --dataset=ml-latest-small \\
        --data_path=dataset --seeds=3

Trains ``model`` with ``default`` and with ``oracle`` (every training interaction rated below
``clean_rating_threshold`` dropped: what a perfect denoiser that knew the ratings would do; a
diagnostic, never a method), plus ``adt_rl`` unless ``--no-adt-rl``, for ``--seeds`` seeds each,
on the plugin's protocol, and prints the headroom: the relative change of the clean-test metric
from Default to the oracle, mean ± std over seeds, with a paired t-test. Any other ``--key=value``
is a config override, as for ``run_recbole_denoise.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from recbole_autodenoise import arguments
from recbole_autodenoise.files import atomic_write

Runner = Callable[..., dict[str, Any]]
RATING_DIAGNOSTICS = ("oracle",)  # the schemes here that read the training ratings


@dataclass
class Headroom:
    """Per-seed clean-test values of one metric for each scheme, and what they say."""

    model: str
    dataset: str
    metric: str
    protocol: str
    values: dict[str, dict[int, float]]  # scheme -> seed -> metric value

    def relative(self, scheme: str) -> list[float]:
        """(scheme - default) / default per seed, over seeds both finished."""
        base, other = self.values["default"], self.values[scheme]
        return [(other[s] - base[s]) / base[s] for s in sorted(base) if s in other and base[s] != 0]

    def paired_p(self, scheme: str) -> float | None:
        seeds = [s for s in sorted(self.values["default"]) if s in self.values[scheme]]
        if len(seeds) < 2:
            return None
        from scipy import stats

        differences = [self.values[scheme][s] - self.values["default"][s] for s in seeds]
        if all(d == differences[0] for d in differences):  # t undefined with zero spread
            return None
        return float(
            stats.ttest_rel(
                [self.values[scheme][s] for s in seeds], [self.values["default"][s] for s in seeds]
            ).pvalue
        )

    def summary(self, scheme: str) -> dict[str, Any]:
        changes = self.relative(scheme)
        return {
            "mean_relative_change": statistics.fmean(changes) if changes else None,
            "std_relative_change": statistics.stdev(changes) if len(changes) > 1 else None,
            "paired_p": self.paired_p(scheme),
            "seeds": len(changes),
        }

    def sentence(self) -> str:
        oracle = self.summary("oracle")
        if oracle["mean_relative_change"] is None:
            return "no seed finished both default and oracle: no headroom measured"
        spread = (
            ""
            if oracle["std_relative_change"] is None
            else f" ± {100 * oracle['std_relative_change']:.1f} %"
        )
        p = oracle["paired_p"]
        verdict = "" if p is None else f" (paired p = {p:.3g}, {oracle['seeds']} seeds)"
        return (
            f"removing low-rated training interactions changes clean-test {self.metric} by "
            f"{100 * oracle['mean_relative_change']:+.1f} %{spread} "
            f"for {self.model} on {self.dataset}"
            f"{verdict}, under eval_protocol {self.protocol}"
        )

    def table(self) -> str:
        seeds = sorted(self.values["default"])
        lines = [
            f"clean test {self.metric} ({self.protocol} protocol), fractions",
            "scheme        "
            + "".join(f"{'seed ' + str(s):>14}" for s in seeds)
            + f"{'vs default':>14}{'p':>8}",
        ]
        for scheme, per_seed in self.values.items():
            cells = "".join(
                f"{per_seed[s]:>14.6f}" if s in per_seed else f"{'-':>14}" for s in seeds
            )
            extra = ""
            if scheme != "default":
                info = self.summary(scheme)
                change = info["mean_relative_change"]
                extra = f"{'-':>14}" if change is None else f"{100 * change:>+13.1f}%"
                extra += f"{'-':>8}" if info["paired_p"] is None else f"{info['paired_p']:>8.3f}"
            lines.append(f"{scheme:<14}{cells}{extra}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "metric": self.metric,
            "protocol": self.protocol,
            "values": {k: {str(s): v for s, v in per.items()} for k, per in self.values.items()},
            "summary": {k: self.summary(k) for k in self.values if k != "default"},
            "sentence": self.sentence(),
        }


def measure(
    model: str,
    dataset: str,
    seeds: Sequence[int],
    schemes: Sequence[str],
    metric: str,
    config_files: Sequence[str] | None,
    overrides: dict[str, Any],
    runner: Runner | None = None,
    log: Callable[[str], None] = print,
) -> Headroom:
    """Train every (seed, scheme) pair and collect the clean-test ``metric``."""
    if runner is None:
        from recbole_autodenoise.quick_start import run as runner
    values: dict[str, dict[int, float]] = {scheme: {} for scheme in schemes}
    protocol = "?"
    for seed in seeds:
        for scheme in schemes:
            config = dict(overrides, denoise_scheme=scheme, seed=seed)
            if scheme in RATING_DIAGNOSTICS:  # the oracle reads the ratings: opted in by this check
                config["allow_rating_diagnostics"] = True
            results = runner(model, dataset, config_files=config_files, config_dict=config)
            test = results["test"]
            if metric not in test:
                raise ValueError(
                    f"--metric {metric!r} is not among the test metrics {sorted(test)}"
                )
            values[scheme][seed] = float(test[metric])
            protocol = results.get("eval_protocol", protocol)
            log(f"seed {seed} {scheme}: {metric} = {values[scheme][seed]:.6f}")
    return Headroom(model, dataset, metric, protocol, values)


def metric_keys(config) -> list[str]:
    """The clean-test result keys of a run with ``config``: ``name@k`` for each top-k metric of
    ``metrics`` and each k of ``topk``, ``name`` for the others (e.g. ``auc``)."""
    from recbole.evaluator.register import metric_information

    topk = config["topk"] if isinstance(config["topk"], list) else [config["topk"]]
    keys = []
    for name in (m.lower() for m in config["metrics"]):
        if {"rec.topk", "rec.items"} & set(metric_information.get(name, ())):
            keys += [f"{name}@{k}" for k in topk]
        else:
            keys.append(name)
    return keys


def check_metric(metric: str, config) -> None:
    """A ValueError unless ``metric`` is among the clean-test results of a run with ``config``."""
    keys = metric_keys(config)
    if metric not in keys:
        raise ValueError(
            f"--metric {metric!r} is not a test metric of these runs: choose from "
            f"{keys} (set by the config keys 'metrics' and 'topk')"
        )


def parse_args(
    argv: Sequence[str] | None,
) -> tuple[argparse.Namespace, argparse.Namespace, dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="--model, --dataset, --config_files and --key=value as for run_recbole_denoise.py",
    )
    parser.add_argument(
        "--seeds",
        type=arguments.count(arguments.MAX_SEEDS),
        default=3,
        help="seeds per scheme (default 3): 2020, 2021, ...",
    )
    parser.add_argument("--seed-base", type=arguments.seed, default=2020)
    parser.add_argument(
        "--metric",
        default="ndcg@20",
        help="clean-test metric: name@k of the runs' metrics and topk (default ndcg@20)",
    )
    parser.add_argument("--no-adt-rl", action="store_true", help="skip the ADT-RL comparison")
    parser.add_argument(
        "--out",
        default=None,
        type=arguments.output_file,
        help="also write the numbers as JSON here",
    )
    own, rest = parser.parse_known_args(argv)
    if own.seed_base + own.seeds - 1 > arguments.MAX_SEED:
        parser.error(
            f"--seed-base {own.seed_base} with --seeds {own.seeds} goes past the largest "
            f"seed {arguments.MAX_SEED}"
        )
    from recbole_autodenoise import cli

    run_args, overrides = cli.parse_args(rest)
    for key in ("denoise_scheme", "seed"):
        overrides.pop(key, None)  # set per run here
    if run_args.scheme is not None:
        parser.error("--scheme is chosen by the headroom check itself (default, oracle, adt_rl)")
    return own, run_args, overrides


def main(argv: Sequence[str] | None = None) -> int:
    own, run_args, overrides = parse_args(argv)
    schemes = ["default", "oracle"] + ([] if own.no_adt_rl else ["adt_rl"])
    seeds = range(own.seed_base, own.seed_base + own.seeds)
    config_files = run_args.config_files.split() if run_args.config_files else None
    try:
        from recbole_autodenoise.config import make_config

        with warnings.catch_warnings():  # keys a scheme ignores: each run warns
            warnings.simplefilter("ignore")
            config = make_config(
                run_args.model,
                run_args.dataset,
                config_files,
                {**overrides, "denoise_scheme": "default", "seed": own.seed_base},
            )
        check_metric(own.metric.lower(), config)
        headroom = measure(
            run_args.model,
            run_args.dataset,
            seeds,
            schemes,
            own.metric.lower(),
            config_files,
            overrides,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(headroom.table())
    print(headroom.sentence())
    if own.out:
        Path(own.out).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(own.out) as handle:
            json.dump(headroom.as_dict(), handle, indent=2, allow_nan=False)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
