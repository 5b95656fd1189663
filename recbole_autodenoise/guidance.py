"""Per-sample credit from the clean validation set (Ren et al. 2018, "Learning to Reweight").

The clean set says, for every training sample i, whether a step on it helps: the alignment
``a_i = <grad_theta l_i(theta), grad_theta L_clean(theta)>`` is (up to -alpha / B) the derivative of
the clean loss after one SGD step with respect to the sample's weight. ``per_sample_alignment``
computes all a_i of a batch exactly with two extra backward passes and no per-sample gradients;
``CleanBatches`` feeds it with training-format batches of clean interactions; ``Guidance`` is what
a scheme sees of them for one batch (the experimental meta credit also differentiates the clean
loss after a virtual step through it: ``experimental.meta_step``).

Train mode, not eval mode: the model stays in the mode the trainer put it in. The training losses
are those of the real step's own forward pass (the trainer hands them over), so a_i describes the
gradient with the dropout mask the step really uses; the clean pass draws its own mask, a
stochastic estimate of the clean gradient under the same regularisation the training sees. No
forward pass is repeated, so there is no pair of masks to keep consistent.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from recbole.data.interaction import Interaction
from recbole.model.loss import BPRLoss
from recbole.utils import InputType
from torch import nn

from recbole_autodenoise.losses import PerSampleLoss


class NoFreeItem(ValueError):
    """``redraw_avoiding`` gave up: ``users`` (at most five) kept drawing items they have."""

    def __init__(self, users: list[int]) -> None:
        super().__init__(f"no free item for user(s) {users}")
        self.users = users


def redraw_avoiding(
    users: torch.Tensor,
    draw,
    known: torch.Tensor | None,
    num_items: int,
    own: torch.Tensor | None = None,
    max_redraws: int = 1000,
) -> torch.Tensor:
    """``draw(n)`` (n item ids, on ``users``' device) per row, redrawn, round by round, for the
    rows whose item is the row's ``own`` item or whose ``user * num_items + item`` is in ``known``
    (sorted keys; None or empty: nothing known). Raises ``NoFreeItem`` after ``max_redraws``
    rounds. The CleanBatches' negatives and stray clicks and the canaries' items all come from
    here."""
    items = draw(len(users))
    for _ in range(max_redraws):
        hit = items == own if own is not None else torch.zeros_like(items, dtype=torch.bool)
        if known is not None and len(known):
            keys = users.long() * num_items + items
            position = torch.searchsorted(known, keys).clamp_max(len(known) - 1)
            hit |= known[position] == keys
        rows = hit.nonzero().squeeze(1)
        if len(rows) == 0:
            return items
        items[rows] = draw(len(rows)).to(items.dtype)
    raise NoFreeItem(users[rows].unique().tolist()[:5])


def guide_dataset(data: Any, valid_data: Any, rows: str = "clean") -> Any:
    """The clean rows that guide training: ``data.guide_rows`` (``data``: the training side of
    ``prepare_data``'s bundle, ``data.bundle.TrainingData``), the guide part of a guide/select
    split of the clean validation set or the whole clean validation set; without a bundle
    (``data`` None: loaders built otherwise), the validation loader's rows. ``rows="explicit"``:
    the validation period's rated rows, high and low (``data.explicit_rows``)."""
    if rows == "explicit":
        if data is None:
            raise ValueError(
                "controller_credit 'explicit' needs the validation period's low-rated "
                "rows: build the data with recbole_autodenoise.create_dataset and "
                "prepare_data (or data_preparation)"
            )
        return data.explicit_rows
    if data is not None:
        return data.guide_rows
    if valid_data is None:
        raise ValueError(
            "this denoise_scheme / controller_credit learns from the clean validation set: "
            "fit() needs valid_data (or the data bundle: AutoDenoiseTrainer.set_data)"
        )
    return valid_data._dataset


@contextmanager
def double_backward_safe(model: nn.Module) -> Iterator[None]:
    """cuDNN's RNN kernels have no double backward: run RNN models on CUDA without cuDNN.

    The kernel is chosen in the forward pass, so the training forward whose graph is
    differentiated twice must run inside this context too (the trainer does that)."""
    uses_cudnn_rnn = torch.backends.cudnn.enabled and any(
        isinstance(module, nn.RNNBase) and any(p.is_cuda for p in module.parameters())
        for module in model.modules()
    )
    if not uses_cudnn_rnn:
        yield
        return
    torch.backends.cudnn.enabled = False
    try:
        yield
    finally:
        torch.backends.cudnn.enabled = True


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(name, param) for name, param in model.named_parameters() if param.requires_grad]


def clean_loss(model: nn.Module, interaction: Interaction) -> torch.Tensor:
    """The model's own (mean) loss on a clean batch, regularisers included."""
    loss = model.calculate_loss(interaction)
    return sum(loss) if isinstance(loss, tuple) else loss


def pointwise_label(model: nn.Module) -> str | None:
    """The label field of a model that trains pointwise on labelled rows (label 1 positives and
    label 0 sampled negatives: NeuMF, DMF, LightGCNPointwise, ...); ``None`` for BPR models and for
    pointwise models whose loss is cross-entropy over all items (SoftmaxMF). Raises for a pointwise
    model that names no label field (``LABEL``)."""
    if getattr(model, "input_type", None) != InputType.POINTWISE:
        return None
    if any(isinstance(module, nn.CrossEntropyLoss) for module in model.children()):
        return None
    label = getattr(model, "LABEL", None)
    if not isinstance(label, str):
        raise ValueError(
            f"model {type(model).__name__} trains pointwise but names no label field "
            "(model.LABEL); clean guiding batches (l2rw, controller_credit: meta or explicit, "
            "denoise_diagnostics) label their rows through it"
        )
    return label


def check_clean_batches_fit(model: nn.Module) -> str | None:
    """Clean batches are held-out positives in the training format of BPR, cross-entropy and
    labelled pointwise models: refuse the models whose training rows need what they cannot
    carry; return the label field of a labelled pointwise model (``pointwise_label``)."""
    label = pointwise_label(model)
    if hasattr(model, "MASK_ITEM_SEQ"):
        raise ValueError(
            f"model {type(model).__name__} trains on masked sequences built by a batch transform; "
            "clean guiding batches "
            "(l2rw, controller_credit: meta, denoise_diagnostics) carry no masked positions"
        )
    return label


def negatives_per_row(config: Any) -> int:
    """Sampled negatives per positive in the training rows (``train_neg_sample_args``'
    ``sample_num``; 0 where training samples none)."""
    neg = config["train_neg_sample_args"] or {}
    if neg.get("distribution", "none") == "none":
        return 0
    return int(neg.get("sample_num", 1))


class CleanBatches:
    """Endless, seeded stream of training-format batches of clean interactions.

    Rows are drawn without replacement in a fresh random order per pass (an incomplete last batch
    of a pass is skipped); a batch holds ``min(batch_size, rows)`` rows. Models trained with a BPR
    loss get a random ``NEG_ITEM_ID`` per row, uniform over ids 1 .. item_num - 1 (0 is padding)
    except the row's own item and, given ``exclude`` (the training dataset), the user's training
    items, as RecBole's training sampler draws them; so ``model.calculate_loss`` works on the batch
    as on a training batch. Models trained pointwise on labelled rows (``pointwise_label``) get the
    clean rows labelled 1 followed by ``negatives`` copies of them labelled 0 whose item is drawn
    as the BPR negatives are, uniformly (the shape of RecBole's training rows, each positive and its
    sampled negatives; uniform whatever ``train_neg_sample_args``' distribution); ``positives``
    gives back the rows labelled 1. Sequential clean rows already carry their ``item_id_list`` and
    ``item_length``. The random state lives in ``state_dict`` so a resumed run draws the same
    batches.
    """

    MAX_REDRAWS = 1000  # rounds of redrawing the negatives that hit a user's own items

    def __init__(
        self,
        dataset: Any,
        model: nn.Module,
        batch_size: int,
        seed: int,
        device: torch.device | str,
        exclude: Any | None = None,
        negatives: int = 1,
    ) -> None:
        self.label_field = check_clean_batches_fit(model)
        self.negatives = int(negatives) if self.label_field is not None else 0
        self.device = torch.device(device)
        # the clean rows stay on the model's device: a batch is one gather there, no host copy
        self.rows = {
            field: values.to(self.device)
            for field, values in dataset.inter_feat.interaction.items()
        }
        self.num_rows = len(dataset.inter_feat)
        if self.num_rows == 0:
            raise ValueError("the clean guide set is empty")
        self.batch_size = min(int(batch_size), self.num_rows)
        self.num_items = int(dataset.item_num)
        needs_negatives = any(isinstance(module, BPRLoss) for module in model.children())
        self.neg_field: str | None = (
            getattr(model, "NEG_ITEM_ID", None) if needs_negatives else None
        )
        if needs_negatives and self.neg_field is None:
            raise ValueError(
                f"model {type(model).__name__} has a BPR loss but no NEG_ITEM_ID field name"
            )
        self.user_field: str = getattr(model, "USER_ID", "user_id")
        self.item_field: str = getattr(model, "ITEM_ID", "item_id")
        # the (user, item) pairs a negative must avoid, as sorted keys user * num_items + item
        self.known: torch.Tensor | None = None
        self.train_items: torch.Tensor | None = None  # the training rows' items (``unobserved``)
        if exclude is not None:
            train = exclude.inter_feat
            keys = train[self.user_field].long() * self.num_items + train[self.item_field].long()
            self.known = torch.unique(keys).to(self.device)
            self.train_items = train[self.item_field].long().cpu()
        self.generator = torch.Generator()
        self.generator.manual_seed(int(seed))
        self.order: torch.Tensor | None = None
        self.position = 0

    def __iter__(self) -> "CleanBatches":
        return self

    def __next__(self) -> Interaction:
        if self.order is None or self.position + self.batch_size > self.num_rows:
            self.order = torch.randperm(self.num_rows, generator=self.generator)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        index = index.to(self.device)
        batch = {field: values[index] for field, values in self.rows.items()}
        if self.neg_field is not None:
            batch[self.neg_field] = self._negatives(batch[self.user_field], batch[self.item_field])
        if self.label_field is not None:
            batch = self._labelled(batch)
        return Interaction(batch)

    def _labelled(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The rows labelled 1, then ``negatives`` copies labelled 0 with a drawn negative item."""
        rows = len(batch[self.item_field])
        labelled = dict(batch)
        if self.negatives:
            copies = {
                field: values.repeat(self.negatives, *([1] * (values.dim() - 1)))
                for field, values in batch.items()
            }
            items = copies[self.item_field]
            copies[self.item_field] = self._negatives(copies[self.user_field], items).to(
                items.dtype
            )
            labelled = {
                field: torch.cat([values, copies[field]]) for field, values in batch.items()
            }
        labels = torch.zeros(rows * (1 + self.negatives), device=self.device)
        labels[:rows] = 1.0
        labelled[self.label_field] = labels
        return labelled

    def positives(self, batch: Interaction) -> Interaction:
        """The rows of one of this stream's batches that are clean rows (labelled 1); the whole
        batch where the model's rows carry no label."""
        if self.label_field is None:
            return batch
        return batch[batch[self.label_field] > 0]

    def _negatives(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Uniform ids in 1 .. num_items - 1, redrawn where they hit the row's item or (with
        ``exclude``) one of the user's training items."""
        return self._avoiding(
            users, items, lambda n: torch.randint(1, self.num_items, (n,), generator=self.generator)
        )

    def unobserved(self, batch: Interaction, copies: int) -> Interaction:
        """``copies`` copies of ``batch`` (rows repeated in order) whose item is replaced by one the
        user never trained on: the item of a uniformly drawn training row (so drawn in proportion
        to its popularity, as a stray click on the catalogue would be), redrawn where it is the
        row's own item or one of the user's training items. Everything else, the sequential
        history and a BPR negative included, is the source row's. Draws from this stream's
        generator."""
        if self.train_items is None:
            raise ValueError(
                "unobserved items need the training dataset: build CleanBatches with exclude="
            )
        rows = {
            field: values.repeat(copies, *([1] * (values.dim() - 1)))
            for field, values in batch.interaction.items()
        }
        users, items = rows[self.user_field], rows[self.item_field]

        def draw(n: int) -> torch.Tensor:
            return self.train_items[
                torch.randint(len(self.train_items), (n,), generator=self.generator)
            ]

        rows[self.item_field] = self._avoiding(users, items, draw).to(items.dtype)
        return Interaction(rows)

    def _avoiding(self, users: torch.Tensor, items: torch.Tensor, draw) -> torch.Tensor:
        """``draw(n)`` (n item ids, on the CPU) per row, redrawn where it hits the row's item or
        (with ``exclude``) one of the user's training items."""
        try:
            return redraw_avoiding(
                users,
                lambda n: draw(n).to(self.device),
                self.known,
                self.num_items,
                own=items,
                max_redraws=self.MAX_REDRAWS,
            )
        except NoFreeItem as stuck:
            raise ValueError(
                f"could not draw a negative item for user(s) {stuck.users} in "
                f"{self.MAX_REDRAWS} rounds: they have (almost) every item"
            ) from None

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "order": None if self.order is None else self.order.clone(),
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())
        self.order = None if state["order"] is None else state["order"].cpu()
        self.position = int(state["position"])


def per_sample_alignment(
    model: nn.Module,
    sample_loss_fn: PerSampleLoss,
    train_interaction: Interaction | None,
    clean_interaction: Interaction,
    train_losses: torch.Tensor | None = None,
) -> torch.Tensor:
    """a_i = <grad_theta l_i, grad_theta L_clean> over all trainable parameters, shape [B],
    detached.

    With eps = 0 (requiring grad), G(eps) = grad_theta sum_i eps_i l_i is linear in eps, and
    d/d eps_i <G(eps), g_v> = <grad l_i, g_v>: one backward with ``create_graph`` and one through
    it, never B gradients. ``train_losses`` (attached to the graph, e.g. from the real step's own
    forward pass) replaces the forward on ``train_interaction``; its graph is kept for the caller.
    """
    params = [param for _, param in trainable_parameters(model)]
    with double_backward_safe(model):
        clean_grads = torch.autograd.grad(
            clean_loss(model, clean_interaction), params, allow_unused=True
        )
        if train_losses is None:
            train_losses = sample_loss_fn(train_interaction).losses
        eps = torch.zeros_like(train_losses, requires_grad=True)
        grads = torch.autograd.grad(
            (eps * train_losses).sum(), params, create_graph=True, allow_unused=True
        )
        dot = sum(
            (grad * clean.detach()).sum()
            for grad, clean in zip(grads, clean_grads)
            if grad is not None and clean is not None
        )
        if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
            return torch.zeros_like(train_losses).detach()
        (alignment,) = torch.autograd.grad(dot, eps, retain_graph=True, allow_unused=True)
    return torch.zeros_like(eps).detach() if alignment is None else alignment.detach()


class Guidance:
    """The clean set's view of one training batch, handed to schemes with ``needs_guidance``.

    One clean batch is drawn lazily (batches that never ask draw none) and shared by every user
    of the batch's guidance; the alignment is computed once.
    """

    def __init__(
        self,
        model: nn.Module,
        sample_loss: PerSampleLoss,
        clean_batches: CleanBatches,
        learning_rate: float,
        interaction: Interaction,
        train_losses: torch.Tensor,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer  # the recommender's real optimiser (for virtual steps)
        self.sample_loss = sample_loss
        self.clean_batches = clean_batches
        self.learning_rate = learning_rate
        self.interaction = interaction
        self.train_losses = train_losses
        self._clean: Interaction | None = None
        self._alignment: torch.Tensor | None = None

    def clean_batch(self) -> Interaction:
        if self._clean is None:
            self._clean = next(self.clean_batches)
        return self._clean

    def clean_positives(self) -> Interaction:
        """The clean rows of ``clean_batch`` (labelled batches: without the sampled negatives)."""
        return self.clean_batches.positives(self.clean_batch())

    def alignment(self) -> torch.Tensor:
        """a_i for every sample of the batch, shape [B], detached."""
        if self._alignment is None:
            self._alignment = per_sample_alignment(
                self.model,
                self.sample_loss,
                self.interaction,
                self.clean_batch(),
                train_losses=self.train_losses,
            )
        return self._alignment
