"""The EvalDenoisingRec protocol: pointwise binary cross-entropy with one sampled negative per
positive (LightGCNPointwise, CDAEPointwise), T-CE / R-CE / DCF on labelled samples, the epoch of
lowest validation loss (``valid_selection``), the masked validation items at test
(``presplit_mask_valid_in_test``) and ``benchmarks.audit`` (argument refusals, the table, the
orderings, one tiny run).

Hand-built tensors for the math; the tiny split of ``test_presplit`` (4 users, 8 items; 10
training, 7 validation and 4 test rows) for the data hooks.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import FAST, SHARED_DATA, assert_float_close
from recbole.data.interaction import Interaction
from recbole.utils import init_seed
from tests.controller.test_controller import CPU, FakeConfig
from tests.controller.test_controller_prior import FakeTrainSet
from tests.data.test_presplit import TEST, VALID, convert, presplit_config

import recbole_autodenoise
from benchmarks import audit
from recbole_autodenoise.data import create_dataset
from recbole_autodenoise.data.dataloader import prepare_data
from recbole_autodenoise.evaluation.valid_loss import (
    ValidationLoss,
    ValidationNegatives,
    reduce,
    trimmed_mean,
)
from recbole_autodenoise.losses import PerSampleLoss
from recbole_autodenoise.model import get_model
from recbole_autodenoise.quick_start import run
from recbole_autodenoise.schemes import SCHEMES, Batch
from recbole_autodenoise.schemes.adt_tl import truncation_weights
from recbole_autodenoise.schemes.dcf import damped

EDR = SHARED_DATA / "evaldenoisingrec-ml100k"


def labelled_batch(losses, labels, rows=None, epoch=0) -> Batch:
    losses = torch.tensor(losses, dtype=torch.float32)
    return Batch(
        losses=losses,
        item_ids=torch.zeros(len(losses), dtype=torch.long),
        epoch=epoch,
        epoch_fraction=0.0,
        row_ids=None if rows is None else torch.tensor(rows),
        labels=torch.tensor(labels, dtype=torch.float32),
    )


def tiny_model(tmp_path, model: str, **overrides):
    """A model on the tiny split (every row as given) and its data bundle."""
    config = presplit_config(
        convert(tmp_path), model=model, clean_presplit_filter="as_given", **overrides
    )
    init_seed(config["seed"], config["reproducibility"])
    bundle = prepare_data(config, create_dataset(config))
    return config, get_model(model)(config, bundle.train._dataset), bundle


# --- binary cross-entropy with one sampled negative, per sample -------------------------------
def bce(logit: float, label: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -math.log(p) if label else -math.log(1 - p)


@pytest.mark.parametrize("model", ["LightGCNPointwise", "CDAEPointwise"])
def test_training_batches_hold_one_negative_per_positive(tmp_path, model):
    config, _, bundle = tiny_model(tmp_path, model)
    batch = next(iter(bundle.train))
    labels = batch[config["LABEL_FIELD"]]
    assert labels.tolist() == [1.0] * 10 + [0.0] * 10  # the 10 training rows, then a negative each
    dataset = bundle.train._dataset
    trained = set(zip(*(dataset.inter_feat[f].tolist() for f in ("user_id", "item_id"))))
    users, items = batch["user_id"].tolist(), batch["item_id"].tolist()
    assert all((u, i) not in trained for u, i in zip(users[10:], items[10:]))
    assert users[10:] == users[:10]


def test_lightgcn_pointwise_loss_is_bce_of_each_labelled_row(tmp_path):
    config, model, _ = tiny_model(tmp_path, "LightGCNPointwise", reg_weight=0.0)
    users, items = torch.tensor([1, 1, 2, 4]), torch.tensor([1, 5, 3, 7])
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    rows = Interaction({"user_id": users, "item_id": items, "label": labels})
    found = PerSampleLoss(model)(rows)
    with torch.no_grad():
        user_all, item_all = model.forward()
        logits = (user_all[users] * item_all[items]).sum(1).tolist()
    expected = [bce(y, t) for y, t in zip(logits, labels.tolist())]
    assert_float_close(found.losses.detach(), expected, steps=64)
    assert found.extra is None or float(found.extra.detach().sum()) == 0.0
    total = model.calculate_loss(rows).detach().reshape(())  # EmbLoss's term has shape [1]
    assert_float_close(total, sum(expected) / 4, steps=64)


def test_cdae_pointwise_loss_reads_each_row_from_its_users_output(tmp_path):
    config, model, _ = tiny_model(
        tmp_path, "CDAEPointwise", reg_weight_1=0.0, reg_weight_2=0.0, corruption_ratio=0.0
    )
    users, items = torch.tensor([2, 1, 2, 3]), torch.tensor([4, 6, 2, 1])
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0])
    rows = Interaction({"user_id": users, "item_id": items, "label": labels})
    found = PerSampleLoss(model)(rows)
    with torch.no_grad():
        output = model.forward(model.get_rating_matrix(users), users)
        logits = output[torch.arange(4), items].tolist()
    expected = [bce(y, t) for y, t in zip(logits, labels.tolist())]
    assert_float_close(found.losses.detach(), expected, steps=64)
    assert float(found.extra.detach()) == 0.0


# --- T-CE, R-CE and DCF on labelled samples -----------------------------------------------------
LOSSES = [0.1, 2.0, 0.5, 3.0, 0.3, 1.0]
LABELS = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]


def test_truncation_ranks_by_loss_times_label():
    """Drop rate 0.34 of 6 samples: keep int(0.66 * 6) = 3 lowest of loss * label = [0.1, 0, 0.5,
    3.0, 0, 1.0]: both negatives (the one of loss 2.0 too) and the positive of loss 0.1."""
    weights = truncation_weights(torch.tensor(LOSSES), 0.34, torch.tensor(LABELS))
    assert weights.tolist() == [2.0, 2.0, 0.0, 0.0, 2.0, 0.0]
    unlabelled = truncation_weights(torch.tensor(LOSSES), 0.34)  # pairwise losses: by the loss
    assert unlabelled.tolist() == [2.0, 0.0, 2.0, 0.0, 2.0, 0.0]


def test_tce_scheme_uses_the_labels_and_validation_does_not_advance_it():
    scheme = SCHEMES.get("adt_tl")(FakeConfig(adt_max_drop_rate=0.34, adt_num_gradual=1), CPU)
    scheme.iteration = 1  # past the schedule: the full rate
    before = scheme.iteration
    valid = scheme.validation_weights(torch.tensor(LOSSES), torch.tensor(LABELS))
    assert scheme.iteration == before
    assert valid.tolist() == [2.0, 2.0, 0.0, 0.0, 2.0, 0.0]
    assert scheme.weights(labelled_batch(LOSSES, LABELS)).tolist() == valid.tolist()
    assert scheme.iteration == before + 1


def test_rce_weight_is_sigmoid_to_the_alpha_on_positives_and_its_complement_on_negatives():
    logits = torch.tensor([2.0, -1.0, 0.5, 1.5], dtype=torch.float64)
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    scheme = SCHEMES.get("adt_rl")(FakeConfig(adt_beta=0.25), CPU)
    batch = labelled_batch(losses.tolist(), labels.tolist())
    batch.losses = losses
    p = torch.sigmoid(logits)
    expected = [float(p[0] ** 0.25), float(p[1] ** 0.25), float((1 - p[2]) ** 0.25)]
    expected.append(float((1 - p[3]) ** 0.25))
    assert_float_close(scheme.weights(batch), expected)
    assert_float_close(scheme.validation_weights(losses, labels), expected)


def test_dcf_negatives_never_drop_and_never_touch_the_store():
    """Rows 0, 1, 2 and a negative of each (sharing its row id); r = 0.25 of 6: keep int(4.5) = 4
    lowest bounds: the three negatives (damped loss 0) and row 0's positive."""
    scheme = SCHEMES.get("dcf")(
        FakeConfig(
            adt_max_drop_rate=0.25,
            adt_num_gradual=1,
            dcf_co_lambda=0.0,
            dcf_relabel_ratio=0.0,
            dcf_time_step=1,
        ),
        CPU,
    )
    scheme.setup(FakeTrainSet([1, 2, 3], [1, 2, 3], 4, 4))
    scheme.iteration = 1
    batch = labelled_batch(
        [0.1, 2.0, 0.5, 3.0, 0.2, 0.4], [1, 1, 1, 0, 0, 0], rows=[0, 1, 2, 0, 1, 2]
    )
    assert scheme.weights(batch).tolist() == [1.5, 0.0, 0.0, 1.5, 1.5, 1.5]
    expected = damped(torch.tensor([0.1, 2.0, 0.5])) / 2  # s = 1: (0 * 1 + f(l)) / 2
    assert_float_close(scheme.store.mean, expected)
    assert scheme.store.count.tolist() == [2.0, 2.0, 2.0]


