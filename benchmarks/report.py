"""Report: ``python -m benchmarks.report benchmarks/results/ml-latest-small.jsonl
--out docs/table3.md``.

Writes the Markdown report, a CSV beside it (same units: P/R/NDCG in %, F1 as a fraction, like the
paper's Table 3) and, when matplotlib is installed, PNG figures beside it. Statistics are over
seeds: mean ± sample std, relative improvement over Default of the same model, and paired t-tests
(scipy.stats.ttest_rel over seeds both cells finished) against Default and the best baseline.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from scipy import stats

from recbole_autodenoise.arguments import check_output_path, input_file, output_file
from recbole_autodenoise.data.dataloader import EVAL_PROTOCOLS
from recbole_autodenoise.files import atomic_write

from benchmarks.grid import AUTODENOISE, BASELINES, SCHEMES, latest_rows, read_rows
from benchmarks.paper import METRICS, PAPER_BLOCK, PAPER_TABLES, PAPER_WEIGHTS, TRUNCATED

MODEL_LABEL = {"BPR": "MF (BPR)", "SoftmaxMF": "MF (softmax)"}
MODEL_ORDER = ("SoftmaxMF", "BPR", "GRU4Rec", "SASRec")
PAPER_MODEL = {
    "SoftmaxMF": "BPR"
}  # the paper's MF rows are keyed "BPR"; both our MF rows sit beside them
SCHEME_LABEL = {
    "default": "Default",
    "heuristic": "Heuristic",
    "adt_tl": "ADT-TL",
    "adt_rl": "ADT-RL",
    "autodenoise_h": "AutoDenoise-H",
    "autodenoise_s": "AutoDenoise-S",
    "l2rw": "L2RW",
    "oracle": "Oracle",
    "dcf": "DCF",
    "heuristic_literal": "Heuristic (literal, α = 1)",
}
MAIN_METRIC = "ndcg@20"
TIME_TARGET, MEMORY_TARGET = 1.15, 1.10  # AutoDenoise cost targets, as ratios to Default
SWEEP_KEYS = ("controller_num_actions",)  # cells setting these belong to Fig. 3, not to the table
# cells setting these belong to the beyond-the-paper studies (issue 5), not to the paper's table
STUDY_KEYS = (
    "noise_rate",
    "noise_kind",
    "clean_valid_guide_ratio",
    "controller_credit",
    "meta_interval",
    "meta_normalize_weights",
)
TABLE_SCHEMES = (
    *SCHEMES[:2],
    "heuristic_literal",
    *SCHEMES[2:],
)  # the table's row order: the literal Heuristic after the tuned one
DEFAULT_NUM_ACTIONS = 3
ALPHA = 0.05


def scale(metric: str) -> float:
    """Paper units: F1 as a fraction, the rest in %."""
    return 1.0 if metric.startswith("f1") else 100.0


def label(model: str, scheme: str) -> str:
    return f"{MODEL_LABEL.get(model, model)}-{SCHEME_LABEL.get(scheme, scheme)}"


def mean(values: Sequence[float]) -> float:
    return statistics.mean(values) if values else math.nan


def std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else math.nan


@dataclass
class Group:
    """The finished seeds of one (model, scheme) setting."""

    model: str
    scheme: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def by_seed(self, metric: str) -> dict[int, float]:
        return {
            r["seed"]: r["results"]["test"][metric] * scale(metric)
            for r in self.rows
            if metric in r["results"]["test"]
        }

    def values(self, metric: str) -> list[float]:
        return list(self.by_seed(metric).values())

    def epoch_seconds(self, train_only: bool = False) -> list[float]:
        """Per run: (train [+ validation]) seconds summed over epochs / epochs trained."""
        out = []
        for r in self.rows:
            epochs = r["results"].get("epochs") or []
            if epochs:
                total = sum(
                    e.get("train_seconds", 0.0) + (0 if train_only else e.get("valid_seconds", 0.0))
                    for e in epochs
                )
                out.append(total / len(epochs))
        return out

    def memory_mb(self) -> tuple[list[float], str]:
        gpu = [r["peak_memory"].get("cuda_max_allocated_mb") for r in self.rows]
        if gpu and all(v is not None for v in gpu):
            return gpu, "GPU max allocated"
        return [
            r["peak_memory"]["peak_rss_mb"]
            for r in self.rows
            if r.get("peak_memory", {}).get("peak_rss_mb")
        ], "peak RSS"

    @property
    def machine(self) -> str:
        """Where the rows ran: the GPU's name, else 'CPU <model>' (several joined by ' + ')."""
        return " + ".join(sorted({machine(r) for r in self.rows})) or "–"

    def weights(self, key: str) -> list[float]:
        vals = [r["results"].get("weight_study", {}).get(key) for r in self.rows]
        return [v for v in vals if isinstance(v, (int, float)) and math.isfinite(v)]


