"""Unit tests for ``PerSampleLoss``: per-sample losses read from a model's own ``calculate_loss``.

Small stand-in models shaped like RecBole's BPR (a ``BPRLoss`` attribute ``loss``) and SASRec /
GRU4Rec (an ``nn.CrossEntropyLoss`` attribute ``loss_fct``), with hand-set embeddings.
"""

from __future__ import annotations

import math

import pytest
import torch
from recbole.model.loss import BPRLoss
from recbole.utils import ModelType
from torch import nn
from torch.nn import functional as F

import recbole_autodenoise  # noqa: F401  (compat patches)
from recbole_autodenoise.losses import PerSampleLoss
from tests.conftest import assert_float_close, float_tolerance

USER = torch.tensor([0, 1, 2, 0])
POS = torch.tensor([1, 2, 3, 4])
NEG = torch.tensor([2, 1, 4, 3])


class FakeBPR(nn.Module):
    """Like RecBole's BPR: dot-product scores, ``self.loss(pos, neg)``; optional regulariser."""

    type = ModelType.GENERAL
    USER_ID = "user_id"
    ITEM_ID = "item_id"
    NEG_ITEM_ID = "neg_item_id"

    def __init__(self, reg_weight: float = 0.0, calls: int = 1, as_tuple: bool = False) -> None:
        super().__init__()
        self.user_embedding = nn.Embedding(3, 2)
        self.item_embedding = nn.Embedding(5, 2)
        with torch.no_grad():
            self.user_embedding.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
            self.item_embedding.weight.copy_(
                torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, -1.0], [0.5, 0.5], [-3.0, 1.0]])
            )
        self.loss = BPRLoss()
        self.reg_weight = reg_weight
        self.calls = calls
        self.as_tuple = as_tuple

    def scores(self, interaction):
        user = self.user_embedding(interaction[self.USER_ID])
        pos = (user * self.item_embedding(interaction[self.ITEM_ID])).sum(1)
        neg = (user * self.item_embedding(interaction[self.NEG_ITEM_ID])).sum(1)
        return pos, neg

    def regulariser(self, interaction):
        return self.user_embedding(interaction[self.USER_ID]).pow(2).sum()

    def calculate_loss(self, interaction):
        pos, neg = self.scores(interaction)
        loss = self.loss(pos, neg)
        for _ in range(self.calls - 1):
            loss = loss + self.loss(pos, neg)
        if self.as_tuple:
            return loss, self.reg_weight * self.regulariser(interaction)
        if self.reg_weight:
            loss = loss + self.reg_weight * self.regulariser(interaction)
        return loss


class FakeSequential(nn.Module):
    """Like RecBole's SASRec/GRU4Rec with loss_type CE: ``forward`` gives the sequence
    representation."""

    type = ModelType.SEQUENTIAL
    USER_ID = "user_id"
    ITEM_ID = "item_id"
    ITEM_SEQ = "item_id_list"

    def __init__(self, loss_fct: nn.Module | None = None) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.item_embedding = nn.Embedding(6, 3)
        with torch.no_grad():
            self.item_embedding.weight.copy_(torch.randn(6, 3, generator=generator))
        self.loss_fct = loss_fct if loss_fct is not None else nn.CrossEntropyLoss()

    def forward(self, item_seq):
        return self.item_embedding(item_seq).mean(1) * 2.0

    def calculate_loss(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ])
        logits = seq_output @ self.item_embedding.weight.t()
        return self.loss_fct(logits, interaction[self.ITEM_ID])


def bpr_interaction():
    return {"user_id": USER, "item_id": POS, "neg_item_id": NEG}


def seq_interaction():
    return {
        "user_id": torch.tensor([0, 1, 2]),
        "item_id_list": torch.tensor([[1, 2, 0], [3, 3, 4], [5, 1, 2]]),
        "item_id": torch.tensor([3, 1, 5]),
    }


# --------------------------------------------------------------------------------------------
# BPR


