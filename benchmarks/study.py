"""The beyond-the-paper part of the report (issue 5): what injected noise costs Default, how the
credit modes and baselines compare on clean and noisy data with the guide/select split, and what
the diagnostics say about the clean gradient. Built from the cells that set a study key
(``report.STUDY_KEYS``); ``report.build`` appends it to the report it writes."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.report import (
    MAIN_METRIC,
    METRICS,
    METRIC_HEAD,
    STUDY_KEYS,
    Group,
    _pyplot,
    fmt,
    fmt_ms,
    fmt_p,
    fmt_rel,
    machine,
    mean,
    paired_p,
    ratio,
    rel,
    table,
)

NOISE_KEYS = ("noise_rate", "noise_kind")
GROUPS = ("tp", "fp", "injected")
RAW_META = "meta, raw weights"
METHOD_ORDER = (
    "default",
    "adt_rl",
    "l2rw",
    "autodenoise_s/epoch",
    "autodenoise_s/user",
    "autodenoise_s/meta",
    f"autodenoise_s/{RAW_META}",
    "autodenoise_h/epoch",
    "autodenoise_h/user",
    "autodenoise_h/meta",
    f"autodenoise_h/{RAW_META}",
)
METHOD_LABEL = {
    "default": "Default",
    "adt_rl": "ADT-RL",
    "l2rw": "L2RW",
    "heuristic": "Heuristic",
    "adt_tl": "ADT-TL",
    "dcf": "DCF",
}


def method(row: dict[str, Any]) -> str:
    """scheme, or scheme/credit for AutoDenoise; meta credit without ``meta_normalize_weights``
    (set false, or a row from before the key existed: no ``plugin_config``) is its own method."""
    if row["scheme"].startswith("autodenoise"):
        credit = row["settings"].get("controller_credit", "epoch")
        plugin = (row.get("results") or {}).get("plugin_config", {})
        if credit == "meta" and not plugin.get("meta_normalize_weights", False):
            credit = RAW_META
        return f"{row['scheme']}/{credit}"
    return row["scheme"]


def method_label(name: str) -> str:
    if "/" in name:
        scheme, credit = name.split("/")
        return f"AutoDenoise-{scheme[-1].upper()} ({credit})"
    return METHOD_LABEL.get(name, name)


def condition(row: dict[str, Any]) -> str:
    s = row["settings"]
    return (
        f"{s['noise_kind']} {float(s['noise_rate']):.0%}"
        if float(s.get("noise_rate") or 0) > 0
        else "clean"
    )


def signature(row: dict[str, Any], drop: tuple[str, ...] = ()) -> str:
    """The cell's settings without seed, scheme, credit and the ``drop`` keys: equal signatures
    are runs of the same experiment."""
    skip = {"seed", "denoise_scheme", "controller_credit", *drop}
    return json.dumps(
        {k: v for k, v in row["settings"].items() if k not in skip}, sort_keys=True, default=str
    ) + machine(row)


def _epoch_seconds(group: Group) -> float:
    return mean(group.epoch_seconds(train_only=True))


def noise_cost(rows: list[dict[str, Any]]) -> list[str]:
    survey = [
        r
        for r in rows
        if r["scheme"] == "default" and float(r["settings"].get("noise_rate") or 0) > 0
    ]
    if not survey:
        return []
    clean: dict[tuple[str, str], Group] = {}
    for r in rows:
        if r["scheme"] == "default" and not float(r["settings"].get("noise_rate") or 0):
            clean.setdefault(
                (r["model"], signature(r, NOISE_KEYS)), Group(r["model"], "default")
            ).rows.append(r)
    cells: dict[tuple[str, str, str, float], Group] = {}
    for r in survey:
        key = (
            r["model"],
            signature(r, NOISE_KEYS),
            r["settings"]["noise_kind"],
            float(r["settings"]["noise_rate"]),
        )
        cells.setdefault(key, Group(r["model"], "default")).rows.append(r)
    body, worst = [], {}
    for (model, sig, kind, rate), g in sorted(
        cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3])
    ):
        ref = clean.get((model, sig))
        m_noisy = mean(g.values(MAIN_METRIC))
        m_clean = mean(ref.values(MAIN_METRIC)) if ref else math.nan
        change = rel(m_noisy, m_clean)
        p = paired_p(g.by_seed(MAIN_METRIC), ref.by_seed(MAIN_METRIC)) if ref else None
        body.append(
            [
                model,
                g.machine,
                kind,
                f"{rate:.0%}",
                str(len(g.rows)),
                fmt_ms(g.values(MAIN_METRIC), MAIN_METRIC),
                fmt_ms(ref.values(MAIN_METRIC), MAIN_METRIC) if ref else "–",
                fmt_rel(change),
                fmt_p(p),
            ]
        )
        if change is not None and (model not in worst or change < worst[model][0]):
            worst[model] = (change, kind, rate)
    lines = [
        "### What injected noise costs Default",
        "",
        "Default trained with `noise_rate` × |train| fake interactions of each `noise_kind` "
        "added to training only "
        "(never to validation or test); clean = the same settings without noise, same seeds.",
        "",
    ]
    lines += table(
        [
            "model",
            "machine",
            "kind",
            "rate",
            "seeds",
            "NDCG@20 (%)",
            "clean NDCG@20 (%)",
            "change",
            "p vs clean",
        ],
        body,
    ) + [""]
    for model, (change, kind, rate) in worst.items():
        if change < 0:
            lines.append(
                f"- {model}: most harmful here is `{kind}` at {rate:.0%} "
                f"({fmt_rel(change)} NDCG@20)."
            )
        else:
            lines.append(
                f"- {model}: no kind of injected noise lowered the mean NDCG@20 "
                f"(smallest change: `{kind}` at "
                f"{rate:.0%}, {fmt_rel(change)})."
            )
    return lines + [""]


def comparison(rows: list[dict[str, Any]]) -> list[str]:
    study = [r for r in rows if "clean_valid_guide_ratio" in r.get("overrides", {})]
    if not study:
        return []
    # one experiment per model, machine and condition: seeds run on different machines never pair up
    experiments: dict[tuple[str, str, str], dict[str, Group]] = defaultdict(dict)
    for r in study:
        exp = (r["model"], machine(r), condition(r))
        experiments[exp].setdefault(method(r), Group(r["model"], r["scheme"])).rows.append(r)
    clean_default = {
        (model, where): groups.get("default")
        for (model, where, cond), groups in experiments.items()
        if cond == "clean"
    }
    lines = [
        "### Credit modes and baselines, with the guide/select split",
        "",
        "Every cell splits each user's clean validation interactions in half "
        "(`clean_valid_guide_ratio: 0.5`): "
        "L2RW and AutoDenoise learn from the guide half; every method, Default included, "
        "early-stops on the "
        "select half. Test is the clean test set. p = paired t-test over seeds. "
        "Recovered = (method − noisy "
        "Default) / (clean Default − noisy Default) in NDCG@20. "
        "Train s/epoch ratio: training batches only, "
        "to Default of the same condition.",
        "",
    ]
    for (model, where, cond), groups in sorted(
        experiments.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "clean", kv[0][2])
    ):
        if len(groups) < 2:  # Default alone: a noise-survey cell, shown above
            continue
        names = sorted(groups, key=lambda n: METHOD_ORDER.index(n) if n in METHOD_ORDER else 99)
        d, l2rw = groups.get("default"), groups.get("l2rw")
        ref_clean = clean_default.get((model, where))
        lines += [f"#### {model}, {cond} ({groups[names[0]].machine})", ""]
        body = [
            [method_label(n), str(len(groups[n].rows))]
            + [fmt_ms(groups[n].values(m), m) for m in METRICS]
            for n in names
        ]
        lines += table(["Method", "seeds"] + METRIC_HEAD, body) + [""]
        body = []
        for n in names:
            g = groups[n]
            m = mean(g.values(MAIN_METRIC))
            p_d = (
                paired_p(g.by_seed(MAIN_METRIC), d.by_seed(MAIN_METRIC))
                if d and n != "default"
                else None
            )
            p_l = (
                paired_p(g.by_seed(MAIN_METRIC), l2rw.by_seed(MAIN_METRIC))
                if l2rw and n != "l2rw"
                else None
            )
            recovered = "–"
            if cond != "clean" and d and ref_clean and n != "default":
                cost = mean(ref_clean.values(MAIN_METRIC)) - mean(d.values(MAIN_METRIC))
                if cost > 0:
                    recovered = f"{(m - mean(d.values(MAIN_METRIC))) / cost:.0%}"
                else:
                    recovered = "n/a (noise cost nothing)"
            weights = [
                fmt(mean(g.weights(f"{k}_mean_weight")), "f1")
                if g.weights(f"{k}_mean_weight")
                else "–"
                for k in GROUPS
            ]
            inj, tp = mean(g.weights("injected_mean_weight")), mean(g.weights("tp_mean_weight"))
            body.append(
                [
                    method_label(n),
                    fmt(m, MAIN_METRIC),
                    fmt_rel(rel(m, mean(d.values(MAIN_METRIC))) if d else None),
                    fmt_p(p_d),
                    fmt_p(p_l),
                    recovered,
                ]
                + weights
                + [
                    f"{inj / tp:.2f}" if math.isfinite(inj) and tp else "–",
                    f"{ratio(_epoch_seconds(g), _epoch_seconds(d)):.2f}×" if d else "–",
                ]
            )
        lines += table(
            [
                "Method",
                "NDCG@20 (%)",
                "vs Default",
                "p vs Default",
                "p vs L2RW",
                "recovered",
                "weight TP",
                "weight FP",
                "weight injected",
                "injected/TP",
                "train s/epoch ratio",
            ],
            body,
        ) + [""]
    return lines


def diagnostics(rows: list[dict[str, Any]], stem: Path) -> list[str]:
    diag = [
        r
        for r in rows
        if r["scheme"] == "default"
        and any("diag_tp_alignment" in e for e in r["results"].get("epochs", []))
    ]
    if not diag:
        return []
    by_condition: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in diag:
        by_condition[(f"{r['model']} ({machine(r)})", condition(r))].append(r)
    lines = [
        "### What the clean set says about each kind of sample (`denoise_diagnostics`)",
        "",
        "Default's runs, on a fixed subsample (the first training batch) and a fixed clean batch, "
        "at every "
        "validation: mean alignment ⟨∇ℓ_i, ∇L_clean⟩ (× 10⁶), "
        "the fraction of samples with positive alignment "
        "(a step on them lowers the clean loss), and the mean training loss, per group; "
        "first and last epoch, "
        "mean over seeds.",
        "",
    ]
    body = []
    curves: dict[tuple[str, str], dict[str, list[float]]] = {}
    for (model, cond), rs in sorted(by_condition.items()):
        for label, pick in (("first", 0), ("last", -1)):
            for group in GROUPS:
                key = f"diag_{group}_alignment"
                values = [
                    r["results"]["epochs"][pick].get(key) for r in rs if r["results"]["epochs"]
                ]
                values = [v for v in values if isinstance(v, (int, float))]
                if not values:
                    continue
                helpful = mean(
                    [r["results"]["epochs"][pick][f"diag_{group}_helpful_fraction"] for r in rs]
                )
                loss = mean([r["results"]["epochs"][pick][f"diag_{group}_loss"] for r in rs])
                body.append(
                    [
                        model,
                        cond,
                        label,
                        group,
                        f"{mean(values) * 1e6:.3g}",
                        f"{helpful:.2f}",
                        f"{loss:.3f}",
                    ]
                )
        epochs = min(len(r["results"]["epochs"]) for r in rs)
        curves[(model, cond)] = {
            g: [
                mean(
                    [
                        r["results"]["epochs"][e].get(f"diag_{g}_alignment", math.nan) * 1e6
                        for r in rs
                    ]
                )
                for e in range(epochs)
            ]
            for g in GROUPS
        }
    lines += table(
        ["model", "data", "epoch", "group", "alignment ×10⁶", "helpful fraction", "mean loss"], body
    ) + [""]
    plt = _pyplot()
    if plt is not None and curves:
        cols = min(3, len(curves))
        rows_n = math.ceil(len(curves) / cols)
        fig, axes = plt.subplots(rows_n, cols, figsize=(5 * cols, 3.5 * rows_n), squeeze=False)
        for ax in axes.flat[len(curves) :]:
            ax.set_visible(False)
        for ax, ((model, cond), series) in zip(axes.flat, sorted(curves.items())):
            for group, values in series.items():
                if any(math.isfinite(v) for v in values):
                    ax.plot(range(len(values)), values, label=group)
            ax.axhline(0, color="grey", linewidth=0.5)
            ax.set_title(f"{model}: Default, {cond}")
            ax.set_xlabel("epoch")
            ax.set_ylabel("alignment with clean gradient (×1e6)")
            ax.legend()
        fig.tight_layout()
        path = Path(f"{stem}-diagnostics.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        lines += [f"![diagnostics]({path.name})", ""]
    return lines


def study_section(rows: list[dict[str, Any]], stem: Path) -> list[str]:
    """Markdown lines of the beyond-the-paper section; empty when no study cells exist."""
    study = [r for r in rows if any(k in r.get("overrides", {}) for k in STUDY_KEYS)]
    if not study:
        return []
    lines = ["## Beyond the paper (issue 5)", ""]
    return lines + noise_cost(rows) + comparison(rows) + diagnostics(rows, stem)
