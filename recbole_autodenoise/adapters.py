"""Which RecBole models can be weighted per sample, and how: adapters for the ones our generic
loss-module swap (``losses.PerSampleLoss``) cannot read, refusals with their reason, and the
``register_...`` functions for users' own models.

A **loss adapter** ``fn(model, interaction) -> (losses, extra)`` returns the per-sample losses
(shape [B], one per training row, attached to the graph, whose mean is the model's loss term to
be weighted) and ``extra``, what the model adds to that mean unweighted (a regulariser), or None.
A **representation function** ``fn(model, interaction) -> (e_u, e_v)`` returns the controller's
state parts ([B, d_u] and [B, d_v]), called under ``torch.no_grad``. Both are looked up along the
model class's MRO, so a subclass of a registered model inherits its entry.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

LossAdapter = Callable[[nn.Module, object], Tuple[torch.Tensor, Optional[torch.Tensor]]]
RepresentationFn = Callable[[nn.Module, object], Tuple[torch.Tensor, torch.Tensor]]

LOSS_ADAPTERS: dict[type, LossAdapter] = {}
REPRESENTATIONS: dict[type, RepresentationFn] = {}

# RecBole trains these on user-level batches (its ``_get_AE_dataloader``): one row is a user and the
# loss is over the user's whole item vector, so there is no training interaction to weight.
USER_LEVEL_MODELS = frozenset(
    {"MultiDAE", "MultiVAE", "MacridVAE", "CDAE", "ENMF", "RaCT", "RecVAE", "DiffRec", "LDiffRec"}
)
REFUSED = {
    "SimpleX": "its cosine contrastive loss is computed inline (no loss module) "
    "over one positive and "
    "neg_seq_len negatives per row; register_loss_adapter(SimpleX, fn) can add it",
}


def register_loss_adapter(model_class: type, adapter: LossAdapter) -> LossAdapter:
    """Per-sample losses for ``model_class`` (and its subclasses): ``adapter(model, interaction)``
    returns (losses [B] attached to the graph, extra or None) with ``losses.mean() + extra`` equal
    to the model's training loss."""
    _check_class(model_class)
    LOSS_ADAPTERS[model_class] = adapter
    return adapter


def register_representations(model_class: type, fn: RepresentationFn) -> RepresentationFn:
    """The AutoDenoise controller's e_u and e_v for ``model_class``: ``fn(model, interaction)``
    returns ([B, d_u], [B, d_v]); called under ``torch.no_grad``."""
    _check_class(model_class)
    REPRESENTATIONS[model_class] = fn
    return fn


def _check_class(model_class: object) -> None:
    if not isinstance(model_class, type) or not issubclass(model_class, nn.Module):
        raise ValueError(
            f"model_class = {model_class!r} is invalid: expected a torch.nn.Module subclass"
        )


def lookup(table: dict[type, Callable], model_class: type) -> Callable | None:
    for cls in model_class.__mro__:
        if cls in table:
            return table[cls]
    return None


def refusal(model_class: type) -> str | None:
    """Why ``model_class`` cannot be weighted per sample, or None (registered adapters win)."""
    if lookup(LOSS_ADAPTERS, model_class) is not None:
        return None
    names = [
        cls.__name__ for cls in model_class.__mro__
    ]  # a subclass of a refused model is refused
    if USER_LEVEL_MODELS.intersection(names):
        return (
            "RecBole trains it on user-level batches "
            "(one row per user, the loss over the user's whole "
            "item vector), so its loss is not a mean over training interactions"
        )
    return next((REFUSED[name] for name in names if name in REFUSED), None)


def check_weightable(config) -> None:
    """A ``denoise_scheme`` other than ``default`` weights training samples: refuse, before any data
    loads, a model whose class is refused per-sample weighting (``refusal``). The model's loss
    module is checked once the model is built (``losses.PerSampleLoss``)."""
    model_class = getattr(config, "model_class", None)
    scheme = config["denoise_scheme"]
    if model_class is None or scheme == "default":
        return
    register_recbole_models()
    reason = refusal(model_class)
    if reason is not None:
        raise ValueError(
            f"config key 'denoise_scheme' = {scheme!r} weights training samples, and model "
            f"{model_class.__name__} is not supported for per-sample weighting: {reason}; "
            "allowed with it: 'default'"
        )


# --- recording a functional loss -------------------------------------------------------------


class _RecordFunction(TorchFunctionMode):
    def __init__(self, function: Callable) -> None:
        super().__init__()
        self.function = function
        self.outputs: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        if func is self.function:
            self.outputs.append(output)
        return output