def test_bpr_per_sample_exact_values():
    model = FakeBPR()
    result = PerSampleLoss(model)(bpr_interaction())
    # pos - neg, by hand from the embeddings above
    diffs = [2.0 - 0.0, -1.0 - 0.0, 1.0 - (-2.0), -3.0 - 0.5]
    expected = torch.tensor([-math.log(1e-10 + 1 / (1 + math.exp(-d))) for d in diffs])
    assert_float_close(result.losses, expected)
    assert result.losses.shape == (4,)
    assert result.extra is None
    assert result.user_repr is None and result.item_repr is None


def test_bpr_gamma_guards_log_of_zero():
    model = FakeBPR()
    with torch.no_grad():
        model.user_embedding.weight[0] = torch.tensor([10.0, 0.0])
    interaction = {
        "user_id": torch.tensor([0]),
        "item_id": torch.tensor([4]),
        "neg_item_id": torch.tensor([1]),
    }
    losses = PerSampleLoss(model)(interaction).losses  # pos - neg = -30 - 20 = -50
    expected = -math.log(1e-10 + 1 / (1 + math.exp(50.0)))  # ~ -log(1e-10) = 23.03, not 50
    assert losses.item() == pytest.approx(
        expected, rel=0, abs=float_tolerance(torch.float32, expected)
    )
    assert math.isfinite(losses.item())


def test_bpr_mean_equals_model_loss():
    model = FakeBPR()
    result = PerSampleLoss(model)(bpr_interaction())
    original = model.calculate_loss(bpr_interaction())
    torch.testing.assert_close(result.losses.mean(), original, rtol=0, atol=0)
    torch.testing.assert_close(result.weighted(torch.ones(4)), original, rtol=0, atol=0)


def test_bpr_weighted_loss_and_gradient():
    model = FakeBPR()
    weights = torch.tensor([0.0, 2.0, 1.0, 0.5])
    result = PerSampleLoss(model)(bpr_interaction())
    assert result.losses.requires_grad
    weighted = result.weighted(weights)
    torch.testing.assert_close(weighted, (weights * result.losses).mean(), rtol=0, atol=0)
    weighted.backward()
    got = model.item_embedding.weight.grad.clone()

    reference = FakeBPR()
    pos, neg = reference.scores(bpr_interaction())
    by_hand = (weights * -torch.log(1e-10 + torch.sigmoid(pos - neg))).mean()
    by_hand.backward()
    assert_float_close(got, reference.item_embedding.weight.grad)


def test_loss_module_restored_after_call():
    model = FakeBPR()
    original = model.loss
    PerSampleLoss(model)(bpr_interaction())
    assert model.loss is original
    assert type(model.loss) is BPRLoss
    # the model still computes its own (reduced) loss afterwards
    assert model.calculate_loss(bpr_interaction()).dim() == 0


def test_regulariser_kept_unweighted():
    model = FakeBPR(reg_weight=0.5)
    interaction = bpr_interaction()
    reg = model.regulariser(interaction).detach()
    result = PerSampleLoss(model)(interaction)
    assert_float_close(result.extra, 0.5 * reg)
    weights = torch.tensor([0.0, 2.0, 1.0, 0.5])
    assert_float_close(result.weighted(weights), (weights * result.losses).mean() + 0.5 * reg)
    assert_float_close(result.weighted(torch.zeros(4)), 0.5 * reg)
    assert_float_close(result.weighted(torch.ones(4)), model.calculate_loss(interaction))


def test_tuple_loss_is_summed():
    model = FakeBPR(reg_weight=0.5, as_tuple=True)
    interaction = bpr_interaction()
    reg = model.regulariser(interaction).detach()
    result = PerSampleLoss(model)(interaction)
    assert_float_close(result.extra, 0.5 * reg)


def test_loss_called_twice_raises_and_restores():
    model = FakeBPR(calls=2)
    original = model.loss
    with pytest.raises(ValueError, match="called its loss 2 times"):
        PerSampleLoss(model)(bpr_interaction())
    assert model.loss is original