# --- the validation loss and the epoch it selects ----------------------------------------------
def test_trimmed_mean_leaves_out_the_highest_positive_losses():
    losses = torch.tensor([0.1, 0.5, 0.9, 2.0, 3.0, 0.2, 0.4])
    labels = torch.tensor([1.0, 1, 1, 1, 1, 0, 0])
    # int(0.8 * 5) = 4 positives kept: 0.1 + 0.5 + 0.9 + 2.0, with both negatives
    assert_float_close(trimmed_mean(losses, labels, 0.2), (3.5 + 0.6) / 6)
    assert_float_close(reduce("loss", losses, labels, 0.2), losses.mean())
    assert_float_close(reduce("loss_trimmed", losses, labels, 0.0), losses.mean())


def test_scheme_weighted_validation_loss():
    scheme = SCHEMES.get("adt_tl")(FakeConfig(adt_max_drop_rate=0.34, adt_num_gradual=1), CPU)
    scheme.iteration = 1
    losses, labels = torch.tensor(LOSSES), torch.tensor(LABELS)
    kept = (0.1 + 2.0 + 0.3) / 3  # the three kept samples of the truncation test
    assert_float_close(reduce("loss_scheme", losses, labels, 0.2, scheme), kept)
    default = SCHEMES.get("default")(FakeConfig(), CPU)
    assert_float_close(reduce("loss_scheme", losses, labels, 0.2, default), losses.mean())