@contextmanager
def recording(function: Callable) -> Iterator[list[torch.Tensor]]:
    """Record the outputs of every call of a ``torch.nn.functional`` function in the block (the loss
    a model builds inside ``calculate_loss``, where no module attribute can be swapped)."""
    mode = _RecordFunction(function)
    with mode:
        yield mode.outputs


# --- RecBole models the module swap cannot read ----------------------------------------------


def bert4rec_losses(model: nn.Module, interaction) -> tuple[torch.Tensor, None]:
    """BERT4Rec (``loss_type: CE``): its loss is the mean cross-entropy over the batch's masked
    history positions (``MASK_INDEX > 0``, RecBole's own mask). The weighted sample is the training
    row (sequence): its loss is the sum of its positions' cross-entropies scaled by
    B / (masked positions in the batch), so the rows' mean is exactly the model's loss; a row with
    no masked position has loss 0."""
    if model.loss_type != "CE":
        raise ValueError(
            f"BERT4Rec with loss_type={model.loss_type!r} computes its loss inline; "
            "per-sample weighting "
            "supports BERT4Rec with loss_type: CE"
        )
    with recording(F.cross_entropy) as outputs:
        model.calculate_loss(interaction)  # its value is losses.mean() below, from the same graph
    if len(outputs) != 1 or outputs[0].dim() != 1:
        raise ValueError(
            f"BERT4Rec computed {len(outputs)} cross-entropies per batch; expected one unreduced"
        )
    targets = (interaction[model.MASK_INDEX] > 0).to(outputs[0].dtype)
    per_row = (outputs[0].view_as(targets) * targets).sum(1)
    return per_row * (per_row.numel() / targets.sum()), None


def bert4rec_representations(model: nn.Module, interaction) -> tuple[torch.Tensor, torch.Tensor]:
    """e_u: BERT4Rec's output at the last history position of the (masked) training sequence;
    e_v: the row's target item embedding."""
    output = model.forward(interaction[model.MASK_ITEM_SEQ])
    user = model.gather_indexes(output, interaction[model.ITEM_SEQ_LEN] - 1)
    return user, model.item_embedding(interaction[model.ITEM_ID])


def fpmc_representations(model: nn.Module, interaction) -> tuple[torch.Tensor, torch.Tensor]:
    """FPMC scores UI[u]·IU[v] + LI[last]·IL[v]: e_u = [UI[u], LI[last]], e_v = [IU[v], IL[v]]
    (the user's and the item's side of that score)."""
    last = (
        interaction[model.ITEM_SEQ]
        .gather(1, (interaction[model.ITEM_SEQ_LEN] - 1).unsqueeze(1))
        .squeeze(1)
    )
    item = interaction[model.ITEM_ID]
    user = torch.cat([model.UI_emb(interaction[model.USER_ID]), model.LI_emb(last)], dim=1)
    return user, torch.cat([model.IU_emb(item), model.IL_emb(item)], dim=1)


def neumf_representations(model: nn.Module, interaction) -> tuple[torch.Tensor, torch.Tensor]:
    """NeuMF: its GMF and MLP user (item) embeddings, concatenated."""
    user, item = interaction[model.USER_ID], interaction[model.ITEM_ID]
    return (
        torch.cat([model.user_mf_embedding(user), model.user_mlp_embedding(user)], dim=1),
        torch.cat([model.item_mf_embedding(item), model.item_mlp_embedding(item)], dim=1),
    )


def dmf_representations(model: nn.Module, interaction) -> tuple[torch.Tensor, torch.Tensor]:
    """DMF scores the dot product of its user tower and item tower outputs: e_u and e_v are those
    outputs, read with forward hooks during the model's own ``forward``."""
    towers: dict[str, torch.Tensor] = {}
    hooks = [
        model.user_fc_layers.register_forward_hook(
            lambda _m, _i, out: towers.__setitem__("user", out)
        ),
        model.item_fc_layers.register_forward_hook(
            lambda _m, _i, out: towers.__setitem__("item", out)
        ),
    ]
    try:
        model.forward(interaction[model.USER_ID], interaction[model.ITEM_ID])
    finally:
        for hook in hooks:
            hook.remove()
    return towers["user"], towers["item"]


def register_recbole_models() -> None:
    """Adapters and representations for RecBole's own models (idempotent)."""
    from recbole.model.general_recommender import DMF, NeuMF
    from recbole.model.sequential_recommender import BERT4Rec, FPMC

    register_loss_adapter(BERT4Rec, bert4rec_losses)
    register_representations(BERT4Rec, bert4rec_representations)
    register_representations(FPMC, fpmc_representations)
    register_representations(NeuMF, neumf_representations)
    register_representations(DMF, dmf_representations)
