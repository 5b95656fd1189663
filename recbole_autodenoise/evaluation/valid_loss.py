"""The validation loss and the epoch it selects (``valid_selection``).

``valid_selection: metric`` is RecBole's rule: the epoch with the best ``valid_metric``. The other
values keep the epoch with the lowest validation loss, the selection rule of the EvalDenoisingRec
study: every validation row (user, item) is a positive, labelled 1, beside one sampled negative of
the same user, labelled 0, drawn uniformly from the items the user has no training row with
(afresh at each validation, seeded by ``seed`` and the epoch); the loss of each sample is the
model's own training loss (``losses.PerSampleLoss``: binary cross-entropy for a pointwise model
trained on sampled negatives), in evaluation mode, and the validation loss is

- ``loss``: their mean;
- ``loss_trimmed``: their mean without the ``valid_loss_trim`` share of positives with the
  highest loss (``int((1 - trim) * positives)`` kept, every negative kept: the study's ERM_RE);
- ``loss_scheme``: their mean weighted as the denoising scheme weights a training batch at that
  point (``WeightingScheme.validation_weights``: ADT-TL truncates at its current drop rate, ADT-RL
  reweights; the others use the plain mean), as the study selects T-CE and R-CE.

A lower loss is better: the trainer turns RecBole's ``valid_metric_bigger`` off.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.utils import InputType

from recbole_autodenoise import options
from recbole_autodenoise.checks import fraction
from recbole_autodenoise.losses import PerSampleLoss
from recbole_autodenoise.options import Option, Rule

SELECTIONS = ("metric", "loss", "loss_trimmed", "loss_scheme")
OPTIONS = options.declare(
    Option(
        "valid_selection",
        "str",
        "metric",
        "the epoch kept as best: metric (best valid_metric, RecBole's) | loss (lowest validation "
        "loss: each validation row and one sampled negative, the model's own loss) | loss_trimmed "
        "(that loss without the valid_loss_trim share of highest-loss positives) | loss_scheme "
        "(that loss weighted as the scheme weights a training batch); a loss needs a pointwise "
        "model with sampled negatives",
        choices=SELECTIONS,
    ),
    Option(
        "valid_loss_trim",
        "float",
        0.2,
        "in [0, 1): share of validation positives with the highest loss that valid_selection "
        "loss_trimmed leaves out",
        check=fraction,
        allowed="a number in [0, 1)",
    ),
)
# samples scored per call of the model's loss
CHUNK = 65536


def _check_loss_selection(config) -> None:
    """A validation loss needs a pointwise model trained on labelled rows with sampled negatives
    (RecBole's ``train_neg_sample_args``), whose loss is defined per labelled row."""
    selection = config["valid_selection"]
    if selection == "metric":
        return
    neg = config["train_neg_sample_args"] or {}
    pointwise = config["MODEL_INPUT_TYPE"] == InputType.POINTWISE
    if not pointwise or neg.get("distribution", "none") == "none":
        raise ValueError(
            f"config key 'valid_selection' = {selection!r} needs a pointwise model trained on "
            f"sampled negatives (labelled rows, e.g. NeuMF, LightGCNPointwise, CDAEPointwise with "
            f"train_neg_sample_args distribution uniform); model {config['model']} has input type "
            f"{getattr(config['MODEL_INPUT_TYPE'], 'name', config['MODEL_INPUT_TYPE'])} and "
            f"train_neg_sample_args {config['train_neg_sample_args']!r}: use valid_selection: "
            "metric"
        )


RULES = (
    Rule(
        ("valid_selection", "train_neg_sample_args"),
        "a loss needs a pointwise model with sampled negatives",
        _check_loss_selection,
    ),
)


def read_selection(config) -> str:
    """``valid_selection`` and ``valid_loss_trim``, checked with their rule."""
    options.check(config, OPTIONS, RULES)
    return config["valid_selection"]


def trimmed_mean(losses: torch.Tensor, labels: torch.Tensor, trim: float) -> torch.Tensor:
    """Mean of every negative's loss and of the ``int((1 - trim) * positives)`` lowest positive
    losses."""
    positive = losses[labels > 0]
    kept = torch.sort(positive).values[: int((1 - trim) * positive.numel())]
    negative = losses[labels <= 0]
    count = kept.numel() + negative.numel()
    if count == 0:
        return losses.new_tensor(float("nan"))
    return (kept.sum() + negative.sum()) / count


class ValidationNegatives:
    """One negative per validation row: a uniform item id in [1, n_items) that the row's user has
    no training row with, drawn by a generator seeded by (seed, epoch)."""

    def __init__(self, train_users, train_items, n_items: int, seed: int) -> None:
        self.n_items = int(n_items)
        self.seed = int(seed)
        keys = np.asarray(train_users, dtype=np.int64) * self.n_items + np.asarray(
            train_items, dtype=np.int64
        )
        self.trained = np.unique(keys)
        counts = np.bincount(self.trained // self.n_items) if len(self.trained) else np.zeros(0)
        if self.n_items <= 1 or (counts >= self.n_items - 1).any():
            raise ValueError(
                "validation negatives: a user has a training row with every item; no negative "
                "item can be drawn for it (valid_selection: metric needs none)"
            )

    def _is_trained(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        where = np.searchsorted(self.trained, keys)
        where = np.minimum(where, len(self.trained) - 1)
        return self.trained[where] == keys if len(self.trained) else np.zeros(len(keys), bool)

    def draw(self, users: np.ndarray, epoch: int) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        rng = np.random.default_rng([self.seed, int(epoch)])
        items = rng.integers(1, self.n_items, size=len(users))
        redo = np.flatnonzero(self._is_trained(users, items))
        while len(redo):
            items[redo] = rng.integers(1, self.n_items, size=len(redo))
            redo = redo[self._is_trained(users[redo], items[redo])]
        return items


class ValidationLoss:
    """The validation loss of ``valid_selection`` for one run: ``setup`` with the training and
    validation datasets once, then ``compute(model, epoch, scheme)`` after each validation."""

    def __init__(self, config) -> None:
        self.selection = read_selection(config)
        self.trim = float(config["valid_loss_trim"])
        self.seed = int(config["seed"])
        self.uid_field = config["USER_ID_FIELD"]
        self.iid_field = config["ITEM_ID_FIELD"]
        self.label_field = config["LABEL_FIELD"]
        self.users: np.ndarray | None = None
        self.items: np.ndarray | None = None
        self.negatives: ValidationNegatives | None = None
        self.sample_loss: PerSampleLoss | None = None

    @staticmethod
    def from_config(config) -> ValidationLoss | None:
        """``None`` under ``valid_selection: metric``."""
        return None if read_selection(config) == "metric" else ValidationLoss(config)

    def setup(self, train_dataset: Any, valid_dataset: Any) -> None:
        train = train_dataset.inter_feat
        valid = valid_dataset.inter_feat
        self.users = valid[self.uid_field].numpy().astype(np.int64)
        self.items = valid[self.iid_field].numpy().astype(np.int64)
        if len(self.users) == 0:
            raise ValueError("valid_selection needs validation rows; the validation set is empty")
        self.negatives = ValidationNegatives(
            train[self.uid_field].numpy(),
            train[self.iid_field].numpy(),
            train_dataset.item_num,
            self.seed,
        )

    def samples(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This validation's users, items and labels: every validation row (label 1), then one
        negative per row (label 0)."""
        negatives = self.negatives.draw(self.users, epoch)
        users = np.concatenate([self.users, self.users])
        items = np.concatenate([self.items, negatives])
        labels = np.concatenate([np.ones(len(self.users)), np.zeros(len(self.users))])
        return (
            torch.from_numpy(users),
            torch.from_numpy(items),
            torch.from_numpy(labels).float(),
        )

    @torch.no_grad()
    def losses(self, model, users, items, labels) -> torch.Tensor:
        """Each sample's loss as the model's training loss computes it, in evaluation mode."""
        if self.sample_loss is None:
            self.sample_loss = PerSampleLoss(model)
        was_training = model.training
        model.eval()
        try:
            found = []
            for start in range(0, len(users), CHUNK):
                part = slice(start, start + CHUNK)
                interaction = Interaction(
                    {
                        self.uid_field: users[part],
                        self.iid_field: items[part],
                        self.label_field: labels[part],
                    }
                ).to(model.device)
                found.append(self.sample_loss(interaction).losses.detach().float())
        finally:
            model.train(was_training)
        return torch.cat(found)

    def compute(self, model, epoch: int, scheme=None) -> float:
        """The validation loss after ``epoch``."""
        users, items, labels = self.samples(epoch)
        losses = self.losses(model, users, items, labels)
        labels = labels.to(losses.device)
        return float(reduce(self.selection, losses, labels, self.trim, scheme))


def reduce(selection: str, losses: torch.Tensor, labels: torch.Tensor, trim: float, scheme=None):
    """The validation loss of ``selection`` from per-sample ``losses`` and ``labels``."""
    if selection == "loss_trimmed":
        return trimmed_mean(losses, labels, trim)
    weights = None
    if selection == "loss_scheme" and scheme is not None:
        weights = scheme.validation_weights(losses, labels)
    if weights is None:
        return losses.mean()
    return (weights.to(losses.dtype) * losses).mean()