def test_model_without_loss_module_raises():
    model = FakeBPR()
    del model.loss
    with pytest.raises(ValueError, match=r"found none\); register_loss_adapter\(FakeBPR, fn\)"):
        PerSampleLoss(model)


def test_model_with_two_loss_modules_raises():
    model = FakeBPR()
    model.other_loss = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="not supported") as info:
        PerSampleLoss(model)
    assert "'loss'" in str(info.value) and "'other_loss'" in str(info.value)


def test_general_representations_are_embeddings():
    model = FakeBPR()
    result = PerSampleLoss(model)(bpr_interaction(), with_representations=True)
    torch.testing.assert_close(
        result.user_repr, model.user_embedding.weight[USER].detach(), rtol=0, atol=0
    )
    torch.testing.assert_close(
        result.item_repr, model.item_embedding.weight[POS].detach(), rtol=0, atol=0
    )
    assert not result.user_repr.requires_grad and not result.item_repr.requires_grad


def test_check_representations():
    PerSampleLoss(FakeBPR()).check_representations()
    PerSampleLoss(FakeSequential()).check_representations()  # no user table needed
    model = FakeBPR()
    del model.user_embedding
    with pytest.raises(ValueError, match="user_embedding"):
        PerSampleLoss(model).check_representations()


# --------------------------------------------------------------------------------------------
# cross-entropy (SASRec / GRU4Rec)


def test_cross_entropy_per_sample():
    model = FakeSequential()
    interaction = seq_interaction()
    result = PerSampleLoss(model)(interaction)
    seq_output = model.forward(interaction["item_id_list"])
    logits = seq_output @ model.item_embedding.weight.t()
    expected = F.cross_entropy(logits, interaction["item_id"], reduction="none")
    torch.testing.assert_close(result.losses, expected, rtol=0, atol=0)
    by_hand = -torch.log_softmax(logits, dim=1)[torch.arange(3), interaction["item_id"]]
    assert_float_close(result.losses, by_hand)
    assert_float_close(result.losses.mean(), model.calculate_loss(interaction))
    assert result.extra is None
    assert type(model.loss_fct) is nn.CrossEntropyLoss


def test_cross_entropy_label_smoothing_kept():
    model = FakeSequential(nn.CrossEntropyLoss(label_smoothing=0.1))
    interaction = seq_interaction()
    result = PerSampleLoss(model)(interaction)
    assert_float_close(result.losses.mean(), model.calculate_loss(interaction))
    plain = PerSampleLoss(FakeSequential())(interaction).losses
    assert not torch.allclose(result.losses, plain)


def test_sequential_representations_from_forward():
    model = FakeSequential()
    interaction = seq_interaction()
    result = PerSampleLoss(model)(interaction, with_representations=True)
    expected_user = model.forward(interaction["item_id_list"]).detach()
    torch.testing.assert_close(result.user_repr, expected_user, rtol=0, atol=0)
    torch.testing.assert_close(
        result.item_repr, model.item_embedding(interaction["item_id"]).detach(), rtol=0, atol=0
    )
    assert not result.user_repr.requires_grad
    # the temporary forward hook is gone again
    assert "forward" not in model.__dict__


# --------------------------------------------------------------------------------------------
# pointwise BCE (NeuMF, DMF)

EPS32 = torch.finfo(torch.float32).eps


class FakePointwise(nn.Module):
    """Like RecBole's NeuMF (``nn.BCEWithLogitsLoss`` on logits) or, with ``probabilities``, a model
    with ``nn.BCELoss`` on sigmoid outputs; one score per (user, item) row."""

    type = ModelType.GENERAL
    USER_ID = "user_id"
    ITEM_ID = "item_id"
    LABEL = "label"

    def __init__(self, loss: nn.Module, probabilities: bool = False) -> None:
        super().__init__()
        self.user_embedding = nn.Embedding(3, 1)
        self.item_embedding = nn.Embedding(5, 1)
        with torch.no_grad():
            self.user_embedding.weight.copy_(torch.tensor([[1.0], [-1.0], [2.0]]))
            self.item_embedding.weight.copy_(torch.tensor([[0.0], [2.0], [1.0], [-0.5], [3.0]]))
        self.loss = loss
        self.probabilities = probabilities

    def calculate_loss(self, interaction):
        score = (
            self.user_embedding(interaction[self.USER_ID])
            * self.item_embedding(interaction[self.ITEM_ID])
        ).sum(1)
        return self.loss(
            torch.sigmoid(score) if self.probabilities else score, interaction[self.LABEL]
        )


