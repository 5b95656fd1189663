"""``after_validation.learn_and_record``: the scheme learns from what the reward pass picked, its
logs reach tensorboard and the run's log, and the epoch's record gets the validation's entries in
a fixed order. Hand-built stand-ins; no training."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from recbole_autodenoise.after_validation import learn_and_record


class Board:
    def __init__(self) -> None:
        self.scalars = []

    def add_scalar(self, tag, value, step) -> None:
        self.scalars.append((tag, value, step))


class Learner:
    def __init__(self, logs) -> None:
        self.logs, self.learned = logs, []

    def after_evaluation(self, result, epoch):
        self.learned.append((result, epoch))
        return self.logs


def trainer(logs, history):
    return SimpleNamespace(
        tensorboard=Board(),
        scheme=Learner(logs),
        logger=logging.getLogger("test_after_validation"),
        diagnosis=None,
        config={"single_spec": True},
        history=history,
    )


def test_the_scheme_learns_and_the_epochs_record_gets_score_logs_and_guide_score(caplog):
    record = {"epoch": 3, "train_loss": 0.5}
    found = trainer({"reward": 0.25, "baseline": 0.125}, [record])
    with caplog.at_level(logging.INFO, logger="test_after_validation"):
        learn_and_record(found, 3, ({"gauc": 0.75}, 0.5), valid_score=0.4, start=0.0)
    assert found.scheme.learned == [({"gauc": 0.75}, 3)]
    assert found.tensorboard.scalars == [
        ("AutoDenoise/guide_score", 0.5, 3),
        ("AutoDenoise/reward", 0.25, 3),
        ("AutoDenoise/baseline", 0.125, 3),
    ]
    assert "reward=0.250000, baseline=0.125000" in caplog.text
    assert list(record) == [
        "epoch",
        "train_loss",
        "valid_seconds",
        "valid_score",
        "controller_reward",
        "controller_baseline",
        "guide_score",
    ]
    assert (record["valid_score"], record["guide_score"]) == (0.4, 0.5)


def test_without_logs_or_guide_score_only_the_score_and_time_are_recorded(caplog):
    record = {"epoch": 0}
    found = trainer({}, [record])
    with caplog.at_level(logging.INFO, logger="test_after_validation"):
        learn_and_record(found, 0, ({"ndcg@10": 0.1}, None), valid_score=0.1, start=0.0)
    assert found.tensorboard.scalars == [] and caplog.text == ""
    assert list(record) == ["epoch", "valid_seconds", "valid_score"]


def test_a_validation_before_any_epoch_record_still_teaches_the_scheme():
    found = trainer({"reward": 1.0}, [])
    learn_and_record(found, 0, ({"gauc": 0.5}, None), valid_score=0.5, start=0.0)
    assert found.scheme.learned == [({"gauc": 0.5}, 0)] and found.history == []
