"""Early stopping with a minimum number of epochs (``stopping_min_epochs``) and the run's
stopping summary, on a stand-in validation score sequence (RecBole's own ``fit`` loop runs)."""

from __future__ import annotations

import pytest
from recbole.trainer import Trainer

import recbole_autodenoise as rad
from recbole_autodenoise.quick_start import run
from tests.conftest import write_inter
from tests.test_trainer import fresh_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """20 users x 15 items, every user rates 14 of them (10-core filtering keeps all; each user
    keeps an item to rank against)."""
    folder = tmp_path_factory.mktemp("data")
    rows = [
        (u, i, 1 + (u + i) % 5, 100 * u + i)
        for u in range(1, 21)
        for i in range(1, 16)
        if i != 1 + u % 15
    ]
    write_inter(folder, "tiny", rows)
    return folder


def fit_with_scores(monkeypatch, tiny, scores, **overrides):
    """Fit BPR on the tiny set with RecBole's training step stubbed out and validation scores
    taken from ``scores`` in turn; return the trainer."""
    settings = {
        "data_path": str(tiny),
        "show_progress": False,
        "state": "WARNING",
        "epochs": len(scores),
        "stopping_step": 2,
        "topk": [5],
        "valid_metric": "NDCG@5",
        **overrides,
    }  # 15 items: K = 5
    config = rad.make_config("BPR", "tiny", config_dict=settings)
    train, valid, _ = rad.data_preparation(config, rad.create_dataset(config))
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    sequence = iter(scores)
    monkeypatch.setattr(Trainer, "_train_epoch", lambda self, *args, **kwargs: 0.0)
    monkeypatch.setattr(
        Trainer, "_valid_epoch", lambda self, *args, **kwargs: (next(sequence), {"ndcg@20": 0.0})
    )
    trainer.fit(train, valid, saved=False)
    return trainer


FLAT_AFTER_FIRST = [0.5] + [0.4] * 19  # epoch 0 is the best and never beaten


@pytest.mark.slow
def test_without_a_minimum_recbole_stops_after_stopping_step_plus_one_bad_validations(
    monkeypatch, tiny
):
    trainer = fit_with_scores(monkeypatch, tiny, FLAT_AFTER_FIRST, stopping_min_epochs=0)
    assert trainer.stopping_summary() == {
        "best_epoch": 0,
        "epochs_trained": 4,
        "hit_epoch_cap": False,
        "stopped_early": True,
        "stopping_min_epochs": 0,
    }


@pytest.mark.slow
def test_the_minimum_holds_the_stop_until_it_is_reached(monkeypatch, tiny):
    trainer = fit_with_scores(monkeypatch, tiny, FLAT_AFTER_FIRST, stopping_min_epochs=10)
    summary = trainer.stopping_summary()
    assert (
        summary["epochs_trained"] == 10 and summary["best_epoch"] == 0 and summary["stopped_early"]
    )


@pytest.mark.slow
def test_minimum_of_one_changes_nothing(monkeypatch, tiny):
    trainer = fit_with_scores(monkeypatch, tiny, FLAT_AFTER_FIRST, stopping_min_epochs=1)
    assert trainer.stopping_summary()["epochs_trained"] == 4


@pytest.mark.slow
def test_patience_counts_from_the_best_epoch_across_the_minimum(monkeypatch, tiny):
    # best at epoch 8, then three worse validations: stop at epoch 11, as without the minimum
    scores = [0.5] + [0.4] * 7 + [0.6] + [0.4] * 11
    trainer = fit_with_scores(monkeypatch, tiny, scores, stopping_min_epochs=10)
    assert trainer.stopping_summary()["epochs_trained"] == 12
    assert trainer.stopping_summary()["best_epoch"] == 8


@pytest.mark.slow
def test_zero_patience_is_held_too(monkeypatch, tiny):
    trainer = fit_with_scores(
        monkeypatch, tiny, FLAT_AFTER_FIRST, stopping_min_epochs=5, stopping_step=0
    )
    assert trainer.stopping_summary()["epochs_trained"] == 5


@pytest.mark.slow
def test_a_run_that_never_stops_hits_the_cap(monkeypatch, tiny):
    trainer = fit_with_scores(monkeypatch, tiny, [0.1, 0.2, 0.2, 0.3, 0.25], stopping_min_epochs=0)
    # ties count as improvements (RecBole's early_stopping uses >=)
    assert trainer.stopping_summary() == {
        "best_epoch": 3,
        "epochs_trained": 5,
        "hit_epoch_cap": True,
        "stopped_early": False,
        "stopping_min_epochs": 0,
    }


@pytest.mark.parametrize("value", [-1, 2.5, True, "ten", None])
def test_bad_minimum_raises_naming_the_key(tiny, value):
    settings = {"data_path": str(tiny), "state": "WARNING", "topk": [5], "valid_metric": "NDCG@5"}
    config = rad.make_config("BPR", "tiny", config_dict=settings)
    train, _, _ = rad.data_preparation(config, rad.create_dataset(config))
    with pytest.raises(ValueError, match=f"'stopping_min_epochs' = {value!r}"):
        rad.make_config("BPR", "tiny", config_dict={**settings, "stopping_min_epochs": value})
    config["stopping_min_epochs"] = value  # a config changed after make_config: the trainer checks
    with pytest.raises(ValueError, match=f"'stopping_min_epochs' = {value!r}"):
        rad.AutoDenoiseTrainer(config, fresh_model(config, train))


@pytest.mark.slow
def test_the_results_carry_the_stopping_summary(tiny):
    settings = {
        "data_path": str(tiny),
        "show_progress": False,
        "state": "WARNING",
        "topk": [5],
        "valid_metric": "NDCG@5",
        "epochs": 1,
    }
    results = run("BPR", "tiny", config_dict=settings, saved=False)
    assert results["stopping"] == {
        "best_epoch": 0,
        "epochs_trained": 1,
        "hit_epoch_cap": True,
        "stopped_early": False,
        "stopping_min_epochs": 10,
    }
