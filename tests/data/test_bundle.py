"""``data.bundle.training_data_for``: the training side a trainer trains on with a loader."""

from __future__ import annotations

import pytest

from recbole_autodenoise.data.bundle import (
    TrainingData,
    remember,
    training_data_for,
    training_data_of,
)


class Loader:
    """Stands for a training loader (weakly referenceable, like RecBole's)."""


def training(train) -> TrainingData:
    return TrainingData(train, None, None, None, None, None)


def test_a_trainer_without_data_takes_the_side_built_with_the_loader():
    loader = Loader()
    side = training(loader)
    remember(side)
    assert training_data_for(None, loader) is side is training_data_of(loader)
    assert training_data_for(None, Loader()) is None  # a loader built otherwise


def test_a_trainer_keeps_its_own_side_for_its_own_loader():
    loader = Loader()
    side = training(loader)
    assert training_data_for(side, loader) is side


def test_another_loader_than_the_trainers_data_is_refused():
    with pytest.raises(ValueError, match="fit\\(\\) got another training loader"):
        training_data_for(training(Loader()), Loader())