def machine(row: dict[str, Any]) -> str:
    gpu = (row.get("device") or {}).get("gpu")
    return f"GPU {gpu}" if gpu else f"CPU {row.get('host', {}).get('cpu', '?')}"


def paired_p(a: dict[int, float], b: dict[int, float]) -> float | None:
    """Paired t-test p-value over common seeds; None with < 2 pairs or identical pairs."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    p = stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue
    return None if p is None or math.isnan(p) else float(p)


def rel(new: float, base: float | None) -> float | None:
    if (
        base is None
        or new is None
        or not math.isfinite(base)
        or not math.isfinite(new)
        or base == 0
    ):
        return None
    return (new - base) / base * 100


def ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(b) else math.nan


def times(r: float) -> str:
    return f"{r:.2f}×" if math.isfinite(r) else "n/a"


# --- loading -------------------------------------------------------------------------------
def load(
    paths: str | Path | Sequence[str | Path], dataset: str | None = None
) -> tuple[str, list[dict[str, Any]], list[str]]:
    """Finished rows of one data set from one or more JSONL files, and notes on what was left
    out."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    every = [row for path in paths for row in read_rows(path)]
    rows = [r for r in latest_rows(every).values() if r.get("status") == "ok"]
    datasets = sorted({r["dataset"] for r in rows})
    if not datasets:
        raise ValueError(f"{', '.join(map(str, paths))} hold no finished rows")
    if dataset is None:
        if len(datasets) != 1:
            raise ValueError(
                f"{', '.join(map(str, paths))} hold data sets {datasets}; pick one with --dataset"
            )
        dataset = datasets[0]
    if dataset not in datasets:
        raise ValueError(
            f"--dataset {dataset!r}: {', '.join(map(str, paths))} hold finished rows "
            f"of {datasets} only"
        )
    failed = [
        r
        for r in latest_rows(every).values()
        if r.get("status") == "failed" and r["dataset"] == dataset
    ]
    notes = (
        [
            f"{len(failed)} cell(s) failed and are not in the tables: "
            + ", ".join(r["key"] for r in failed)
        ]
        if failed
        else []
    )
    return dataset, [r for r in rows if r["dataset"] == dataset], notes


def table_scheme(row: dict[str, Any]) -> str:
    """The row's scheme in the tables; a Heuristic cell run with ``--set heuristic_alpha=1`` (the
    paper's literal 1/f, issue 12) is its own row beside the tuned, tempered Heuristic."""
    alpha = row.get("overrides", {}).get("heuristic_alpha")
    literal = row["scheme"] == "heuristic" and alpha is not None and float(alpha) == 1.0
    return "heuristic_literal" if literal else row["scheme"]


def main_groups(
    rows: list[dict[str, Any]],
    notes: list[str],
    others: dict[tuple[str, str, str], Group] | None = None,
) -> dict[tuple[str, str], Group]:
    """One settings hash per (model, scheme): the one with most finished seeds (then the newest).
    Cells of the Fig. 3 sweep (``SWEEP_KEYS`` in --set overrides) are left out; the groups of the
    other hashes go to ``others`` keyed (model, scheme, hash), e.g. a short cost run on another
    machine."""
    by_hash: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if not any(k in r.get("overrides", {}) for k in SWEEP_KEYS + STUDY_KEYS):
            by_hash[(r["model"], table_scheme(r))][r["overrides_hash"]].append(r)
    groups = {}
    for key, hashes in by_hash.items():
        chosen = max(
            hashes, key=lambda h: (len(hashes[h]), max(r.get("finished_at", "") for r in hashes[h]))
        )
        if len(hashes) > 1:
            notes.append(
                f"{label(*key)}: the tables use settings {chosen}; settings "
                + ", ".join(h for h in hashes if h != chosen)
                + " appear only in the cost table of other runs"
            )
        groups[key] = Group(*key, rows=sorted(hashes[chosen], key=lambda r: r["seed"]))
        if others is not None:
            for h in hashes:
                if h != chosen:
                    others[(*key, h)] = Group(*key, rows=sorted(hashes[h], key=lambda r: r["seed"]))
    return groups


def ordered(groups: dict[tuple[str, str], Group]) -> list[Group]:
    models = list(dict.fromkeys(m for m in MODEL_ORDER if any(k[0] == m for k in groups)))
    models += sorted({k[0] for k in groups} - set(models))
    order = {s: i for i, s in enumerate(TABLE_SCHEMES)}
    return [
        groups[k]
        for k in sorted(groups, key=lambda k: (models.index(k[0]), order.get(k[1], 99), k[1]))
    ]


