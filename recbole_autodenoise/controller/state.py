"""The controller's state (``controller_state``): what the policy sees of each sample.

``paper`` (Sec. 4.3): ``concat(e_u, e_v, loss_uv, epoch)``, everything detached from the
recommender; the epoch enters as ``epoch / config['epochs']`` so the feature stays in [0, 1].
Other states register with ``@register_state("name")`` on a :class:`StateFeatures` subclass.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from recbole_autodenoise.options import Option, Owner
from recbole_autodenoise.registry import Registry
from recbole_autodenoise.schemes.base import Batch


def controller_state(
    user_repr, item_repr, losses, epoch_fraction: float, true_positive=None
) -> torch.Tensor:
    """``[e_u, e_v, loss, epoch]`` per sample, plus the true-positive flag as a last column where
    given (``controller_oracle_state``, a diagnostic)."""
    epoch = torch.full_like(losses, float(epoch_fraction))
    columns = [user_repr, item_repr, losses.unsqueeze(1), epoch.unsqueeze(1)]
    if true_positive is not None:
        columns.append(true_positive.to(losses.dtype).unsqueeze(1))
    return torch.cat(columns, dim=1).detach()


class StateFeatures(Owner):
    """Computes the controller's state of a training batch, and of rows that are not training
    rows (``of_rows``: the explicit credit's rated rows) where the state has a meaning for them.

    Subclasses declare the keys they read (``OPTIONS``; the scheme checks those of every registered
    state, whichever a run uses, and gives the running state ``read_options``), look at the
    training set once in ``setup`` and expose what a resumed run needs in ``state_dict`` (merged
    into the scheme's state: keys must not clash with its own).
    """

    name: ClassVar[str] = ""
    OPTIONS: ClassVar[tuple[Option, ...]] = ()
    needs_representations: ClassVar[bool] = True  # does the state hold e_u and e_v?
    held_out_rows: ClassVar[bool] = True  # does ``of_rows`` give a state to rows never trained on?
    single_process_reason: ClassVar[str | None] = None  # why it cannot run under DDP, if it cannot

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def setup(self, train_dataset: Any, held_out: Any = None) -> None:
        """Called once before training with RecBole's training dataset and every validation row,
        clean or not (``TrainingData.valid_rows``; ``None`` where the data has no bundle)."""

    def __call__(self, batch: Batch, true_positive: torch.Tensor | None = None) -> torch.Tensor:
        """The state of each training sample of ``batch``, detached; ``true_positive`` (where
        given) appended as a last column."""
        raise NotImplementedError

    def of_rows(self, user_repr, item_repr, losses, epoch_fraction: float) -> torch.Tensor:
        """The state of rows that are not training rows, from their representations and losses."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (the whole scheme state is passed)."""


STATES: Registry[type[StateFeatures]] = Registry(
    "controller_state", experimental=("paper_product", "loss_features"), sort=False
)


def register_state(name: str):
    """Class decorator: make a state selectable as ``controller_state: <name>``."""
    return STATES.register_named(name)


@register_state("paper")
class PaperState(StateFeatures):
    """The paper's state: ``[e_u, e_v, loss, epoch]``."""

    def __call__(self, batch: Batch, true_positive: torch.Tensor | None = None) -> torch.Tensor:
        return controller_state(
            batch.user_repr, batch.item_repr, batch.losses, batch.epoch_fraction, true_positive
        )

    def of_rows(self, user_repr, item_repr, losses, epoch_fraction: float) -> torch.Tensor:
        return controller_state(user_repr, item_repr, losses, epoch_fraction)
