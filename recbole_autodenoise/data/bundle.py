"""The data contract: what ``prepare_data`` builds, as one typed object.

``DataBundle`` holds the training side (``TrainingData``: every loader and row set that training
may read, never a test row) and the test side (the test loader of ``eval_protocol`` and one test
loader per reported protocol). Nothing is attached to RecBole's loaders or datasets: a trainer
gets the training side explicitly (``AutoDenoiseTrainer.set_data``).

``data_preparation`` keeps RecBole's ``(train, valid, test)`` for plain RecBole scripts; the
training side of the bundle behind its training loader stays findable with
``training_data_of(train_loader)`` (a weak map: it lives as long as the loader), so such a script
trains exactly as one that passes the bundle.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from recbole.data.dataloader import AbstractDataLoader
from recbole.data.dataset import Dataset
from recbole.data.interaction import Interaction


@dataclass(frozen=True)
class TrainingData:
    """What training reads. ``train``: the training loader (sharded under DDP). ``select``: the
    validation loader of ``eval_protocol`` (early stopping, ``valid_metric``), over the select
    part of the clean validation set. ``guide``: the loader the rewards are computed on where it
    differs from ``select`` (the guide part of a guide/select split, or every clean validation
    interaction under ``user_first``), else ``None``. ``guide_rows``: the clean rows the guiding
    batches draw from (the guide part; without a split, the whole clean validation set).
    ``explicit_rows``: the guide part's rows, clean or not (``controller_credit: explicit``).
    ``valid_rows``: every validation row, clean or not."""

    train: AbstractDataLoader
    select: AbstractDataLoader
    guide: AbstractDataLoader | None
    guide_rows: Dataset
    explicit_rows: Dataset
    valid_rows: Interaction


@dataclass(frozen=True)
class DataBundle:
    """``training`` (``TrainingData``), ``test`` (the test loader of ``eval_protocol``) and
    ``test_by_protocol`` (a read-only map from each reported protocol to its test loader; the
    configured one is ``test`` itself)."""

    training: TrainingData
    test: AbstractDataLoader
    test_by_protocol: Mapping[str, AbstractDataLoader]

    def __post_init__(self) -> None:
        object.__setattr__(self, "test_by_protocol", MappingProxyType(dict(self.test_by_protocol)))

    @property
    def train(self) -> AbstractDataLoader:
        return self.training.train

    @property
    def select(self) -> AbstractDataLoader:
        return self.training.select


_TRAINING_OF: weakref.WeakKeyDictionary[Any, TrainingData] = weakref.WeakKeyDictionary()


def remember(training: TrainingData) -> None:
    """Make ``training`` findable from its training loader (``training_data_of``)."""
    _TRAINING_OF[training.train] = training


def training_data_of(train_loader: Any) -> TrainingData | None:
    """The training side ``data_preparation`` built with ``train_loader``; ``None`` for a loader
    it did not build (RecBole's own ``data_preparation``, or one built by hand)."""
    try:
        return _TRAINING_OF.get(train_loader)
    except TypeError:  # an object that cannot be weakly referenced was never remembered
        return None


def training_data_for(current: TrainingData | None, train_loader: Any) -> TrainingData | None:
    """The training side a trainer that holds ``current`` (``None``: none yet) trains on with
    ``train_loader``: ``current``, which must be that loader's, or else the side
    ``data_preparation`` built with it (``training_data_of``)."""
    if current is None:
        return training_data_of(train_loader)
    if current.train is not train_loader:
        raise ValueError(
            "fit() got another training loader than this trainer's data "
            "(set_data, or the first fit): pass that bundle's train loader"
        )
    return current
