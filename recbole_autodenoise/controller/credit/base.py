"""The interface of a credit-assignment mode, the handle through which it sees its controller,
and the registry that finds modes by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from recbole_autodenoise.controller.policy import Policy
from recbole_autodenoise.options import Option, Owner, Rule
from recbole_autodenoise.controller.state import StateFeatures
from recbole_autodenoise.registry import Registry
from recbole_autodenoise.schemes.base import Batch


@dataclass
class ControllerHandle:
    """What a credit may read and update of its controller. The scheme owns it and builds the
    policy and its optimiser on the first batch (or when loading a state that has them), so both
    are ``None`` before."""

    device: torch.device
    generator: torch.Generator  # the scheme's: the weights are drawn from it
    seed: int  # the run's seed, for draws a credit makes once (seeded apart from the generator)
    reward_key: str  # the clean-validation result's reward (``reward_metric``, parsed)
    baseline_decay: float  # a moving-average baseline's decay (``baseline_decay``)
    features: StateFeatures  # the state: ``features.of_rows`` for rows that are not training rows
    policy: Policy | None = None
    optimizer: torch.optim.Optimizer | None = None


class Credit(Owner):
    """Turns what the controller did into updates of the controller.

    Owned by a ``ControllerScheme``, which calls, in this order: ``setup`` once with the training
    set, ``augment`` on every training batch (rows the mode adds itself), ``on_build`` once the
    policy and its optimiser exist (first batch, or loading a state that has them); per batch
    ``before_weights`` (may update the controller before the batch's weights are drawn),
    ``record`` (the batch's states and the actions drawn for them; ``record_score`` instead where
    ``records_score``) and ``real_weights`` (may transform the drawn weights before the step uses
    them); ``after_evaluation`` after each validation (returns values to log). ``state_dict``
    holds whatever a resumed run needs; it is merged into the scheme's state, so keys must not
    clash with the scheme's own (``generator``, ``policy``, ``optimizer``, ``input_size``,
    ``credit``). A mode declares its keys in ``OPTIONS`` (the scheme checks those of every
    registered mode, whichever runs, and gives the running mode ``read_options``) and the rules
    that hold where it runs in ``RULES``; the keys in ``exclusive`` must stay at their default
    where another mode runs.
    """

    name: ClassVar[str] = ""
    OPTIONS: ClassVar[tuple[Option, ...]] = ()  # the keys this mode reads (its bases' on top)
    RULES: ClassVar[tuple[Rule, ...]] = ()  # rules between keys that hold where this mode runs
    # keys whose default leaves the option off: a run of another mode must leave them there
    exclusive: ClassVar[tuple[str, ...]] = ()
    # why the mode cannot take a ``controller_prior``, if it cannot
    prior_refusal: ClassVar[str | None] = None
    needs_guidance: ClassVar[bool] = False  # does ``before_weights`` need ``batch.guidance``?
    # which rows guidance draws: "clean" (the clean guide set) or "explicit" (the validation
    # period's rated rows, high and low: ``guidance.guide_dataset``)
    guide_rows: ClassVar[str] = "clean"
    needs_user_rewards: ClassVar[bool] = False  # does ``after_evaluation`` need per-user rewards?
    needs_reward: ClassVar[bool] = (
        False  # does ``after_evaluation`` read ``reward_metric`` from the result?
    )
    # does the mode want sum_j grad log pi(a_j | s_j) of each batch (``record_score``, from the
    # sampling pass itself) instead of the states and actions (``record``)?
    records_score: ClassVar[bool] = False
    reads_ratings: ClassVar[bool] = (
        False  # does ``before_weights`` read ``batch.true_positive``? (diagnostics only)
    )
    # does the mode learn from the clean validation rows themselves (batches of them, or each
    # user's reward on them)? Then those rows must not select the epoch: ``schemes.protocol``
    # refuses it with one validation set (``clean_valid_guide_ratio`` 0)
    learns_from_validation_rows: ClassVar[bool] = False
    single_process_reason: ClassVar[str | None] = (
        None  # why the mode cannot run under DDP, if it cannot
    )

    def __init__(self, controller: ControllerHandle, options: dict[str, Any]) -> None:
        self.controller = controller
        self.options = options

    def setup(self, train_dataset: Any, held_out: Any = None) -> None:
        """Called once before training with RecBole's training dataset and every validation row,
        clean or not (``TrainingData.valid_rows``; ``None`` where the data has no bundle)."""

    def augment(self, interaction: Any) -> Any:
        """The training batch the step uses: ``interaction`` itself unless the mode adds rows."""
        return interaction

    def on_build(self) -> None:
        """The controller's ``policy`` and ``optimizer`` have just been built."""

    def before_weights(self, state: torch.Tensor, batch: Batch) -> None:
        """React to a batch before its weights are drawn."""

    def record(self, state: torch.Tensor, action: torch.Tensor, batch: Batch) -> None:
        """The controller drew ``action`` for each row of ``state``."""

    def record_score(self, grads: list[torch.Tensor], rows: int) -> None:
        """Where ``records_score``: sum over the batch's ``rows`` of grad log pi(a_j | s_j), one
        tensor per policy parameter (``Policy.sample_scored``), in place of ``record``."""

    def real_weights(self, weights: torch.Tensor) -> torch.Tensor:
        """The weights the real training step uses, from those the controller drew."""
        return weights

    def observe_user_rewards(self, rewards: torch.Tensor) -> None:
        """Each user's clean-validation reward ([num_users], NaN where none), just before
        ``after_evaluation``; only called where ``needs_user_rewards``."""

    def after_evaluation(self, valid_result: dict[str, float], epoch: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (after ``on_build`` where the state has a
        policy)."""


CREDITS: Registry[type[Credit]] = Registry("controller_credit", experimental=("meta", "user"))


def register_credit(name: str):
    """Class decorator: make a mode selectable as ``controller_credit: <name>``."""
    return CREDITS.register_named(name)
