"""Every RecBole model a user brings: negatives follow ``loss_type``, and the coverage matrix —
each supported model x {default, adt_rl, autodenoise_s} trains one short epoch on a tiny data set
(40 users x 30 items, hand-built) with finite metrics, weights and parameters; refused models give
their reason."""

from __future__ import annotations

import math
import random

import pytest
import torch
from recbole.utils import init_seed

import recbole_autodenoise.experimental  # noqa: F401  (l2rw below: experimental)
from recbole_autodenoise import create_dataset, data_preparation, make_config
from recbole_autodenoise.evaluation.per_query import metric_per_query
from recbole_autodenoise.losses import PerSampleLoss
from recbole_autodenoise.model import get_model
from recbole_autodenoise.trainer import AutoDenoiseTrainer
from tests.conftest import write_inter

# --------------------------------------------------------------------------------------------
# negative sampling follows the model's loss_type


@pytest.mark.parametrize(
    "model", ["NARM", "STAMP", "Caser", "BERT4Rec", "SRGNN", "GCSAN", "GRU4Rec", "SASRec"]
)
def test_cross_entropy_sequential_models_get_no_negatives(model):
    config = make_config(model, "ml-100k")
    assert config["loss_type"] == "CE"
    assert config["train_neg_sample_args"] == {
        "distribution": "none",
        "sample_num": "none",
        "alpha": "none",
        "dynamic": False,
        "candidate_num": 0,
    }


def test_bpr_loss_type_gets_one_uniform_negative():
    for model, overrides in (
        ("GRU4Rec", {"loss_type": "BPR"}),
        ("FPMC", {}),
        ("BPR", {}),
        ("NeuMF", {}),
    ):
        args = make_config(model, "ml-100k", config_dict=overrides)["train_neg_sample_args"]
        assert (args["distribution"], args["sample_num"]) == ("uniform", 1), model


