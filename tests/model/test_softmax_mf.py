"""SoftmaxMF, the paper's MF: dot-product scores, cross-entropy over all items, no negatives.

Hand-built batches first (loss, per-sample losses, predictions), then the model lookup, then
ML-100K end to end with three schemes.
"""

from __future__ import annotations

import math

import pytest
import torch
from tests.conftest import FAST
from recbole.data.interaction import Interaction
from recbole.model.general_recommender import BPR
from recbole.utils import ModelType

import recbole_autodenoise as rad
from recbole_autodenoise.config import property_files
from recbole_autodenoise.data import create_dataset, data_preparation
from recbole_autodenoise.losses import PerSampleLoss
from recbole_autodenoise.model import PLUGIN_MODELS, SoftmaxMF, get_model

USERS, ITEMS, DIM = 4, 6, 3  # ids include RecBole's padding id 0


class _Counts:
    """The two counts a general model reads from its dataset."""

    def num(self, field: str) -> int:
        return USERS if field == "user_id" else ITEMS


@pytest.fixture(scope="module")
def model() -> SoftmaxMF:
    config = rad.make_config("SoftmaxMF", "ml-100k", config_dict={"embedding_size": DIM})
    mf = SoftmaxMF(config, _Counts())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mf.user_embedding.weight.copy_(torch.randn(USERS, DIM, generator=generator))
        mf.item_embedding.weight.copy_(torch.randn(ITEMS, DIM, generator=generator))
    return mf


BATCH = Interaction({"user_id": torch.tensor([1, 2, 1, 3]), "item_id": torch.tensor([2, 5, 1, 2])})


def _direct_losses(mf: SoftmaxMF) -> torch.Tensor:
    """-log softmax(u . V^T)[v] per row, written out with float64 sums."""
    users = mf.user_embedding.weight.detach().double()[BATCH["user_id"]]
    items = mf.item_embedding.weight.detach().double()
    logits = users @ items.T
    own = logits[torch.arange(len(BATCH)), BATCH["item_id"]]
    return torch.log(torch.exp(logits).sum(dim=1)) - own


def _tolerance(values: torch.Tensor) -> float:
    """float32 resolution at the size of the logits' log-sum-exp, a few roundings deep."""
    return float(torch.finfo(torch.float32).eps * 16 * max(1.0, values.abs().max().item()))


def test_loss_is_cross_entropy_over_all_items(model):
    expected = _direct_losses(model)
    loss = model.calculate_loss(BATCH)
    assert loss.dtype == torch.float32
    assert abs(loss.item() - expected.mean().item()) <= _tolerance(expected)


def test_per_sample_losses_through_per_sample_loss(model):
    expected = _direct_losses(model)
    sample = PerSampleLoss(model)(BATCH, with_representations=True)
    assert sample.losses.shape == (4,) and sample.extra is None
    assert torch.allclose(sample.losses.double(), expected, rtol=0, atol=_tolerance(expected))
    assert torch.equal(sample.user_repr, model.user_embedding.weight[BATCH["user_id"]].detach())
    assert torch.equal(sample.item_repr, model.item_embedding.weight[BATCH["item_id"]].detach())
    PerSampleLoss(model).check_representations()  # the controller's e_u, e_v exist


def test_predict_and_full_sort_predict_are_dot_products(model):
    users = model.user_embedding.weight.detach()
    items = model.item_embedding.weight.detach()
    full = users[BATCH["user_id"]] @ items.T
    assert torch.equal(model.full_sort_predict(BATCH).detach(), full.view(-1))
    pointwise = model.predict(BATCH).detach()
    expected = full[torch.arange(len(BATCH)), BATCH["item_id"]]
    assert torch.allclose(pointwise, expected, rtol=0, atol=_tolerance(expected))


# --------------------------------------------------------------------------- lookup and config


def test_lookup_finds_plugin_models_first_then_recboles():
    assert get_model("SoftmaxMF") is SoftmaxMF and PLUGIN_MODELS["SoftmaxMF"] is SoftmaxMF
    assert get_model("BPR") is BPR


def test_unknown_model_lists_the_plugin_models_too():
    with pytest.raises(ValueError) as info:
        rad.make_config("NoSuchModelAtAll", "ml-100k")
    assert "unknown model 'NoSuchModelAtAll'" in str(
        info.value
    ) and "the plugin's: CDAEPointwise, LightGCNPointwise, SoftmaxMF" in str(info.value)
    with pytest.raises(
        ValueError,
        match="unknown model 'softmaxmf': not a RecBole or plugin model; did you mean 'SoftmaxMF'",
    ):
        rad.make_config("softmaxmf", "ml-100k")


def test_config_of_softmax_mf_has_no_negative_sampling():
    config = rad.make_config("SoftmaxMF", "ml-100k")
    assert config["model"] == "SoftmaxMF" and config["MODEL_TYPE"] == ModelType.GENERAL
    assert config["train_neg_sample_args"]["distribution"] == "none"
    assert config["embedding_size"] == 64 and config["eval_batch_size"] == 1048576
    assert any(
        path.endswith("model/SoftmaxMF.yaml") for path in property_files("SoftmaxMF", "ml-100k")
    )


def test_cli_runs_softmax_mf(monkeypatch):
    from recbole_autodenoise import cli

    seen = {}
    monkeypatch.setattr(
        "recbole_autodenoise.quick_start.run", lambda model, dataset, **kw: seen.update(model=model)
    )
    assert cli.main(["--model=SoftmaxMF", "--dataset=ml-100k"]) == 0 and seen == {
        "model": "SoftmaxMF"
    }


# --------------------------------------------------------------------------- ML-100K end to end


@pytest.fixture(scope="module")
def random_recall(tmp_path_factory) -> dict[int, float]:
    """A random ranker's expected Recall@K under user_first: mean over queries of K /
    #candidates."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("random"))
        config = rad.make_config("SoftmaxMF", "ml-100k", config_dict={"state": "WARNING"})
        _, _, test = data_preparation(config, create_dataset(config))
    candidates = []
    for user_df, (history_row, _), _, _ in test:
        masked = torch.bincount(history_row, minlength=len(user_df))
        candidates.append(test._dataset.item_num - 1 - masked)  # every item but padding and history
    candidates = torch.cat(candidates).double()
    return {k: (k / candidates).clamp(max=1).mean().item() for k in (10, 20, 50)}


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["default", "adt_rl", "autodenoise_s"])
def test_ml100k_softmax_mf_beats_a_random_ranker(scheme, random_recall):
    from recbole_autodenoise.quick_start import run

    # learning rate 1e-2 (the paper's grid): 2 epochs at 1e-3 hardly move the initial embeddings
    config = {**FAST, "denoise_scheme": scheme, "learning_rate": 0.01}
    results = run("SoftmaxMF", "ml-100k", config_dict=config, saved=False)
    assert results["model"] == "SoftmaxMF" and results["eval_protocol"] == "user_first"
    assert len(results["epochs"]) == 2
    for protocol, values in results["test_by_protocol"].items():
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in values.values()), protocol
    test = results["test"]
    for k in (10, 20, 50):
        assert test[f"recall@{k}"] > 2 * random_recall[k]
    assert results["weight_study"]["tp_samples"] > 0