def test_validation_negatives_are_untrained_items_seeded_by_epoch():
    # user 1 trained items 1..5 of 1..7; user 2 item 1
    negatives = ValidationNegatives([1, 1, 1, 1, 1, 2], [1, 2, 3, 4, 5, 1], n_items=8, seed=3)
    users = np.array([1] * 50 + [2] * 50)
    drawn = negatives.draw(users, epoch=0)
    assert set(drawn[:50]) <= {6, 7} and 1 not in set(drawn[50:]) and drawn.min() >= 1
    assert np.array_equal(drawn, negatives.draw(users, epoch=0))
    assert not np.array_equal(drawn, negatives.draw(users, epoch=1))
    with pytest.raises(ValueError, match="every item"):
        ValidationNegatives([1] * 7, [1, 2, 3, 4, 5, 6, 7], n_items=8, seed=3)


# per epoch: 7 validation positives then 7 negatives; the plain mean picks epoch 1 (0.3 < 0.4 <
# 0.543), the trimmed one (int(0.8 * 7) = 5 lowest positives) epoch 0 (0.2)
EPOCH_LOSSES = [
    [0.2] * 6 + [5.0] + [0.2] * 7,
    [0.3] * 14,
    [0.4] * 14,
]


@pytest.mark.slow
@pytest.mark.parametrize("selection, best", [("loss", 1), ("loss_trimmed", 0)])
def test_the_epoch_of_lowest_validation_loss_is_kept(tmp_path, monkeypatch, selection, best):
    calls = []

    def hand_built(self, model, users, items, labels):
        assert labels.tolist() == [1.0] * 7 + [0.0] * 7
        calls.append(len(calls))
        return torch.tensor(EPOCH_LOSSES[len(calls) - 1])

    monkeypatch.setattr(ValidationLoss, "losses", hand_built)
    data = convert(tmp_path)
    results = run(
        "NeuMF",
        "tiny",
        config_dict={
            **FAST,
            "epochs": 3,
            "data_path": str(data),
            "benchmark_filename": ["train", "valid", "test"],
            "eval_protocol": "user",
            "clean_presplit_filter": "as_given",
            "valid_selection": selection,
            "stopping_step": 10,
            "topk": [2],
            "valid_metric": "NDCG@2",
        },
    )
    assert len(calls) == 3
    assert results["stopping"]["best_epoch"] == best
    expected = trimmed_mean(
        torch.tensor(EPOCH_LOSSES[best]), torch.tensor([1.0] * 7 + [0.0] * 7), 0.2
    )
    if selection == "loss":
        expected = torch.tensor(EPOCH_LOSSES[best]).mean()
    assert results["best_valid_result"]["valid_loss"] == pytest.approx(float(expected))


