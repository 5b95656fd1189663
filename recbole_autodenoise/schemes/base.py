"""The interface every weighting scheme implements, and the registry that finds them by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from recbole_autodenoise import options
from recbole_autodenoise.options import Option, Rule
from recbole_autodenoise.registry import Registry

if TYPE_CHECKING:
    from recbole_autodenoise.guidance import Guidance


@dataclass
class Batch:
    """What a scheme may look at to weight one training batch (all detached from the model)."""

    losses: torch.Tensor  # per-sample training loss, shape [B]
    item_ids: torch.Tensor  # target item of each sample, shape [B]
    epoch: int  # current epoch, 0-based
    epoch_fraction: float  # epoch / config['epochs'], the controller's epoch feature
    user_repr: torch.Tensor | None = None  # e_u: user embedding or sequence representation
    item_repr: torch.Tensor | None = None  # e_v: target item embedding
    guidance: Guidance | None = (
        None  # the clean set's view of this batch, for schemes with needs_guidance
    )
    user_ids: torch.Tensor | None = None  # user of each sample, shape [B]
    # 1.0 where the sample is a true positive (rating >= clean_rating_threshold, not injected), else
    # 0.0, shape [B]; filled only for schemes with ``reads_ratings`` (diagnostics, never methods)
    true_positive: torch.Tensor | None = None
    # stable training-row id (``rows.ROW_FIELD``), where the scheme's setup added it, shape [B]
    row_ids: torch.Tensor | None = None
    # 1.0 on the rows the scheme added to the batch itself (``WeightingScheme.augment``,
    # ``rows.CANARY_FIELD``), else 0.0, shape [B]
    canary: torch.Tensor | None = None
    # the label of each sample (1.0 observed, 0.0 sampled negative) where the model trains
    # pointwise on labelled rows (RecBole's LABEL_FIELD, e.g. NeuMF with one sampled negative per
    # positive), shape [B]; None where every sample is a positive (BPR, cross-entropy)
    labels: torch.Tensor | None = None


class WeightingScheme(options.Owner):
    """Gives every training sample a weight; the loss is ``mean(w * loss)``.

    Subclasses declare the keys they read (``OPTIONS``) and the rules between keys that hold where
    they run (``RULES``); ``__init__`` checks them all (``check_config``) before a subclass reads
    ``config[key]``. A scheme may look at the training set once in ``setup``, returns detached
    weights in ``weights`` (``None`` means "unweighted": the model's own loss is used untouched),
    may learn from the clean validation result in ``after_evaluation``, and exposes everything a
    resumed run needs in ``state_dict``.
    With ``needs_guidance`` the trainer fills ``Batch.guidance`` (per-sample alignment with the
    clean gradient, virtual meta steps; ``recbole_autodenoise.guidance``).
    """

    name: ClassVar[str] = ""
    # the options this class reads (its bases' come on top; ``declared_options``): a user who sets
    # another scheme's key gets a warning that it is ignored
    OPTIONS: ClassVar[tuple[Option, ...]] = ()
    RULES: ClassVar[tuple[Rule, ...]] = ()  # rules between keys that hold where the scheme runs
    needs_representations: ClassVar[bool] = False  # does ``weights`` need e_u and e_v?
    learns_from_validation: ClassVar[bool] = False
    # does ``weights`` need ``batch.guidance`` (clean batches, alignments, meta steps)? A class
    # default that an instance may override where its config decides (controller_credit)
    needs_guidance: bool = False
    # the rows those clean batches come from: "clean" (the clean guide set) or "explicit" (the
    # validation period's rated rows, high and low); see ``guidance.guide_dataset``
    guide_rows: str = "clean"
    # does ``after_evaluation`` read the reward (``reward_metric``) from the clean validation
    # result?
    needs_reward: bool = False
    # does ``after_evaluation`` need each user's clean-validation reward (``observe_user_rewards``)?
    needs_user_rewards: bool = False
    # does ``weights`` read ``batch.true_positive`` (the ratings)? Only diagnostics do (oracle)
    reads_ratings: bool = False
    # training batches per epoch, set by the trainer before ``setup``
    batches_per_epoch: int | None = None

    def __init__(self, config: Any, device: torch.device) -> None:
        type(self).check_config(config)
        self.config = config
        self.device = device

    @classmethod
    def check_config(cls, config: Any) -> None:
        """Every declared option's value, then the rules of this class and its bases."""
        options.check(config, cls.declared_options(), options.along_mro(cls, "RULES"))

    @classmethod
    def rating_readers(cls, config: Any) -> list[tuple[str, Any]]:
        """The (key, value) settings with which this scheme, as ``config`` sets it, reads the
        training rows' ratings (``reads_ratings``: diagnostics); from the config alone, so that
        ``schemes.protocol`` can check them before any data loads."""
        return [("denoise_scheme", cls.name)] if cls.reads_ratings else []

    @classmethod
    def validation_learners(cls, config: Any) -> list[tuple[str, Any]]:
        """The (key, value) settings with which this scheme, as ``config`` sets it, learns from the
        clean validation rows themselves (batches of them, or each user's reward on them), rows
        that must not be those that select the epoch (``schemes.protocol``)."""
        return [("denoise_scheme", cls.name)] if cls.learns_from_validation else []

    @classmethod
    def guidance_users(cls, config: Any) -> list[tuple[str, Any]]:
        """The (key, value) settings with which this scheme, as ``config`` sets it, draws clean
        guiding batches (``needs_guidance``); from the config alone, so that
        ``guidance.check_guidance_fits`` can check them before any data loads."""
        return [("denoise_scheme", cls.name)] if cls.needs_guidance else []

    @classmethod
    def read_keys(cls) -> frozenset[str]:
        """The names of ``declared_options``."""
        return frozenset(option.name for option in cls.declared_options())

    def setup(self, train_dataset: Any, held_out: Any = None) -> None:
        """Called once before training with RecBole's training dataset and every validation row,
        clean or not (``TrainingData.valid_rows``; ``None`` where the data has no bundle)."""

    def augment(self, interaction: Any) -> Any:
        """The training batch the step uses: ``interaction`` itself unless the scheme adds rows of
        its own, flagged (``rows.CANARY_FIELD``) so that no group of the weight study counts
        them."""
        return interaction

    def weights(self, batch: Batch) -> torch.Tensor | None:
        raise NotImplementedError

    def validation_weights(
        self, losses: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Weights of validation samples for ``valid_selection: loss_scheme`` (the validation loss
        weighted as this scheme weights a training batch now, without advancing its state);
        ``None``: the plain mean."""
        return None

    def observe_user_rewards(self, rewards: torch.Tensor) -> None:
        """Each user's clean-validation AUC ([num_users], NaN where none), just before
        ``after_evaluation``; only called where ``needs_user_rewards``."""

    def after_evaluation(self, valid_result: dict[str, float], epoch: int) -> dict[str, float]:
        """Called after each validation; returns values to log (empty when nothing is learned)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


def mean_one(weights: torch.Tensor) -> torch.Tensor:
    """``weights * B / sum(weights)``: the batch's weights rescaled to mean 1, differentiable;
    all ones where the weights sum to 0 (no host sync). Removes the one direction in which a
    weighting can change the step size instead of the mix of samples."""
    total = weights.sum()
    scale = weights.numel() / torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, weights * scale, torch.ones_like(weights))


def effective_fraction(weights: torch.Tensor) -> torch.Tensor:
    """Kish's effective sample size over the batch size, (sum w)^2 / (B sum w^2), in (0, 1]:
    1 for uniform weights, 1 / B when one sample carries all the weight (1 for all zeros)."""
    weights = weights.detach().double()
    squares = (weights * weights).sum()
    safe = torch.where(squares > 0, squares, torch.ones_like(squares))
    return torch.where(
        squares > 0, weights.sum() ** 2 / (weights.numel() * safe), torch.ones_like(squares)
    )


SCHEMES: Registry[type[WeightingScheme]] = Registry("denoise_scheme", experimental=("l2rw",))

OPTIONS = options.declare(
    Option(
        "denoise_scheme",
        "str",
        "default",
        "default | heuristic | adt_tl | adt_rl | dcf | udt | autodenoise_h | autodenoise_s | "
        "oracle (diagnostic: reads the ratings)",
        registry=SCHEMES,
        lists_unknown=True,
    ),
)


def ignored_keys(scheme: str, user_keys: set[str]) -> list[str]:
    """The keys the user set that some scheme reads but ``scheme`` does not."""
    read_by_any = frozenset().union(*(SCHEMES.get(name).read_keys() for name in SCHEMES.names()))
    return sorted((user_keys & read_by_any) - SCHEMES.get(scheme).read_keys())


def register_scheme(name: str):
    """Class decorator: make a scheme selectable as ``denoise_scheme: <name>``."""
    return SCHEMES.register_named(name)
