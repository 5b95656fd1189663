"""Per-user AUC, the injected group of the weight study and ``denoise_diagnostics``: hand-built
tensors first, then short runs on ML-100K. ``controller_credit: user`` (per-user rewards) is
experimental: tests/experimental/test_experimental_user_credit.py."""

from __future__ import annotations

import math

import pytest
import torch

import recbole_autodenoise as rad
from recbole_autodenoise.evaluation.per_user import UserMeans, per_query_auc
from tests.controller.test_controller import generator
from tests.test_trainer import build, fresh_model

INF = float("inf")
SMALL = {"epochs": 2, "user_inter_num_interval": "[10,60]"}


# --------------------------------------------------------------------------------------------
# per-user AUC


def test_auc_counts_negatives_below_the_positive():
    scores = torch.tensor([[-INF, 0.1, 0.5, 0.3, 0.9]])
    # negatives: items 1, 3, 4 (item 0 is padding at -inf); 0.1 and 0.3 are below 0.5
    assert per_query_auc(scores, torch.tensor([0]), torch.tensor([2])).tolist() == pytest.approx(
        [2 / 3]
    )


def test_auc_other_positives_of_the_row_are_not_negatives():
    scores = torch.tensor([[-INF, 0.1, 0.5, 0.3, 0.9]])
    auc = per_query_auc(scores, torch.tensor([0, 0]), torch.tensor([2, 4]))
    # negatives are items 1 and 3 for both positives
    assert auc.tolist() == pytest.approx([1.0, 1.0])


def test_auc_ties_count_half_and_masked_items_are_ignored():
    scores = torch.tensor([[-INF, 0.5, 0.5, -INF, 0.2], [0.0, 1.0, 2.0, 3.0, 4.0]])
    auc = per_query_auc(scores, torch.tensor([0, 1]), torch.tensor([1, 0]))
    # row 0: negatives 2 (tie) and 4 (below) -> 1.5 / 2; row 1: the positive scores lowest -> 0
    assert auc.tolist() == pytest.approx([0.75, 0.0])


def test_auc_without_negatives_is_nan():
    scores = torch.tensor([[-INF, 0.3, -INF]])
    assert math.isnan(per_query_auc(scores, torch.tensor([0]), torch.tensor([1])).item())


def test_user_means_average_queries_and_leave_absent_users_nan():
    means = UserMeans(4)
    means.add(torch.tensor([1, 1, 3]), torch.tensor([0.5, 1.0, 0.25]))
    means.add(torch.tensor([2, 3]), torch.tensor([float("nan"), 0.75]))
    result = means.means()
    assert result[1].item() == pytest.approx(0.75) and result[3].item() == pytest.approx(0.5)
    assert math.isnan(result[0].item()) and math.isnan(result[2].item())


# --------------------------------------------------------------------------------------------
# end to end on ML-100K


@pytest.mark.slow
def test_gauc_reward_is_not_added_to_recbole_metrics():
    """RecBole's GAUC needs a full sort of every row (most of the validation time of AutoDenoise
    before); the trainer computes the reward itself, so RecBole's metrics stay as configured."""
    config, train, valid, _ = build("BPR", denoise_scheme="autodenoise_s", **SMALL)
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    assert "GAUC" not in config["metrics"] and "gauc" not in [m.lower() for m in config["metrics"]]
    trainer.fit(train, valid, saved=False)
    gauc, _ = trainer.clean_auc(valid)
    assert trainer.history[-1]["controller_reward"] == pytest.approx(gauc, abs=1e-12)
    config, train, valid, _ = build(
        "BPR", denoise_scheme="autodenoise_s", reward_metric="Recall@20", **SMALL
    )
    rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    assert "recall" in [m.lower() for m in config["metrics"]]


@pytest.mark.slow
def test_noise_and_diagnostics_end_to_end():
    config, train, valid, test = build(
        "BPR", denoise_scheme="default", noise_rate=0.1, denoise_diagnostics=True, **SMALL
    )
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    trainer.fit(train, valid, saved=False)
    injected = int((train._dataset.inter_feat["noise_injected"] > 0.5).sum())
    assert injected == round(0.1 * (len(train._dataset) - injected))
    study = trainer.weight_study()
    assert study["injected_samples"] == injected * 2  # two epochs
    assert study["injected_mean_weight"] == study["tp_mean_weight"] == 1.0
    assert study["tp_samples"] + study["fp_samples"] + study["injected_samples"] == 2 * len(
        train._dataset
    )
    for record in trainer.history:
        for group in ("tp", "fp", "injected"):
            assert math.isfinite(record[f"diag_{group}_alignment"])
            assert 0.0 <= record[f"diag_{group}_helpful_fraction"] <= 1.0
            assert record[f"diag_{group}_loss"] > 0
        assert (
            record["diag_tp_samples"] + record["diag_fp_samples"] + record["diag_injected_samples"]
            == config["train_batch_size"]
        )
    # the subsample is fixed: same groups every epoch
    assert (
        trainer.history[0]["diag_injected_samples"] == trainer.history[1]["diag_injected_samples"]
    )


@pytest.mark.slow
def test_diagnostics_key_is_checked():
    config, train, _, _ = build("BPR", epochs=1, user_inter_num_interval="[10,60]")
    config["denoise_diagnostics"] = "yes"
    with pytest.raises(ValueError, match="denoise_diagnostics"):
        rad.AutoDenoiseTrainer(config, fresh_model(config, train))


def test_one_positive_per_row_fast_path_equals_the_general_computation():
    from recbole_autodenoise.evaluation.per_user import (
        _any_positives_auc,
        _one_positive_per_row_auc,
    )

    gen = generator(3)
    scores = torch.randint(0, 5, (50, 30), generator=gen).float()  # many ties
    scores[torch.rand(50, 30, generator=gen) < 0.2] = -INF  # masked history
    scores[:, 0] = -INF  # padding
    positive_i = torch.randint(1, 30, (50,), generator=gen)
    scores[torch.arange(50), positive_i] = torch.randint(
        0, 5, (50,), generator=gen
    ).float()  # positives are candidates
    rows = torch.arange(50)
    fast = _one_positive_per_row_auc(scores, positive_i)
    assert torch.allclose(fast, _any_positives_auc(scores, rows, positive_i), equal_nan=True)
    assert torch.equal(per_query_auc(scores, rows, positive_i), fast)
