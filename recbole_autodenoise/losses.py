"""Per-sample losses from RecBole's own models, without copying their ``calculate_loss``.

RecBole models reduce their loss inside a loss module (``BPRLoss``, ``nn.CrossEntropyLoss``,
``nn.BCEWithLogitsLoss`` or ``nn.BCELoss``) stored as an attribute. For one call of
``calculate_loss`` we swap that module for an unreduced twin that records the per-sample vector
and returns its mean, so the model computes exactly what it always does. Anything the model adds
to the reduced loss (regularisers, e.g. LightGCN's and NGCF's ``EmbLoss`` term) is kept,
unweighted. Models the swap cannot read have an adapter in ``adapters.py`` (BERT4Rec) or are
refused with the reason (user-level batches, inline losses); ``adapters.register_loss_adapter``
adds users' own. The controller's state (e_u, e_v) is read the same way: the sequence
representation from the model's ``forward``, the embeddings from its embedding tables, or the
model's registered representation function (``adapters.register_representations``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from recbole.model.loss import BPRLoss
from recbole.utils import ModelType
from torch import nn
from torch.nn import functional as F

from recbole_autodenoise import adapters


def per_sample_bpr(
    module: BPRLoss, pos_score: torch.Tensor, neg_score: torch.Tensor
) -> torch.Tensor:
    return -torch.log(module.gamma + torch.sigmoid(pos_score - neg_score))


def per_sample_cross_entropy(
    module: nn.CrossEntropyLoss, logits: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    return F.cross_entropy(
        logits,
        target,
        weight=module.weight,
        ignore_index=module.ignore_index,
        reduction="none",
        label_smoothing=module.label_smoothing,
    )


def per_sample_bce_with_logits(
    module: nn.BCEWithLogitsLoss, logits: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(
        logits, target, weight=module.weight, pos_weight=module.pos_weight, reduction="none"
    )


def per_sample_bce(
    module: nn.BCELoss, probability: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    return F.binary_cross_entropy(probability, target, weight=module.weight, reduction="none")


PER_SAMPLE = {
    BPRLoss: per_sample_bpr,
    nn.CrossEntropyLoss: per_sample_cross_entropy,
    nn.BCEWithLogitsLoss: per_sample_bce_with_logits,
    nn.BCELoss: per_sample_bce,
}


class _Recording(nn.Module):
    def __init__(self, original: nn.Module) -> None:
        super().__init__()
        self.original = original
        self.function = PER_SAMPLE[type(original)]
        self.calls: list[torch.Tensor] = []
        self.means: list[torch.Tensor] = []

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        losses = self.function(self.original, *args)
        self.calls.append(losses)
        self.means.append(losses.mean())
        return self.means[-1]


@dataclass
class SampleLosses:
    losses: torch.Tensor  # [B], attached to the graph
    extra: torch.Tensor | None  # what the model adds to the mean loss (regularisers), or None
    user_repr: torch.Tensor | None = None
    item_repr: torch.Tensor | None = None

    def weighted(self, weights: torch.Tensor) -> torch.Tensor:
        loss = (weights * self.losses).mean()
        return loss if self.extra is None else loss + self.extra


class PerSampleLoss:
    """Calls ``model.calculate_loss`` and returns the per-sample losses it averaged."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        model_class = type(model)
        self.sequential = model.type == ModelType.SEQUENTIAL
        adapters.register_recbole_models()
        self.adapter = adapters.lookup(adapters.LOSS_ADAPTERS, model_class)
        self.representations = adapters.lookup(adapters.REPRESENTATIONS, model_class)
        self.attribute = None if self.adapter is not None else self._loss_attribute()

    def _loss_attribute(self) -> str:
        name = type(self.model).__name__
        reason = adapters.refusal(type(self.model))
        if reason is not None:
            raise ValueError(f"model {name} is not supported for per-sample weighting: {reason}")
        found = [
            (attr, module)
            for attr, module in self.model.named_children()
            if type(module) in PER_SAMPLE
        ]
        if len(found) != 1:
            raise ValueError(
                f"model {name} is not supported for per-sample weighting: "
                "it needs exactly one BPRLoss, "
                "nn.CrossEntropyLoss, nn.BCEWithLogitsLoss or nn.BCELoss attribute (found "
                f"{[attr for attr, _ in found] or 'none'}); "
                f"register_loss_adapter({name}, fn) adds one"
            )
        attr, module = found[0]
        reduction = getattr(module, "reduction", "mean")
        if reduction != "mean":
            raise ValueError(
                f"model {name}'s loss module '{attr}' has reduction={reduction!r}; "
                "per-sample weighting "
                "needs the mean over samples (reduction='mean')"
            )
        return attr

    def check_representations(self) -> None:
        """Controller schemes need e_u and e_v: fail early where the model cannot give them."""
        if self.representations is not None:
            return
        needed = ["item_embedding"] if self.sequential else ["user_embedding", "item_embedding"]
        missing = [
            name for name in needed if not isinstance(getattr(self.model, name, None), nn.Embedding)
        ]
        if missing:
            name = type(self.model).__name__
            raise ValueError(
                f"model {name} has no {missing} embedding table; the AutoDenoise controller needs "
                "user/sequence and item representations: "
                f"register_representations({name}, fn) gives them"
            )

    @contextmanager
    def _recording(self, capture_forward: bool) -> Iterator[tuple[_Recording, list]]:
        original = getattr(self.model, self.attribute)
        recorder = _Recording(original)
        outputs: list = []
        setattr(self.model, self.attribute, recorder)
        if capture_forward:
            forward = self.model.forward

            def recording_forward(*args, **kwargs):
                output = forward(*args, **kwargs)
                outputs.append(output)
                return output

            self.model.forward = recording_forward
        try:
            yield recorder, outputs
        finally:
            setattr(self.model, self.attribute, original)
            if capture_forward:
                del self.model.forward

    def _swapped(
        self, interaction, capture_forward: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, list]:
        with self._recording(capture_forward) as (recorder, outputs):
            total = self.model.calculate_loss(interaction)
        if isinstance(total, tuple):
            total = sum(total)
        if len(recorder.calls) != 1:
            raise ValueError(
                f"model {type(self.model).__name__} called its loss {len(recorder.calls)} "
                "times per batch; "
                "per-sample weighting needs exactly one call"
            )
        extra = None if total is recorder.means[0] else total - recorder.means[0]
        return recorder.calls[0], extra, outputs

    def __call__(self, interaction, with_representations: bool = False) -> SampleLosses:
        capture = with_representations and self.sequential and self.representations is None
        if self.adapter is not None:
            losses, extra = self.adapter(self.model, interaction)
            outputs: list = []
        else:
            losses, extra, outputs = self._swapped(interaction, capture)
        result = SampleLosses(losses, extra)
        if with_representations:
            with torch.no_grad():
                user_repr, item_repr = self._representations(interaction, outputs)
            result.user_repr, result.item_repr = user_repr.detach(), item_repr.detach()
        return result

    def _representations(self, interaction, outputs: list) -> tuple[torch.Tensor, torch.Tensor]:
        if self.representations is not None:
            return self.representations(self.model, interaction)
        item_repr = self.model.item_embedding(interaction[self.model.ITEM_ID])
        if not self.sequential:
            return self.model.user_embedding(interaction[self.model.USER_ID]), item_repr
        if (
            not outputs
            or not isinstance(outputs[0], torch.Tensor)
            or outputs[0].shape[0] != len(item_repr)
            or outputs[0].dim() != 2
        ):
            name = type(self.model).__name__
            raise ValueError(
                f"model {name}'s forward does not return one sequence representation per row "
                "([B, d]); "
                f"register_representations({name}, fn) gives the controller's e_u and e_v"
            )
        return outputs[0], item_repr