def test_valid_selection_is_checked_before_data_loads(tmp_path):
    with pytest.raises(ValueError, match="'valid_selection' = 'loss' needs a pointwise model"):
        recbole_autodenoise.make_config("BPR", "ml-100k", config_dict={"valid_selection": "loss"})
    with pytest.raises(ValueError, match=r"'valid_selection' = 'best' is invalid: expected one of"):
        recbole_autodenoise.make_config("NeuMF", "ml-100k", config_dict={"valid_selection": "best"})
    with pytest.raises(ValueError, match=r"'valid_loss_trim' = 1.0 is invalid"):
        recbole_autodenoise.make_config("NeuMF", "ml-100k", config_dict={"valid_loss_trim": 1.0})
    with pytest.raises(ValueError, match="'presplit_mask_valid_in_test' = True needs pre-split"):
        recbole_autodenoise.make_config(
            "NeuMF", "ml-100k", config_dict={"presplit_mask_valid_in_test": True}
        )


# --- the test mask --------------------------------------------------------------------------
@pytest.mark.parametrize("mask", [False, True])
def test_validation_items_in_the_test_file_are_masked_on_request(tmp_path, mask):
    """u1's validation item i4 is also its test item: relevant either way, masked only on
    request."""
    from recbole_autodenoise.prepare import prepare_split
    from tests.data.test_presplit import write_raw

    raw = write_raw(tmp_path / "raw", test=TEST + [("u1", "i4", 5)])
    prepare_split(raw, "tiny", tmp_path / "data", allow_valid_test_overlap=True)
    config = presplit_config(tmp_path / "data", model="NeuMF", presplit_mask_valid_in_test=mask)
    dataset = create_dataset(config)
    bundle = prepare_data(config, dataset)
    u1 = int(dataset.token2id("user_id", "u1"))
    i4 = int(dataset.token2id("item_id", "i4"))
    for loader in bundle.test_by_protocol.values():
        assert i4 in loader.uid2positive_item[u1].tolist()
        assert (i4 in loader.uid2history_item[u1].tolist()) == mask
    assert ("u1", "i4", 5) in VALID


# --- benchmarks.audit ---------------------------------------------------------------------
def audit_data(tmp_path):
    """A folder shaped as EvalDenoisingRec's (the tiny split's files, a reported table)."""
    from tests.data.test_presplit import write_raw

    folder = tmp_path / "edr"
    paths = write_raw(folder)
    for path, name in zip(paths, audit.SPLIT_FILES):
        path.rename(folder / name)
    (folder / "reported").mkdir()
    for model in audit.MODELS:
        (folder / "reported" / f"ml100k-{model}.csv").write_text(
            "method,Recall@20,NDCG@20\nERM,0.1,0.07\nERMrevised,0.12,0.08\nDCF,0.09,0.06\n",
            encoding="utf-8",
        )
    return folder


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "nowhere"], "--data nowhere: no such folder"),
        (["--seeds", "1", "1"], "--seeds 1 1 names one twice"),
        (["--epochs", "0"], "argument --epochs: '0' is out of range"),
        (["--models", "MF"], "argument --models: invalid choice: 'MF'"),
        (["--methods", "DeCA"], "argument --methods: invalid choice: 'DeCA'"),
        (["--seeds", "-1"], "argument --seeds: '-1' is out of range"),
    ],
)
def test_audit_refuses_bad_arguments_before_any_work(tmp_path, capsys, args, message):
    data = audit_data(tmp_path)
    out = tmp_path / "out" / "cells.jsonl"
    argv = ["--data", str(data), "--out", str(out), *args]
    with pytest.raises(SystemExit) as stopped:
        audit.main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err
    assert not (tmp_path / "out").exists()