def best_baseline(groups: dict[tuple[str, str], Group], model: str) -> str | None:
    present = [s for s in BASELINES if (model, s) in groups]
    return (
        max(present, key=lambda s: mean(groups[(model, s)].values(MAIN_METRIC)))
        if present
        else None
    )


# --- formatting ----------------------------------------------------------------------------
def fmt(value: float | None, metric: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.4f}" if metric.startswith("f1") else f"{value:.3f}"


def fmt_ms(values: Sequence[float], metric: str) -> str:
    if not values:
        return "–"
    s = std(values)
    return fmt(mean(values), metric) + ("" if math.isnan(s) else f" ± {fmt(s, metric)}")


def fmt_p(p: float | None) -> str:
    return "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def fmt_rel(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}%"


def table(header: Sequence[str], body: Sequence[Sequence[str]], align: str = "l") -> list[str]:
    first = "| " + " | ".join(header) + " |"
    sep = (
        "|"
        + "|".join(" --- " if i == 0 or align == "l" else " ---: " for i in range(len(header)))
        + "|"
    )
    return [first, sep] + ["| " + " | ".join(row) + " |" for row in body]


METRIC_HEAD = [
    m.replace("precision", "P").replace("recall", "R").replace("ndcg", "NDCG").replace("f1", "F1")
    for m in METRICS
]