def pointwise_interaction():
    # scores u*i: 1*2 = 2, -1*1 = -1, 2*-0.5 = -1, 1*3 = 3; labels 1, 0, 1, 0
    return {
        "user_id": torch.tensor([0, 1, 2, 0]),
        "item_id": torch.tensor([1, 2, 3, 4]),
        "label": torch.tensor([1.0, 0.0, 1.0, 0.0]),
    }


def bce_by_hand(scores, labels):
    return torch.tensor(
        [
            -math.log(1 / (1 + math.exp(-s))) if y else -math.log(1 - 1 / (1 + math.exp(-s)))
            for s, y in zip(scores, labels)
        ]
    )


@pytest.mark.parametrize(
    "loss, probabilities", [(nn.BCEWithLogitsLoss(), False), (nn.BCELoss(), True)]
)
def test_bce_per_sample_exact_values(loss, probabilities):
    model = FakePointwise(loss, probabilities)
    result = PerSampleLoss(model)(pointwise_interaction())
    expected = bce_by_hand([2.0, -1.0, -1.0, 3.0], [1, 0, 1, 0])
    torch.testing.assert_close(result.losses, expected, rtol=0, atol=EPS32 * 8)
    assert result.extra is None
    torch.testing.assert_close(
        result.weighted(torch.ones(4)),
        model.calculate_loss(pointwise_interaction()),
        rtol=0,
        atol=EPS32 * 8,
    )
    assert model.loss is loss


def test_bce_pos_weight_kept():
    model = FakePointwise(nn.BCEWithLogitsLoss(pos_weight=torch.tensor(3.0)))
    result = PerSampleLoss(model)(pointwise_interaction())
    plain = bce_by_hand([2.0, -1.0, -1.0, 3.0], [1, 0, 1, 0])
    expected = plain * torch.tensor([3.0, 1.0, 3.0, 1.0])  # positives' term scaled by pos_weight
    torch.testing.assert_close(result.losses, expected, rtol=0, atol=EPS32 * 16)


def test_loss_module_not_reduced_by_mean_is_refused():
    model = FakePointwise(nn.BCEWithLogitsLoss(reduction="sum"))
    with pytest.raises(ValueError, match=r"FakePointwise's loss module 'loss' has reduction='sum'"):
        PerSampleLoss(model)


# --------------------------------------------------------------------------------------------
# adapters: users' own models, refusals, BERT4Rec


@pytest.fixture
def clean_registries(monkeypatch):
    from recbole_autodenoise import adapters

    adapters.register_recbole_models()
    monkeypatch.setattr(adapters, "LOSS_ADAPTERS", dict(adapters.LOSS_ADAPTERS))
    monkeypatch.setattr(adapters, "REPRESENTATIONS", dict(adapters.REPRESENTATIONS))
    monkeypatch.setattr(adapters, "register_recbole_models", lambda: None)
    return adapters


class InlineHinge(nn.Module):
    """A user's model with an inline loss (no loss module): mean hinge + a regulariser."""

    type = ModelType.GENERAL
    USER_ID = "user_id"
    ITEM_ID = "item_id"

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(5, 1)
        with torch.no_grad():
            self.table.weight.copy_(torch.tensor([[0.0], [2.0], [0.5], [-1.0], [1.0]]))

    def hinge(self, interaction):
        return torch.relu(1 - self.table(interaction[self.ITEM_ID]).squeeze(1))

    def calculate_loss(self, interaction):
        return self.hinge(interaction).mean() + 0.1 * self.table.weight.pow(2).sum()