def test_audit_refuses_missing_files_and_a_folder_as_out(tmp_path, capsys):
    data = audit_data(tmp_path)
    (data / "reported" / "ml100k-CDAE.csv").unlink()
    with pytest.raises(SystemExit):
        audit.main(["--data", str(data), "--out", str(tmp_path / "o.jsonl")])
    assert "lacks reported/ml100k-CDAE.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        audit.main(["--data", str(data), "--models", "GMF", "--out", str(tmp_path)])
    assert "error: --out" in capsys.readouterr().err
    (data / "reported" / "ml100k-GMF.csv").write_text("method,NDCG@20\nERM,x\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        audit.main(["--data", str(data), "--models", "GMF", "--out", str(tmp_path / "o.jsonl")])
    assert "line 2: NDCG@20 = 'x' is not a number" in capsys.readouterr().err


def hand_rows(cells, values):
    """One finished row per cell: ``values[(model, method)]`` gives each seed's NDCG@20 (None: the
    cell failed)."""
    rows = []
    for cell, name in cells.items():
        value = values[name][cell.seed - 1]
        status = "failed" if value is None else "ok"
        test = {} if value is None else {"ndcg@20": value, "recall@20": 2 * value}
        rows.append({"key": cell.key, "status": status, "results": {"test": test}})
    return rows


def test_table_verdicts_and_orderings_on_hand_made_rows(tmp_path):
    cells = audit.make_cells(["GMF", "NeuMF"], ["ERM", "ERM_RE", "DCF"], [1, 2, 3], tmp_path)
    assert len(cells) == 18
    values = {
        ("GMF", "ERM"): [0.070, 0.072, 0.074],  # theirs 0.0738 inside [0.070, 0.074]
        ("GMF", "ERM_RE"): [0.080, 0.081, 0.082],  # 0.0826 outside; mean 1.9 % below: within 10 %
        ("GMF", "DCF"): [0.050, 0.051, 0.052],  # 0.0668: 23.6 % above the mean: a miss
        ("NeuMF", "ERM"): [0.070, 0.070, 0.070],
        ("NeuMF", "ERM_RE"): [0.060, 0.060, None],  # ERM_RE < ERM: the ordering fails
        ("NeuMF", "DCF"): [None, None, None],
    }
    reported = {
        "GMF": {"ERM": {"ndcg@20": 0.0738}, "ERMrevised": {"ndcg@20": 0.0826}, "DCF": {}},
        "NeuMF": {"ERM": {"ndcg@20": 0.0728}},
    }
    reported["GMF"]["DCF"] = {"ndcg@20": 0.0668}
    found = audit.collect(hand_rows(cells, values), cells)
    table = audit.build_table(found, reported, list(dict.fromkeys(cells.values())))
    verdicts = {
        (c["model"], c["method"]): c["metrics"]["ndcg@20"]["verdict"] for c in table["cells"]
    }
    assert verdicts == {
        ("GMF", "ERM"): "within spread",
        ("GMF", "ERM_RE"): "within 10%",
        ("GMF", "DCF"): "miss",
        ("NeuMF", "ERM"): "within 10%",
        ("NeuMF", "ERM_RE"): "not reported",
        ("NeuMF", "DCF"): "not run",
    }
    ours = table["cells"][4]["metrics"]["ndcg@20"]["ours"]
    assert ours["n"] == 2 and ours["mean"] == pytest.approx(0.06)
    checks = {(c["model"], c["claim"]): c["holds"] for c in table["orderings"]}
    assert checks == {
        ("GMF", "ERM_RE >= ERM"): True,
        ("NeuMF", "ERM_RE >= ERM"): False,
        ("GMF", "DCF < ERM"): True,
        ("NeuMF", "DCF < ERM"): None,
    }
    text = audit.render(table, [1, 2, 3])
    assert "GMF      ERM            0.0720 [0.0700, 0.0740] (3)" in text
    assert "NeuMF    ERM_RE >= ERM fails (0.0600 vs 0.0700)" in text
    assert "NeuMF    DCF < ERM     not run" in text


def test_cells_take_the_method_files_and_the_extra_candidates(tmp_path):
    cells = audit.make_cells(["GMF", "CDAE"], ["TCE"], [7], tmp_path, epochs=2, extra=True)
    names = list(cells.values())
    # none on CDAE
    assert names == [("GMF", "TCE"), ("CDAE", "TCE"), ("GMF", "AutoDenoise-S"), ("GMF", "Explicit")]
    first = next(iter(cells))
    assert (first.model, first.scheme, first.overrides) == ("NeuMF", "adt_tl", {"epochs": 2})
    assert first.config_files[1].endswith("evaldenoisingrec/GMF-TCE.yaml")
    paper, explicit = list(cells)[-2:]
    for extra in (paper, explicit):
        assert (extra.scheme, extra.config_files[1].rsplit("/", 1)[1]) == (
            "autodenoise_s",
            "GMF-ERM.yaml",
        )
    assert paper.overrides == {"epochs": 2}
    # select's candidate, on select's split
    assert explicit.overrides == {
        **audit.CANDIDATES["explicit"].settings,
        "clean_valid_guide_ratio": 0.5,
        "epochs": 2,
    }


@pytest.mark.slow
@pytest.mark.skipif(not EDR.is_dir(), reason="EvalDenoisingRec's split is not in ../shared/data")
def test_one_tiny_audit_cell_end_to_end(tmp_path, capsys):
    out = tmp_path / "cells.jsonl"
    argv = ["--data", str(EDR), "--models", "GMF", "--methods", "ERM", "--seeds", "2023"]
    argv += ["--epochs", "1", "--out", str(out), "--json", str(tmp_path / "table.json")]
    assert audit.main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        "split converted: 79,619" in printed and "(1,707 test pairs also in validation)" in printed
    )
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["status"] == "ok", row.get("error")
    results = row["results"]
    assert results["data"]["train"] == 79619 and results["data"]["test"] == 3594
    assert results["best_valid_result"]["valid_loss"] > 0
    table = json.loads((tmp_path / "table.json").read_text())
    assert table["cells"][0]["metrics"]["ndcg@20"]["theirs"] == 0.0738
    assert table["cells"][0]["metrics"]["ndcg@20"]["ours"]["n"] == 1
    assert audit.main(argv) == 0  # the finished cell is skipped
    assert "1 already finished" in capsys.readouterr().out


