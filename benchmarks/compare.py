"""Paired comparisons of study variants:
``python -m benchmarks.compare FILE.jsonl ... [--model BPR]``.

``benchmarks.report`` tables the paper's schemes; the studies beyond the paper (explicit credit,
noise, guide splits) set ``--set`` overrides, which the report leaves out. Here every finished row
joins a variant: its model, its data condition (``noise_kind`` / ``noise_rate``,
``clean_valid_guide_ratio``) and its scheme with the
overrides that scheme reads (an override the scheme ignores, e.g. ``controller_credit`` on a
Default row, does not change the run and so does not split a variant). Each variant is compared,
seed by seed, with each reference scheme (``--against``, default: Default, ADT-RL and DCF) run
under the same model and condition and no other override: mean ± sample std of each metric under
each test protocol the rows hold (``results.test_by_protocol``), the change in % and the paired
t-test p over the seeds both finished; where both sides' runs kept per-query ranks
(``results.per_query``), also a paired t-test over the queries, each query's metric averaged over
those seeds. Mean weights of true / false positives (/ injected rows) come beside.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from typing import Any, Sequence

from scipy import stats

from benchmarks.grid import latest_rows, read_rows
from benchmarks.report import SCHEME_LABEL, fmt_p, mean, paired_p, rel, std

# rows of the experimental schemes and keys (l2rw, meta_interval, ...) are compared too
import recbole_autodenoise.experimental  # noqa: F401
from recbole_autodenoise.arguments import input_file

# never change what a run computes (experimental: the opt-in to recbole_autodenoise.experimental)
IGNORED = ("show_progress", "gpu_id", "experimental")
# the data a run sees: its references must have seen the same (injected noise, the guide/select
# split)
CONDITION = ("noise_kind", "noise_rate", "clean_valid_guide_ratio")
PROTOCOLS = ("user_first", "interaction")
METRICS = ("ndcg@20", "recall@20")
WEIGHTS = ("tp_mean_weight", "fp_mean_weight", "injected_mean_weight")


def variant(row: dict[str, Any]) -> tuple[str, tuple, str]:
    """(model, condition, label): the label is the scheme and the overrides it reads, sorted."""
    from recbole_autodenoise.schemes import SCHEMES  # registers every scheme
    from recbole_autodenoise.schemes.base import ignored_keys

    overrides = {k: v for k, v in row.get("overrides", {}).items() if k not in IGNORED}
    condition = tuple((k, overrides.pop(k)) for k in CONDITION if k in overrides)
    scheme = row["scheme"]
    read = (
        set(overrides) - set(ignored_keys(scheme, set(overrides)))
        if scheme in SCHEMES.names()
        else set(overrides)
    )
    label = SCHEME_LABEL.get(scheme, scheme) + "".join(f" {k}={overrides[k]}" for k in sorted(read))
    return row["model"], condition, label


def groups(
    rows: Sequence[dict[str, Any]],
) -> dict[tuple[str, tuple, str], dict[int, dict[str, Any]]]:
    """Finished rows by variant, then seed (a later row of the same cell key wins). Rows of one
    variant under different settings (config files' contents: another ``overrides_hash``) never
    merge: each hash becomes its own variant, labelled by the settings that differ."""
    by_hash: dict[tuple[str, tuple, str], dict[str, dict[int, dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for row in latest_rows(rows).values():
        if row.get("status") == "ok":
            by_hash[variant(row)][row.get("overrides_hash", "")][row["seed"]] = row
    out = {}
    for key, hashes in by_hash.items():
        for digest, group in hashes.items():
            out[
                key if len(hashes) == 1 else (*key[:2], key[2] + settings_label(digest, hashes))
            ] = group
    return out


def settings_label(digest: str, hashes: dict[str, dict[int, dict[str, Any]]]) -> str:
    """What sets one hash's rows apart from the variant's other hashes: the settings whose values
    differ (``key=value``), else the hash itself."""
    settings = {h: next(iter(group.values())).get("settings", {}) for h, group in hashes.items()}
    keys = sorted({k for values in settings.values() for k in values} - {"seed"})
    differing = [k for k in keys if len({repr(values.get(k)) for values in settings.values()}) > 1]
    return "".join(f" {k}={settings[digest].get(k)}" for k in differing) or f" [{digest}]"


def values(group: dict[int, dict[str, Any]], protocol: str, metric: str) -> dict[int, float]:
    """Seed -> the metric in % under the protocol, where the row has it."""
    found = {}
    for seed, row in group.items():
        result = row["results"].get("test_by_protocol", {}).get(protocol, {})
        if metric in result:
            found[seed] = 100.0 * result[metric]
    return found


def cell(group, reference, protocol: str, metric: str) -> str:
    mine = values(group, protocol, metric)
    if not mine:
        return ""
    text = f"{mean(list(mine.values())):.3f}" + (
        f" ± {std(list(mine.values())):.3f}" if len(mine) > 1 else ""
    )
    if reference is None:
        return text
    theirs = values(reference, protocol, metric)
    seeds = sorted(set(mine) & set(theirs))
    change = (
        rel(mean([mine[s] for s in seeds]), mean([theirs[s] for s in seeds])) if seeds else None
    )
    if change is None:
        return text
    return (
        f"{text} ({change:+.1f} %, p = {fmt_p(paired_p(mine, theirs))}"
        f"{per_query_text(group, reference, seeds, protocol, metric)})"
    )


def query_means(group, seeds: Sequence[int], protocol: str, metric: str) -> tuple[str, Any] | None:
    """(the queries' digest, each query's metric averaged over ``seeds``), where every one of those
    runs kept the protocol's per-query record over the same queries in the same order."""
    from recbole_autodenoise.evaluation.per_query import metric_per_query

    records = [group[s]["results"].get("per_query", {}).get(protocol) for s in seeds]
    if (
        not records
        or any(r is None for r in records)
        or len({r["users_digest"] for r in records}) != 1
    ):
        return None
    return records[0]["users_digest"], sum(metric_per_query(r, metric) for r in records) / len(
        records
    )


def per_query_text(group, reference, seeds: Sequence[int], protocol: str, metric: str) -> str:
    """``; per query p = ..., Q x S``: a paired t-test over the queries, each query's metric
    averaged over the S seeds both ran; empty where either side lacks per-query records (older
    rows)."""
    mine, theirs = (
        query_means(group, seeds, protocol, metric),
        query_means(reference, seeds, protocol, metric),
    )
    if mine is None or theirs is None or mine[0] != theirs[0]:
        return ""
    p = stats.ttest_rel(mine[1], theirs[1]).pvalue
    return (
        f"; per query p = {fmt_p(None if math.isnan(p) else float(p))}, "
        f"{len(mine[1])} × {len(seeds)}"
    )


def weights(group: dict[int, dict[str, Any]]) -> str:
    means = []
    for key in WEIGHTS:
        found = [r["results"].get("weight_study", {}).get(key) for r in group.values()]
        found = [v for v in found if isinstance(v, (int, float))]
        if found:
            means.append(f"{mean(found):.3f}")
    return " / ".join(means)


def table(found, model: str, condition: tuple, against: str) -> list[str]:
    """One Markdown table: every variant of (model, condition) against the reference scheme."""
    reference = found.get((model, condition, SCHEME_LABEL.get(against, against)))
    columns = [
        f"{m.replace('ndcg', 'NDCG').replace('recall', 'Recall')} `{p}`"
        for m in METRICS
        for p in PROTOCOLS
    ]
    lines = [
        f"| variant | seeds | {' | '.join(columns)} | weights TP / FP (/ injected) |",
        "| --- | ---: |" + " ---: |" * len(columns) + " ---: |",
    ]
    for key in sorted(k for k in found if k[:2] == (model, condition)):
        group = found[key]
        ref = None if key[2] == SCHEME_LABEL.get(against, against) else reference
        cells = [cell(group, ref, p, m) for m in METRICS for p in PROTOCOLS]
        lines.append(f"| {key[2]} | {len(group)} | {' | '.join(cells)} | {weights(group)} |")
    return lines


def condition_label(
    condition: tuple, clean: str = "no injected noise, one clean validation set"
) -> str:
    """``noise_kind=foreign, noise_rate=0.2``: the data condition a variant ran under, ``clean``
    for none."""
    return ", ".join(f"{k}={v}" for k, v in condition) or clean


def check_choices(
    rows: Sequence[dict[str, Any]], models: Sequence[str] | None, against: Sequence[str]
) -> None:
    """A ValueError for a ``--model`` no finished row has or an ``--against`` that is no scheme."""
    from recbole_autodenoise.schemes import SCHEMES

    finished = [row for row in latest_rows(rows).values() if row.get("status") == "ok"]
    held = sorted({str(row["model"]) for row in finished})
    absent = [model for model in models or () if model not in held]
    if absent:
        raise ValueError(f"--model {absent}: no finished row of it in the files; they hold {held}")
    unknown = [scheme for scheme in against if scheme not in SCHEMES]
    if unknown:
        raise ValueError(f"--against {unknown}: not a scheme; choose from {SCHEMES.names()}")


def render(
    rows: Sequence[dict[str, Any]], models: Sequence[str] | None, against: Sequence[str]
) -> str:
    found = groups(rows)
    out = []
    for model, condition in sorted({k[:2] for k in found if not models or k[0] in models}, key=str):
        for reference in against:
            if (model, condition, SCHEME_LABEL.get(reference, reference)) not in found:
                continue
            out += [
                f"### {model}, {condition_label(condition)}: "
                f"against {SCHEME_LABEL.get(reference, reference)}",
                "",
                "Clean test, %, mean ± std over seeds "
                "(change and paired t-test p against the reference).",
                "",
            ]
            out += table(found, model, condition, reference) + [""]
    if not out:
        raise ValueError(
            "no finished rows with a reference scheme to compare against "
            f"(--against {list(against)})"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "files", nargs="+", type=input_file, help="JSONL rows of benchmarks.table3 (several merge)"
    )
    parser.add_argument("--model", nargs="*", help="only these models")
    parser.add_argument(
        "--against", nargs="+", default=["default", "adt_rl", "dcf"], help="reference schemes"
    )
    args = parser.parse_args(argv)
    try:
        rows = [row for path in args.files for row in read_rows(path)]
        check_choices(rows, args.model, args.against)
        text = render(rows, args.model, args.against)
    except ValueError as error:
        parser.error(str(error))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
