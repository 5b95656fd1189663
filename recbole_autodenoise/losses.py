"""Per-sample losses from RecBole's own models, without copying their ``calculate_loss``.

RecBole models reduce their loss inside a loss module (``BPRLoss`` or ``nn.CrossEntropyLoss``)
stored as an attribute. For one call of ``calculate_loss`` we swap that module for an unreduced
twin that records the per-sample vector and returns its mean, so the model computes exactly what it
always does. Anything the model adds to the reduced loss (regularisers) is kept, unweighted. The
controller's state (e_u, e_v) is read the same way: the sequence representation from the model's
``forward``, the embeddings from its embedding tables.
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


def per_sample_bpr(module: BPRLoss, pos_score: torch.Tensor, neg_score: torch.Tensor) -> torch.Tensor:
    return -torch.log(module.gamma + torch.sigmoid(pos_score - neg_score))


def per_sample_cross_entropy(module: nn.CrossEntropyLoss, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(
        logits, target, weight=module.weight, ignore_index=module.ignore_index,
        reduction="none", label_smoothing=module.label_smoothing,
    )


PER_SAMPLE = {BPRLoss: per_sample_bpr, nn.CrossEntropyLoss: per_sample_cross_entropy}


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
        found = [(name, module) for name, module in model.named_children() if type(module) in PER_SAMPLE]
        if len(found) != 1:
            raise ValueError(
                f"model {type(model).__name__} is not supported for per-sample weighting: it needs exactly one "
                f"BPRLoss or nn.CrossEntropyLoss attribute (found {[name for name, _ in found] or 'none'}). "
                "RecBole's BPR, GRU4Rec and SASRec (loss_type CE or BPR) are supported."
            )
        self.attribute = found[0][0]
        self.sequential = model.type == ModelType.SEQUENTIAL

    def check_representations(self) -> None:
        """Controller schemes need e_u and e_v: fail early where the model cannot give them."""
        needed = ["item_embedding"] if self.sequential else ["user_embedding", "item_embedding"]
        missing = [name for name in needed if not isinstance(getattr(self.model, name, None), nn.Embedding)]
        if missing:
            raise ValueError(
                f"model {type(self.model).__name__} has no {missing} embedding table; "
                "the AutoDenoise controller needs user/sequence and item representations"
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

    def __call__(self, interaction, with_representations: bool = False) -> SampleLosses:
        capture = with_representations and self.sequential
        with self._recording(capture) as (recorder, outputs):
            total = self.model.calculate_loss(interaction)
        if isinstance(total, tuple):
            total = sum(total)
        if len(recorder.calls) != 1:
            raise ValueError(
                f"model {type(self.model).__name__} called its loss {len(recorder.calls)} times per batch; "
                "per-sample weighting needs exactly one call"
            )
        losses = recorder.calls[0]
        extra = None if total is recorder.means[0] else total - recorder.means[0]
        result = SampleLosses(losses, extra)
        if with_representations:
            with torch.no_grad():
                item_repr = self.model.item_embedding(interaction[self.model.ITEM_ID])
                if self.sequential:
                    user_repr = outputs[0]
                else:
                    user_repr = self.model.user_embedding(interaction[self.model.USER_ID])
            result.user_repr, result.item_repr = user_repr.detach(), item_repr.detach()
        return result