def test_registered_loss_adapter_is_used_and_inherited(clean_registries):
    with pytest.raises(ValueError, match="found none"):
        PerSampleLoss(InlineHinge())
    clean_registries.register_loss_adapter(
        InlineHinge,
        lambda model, inter: (model.hinge(inter), 0.1 * model.table.weight.pow(2).sum()),
    )

    class Child(InlineHinge):
        pass

    interaction = {"user_id": USER, "item_id": POS}  # items 1, 2, 3, 4: hinge 0, 0.5, 2, 0
    for model in (InlineHinge(), Child()):
        result = PerSampleLoss(model)(interaction)
        torch.testing.assert_close(
            result.losses, torch.tensor([0.0, 0.5, 2.0, 0.0]), rtol=0, atol=0
        )
        reg = 0.1 * (4 + 0.25 + 1 + 1)
        weights = torch.tensor([1.0, 2.0, 0.0, 1.0])
        torch.testing.assert_close(
            result.weighted(weights), torch.tensor(1.0 / 4 + reg), rtol=0, atol=EPS32 * 4
        )
        torch.testing.assert_close(
            result.weighted(torch.ones(4)),
            model.calculate_loss(interaction),
            rtol=0,
            atol=EPS32 * 4,
        )


def test_registered_representations_replace_the_tables(clean_registries):
    model = InlineHinge()
    clean_registries.register_loss_adapter(InlineHinge, lambda m, inter: (m.hinge(inter), None))
    with pytest.raises(ValueError, match=r"register_representations\(InlineHinge, fn\)"):
        PerSampleLoss(model).check_representations()
    clean_registries.register_representations(
        InlineHinge, lambda m, inter: (m.table(inter["user_id"]) * 2, m.table(inter["item_id"]))
    )
    sample = PerSampleLoss(model)
    sample.check_representations()
    result = sample({"user_id": USER, "item_id": POS}, with_representations=True)
    torch.testing.assert_close(
        result.user_repr, torch.tensor([[0.0], [4.0], [1.0], [0.0]]), rtol=0, atol=0
    )
    torch.testing.assert_close(
        result.item_repr, torch.tensor([[2.0], [0.5], [-1.0], [1.0]]), rtol=0, atol=0
    )
    assert not result.user_repr.requires_grad


def test_register_refuses_a_non_module_class(clean_registries):
    with pytest.raises(
        ValueError, match="model_class = 'BPR' is invalid: expected a torch.nn.Module subclass"
    ):
        clean_registries.register_loss_adapter("BPR", lambda m, i: None)
    with pytest.raises(ValueError, match="expected a torch.nn.Module subclass"):
        clean_registries.register_representations(int, lambda m, i: None)


def test_user_level_and_inline_models_are_refused_with_the_reason(clean_registries):
    for name in ("MultiVAE", "ENMF"):
        user_level = type(name, (FakeBPR,), {})
        with pytest.raises(ValueError, match=f"model {name} is not supported.*user-level batches"):
            PerSampleLoss(user_level())
    mine = type("MyVAE", (type("MultiVAE", (FakeBPR,), {}),), {})
    with pytest.raises(ValueError, match="model MyVAE is not supported.*user-level batches"):
        PerSampleLoss(mine())
    simplex = type("SimpleX", (FakeBPR,), {})
    with pytest.raises(
        ValueError, match=r"SimpleX is not supported.*computed inline.*register_loss_adapter"
    ):
        PerSampleLoss(simplex())
    # a registered adapter wins over the refusal
    clean_registries.register_loss_adapter(simplex, lambda model, inter: (torch.zeros(2), None))
    assert PerSampleLoss(simplex())(bpr_interaction()).losses.tolist() == [0.0, 0.0]