def test_negatives_set_by_the_user_are_kept(tmp_path):
    config = make_config(
        "GRU4Rec", "ml-100k", config_dict={"loss_type": "BPR", "train_neg_sample_args": None}
    )
    assert config["train_neg_sample_args"]["distribution"] == "none"
    # RecBole's own refusal of negatives with a CE loss stays the user's to see
    with pytest.raises(ValueError, match="should be None when the loss_type is CE"):
        make_config(
            "NARM",
            "ml-100k",
            config_dict={"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}},
        )
    path = tmp_path / "negatives.yaml"
    path.write_text(
        "train_neg_sample_args:\n  distribution: uniform\n  sample_num: 2\n", encoding="utf-8"
    )
    args = make_config("FPMC", "ml-100k", config_files=[str(path)])["train_neg_sample_args"]
    assert (args["distribution"], args["sample_num"]) == ("uniform", 2)


# --------------------------------------------------------------------------------------------
# the coverage matrix

WEIGHTED = [
    "BPR",
    "NeuMF",
    "DMF",
    "LightGCN",
    "NGCF",
    "FPMC",
    "GRU4Rec",
    "SASRec",
    "NARM",
    "STAMP",
    "Caser",
    "BERT4Rec",
    "SRGNN",
    "GCSAN",
]
DEFAULT_ONLY = {  # trains under default; per-sample weighting refused with this reason
    "SimpleX": "computed inline",
    "MultiVAE": "user-level batches",
    "ENMF": "user-level batches",
}
TRADITIONAL = ["Pop", "ItemKNN"]
SCHEMES = ["default", "adt_rl", "autodenoise_s", "dcf", "oracle"]
# small layers so the whole matrix stays fast on 2 cores
SMALL = {
    "embedding_size": 8,
    "hidden_size": 8,
    "inner_size": 16,
    "n_layers": 1,
    "mlp_hidden_size": [8],
    "user_hidden_size_list": [8],
    "item_hidden_size_list": [8],
    "hidden_dimension": [8, 8],
    "nv": 2,
    "nh": 4,
    "step": 1,
    "MAX_ITEM_LIST_LENGTH": 5,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """40 users x 15 of 30 items each, ratings 1-5 (about 40% below the clean threshold 3)."""
    rng = random.Random(0)
    rows = []
    for user in range(1, 41):
        for step, item in enumerate(rng.sample(range(1, 31), 15)):
            rows.append((user, item, rng.choice([1, 2, 3, 4, 5]), 1000 * user + step))
    root = tmp_path_factory.mktemp("coverage")
    write_inter(root, "tiny", rows)
    return str(root)


def tiny_config(model: str, scheme: str, data_path: str, **overrides):
    return make_config(
        model,
        "tiny",
        config_dict={
            "data_path": data_path,
            "epochs": 1,
            "show_progress": False,
            "state": "ERROR",
            "denoise_scheme": scheme,
            "user_inter_num_interval": "[0,inf)",
            "item_inter_num_interval": "[0,inf)",
            "train_batch_size": 256,
            "eval_batch_size": 4096,
            "topk": [5, 10],
            "valid_metric": "NDCG@10",
            "seed": 7,
            "allow_rating_diagnostics": True,  # the oracle is among the covered schemes
            **SMALL,
            **overrides,
        },
    )


def build(model: str, scheme: str, data_path: str, **overrides):
    config = tiny_config(model, scheme, data_path, **overrides)
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    recommender = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    return config, recommender, (train_data, valid_data, test_data)


def check_one_epoch(config, recommender, loaders) -> AutoDenoiseTrainer:
    train_data, valid_data, test_data = loaders
    trainer = AutoDenoiseTrainer(config, recommender)
    trainer.fit(train_data, valid_data, saved=False, verbose=False)
    result = trainer.evaluate(test_data, load_best_model=False)
    assert set(result) == {
        f"{m}@{k}" for m in ("precision", "recall", "f1", "ndcg") for k in (5, 10)
    }
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in result.values()), result
    assert result["ndcg@10"] > 0, (
        result
    )  # one epoch on 30 items ranks some held-out item in the top 10
    record = trainer.last_per_query  # user_first: one positive per query, each query's rank kept
    assert record is not None and record["queries"] == len(test_data._dataset)
    for metric in ("ndcg@10", "recall@5"):  # RecBole rounds to 4 places
        assert abs(metric_per_query(record, metric).mean() - result[metric]) <= 0.5e-4 + 1e-12, (
            metric
        )
    for name, parameter in recommender.named_parameters():
        assert torch.isfinite(parameter).all(), name
    return trainer


@pytest.mark.parametrize("model", WEIGHTED)
def test_per_sample_losses_average_to_the_model_loss(model, tiny):
    """On a real training batch, mean(1 * per-sample loss) + extra is the model's own loss."""
    _, recommender, (train_data, _, _) = build(model, "adt_rl", tiny)
    batch = next(iter(train_data))
    sample_loss = PerSampleLoss(recommender)
    torch.manual_seed(0)
    sample = sample_loss(batch, with_representations=True)
    torch.manual_seed(0)
    own = recommender.calculate_loss(batch)
    own = sum(own) if isinstance(own, tuple) else own
    rows = len(batch)
    assert sample.losses.shape == (rows,) and sample.losses.requires_grad
    assert torch.isfinite(sample.losses).all() and (sample.losses >= 0).all()
    tolerance = torch.finfo(torch.float32).eps * 16 * max(1.0, abs(own.item()))
    torch.testing.assert_close(sample.weighted(torch.ones(rows)), own, rtol=0, atol=tolerance)
    assert sample.user_repr.shape[0] == rows and sample.item_repr.shape[0] == rows
    assert sample.user_repr.dim() == 2 and sample.item_repr.dim() == 2
    assert torch.isfinite(sample.user_repr).all() and torch.isfinite(sample.item_repr).all()


@pytest.mark.slow
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("model", WEIGHTED)
def test_supported_model_trains_with_every_scheme(model, scheme, tiny):
    config, recommender, loaders = build(model, scheme, tiny)
    trainer = check_one_epoch(config, recommender, loaders)
    study = trainer.weight_study()
    # every training interaction once (a pointwise model's sampled negative rows are not studied)
    assert study["tp_samples"] + study["fp_samples"] == len(loaders[0]._dataset)
    tp, fp = study["tp_mean_weight"], study["fp_mean_weight"]
    if scheme == "default":
        assert (tp, fp) == (1.0, 1.0)
    elif scheme == "adt_rl":  # exp(-beta * loss) in (0, 1)
        assert 0 < tp < 1 and 0 < fp < 1
    elif scheme == "dcf":  # 0 for a dropped row, B / kept otherwise (epoch 0 drops nothing yet)
        assert tp == fp == 1.0
    elif scheme == "oracle":  # 0 below the threshold, B / #true positives above it
        assert fp == 0.0 and tp > 1.0
    else:  # softplus of a Gaussian around the mean-1 initialisation
        assert 0 < tp < 10 and 0 < fp < 10


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(DEFAULT_ONLY))
def test_default_only_models_train_and_refuse_weighting_with_the_reason(model, tiny):
    config, recommender, loaders = build(model, "default", tiny)
    check_one_epoch(config, recommender, loaders)
    refused = f"model {model} is not supported for per-sample weighting: .*{DEFAULT_ONLY[model]}"
    for scheme in ("adt_rl", "autodenoise_s"):
        # from the config alone, before any data loads ...
        with pytest.raises(ValueError, match=f"'denoise_scheme' = '{scheme}' .*{refused}"):
            tiny_config(model, scheme, tiny)
        # ... and by the trainer, for a config built otherwise
        config["denoise_scheme"] = scheme
        with pytest.raises(ValueError, match=refused):
            AutoDenoiseTrainer(config, recommender)


