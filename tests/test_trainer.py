"""End-to-end behaviour of AutoDenoiseTrainer on ML-100K (embedded in recbole): every scheme on
BPR, GRU4Rec and SASRec, identity with stock RecBole for `default`, checkpoints and resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from recbole.trainer import Trainer
from recbole.utils import get_model, init_seed

import recbole_autodenoise.experimental  # noqa: F401  (l2rw in the every-scheme runs: experimental)
import recbole_autodenoise as rad
from recbole_autodenoise import checkpoints
from tests.conftest import FAST

ALL_SCHEMES = ["default", "heuristic", "adt_tl", "adt_rl", "autodenoise_h", "autodenoise_s", "l2rw"]


def build(model: str, **overrides):
    # written for the per-interaction protocol; user_first's loaders: tests/data/test_user_first.py
    config = rad.make_config(
        model, "ml-100k", config_dict={**FAST, "eval_protocol": "interaction", **overrides}
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = rad.create_dataset(config)
    train, valid, test = rad.data_preparation(config, dataset)
    return config, train, valid, test


def fresh_model(config, train):
    init_seed(config["seed"], config["reproducibility"])
    return get_model(config["model"])(config, train._dataset).to(config["device"])


@pytest.fixture(scope="module", params=["BPR", "GRU4Rec", "SASRec"])
def prepared(request):
    # ML-100K's users with at most 60 ratings (a third of the interactions) keep CI short
    return build(request.param, epochs=1, user_inter_num_interval="[10,60]")


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_every_scheme_trains_and_gives_sensible_clean_test_metrics(prepared, scheme):
    config, train, valid, test = prepared
    config["denoise_scheme"] = scheme
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    trainer.fit(train, valid, saved=False)
    result = trainer.evaluate(test, load_best_model=False)
    for k in (10, 20, 50):
        assert 0.0 < result[f"ndcg@{k}"] < 1.0
        assert 0.0 < result[f"recall@{k}"] <= 1.0
    assert result["ndcg@10"] <= result["ndcg@50"]
    study = trainer.weight_study()
    assert study["tp_samples"] + study["fp_samples"] == len(train._dataset)
    assert study["fp_samples"] > 0 and math.isfinite(study["tp_mean_weight"])
    if scheme == "default":
        assert study["tp_mean_weight"] == study["fp_mean_weight"] == 1.0
    if scheme.startswith("autodenoise"):
        record = trainer.history[-1]
        assert record["controller_baseline"] == 0.0  # b = 0 before the first update (Algorithm 1)
        assert record["controller_advantage"] == pytest.approx(record["controller_reward"])
        assert 0.5 < record["controller_reward"] < 1.0  # GAUC on the clean validation set


@pytest.mark.slow
@pytest.mark.parametrize("model, epochs", [("BPR", 2), ("SASRec", 1)])
def test_default_scheme_equals_stock_recbole_trainer(model, epochs):
    small = {"user_inter_num_interval": "[10,60]"}  # a third of ML-100K keeps CI short
    config, train, valid, test = build(model, epochs=epochs, denoise_scheme="default", **small)
    stock = Trainer(config, fresh_model(config, train))
    stock.fit(train, valid, saved=False)
    expected = stock.evaluate(test, load_best_model=False)
    config, train, valid, test = build(model, epochs=epochs, denoise_scheme="default", **small)
    ours = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    ours.fit(train, valid, saved=False)
    actual = ours.evaluate(test, load_best_model=False)
    assert actual.keys() == expected.keys()
    for key in expected:
        assert actual[key] == pytest.approx(expected[key], abs=1e-12), key
    assert ours.train_loss_dict == pytest.approx(stock.train_loss_dict, rel=1e-12)


class Interrupt(Exception):
    pass


def _stop_after(epoch):
    def callback(epoch_idx, valid_score):
        if epoch_idx == epoch:
            raise Interrupt

    return callback


def assert_resume_reproduces(model: str, stop_after: int = 1, **overrides) -> None:
    """Train uninterrupted; train again, interrupted after epoch ``stop_after``, and resume from
    its checkpoint: losses, weight study and clean-test metrics must be identical."""
    config, train, valid, test = build(model, **overrides)
    uninterrupted = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    uninterrupted.fit(train, valid)
    expected = uninterrupted.evaluate(test)

    config, train, valid, test = build(model, **overrides)
    interrupted = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    with pytest.raises(Interrupt):
        interrupted.fit(train, valid, callback_fn=_stop_after(stop_after))
    checkpoint = checkpoints.load_checkpoint(interrupted.saved_model_file)
    stopped_at = checkpoint["epoch"]

    config, train, valid, test = build(model, **overrides)
    resumed = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    resumed.resume_checkpoint(interrupted.saved_model_file)
    assert resumed.start_epoch == stopped_at + 1
    resumed.fit(train, valid)
    actual = resumed.evaluate(test)

    assert [r["train_loss"] for r in resumed.history] == [
        r["train_loss"] for r in uninterrupted.history
    ]
    assert (
        resumed.weight_study()["tp_mean_weight"] == uninterrupted.weight_study()["tp_mean_weight"]
    )
    assert actual == expected


# the soft controller's generator and ADT-TL's schedule; the hard controller's draws resume through
# the same generator state (tests/test_checkpoints.py, tests/test_guidance.py)
@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["autodenoise_s", "adt_tl"])
def test_resumed_run_continues_exactly_where_it_stopped(scheme):
    assert_resume_reproduces("BPR", epochs=4, denoise_scheme=scheme, stopping_step=10)


@pytest.mark.slow
def test_checkpoint_is_plain_data_loadable_with_weights_only(tmp_path):
    config, train, valid, _ = build("BPR", epochs=1, denoise_scheme="autodenoise_h")
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    trainer.fit(train, valid)
    checkpoint = torch.load(trainer.saved_model_file, weights_only=True)
    assert checkpoint["config"]["model"] == "BPR"
    assert checkpoint["denoise"]["scheme"] == "autodenoise_h"
    state = checkpoint["denoise"]["scheme_state"]
    assert {"policy", "optimizer", "baseline", "generator", "accumulator"} <= set(state)
    assert state["baseline"] != 0.0  # one REINFORCE update happened
    assert not list(tmp_path.glob("saved/.tmp-*"))


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "model.pth"
    checkpoints.atomic_torch_save({"good": torch.ones(2)}, target)

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.atomic_torch_save({"good": torch.zeros(2)}, target)
    monkeypatch.undo()
    assert torch.equal(checkpoints.load_checkpoint(target)["good"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]


@pytest.mark.slow
def test_resume_rejects_a_checkpoint_of_another_scheme():
    config, train, valid, _ = build("BPR", epochs=1, denoise_scheme="adt_rl")
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    trainer.fit(train, valid)
    config["denoise_scheme"] = "autodenoise_s"
    other = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    with pytest.raises(ValueError, match="adt_rl"):
        other.resume_checkpoint(trainer.saved_model_file)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"denoise_scheme": "magic"},
            "denoise_scheme' = 'magic' is invalid: expected one of "
            r"\['adt_rl', 'adt_tl', 'autodenoise_h', 'autodenoise_s', 'dcf', 'default', "
            "'heuristic'",
        ),
        ({"topk": [10, 5000]}, "topk"),
        (
            {"denoise_scheme": "autodenoise_h", "controller_num_actions": 1},
            "controller_num_actions",
        ),
        ({"learning_rate": 0}, "learning_rate"),
        (
            {"denoise_scheme": "autodenoise_s", "controller_learning_rate": -1e-3},
            "controller_learning_rate",
        ),
        ({"denoise_scheme": "autodenoise_s", "reward_metric": "NDCG@7"}, "reward_metric"),
        ({"valid_metric": "GAUC"}, "valid_metric"),
    ],
)
@pytest.mark.slow
def test_bad_configuration_fails_before_training(prepared_bpr, overrides, message):
    config, train = prepared_bpr
    for key, value in overrides.items():
        config[key] = value
    with pytest.raises(ValueError, match=message):
        rad.AutoDenoiseTrainer(config, fresh_model(config, train))


@pytest.fixture
def prepared_bpr():
    config, train, _, _ = build("BPR", epochs=1)
    return config, train


@pytest.mark.slow
def test_nan_training_loss_stops_with_a_clear_message(prepared_bpr, monkeypatch):
    config, train = prepared_bpr
    config["denoise_scheme"] = "adt_rl"
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    monkeypatch.setattr(trainer.sample_loss, "__call__", None, raising=False)
    original = trainer._weighted_loss
    monkeypatch.setattr(
        trainer, "_weighted_loss", lambda interaction: original(interaction) * float("nan")
    )
    with pytest.raises(ValueError, match="training loss is NaN at epoch 0 .*adt_rl"):
        trainer.fit(train, None, saved=False)


def test_the_trainer_module_stays_under_300_lines():
    """``trainer.py`` holds RecBole's hooks; what they call lives in modules of its own."""
    path = Path(__file__).resolve().parents[1] / "recbole_autodenoise" / "trainer.py"
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines < 300, f"{path} has {lines} lines"