def test_udt_runs_on_the_models_it_is_built_for(tmp_path):
    """UDT's cells take its method file on GMF, NeuMF and LightGCN; CDAE gets none."""
    cells = audit.make_cells(["GMF", "LightGCN", "CDAE"], ["UDT"], [7], tmp_path)
    assert list(cells.values()) == [("GMF", "UDT"), ("LightGCN", "UDT")]
    first = next(iter(cells))
    assert first.scheme == "udt" and first.config_files[1].endswith("evaldenoisingrec/GMF-UDT.yaml")


AUDIT_SELECT = Path(__file__).resolve().parents[2] / "benchmarks" / "audit_select.sh"


def run_audit_select(tmp_path, *models):
    """The script with a stand-in ``python`` that records its arguments (one call per line)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    shim = bin_dir / "python"
    shim.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n', encoding="utf-8")
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", str(AUDIT_SELECT), "split", str(tmp_path / "work"), *models],
        env=env,
        capture_output=True,
        text=True,
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done, lines


@pytest.mark.slow
def test_audit_select_runs_the_registered_select_per_model(tmp_path):
    done, calls = run_audit_select(tmp_path, "GMF")
    assert done.returncode == 0, done.stderr
    prepare, select = calls
    assert prepare.startswith("-m recbole_autodenoise.prepare --name evaldenoisingrec-ml100k")
    assert "--allow-valid-test-overlap --split-files split/ml100k.train.rating" in prepare
    assert select.split() == [
        "-m",
        "recbole_autodenoise.select",
        "--model=NeuMF",
        "--dataset=evaldenoisingrec-ml100k",
        f"--data_path={tmp_path / 'work' / 'data'}",
        "--config_files=benchmarks/properties/evaldenoisingrec/protocol.yaml",
        "benchmarks/properties/evaldenoisingrec/GMF-ERM.yaml",
        "--tune=0",
        "--seed=2023",
        "--seeds=3",
        "--test=recommended",
        "--jobs=1",
        f"--out={tmp_path / 'work' / 'select-GMF.json'}",
    ]


@pytest.mark.slow
def test_audit_select_refuses_a_model_outside_the_plan_before_any_work(tmp_path):
    done, calls = run_audit_select(tmp_path, "GMF", "LightGCN")
    assert done.returncode == 2 and "error: model LightGCN is not in the plan" in done.stderr
    assert calls == [] and not (tmp_path / "work").exists()