def test_sequential_forward_without_one_row_per_sample_is_refused():
    class Blocks(FakeSequential):
        def forward(self, item_seq):
            return self.item_embedding(item_seq)  # [B, L, d], not one representation per row

        def calculate_loss(self, interaction):
            seq_output = self.forward(interaction[self.ITEM_SEQ])[:, -1]
            return self.loss_fct(
                seq_output @ self.item_embedding.weight.t(), interaction[self.ITEM_ID]
            )

    sample = PerSampleLoss(Blocks())
    sample(seq_interaction())  # the losses alone are fine
    with pytest.raises(
        ValueError, match=r"Blocks's forward does not return one sequence representation"
    ):
        sample(seq_interaction(), with_representations=True)


class FakeBERT4Rec(nn.Module):
    """RecBole's BERT4Rec CE loss: an inline ``nn.CrossEntropyLoss(reduction="none")`` over the
    masked positions ``[B, mask_len]``, summed where ``MASK_INDEX > 0`` and divided by their
    count."""

    type = ModelType.SEQUENTIAL
    USER_ID, ITEM_ID, ITEM_SEQ, ITEM_SEQ_LEN = "user_id", "item_id", "item_id_list", "item_length"
    MASK_ITEM_SEQ, POS_ITEMS, MASK_INDEX = "Mask_item_id_list", "Pos_item_id", "MASK_INDEX"
    loss_type = "CE"

    def __init__(self) -> None:
        super().__init__()
        self.item_embedding = nn.Embedding(4, 2)
        with torch.no_grad():
            self.item_embedding.weight.copy_(
                torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
            )

    def calculate_loss(self, interaction):
        logits = (
            self.item_embedding.weight[interaction[self.POS_ITEMS]] @ self.item_embedding.weight.t()
        )
        targets = (interaction[self.MASK_INDEX] > 0).float().view(-1)
        loss_fct = nn.CrossEntropyLoss(reduction="none")
        return (
            torch.sum(loss_fct(logits.view(-1, 4), interaction[self.POS_ITEMS].view(-1)) * targets)
            / targets.sum()
        )


def test_bert4rec_rows_share_the_masked_positions_loss():
    from recbole_autodenoise.adapters import bert4rec_losses

    model = FakeBERT4Rec()
    # row 0: two masked positions, row 1: one, row 2: none (padding 0 at index 0)
    interaction = {
        "Pos_item_id": torch.tensor([[1, 2], [0, 3], [0, 0]]),
        "MASK_INDEX": torch.tensor([[1, 3], [0, 2], [0, 0]]),
    }
    losses, extra = bert4rec_losses(model, interaction)
    logits = model.item_embedding.weight @ model.item_embedding.weight.t()
    ce = -torch.log_softmax(logits, dim=1)  # ce[i, i]: the loss of predicting item i
    rows = torch.stack([ce[1, 1] + ce[2, 2], ce[3, 3], torch.tensor(0.0)]) * (
        3 / 3
    )  # B = 3 rows, 3 masked
    torch.testing.assert_close(losses, rows, rtol=0, atol=EPS32 * 8)
    assert extra is None and losses.requires_grad
    torch.testing.assert_close(
        losses.mean(), model.calculate_loss(interaction), rtol=0, atol=EPS32 * 8
    )


def test_bert4rec_with_bpr_loss_is_refused():
    from recbole_autodenoise.adapters import bert4rec_losses

    model = FakeBERT4Rec()
    model.loss_type = "BPR"
    with pytest.raises(ValueError, match="supports BERT4Rec with loss_type: CE"):
        bert4rec_losses(model, {})


def test_recording_sees_functional_losses_inside_the_block():
    from recbole_autodenoise.adapters import recording

    logits, target = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    with recording(F.cross_entropy) as outputs:
        nn.CrossEntropyLoss(reduction="none")(logits, target)
        F.mse_loss(logits, logits)
    assert len(outputs) == 1
    torch.testing.assert_close(
        outputs[0], F.cross_entropy(logits, target, reduction="none"), rtol=0, atol=0
    )
    F.cross_entropy(logits, target)
    assert len(outputs) == 1  # nothing recorded outside the block