# --- figures (optional matplotlib) -----------------------------------------------------------
def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_weights(groups: list[Group], path: Path) -> bool:
    plt = _pyplot()
    ad = [g for g in groups if g.scheme in AUTODENOISE and g.weights("tp_mean_weight")]
    if plt is None or not ad:
        return False
    fig, ax = plt.subplots(figsize=(1.4 * len(ad) + 2, 3.5))
    xs = range(len(ad))
    for offset, key, name, color in (
        (-0.2, "tp_mean_weight", "TP", "tab:blue"),
        (0.2, "fp_mean_weight", "FP", "tab:green"),
    ):
        vals = [g.weights(key) for g in ad]
        ax.bar(
            [x + offset for x in xs],
            [mean(v) for v in vals],
            0.4,
            yerr=[0 if len(v) < 2 else std(v) for v in vals],
            label=name,
            color=color,
        )
    ax.set_xticks(
        list(xs), [label(g.model, g.scheme).replace("-Auto", "\nAuto") for g in ad], fontsize=8
    )
    ax.set_ylabel("mean learned weight")
    ax.set_title("Fig. 2: learned weights of true- vs false-positive training samples")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_actions(points: dict[int, list[float]], model: str, path: Path) -> bool:
    plt = _pyplot()
    if plt is None or len(points) < 2:
        return False
    xs = sorted(points)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.errorbar(
        xs,
        [mean(points[a]) for a in xs],
        yerr=[0 if len(points[a]) < 2 else std(points[a]) for a in xs],
        marker="o",
        capsize=3,
    )
    ax.set_xticks(xs)
    ax.set_xlabel("number of actions A (A = 1 is invalid here: A >= 2)")
    ax.set_ylabel("test NDCG@20 (%)")
    ax.set_title(f"Fig. 3: {MODEL_LABEL.get(model, model)}-AutoDenoise-H")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_curves(row: dict[str, Any], path: Path) -> bool:
    plt = _pyplot()
    epochs = [e for e in row["results"].get("epochs", []) if "controller_reward" in e]
    if plt is None or not epochs:
        return False
    x = [e["epoch"] for e in epochs]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 5), sharex=True)
    top.plot(x, [e["controller_reward"] for e in epochs], label="reward R")
    top.plot(x, [e.get("controller_baseline", math.nan) for e in epochs], label="baseline b")
    top.set_ylabel("validation reward")
    top.legend()
    bottom.plot(x, [e.get("valid_score", math.nan) for e in epochs], color="tab:red")
    bottom.set_ylabel("valid score (valid_metric)")
    bottom.set_xlabel("epoch")
    bottom.xaxis.get_major_locator().set_params(integer=True)
    top.set_title(f"Training curves: {label(row['model'], row['scheme'])}, seed {row['seed']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# --- the report ------------------------------------------------------------------------------
def cost_row(g: Group, d: Group | None) -> tuple[list[str], dict[str, Any], list[str] | None]:
    """One cost-table row of ``g`` against Default ``d`` (same model and settings), its CSV fields,
    and the missed AutoDenoise targets (None for other schemes, and where ``d`` ran on other
    machines: seconds and bytes from two machines make no ratio)."""
    ep, tr = mean(g.epoch_seconds()), mean(g.epoch_seconds(train_only=True))
    mem_values, kind = g.memory_mb()
    mem = mean(mem_values)
    other_machine = d is not None and d.machine != g.machine
    d = None if other_machine else d
    r_ep = ratio(ep, mean(d.epoch_seconds())) if d else math.nan
    r_tr = ratio(tr, mean(d.epoch_seconds(train_only=True))) if d else math.nan
    r_mem = ratio(mem, mean(d.memory_mb()[0])) if d else math.nan
    flag, misses = "n/a: Default ran on another machine" if other_machine else "", None
    if g.scheme in AUTODENOISE and d:
        misses = ([f"time {r_ep:.2f}× > {TIME_TARGET}×"] if r_ep > TIME_TARGET else []) + (
            [f"memory {r_mem:.2f}× > {MEMORY_TARGET}×"] if r_mem > MEMORY_TARGET else []
        )
        flag = "**MISS**: " + ", ".join(misses) if misses else "ok"
    fields = {
        "epoch_seconds": ep,
        "epoch_time_ratio": r_ep,
        "train_seconds_per_epoch": tr,
        "train_time_ratio": r_tr,
        "memory_mb": mem,
        "memory_ratio": r_mem,
        "memory_kind": kind,
        "machine": g.machine,
    }
    epochs = mean([r["results"]["timing"]["epochs_trained"] for r in g.rows])
    cells = [
        label(g.model, g.scheme),
        g.machine,
        f"{epochs:.1f}",
        f"{tr:.2f}",
        times(r_tr),
        f"{ep:.2f}",
        times(r_ep),
        f"{mem:.0f} ({kind})",
        times(r_mem),
        flag,
    ]
    return cells, fields, misses


def paper_rows(dataset: str) -> dict[tuple[str, str], dict[str, float | None]]:
    """The paper's rows for ``dataset`` (its block of Table 3, if it has one), its MF rows also
    beside our SoftmaxMF."""
    block = PAPER_TABLES.get(dataset, {})
    rows = dict(block)
    for ours, theirs in PAPER_MODEL.items():
        rows.update(
            {(ours, scheme): row for (model, scheme), row in block.items() if model == theirs}
        )
    return rows


def select_protocol(
    rows: list[dict[str, Any]], protocol: str, notes: list[str]
) -> list[dict[str, Any]]:
    """Rows whose ``test`` is their test set under ``protocol`` (``results.test_by_protocol``);
    rows without it (older runs) are left out with a note."""
    kept = []
    for row in rows:
        by_protocol = row["results"].get("test_by_protocol") or {}
        if protocol in by_protocol:
            kept.append({**row, "results": {**row["results"], "test": by_protocol[protocol]}})
    if rows and not kept:
        held = sorted({p for row in rows for p in row["results"].get("test_by_protocol") or {}})
        raise ValueError(
            f"--protocol {protocol!r}: no finished row has test results under it; "
            f"the rows hold {held}"
        )
    if len(kept) < len(rows):
        notes.append(
            f"{len(rows) - len(kept)} finished cell(s) have no test results under eval protocol "
            f"'{protocol}' (older runs) and are not in these tables"
        )
    return kept


def stopping_notes(rows: list[dict[str, Any]]) -> list[str]:
    """Flags runs that hit the epoch cap (may not have converged) or kept their epoch-0 model."""
    capped = [r["key"] for r in rows if (r["results"].get("stopping") or {}).get("hit_epoch_cap")]
    at_zero = [
        r["key"] for r in rows if (r["results"].get("stopping") or {}).get("best_epoch") == 0
    ]
    known = sum(1 for r in rows if r["results"].get("stopping"))
    notes = [
        f"Stopping: {known} of {len(rows)} cells record how they stopped; "
        f"{len(capped)} hit the epoch cap"
        + (f" ({', '.join(capped)})" if capped else "")
        + f", {len(at_zero)} kept their epoch-0 model"
        + (f" ({', '.join(at_zero)})" if at_zero else "")
        + "."
    ]
    return notes


def headroom_lines(groups: dict[tuple[str, str], Group], models: Sequence[str]) -> list[str]:
    """Per model: what a perfect denoiser (oracle) changes against Default, and the share of it each
    scheme recovered ((scheme - Default) / (oracle - Default))."""
    lines = []
    for model in models:
        d, o = groups.get((model, "default")), groups.get((model, "oracle"))
        if d is None or o is None:
            continue
        m_d, m_o = mean(d.values(MAIN_METRIC)), mean(o.values(MAIN_METRIC))
        p = paired_p(o.by_seed(MAIN_METRIC), d.by_seed(MAIN_METRIC))
        gap = m_o - m_d
        recovered = []
        for scheme in BASELINES + AUTODENOISE:
            g = groups.get((model, scheme))
            if g is not None and gap > 0:
                recovered.append(
                    f"{SCHEME_LABEL[scheme]} "
                    f"{100 * (mean(g.values(MAIN_METRIC)) - m_d) / gap:+.0f} %"
                )
        tail = f"; share of it recovered: {', '.join(recovered)}" if recovered else ""
        if (
            gap <= 0
        ):  # a share of a negative headroom has no meaning: removing the low-rated rows hurts there
            tail = "; no headroom to recover: removing the low-rated rows does not help"
        lines.append(
            f"- {MODEL_LABEL.get(model, model)}: oracle {fmt(m_o)} vs Default {fmt(m_d)} NDCG@20, "
            f"headroom {fmt_rel(rel(m_o, m_d))} "
            f"(p {fmt_p(p) if p is None or p < 0.001 else '= ' + fmt_p(p)}, "
            f"n = {len(set(o.by_seed(MAIN_METRIC)) & set(d.by_seed(MAIN_METRIC)))})" + tail + "."
        )
    if not lines:
        return []
    return (
        [
            "## Headroom: the oracle (drops every training sample rated below the threshold)",
            "",
            "A diagnostic that reads the ratings, not a method: how much perfect denoising changes "
            "clean-test NDCG@20.",
            "",
        ]
        + lines
        + [""]
    )


MARK = "by `python -m benchmarks.report"  # in every report's third line
CSV_HEADER = "model,scheme,source,n_seeds,"


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that cannot be written (``check_output_path``, for the report and the CSV
    beside it) and a file this module did not write (docs/results.md is written by hand)."""
    if out.suffix == ".csv":
        raise ValueError(
            f"--out {out}: the report's CSV goes beside it as "
            f"{out.with_suffix('.csv').name}; name a Markdown file"
        )
    for path, mark in ((out, MARK), (out.with_suffix(".csv"), CSV_HEADER)):
        check_output_path(path)
        if path.exists() and mark not in path.read_text(encoding="utf-8", errors="replace")[:4096]:
            raise ValueError(
                f"--out: {path} exists and was not written by benchmarks.report; refusing to "
                "overwrite it (name a new file, or remove this one first)"
            )


def build(
    rows: list[dict[str, Any]], dataset: str, out: Path, notes: list[str], source: str = ""
) -> dict[str, Any]:
    """Write ``out`` (Markdown), its CSV and figures; return a summary (used by the tests)."""
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    other_groups: dict[tuple[str, str, str], Group] = {}
    groups = main_groups(rows, notes, other_groups)
    ordered_groups = ordered(groups)
    models = list(dict.fromkeys(g.model for g in ordered_groups))
    paper = paper_rows(dataset)
    lines = [
        f"# AutoDenoise benchmark: {dataset}",
        "",
        f"Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} "
        f"by `python -m benchmarks.report {source}`"
        f" from {len(rows)} finished cells. Test metrics on the clean test set; "
        "Precision, Recall, NDCG in %, "
        "F1 as a fraction (as the paper's Table 3 prints them); "
        "ours are mean ± sample std over seeds.",
        "",
    ]

    # Verdict first: the question the benchmark exists to answer.
    verdict, summary = [], {"beats_default": {}, "cost": {}}
    for model in models:
        d = groups.get((model, "default"))
        for scheme in AUTODENOISE:
            g = groups.get((model, scheme))
            if d is None or g is None:
                continue
            m_g, m_d = mean(g.values(MAIN_METRIC)), mean(d.values(MAIN_METRIC))
            p = paired_p(g.by_seed(MAIN_METRIC), d.by_seed(MAIN_METRIC))
            beats = m_g > m_d and p is not None and p < ALPHA
            summary["beats_default"][(model, scheme)] = beats
            why = (
                ""
                if beats
                else (
                    " (lower mean)"
                    if m_g <= m_d
                    else f" (higher mean, but not significant at p < {ALPHA})"
                )
            )
            verdict.append(
                f"- {label(model, scheme)}: NDCG@20 {fmt(m_g)} vs Default {fmt(m_d)} "
                f"({fmt_rel(rel(m_g, m_d))}, "
                f"p {fmt_p(p) if p is None or p < 0.001 else '= ' + fmt_p(p)}): "
                f"**{'beats' if beats else 'does NOT beat'} Default**{why}."
            )
    losers = [label(*k) for k, v in summary["beats_default"].items() if not v]
    lines += (
        ["## Verdict", ""]
        + (verdict or ["- No model has both Default and AutoDenoise cells finished yet."])
        + [""]
    )
    if losers:
        lines += [
            "**AutoDenoise does not beat Default** "
            f"(NDCG@20, paired t-test over seeds, p < {ALPHA}) for: "
            + ", ".join(losers)
            + ". The paper (Sec. 5.3.2) reports AutoDenoise better than Default in every setting.",
            "",
        ]
    elif summary["beats_default"]:
        lines += [
            f"AutoDenoise beats Default significantly (NDCG@20, p < {ALPHA}) "
            "for every model measured.",
            "",
        ]

    lines += headroom_lines(groups, models)
    notes = notes + stopping_notes(rows)

    # Table 3, ours beside the paper's.
    lines += [
        "## Table 3 (ours vs. the paper)",
        "",
        (
            "*paper* rows are transcribed from the paper's Table 3 "
            f"({PAPER_BLOCK[dataset]} block); – = not legible there; "
            if dataset in PAPER_TABLES
            else f"The paper's Table 3 has no block for {dataset}. "
        )
        + "† = NDCG@50 column clipped in the paper's markdown "
        "(value may have lost trailing digits). "
        "See benchmarks/paper.py for the transcription notes.",
        "",
    ]
    body = []
    for g in ordered_groups:
        n = len(g.rows)
        body.append(
            [label(g.model, g.scheme), f"ours (n={n}, {g.machine})"]
            + [fmt_ms(g.values(m), m) for m in METRICS]
        )
        if (g.model, g.scheme) in paper:
            pr = paper[(g.model, g.scheme)]
            body.append(
                ["", "paper"]
                + [
                    ("–" if pr[m] is None else f"{pr[m]:.5g}" + ("†" if m in TRUNCATED else ""))
                    for m in METRICS
                ]
            )
    lines += table(["Method", "source"] + METRIC_HEAD, body) + [""]

    # Relative improvement over Default.
    lines += [
        "## Relative improvement over Default (same model)",
        "",
        "ours (paper) — relative change of the mean.",
        "",
    ]
    body = []
    for g in ordered_groups:
        d = groups.get((g.model, "default"))
        if g.scheme == "default" or d is None:
            continue
        cells = []
        for m in METRICS:
            ours = rel(mean(g.values(m)), mean(d.values(m)))
            pr, pd = (
                paper.get((g.model, g.scheme), {}).get(m),
                paper.get((g.model, "default"), {}).get(m),
            )
            cells.append(
                fmt_rel(ours)
                + (f" ({fmt_rel(rel(pr, pd))})" if pr is not None and pd is not None else "")
            )
        body.append([label(g.model, g.scheme)] + cells)
    lines += table(["Method"] + METRIC_HEAD, body) + [""]

    # Significance.
    lines += [
        "## Paired t-tests over seeds (p-values)",
        "",
        "scipy.stats.ttest_rel over the seeds both cells finished; best baseline = best of "
        "Heuristic / ADT-TL / ADT-RL / DCF (those run) by mean NDCG@20 for that model; "
        "n/a = fewer than 2 pairs or identical results.",
        "",
    ]
    body, pvals = [], {}
    for g in ordered_groups:
        comparisons = []
        if g.scheme != "default" and (g.model, "default") in groups:
            comparisons.append(("default", "Default"))
        bb = best_baseline(groups, g.model)
        if g.scheme in AUTODENOISE and bb:
            comparisons.append((bb, f"best baseline ({SCHEME_LABEL[bb]})"))
        for other, name in comparisons:
            o = groups[(g.model, other)]
            ps = {m: paired_p(g.by_seed(m), o.by_seed(m)) for m in METRICS}
            pvals[(g.model, g.scheme, other)] = ps
            n = len(set(g.by_seed(MAIN_METRIC)) & set(o.by_seed(MAIN_METRIC)))
            body.append([label(g.model, g.scheme), name, str(n)] + [fmt_p(ps[m]) for m in METRICS])
    summary["p_values"] = pvals
    lines += table(["Method", "vs", "pairs"] + METRIC_HEAD, body) + [""]

    # Cost.
    lines += [
        "## Cost (ratio to Default of the same model)",
        "",
        "Epoch time = (train + validation) seconds summed over epochs / epochs trained; "
        "train = training batches only. "
        "Memory: GPU max allocated when run on GPU, else the cell process's peak RSS "
        "(includes ~constant "
        "torch/RecBole import overhead, which dilutes ratios). "
        f"Targets for AutoDenoise: ≤ {TIME_TARGET}× epoch time, "
        f"≤ {MEMORY_TARGET}× memory.",
        "",
    ]
    header = [
        "Method",
        "machine",
        "epochs",
        "train s/epoch",
        "ratio",
        "epoch s",
        "ratio",
        "memory MB",
        "ratio",
        "target",
    ]
    body, csv_cost = [], {}
    for g in ordered_groups:
        cells, csv_cost[(g.model, g.scheme)], misses = cost_row(g, groups.get((g.model, "default")))
        if misses is not None:
            summary["cost"][(g.model, g.scheme)] = misses
        body.append(cells)
    lines += table(header, body) + [""]
    if other_groups:
        lines += [
            "Other runs of the same schemes with other settings "
            "(typically a short run on another machine; "
            "ratios to Default of the same settings):",
            "",
        ]
        body = [
            cost_row(g, other_groups.get((model, "default", h)))[0] + [h]
            for (model, scheme, h), g in sorted(
                other_groups.items(),
                key=lambda kv: (
                    kv[0][0],
                    kv[0][2],
                    SCHEMES.index(kv[0][1]) if kv[0][1] in SCHEMES else 99,
                ),
            )
        ]
        lines += table(header + ["settings"], body) + [""]
    misses = [f"{label(*k)} ({', '.join(v)})" for k, v in summary["cost"].items() if v]
    if misses:
        lines += ["Cost targets missed: " + "; ".join(misses) + ".", ""]

    # Fig. 2: learned weights.
    stem = out.with_suffix("")
    lines += [
        "## Learned weights (Fig. 2)",
        "",
        "Mean weight of training samples rated ≥ threshold (TP) and < threshold (FP) over the run. "
        "The paper reports "
        f"TP {PAPER_WEIGHTS['tp_mean_weight']} vs FP {PAPER_WEIGHTS['fp_mean_weight']} "
        "(SASRec, averaged over data sets).",
        "",
    ]
    body = [
        [
            label(g.model, g.scheme),
            fmt_ms(g.weights("tp_mean_weight"), "f1"),
            fmt_ms(g.weights("fp_mean_weight"), "f1"),
        ]
        for g in ordered_groups
        if g.scheme != "default"
    ]
    lines += table(["Method", "TP mean weight", "FP mean weight"], body) + [""]
    fig2 = Path(f"{stem}-fig2-weights.png")
    if plot_weights(ordered_groups, fig2):
        lines += [f"![Fig. 2]({fig2.name})", ""]

    # Fig. 3: number of hard actions.
    fig3_model = "BPR"
    points: dict[int, list[float]] = defaultdict(list)
    # the sweep's cells; A = 3 from the main grid unless the sweep ran it too (then one machine
    # throughout)
    for r in rows:
        overrides = r.get("overrides", {})
        if (
            r["model"] == fig3_model
            and r["scheme"] == "autodenoise_h"
            and not any(k in overrides for k in STUDY_KEYS)
        ):
            if "controller_num_actions" in overrides:
                points[int(overrides["controller_num_actions"])].append(
                    r["results"]["test"][MAIN_METRIC] * 100
                )
    if DEFAULT_NUM_ACTIONS not in points and (fig3_model, "autodenoise_h") in groups:
        points[DEFAULT_NUM_ACTIONS] = groups[(fig3_model, "autodenoise_h")].values(MAIN_METRIC)
    lines += [
        "## Number of hard actions (Fig. 3)",
        "",
        "A = 1 (keep only) is invalid in this implementation (AutoDenoise-H needs A ≥ 2), "
        "so A runs 2..6. Produce the "
        f"cells with `python -m benchmarks.table3 ... --models {fig3_model} "
        "--schemes autodenoise_h --set controller_num_actions=A`.",
        "",
    ]
    if len(points) >= 2:
        lines += table(
            ["A", "seeds", "test NDCG@20 (%)"],
            [[str(a), str(len(points[a])), fmt_ms(points[a], MAIN_METRIC)] for a in sorted(points)],
        ) + [""]
        fig3 = Path(f"{stem}-fig3-actions.png")
        if plot_actions(points, fig3_model, fig3):
            lines += [f"![Fig. 3]({fig3.name})", ""]
    else:
        lines += [
            "Not run yet (needs cells with at least two values of controller_num_actions).",
            "",
        ]

    # Training curves of one AutoDenoise run.
    ad_rows = [r for g in ordered_groups if g.scheme in AUTODENOISE for r in g.rows]
    ad_rows.sort(key=lambda r: (r["model"] != "SASRec", r["scheme"] != "autodenoise_s", r["seed"]))
    curves = Path(f"{stem}-curves.png")
    if ad_rows and plot_curves(ad_rows[0], curves):
        lines += [
            "## Training curves",
            "",
            f"Reward, moving-average baseline and validation score per epoch for "
            f"{label(ad_rows[0]['model'], ad_rows[0]['scheme'])}, seed {ad_rows[0]['seed']}.",
            "",
            f"![curves]({curves.name})",
            "",
        ]
    if _pyplot() is None:
        lines += ["(Figures skipped: matplotlib is not installed; `pip install matplotlib`.)", ""]

    # Beyond the paper: noise, credit modes, diagnostics (cells setting a study key).
    from benchmarks.study import study_section

    lines += study_section(rows, stem)

    # Reproduction.
    hosts = sorted(
        {
            (
                r["host"].get("cpu"),
                r["host"].get("cpu_count"),
                (r.get("device") or {}).get("gpu"),
                (r.get("device") or {}).get("device"),
                (r.get("device") or {}).get("torch"),
            )
            for r in rows
        },
        key=str,
    )
    finished = sorted(r.get("finished_at", "") for r in rows)
    commits = sorted({str(r["host"].get("git_commit")) for r in rows})
    lines += ["## How this was produced", "", "Commands:", "", "```bash"]
    data_paths = sorted({r.get("data_path") for r in rows if r.get("data_path")})
    lines += [
        f"python -m recbole_autodenoise.prepare <ratings file> --name {dataset} --data-path {p}"
        for p in data_paths
    ]
    lines += sorted({r["command"] for r in rows if r.get("command")}) + [
        f"python -m benchmarks.report {source}".rstrip(),
        "```",
        "",
    ]
    if rows:
        lines += [f"One cell by hand, e.g.: `{rows[0]['cell_command']}`", ""]
    lines += [
        "Machines: "
        + "; ".join(
            f"CPU {c} ({n} cores), device {dev}, GPU {gpu or 'none'}, torch {t}"
            for c, n, gpu, dev, t in hosts
        ),
        f"Cells finished: {finished[0] if finished else '–'} "
        f"to {finished[-1] if finished else '–'}; code: {', '.join(commits)}.",
        "",
    ]
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    with atomic_write(out) as handle:
        handle.write("\n".join(lines))

    # CSV beside it.
    csv_path = out.with_suffix(".csv")
    fields = ["model", "scheme", "source", "n_seeds", "overrides_hash", "best_baseline"]
    for m in METRICS:
        fields += [
            m,
            f"{m}_std",
            f"{m}_rel_vs_default_pct",
            f"{m}_p_vs_default",
            f"{m}_p_vs_best_baseline",
        ]
    fields += [
        "epoch_seconds",
        "epoch_time_ratio",
        "train_seconds_per_epoch",
        "train_time_ratio",
        "memory_mb",
        "memory_ratio",
        "memory_kind",
        "machine",
        "tp_mean_weight",
        "fp_mean_weight",
    ]
    with atomic_write(csv_path) as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for g in ordered_groups:
            d, bb = groups.get((g.model, "default")), best_baseline(groups, g.model)
            row: dict[str, Any] = {
                "model": g.model,
                "scheme": g.scheme,
                "source": "ours",
                "n_seeds": len(g.rows),
                "overrides_hash": g.rows[0]["overrides_hash"],
                "best_baseline": bb or "",
            }
            for m in METRICS:
                row[m], row[f"{m}_std"] = mean(g.values(m)), std(g.values(m))
                row[f"{m}_rel_vs_default_pct"] = (
                    rel(mean(g.values(m)), mean(d.values(m))) if d else None
                )
                row[f"{m}_p_vs_default"] = pvals.get((g.model, g.scheme, "default"), {}).get(m)
                row[f"{m}_p_vs_best_baseline"] = (
                    pvals.get((g.model, g.scheme, bb), {}).get(m)
                    if g.scheme in AUTODENOISE
                    else None
                )
            row.update(
                csv_cost[(g.model, g.scheme)],
                tp_mean_weight=mean(g.weights("tp_mean_weight")),
                fp_mean_weight=mean(g.weights("fp_mean_weight")),
            )
            writer.writerow(row)
            if (g.model, g.scheme) in paper:
                writer.writerow(
                    {
                        "model": g.model,
                        "scheme": g.scheme,
                        "source": "paper",
                        **paper[(g.model, g.scheme)],
                    }
                )
    summary.update(csv=csv_path, groups=groups)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "results",
        nargs="+",
        type=input_file,
        help="JSONL file(s) written by benchmarks.table3 (rows are merged)",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=output_file,
        help="the report's Markdown file (its CSV goes beside it); "
        "an existing file is replaced only if benchmarks.report wrote it",
    )
    parser.add_argument(
        "--dataset", default=None, help="which data set of the JSONL (default: its only one)"
    )
    parser.add_argument(
        "--note",
        action="append",
        default=[],
        help="a line for the report's notes (repeatable), e.g. how a device run was launched",
    )
    parser.add_argument(
        "--protocol",
        default=None,
        choices=EVAL_PROTOCOLS,
        help="report each run's test set under this eval protocol "
        "(results' test_by_protocol) instead of its configured one",
    )
    args = parser.parse_args(argv)
    try:
        check_out(Path(args.out))
        dataset, rows, notes = load(args.results, args.dataset)
        notes = list(args.note) + notes
        if args.protocol:
            rows = select_protocol(rows, args.protocol, notes)
    except ValueError as error:
        parser.error(str(error))
    protocol = f" --protocol {args.protocol}" if args.protocol else ""
    build(
        rows,
        dataset,
        Path(args.out),
        notes,
        source=f"{' '.join(args.results)}{protocol} --out {args.out}",
    )
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