@pytest.mark.parametrize("model", TRADITIONAL)
def test_traditional_models_are_refused(model, tiny):
    config = tiny_config(model, "default", tiny)
    with pytest.raises(ValueError, match=f"model \\[{model}\\] is a traditional model"):
        data_preparation(config, create_dataset(config))


def test_clean_guided_schemes_refuse_models_their_batches_cannot_feed(tiny):
    # from the config alone, before any data loads ...
    with pytest.raises(
        ValueError,
        match="config key 'controller_credit' = 'explicit' draws clean guiding batches, which "
        "carry no masked positions; model BERT4Rec trains on masked sequences",
    ):
        tiny_config(
            "BERT4Rec",
            "autodenoise_s",
            tiny,
            controller_credit="explicit",
            clean_valid_guide_ratio=0.5,
        )
    # ... and by the clean batches, for a config built otherwise
    config, recommender, (train_data, valid_data, _) = build(
        "BERT4Rec", "autodenoise_s", tiny, clean_valid_guide_ratio=0.5
    )
    config["controller_credit"] = "explicit"
    trainer = AutoDenoiseTrainer(config, recommender)
    with pytest.raises(ValueError, match="model BERT4Rec trains on masked sequences"):
        trainer.fit(train_data, valid_data, saved=False, verbose=False)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["NeuMF", "DMF"])
def test_explicit_credit_trains_a_pointwise_model_and_leaves_its_negatives_at_one(model, tiny):
    """Labelled models: the clean batches hold the guide rows labelled 1 and sampled negatives
    labelled 0; the explicit credit fits the rated rows and weights positives only."""
    config, recommender, (train_data, valid_data, _) = build(
        model,
        "autodenoise_s",
        tiny,
        controller_credit="explicit",
        explicit_negatives=1,
        clean_valid_guide_ratio=0.5,
    )
    trainer = AutoDenoiseTrainer(config, recommender)
    seen = []
    real = trainer.scheme.credit.real_weights

    def spy(weights):
        sampled = trainer.scheme.credit._sampled
        out = real(weights)
        seen.append((sampled, out))
        return out

    trainer.scheme.credit.real_weights = spy
    trainer.fit(train_data, valid_data, saved=False, verbose=False)
    clean = next(trainer.clean_batches)
    label = config["LABEL_FIELD"]
    assert set(clean[label].tolist()) == {0.0, 1.0}
    assert int((clean[label] > 0).sum()) * 2 == len(clean)  # one negative per rated row
    assert seen and all(sampled is not None and sampled.any() for sampled, _ in seen)
    for sampled, weights in seen:
        assert bool((weights[sampled] == 1).all())
        assert float(weights[~sampled].mean()) == pytest.approx(1.0, abs=1e-4)
    assert math.isfinite(trainer.history[-1]["controller_fit_mse"])


@pytest.mark.slow
def test_clean_guided_schemes_take_a_pointwise_model_with_a_cross_entropy_loss(tiny):
    """SoftmaxMF is pointwise (no sampled negatives) but its loss is cross-entropy over all items:
    clean batches of positives feed it (explicit credit, one epoch)."""
    config, recommender, (train_data, valid_data, _) = build(
        "SoftmaxMF",
        "autodenoise_s",
        tiny,
        controller_credit="explicit",
        clean_valid_guide_ratio=0.5,
    )
    trainer = AutoDenoiseTrainer(config, recommender)
    trainer.fit(train_data, valid_data, saved=False, verbose=False)
    assert trainer.clean_batches is not None and math.isfinite(
        trainer.history[-1]["controller_fit_mse"]
    )
