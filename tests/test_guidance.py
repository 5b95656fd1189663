"""Guidance from the clean set: clean batches, per-sample alignment (exact against a loop of
per-sample gradients), the weights' rescaling, and end-to-end runs on ML-100K. The meta step, the
l2rw scheme and the ``meta`` credit are experimental:
tests/experimental/test_experimental_guidance.py."""

from __future__ import annotations

import copy
import io
from itertools import repeat
from types import SimpleNamespace

import pytest
import torch
from recbole.data.interaction import Interaction
from recbole.utils import InputType
from torch import nn

import recbole_autodenoise as rad
from recbole_autodenoise.controller import HardPolicy, SoftPolicy
from recbole_autodenoise.data.bundle import training_data_of
from recbole_autodenoise.guidance import (
    CleanBatches,
    Guidance,
    NoFreeItem,
    clean_loss,
    guide_dataset,
    negatives_per_row,
    per_sample_alignment,
    redraw_avoiding,
)
from recbole_autodenoise.losses import PerSampleLoss
from recbole_autodenoise.schemes import SCHEMES
from recbole_autodenoise.schemes.base import effective_fraction, mean_one
from tests.conftest import float_tolerance
from tests.controller.test_controller import FakeConfig
from tests.test_losses import (
    FakeBPR,
    FakePointwise,
    FakeSequential,
    bpr_interaction,
    pointwise_interaction,
    seq_interaction,
)
from tests.test_trainer import build, fresh_model

CPU = torch.device("cpu")
SMALL = {"epochs": 1, "user_inter_num_interval": "[10,60]"}


def direct_alignment(model, train_interaction, clean_interaction) -> torch.Tensor:
    """<grad l_i, grad L_clean> one sample at a time: the definition, B backward passes."""
    params = [p for p in model.parameters() if p.requires_grad]
    clean_grads = torch.autograd.grad(
        clean_loss(model, clean_interaction), params, allow_unused=True
    )
    losses = PerSampleLoss(model)(train_interaction).losses
    values = []
    for i in range(len(losses)):
        grads = torch.autograd.grad(losses[i], params, retain_graph=True, allow_unused=True)
        values.append(
            sum(
                (g * c).sum() for g, c in zip(grads, clean_grads) if g is not None and c is not None
            )
        )
    return torch.stack(values).detach()


def saved(state: dict) -> dict:
    """Through torch.save and back, as in a checkpoint (optimizer state dicts share tensors)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def perturbed(model: nn.Module, seed: int) -> nn.Module:
    """The hand-set test models in float64 with random weights (so no gradient is trivially 0)."""
    model = copy.deepcopy(model).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float64))
    return model


# --------------------------------------------------------------------------------------------
# per-sample alignment


def test_alignment_equals_direct_computation_bpr():
    model = perturbed(FakeBPR(), 0)
    train = bpr_interaction()
    clean = {
        "user_id": torch.tensor([0, 1, 2, 2]),
        "item_id": torch.tensor([1, 3, 2, 4]),
        "neg_item_id": torch.tensor([4, 2, 1, 0]),
    }
    got = per_sample_alignment(model, PerSampleLoss(model), train, clean)
    expected = direct_alignment(model, train, clean)
    assert got.shape == (4,) and not got.requires_grad
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-10)
    assert float(expected.abs().min()) > 1e-3  # a non-trivial comparison


def test_alignment_equals_direct_computation_cross_entropy():
    model = perturbed(FakeSequential(), 1)
    train = seq_interaction()
    clean = {"item_id_list": torch.tensor([[2, 1, 0], [4, 4, 5]]), "item_id": torch.tensor([2, 3])}
    got = per_sample_alignment(model, PerSampleLoss(model), train, clean)
    torch.testing.assert_close(got, direct_alignment(model, train, clean), rtol=1e-5, atol=1e-10)


def test_alignment_reuses_given_losses_and_keeps_their_graph():
    model = perturbed(FakeBPR(), 2)
    sample = PerSampleLoss(model)(bpr_interaction())
    clean = bpr_interaction()
    got = per_sample_alignment(model, PerSampleLoss(model), None, clean, train_losses=sample.losses)
    torch.testing.assert_close(
        got, direct_alignment(model, bpr_interaction(), clean), rtol=1e-5, atol=1e-10
    )
    sample.losses.mean().backward()  # the real step's graph is still there


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["BPR", "GRU4Rec", "SASRec"])
def test_alignment_on_recbole_models(model_name):
    """RecBole's own models (eval mode: the loop must see the same function as the eps trick)."""
    config, train, valid, _ = build(model_name, **SMALL)
    model = fresh_model(config, train).double().eval()
    batch = next(iter(train))
    train_batch = Interaction({k: v[:12] for k, v in batch.interaction.items()})
    clean = next(CleanBatches(valid._dataset, model, 64, 0, CPU))
    got = per_sample_alignment(model, PerSampleLoss(model), train_batch, clean)
    expected = direct_alignment(model, train_batch, clean)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-12)
    assert float(expected.abs().max()) > 0


# --------------------------------------------------------------------------------------------
# clean batches


def fake_dataset(rows: int, sequential: bool = False) -> SimpleNamespace:
    fields = {
        "user_id": torch.arange(rows) % 3,
        "item_id": torch.arange(rows) % 4 + 1,
        "rating": torch.full((rows,), 4.0),
    }
    if sequential:
        fields["item_id_list"] = torch.arange(rows * 3).view(rows, 3) % 5
        fields["item_length"] = torch.full((rows,), 3)
    return SimpleNamespace(
        inter_feat=Interaction(fields), item_num=5
    )  # FakeBPR's 5 ids, 0 = padding


def test_clean_batches_add_uniform_negatives_for_bpr():
    stream = CleanBatches(fake_dataset(10), FakeBPR(), 4, seed=1, device=CPU)
    batch = next(stream)
    assert set(batch.interaction) == {"user_id", "item_id", "rating", "neg_item_id"}
    assert len(batch) == 4
    batches = [next(stream) for _ in range(200)]
    negatives = torch.cat([b["neg_item_id"] for b in batches])
    assert int(negatives.min()) == 1 and int(negatives.max()) == 4  # 0 is padding
    assert not any(
        bool((b["neg_item_id"] == b["item_id"]).any()) for b in batches
    )  # never the row's own item
    assert FakeBPR().calculate_loss(batch).item() > 0


def train_set(pairs: list[tuple[int, int]]) -> SimpleNamespace:
    users, items = zip(*pairs)
    return SimpleNamespace(
        inter_feat=Interaction({"user_id": torch.tensor(users), "item_id": torch.tensor(items)})
    )


def test_clean_batch_negatives_avoid_the_users_training_items():
    """As RecBole's training sampler: a user's negative is none of their training items."""
    known = {0: {1, 2}, 1: {3}, 2: set()}
    exclude = train_set([(u, i) for u, items in known.items() for i in items])
    stream = CleanBatches(fake_dataset(12), FakeBPR(), 4, seed=5, device=CPU, exclude=exclude)
    seen = {0: set(), 1: set(), 2: set()}
    for _ in range(300):
        batch = next(stream)
        for user, item, negative in zip(
            *(batch[k].tolist() for k in ("user_id", "item_id", "neg_item_id"))
        ):
            assert negative not in known[user] and negative != item
            seen[user].add(negative)
    assert seen == {0: {3, 4}, 1: {1, 2, 4}, 2: {1, 2, 3, 4}}  # everything else is drawn


def test_clean_batch_negatives_fail_clearly_for_a_user_with_every_item():
    exclude = train_set([(0, 1), (0, 2), (0, 3)])  # user 0's clean rows hold item 4 too
    stream = CleanBatches(fake_dataset(12), FakeBPR(), 12, seed=5, device=CPU, exclude=exclude)
    with pytest.raises(ValueError, match=r"user\(s\) \[0\].*every item"):
        next(stream)


def test_redraw_avoiding_redraws_only_the_hits_in_draw_order():
    # items come from a fixed queue: rows 0 and 2 hit (user 1 has item 3; row 2's own item is 5)
    queue = iter([torch.tensor([3, 4, 5]), torch.tensor([3, 6]), torch.tensor([7])])
    known = torch.tensor([1 * 10 + 3])
    items = redraw_avoiding(
        torch.tensor([1, 2, 2]),
        lambda n: next(queue)[:n].clone(),
        known,
        10,
        own=torch.tensor([0, 0, 5]),
    )
    assert items.tolist() == [7, 4, 6]  # round 2 redrew rows 0 and 2 (3, 6); round 3 row 0 again


def test_redraw_avoiding_names_the_stuck_users():
    with pytest.raises(NoFreeItem) as stuck:
        redraw_avoiding(
            torch.tensor([4, 2]),
            lambda n: torch.full((n,), 1),
            None,
            10,
            own=torch.tensor([1, 0]),
            max_redraws=3,
        )
    assert stuck.value.users == [4]


def test_unobserved_rows_take_items_the_user_never_trained_on_in_proportion_to_popularity():
    # training rows: item 3 fills eight, items 1, 2 and 4 one each; user 0 trained on 1 and 3,
    # user 1 on 2 and 3, user 2 on 4. The clean rows (user, item): (0,1) (1,2) (2,3) (0,4) (1,1)
    # (2,2)
    exclude = train_set([(0, 1), (1, 2), (2, 4)] + [(0, 3)] * 4 + [(1, 3)] * 4)
    stream = CleanBatches(
        fake_dataset(6, sequential=True), FakeSequential(), 6, seed=4, device=CPU, exclude=exclude
    )
    batch = next(stream)
    fake = stream.unobserved(batch, 3)
    assert len(fake) == 18 and torch.equal(fake["user_id"], batch["user_id"].repeat(3))
    assert torch.equal(fake["item_id_list"], batch["item_id_list"].repeat(3, 1))  # history kept
    assert torch.equal(fake["item_length"], batch["item_length"].repeat(3))
    drawn: dict[tuple[int, int], list[int]] = {}
    for _ in range(300):
        fake = stream.unobserved(batch, 3)
        for user, source, item in zip(
            fake["user_id"].tolist(), batch["item_id"].repeat(3).tolist(), fake["item_id"].tolist()
        ):
            drawn.setdefault((user, source), []).append(item)
    allowed = {
        (0, 1): {2, 4},
        (0, 4): {2},
        (1, 2): {1, 4},
        (1, 1): {4},
        (2, 3): {1, 2},
        (2, 2): {1, 3},
    }
    assert {
        key: set(items) for key, items in drawn.items()
    } == allowed  # never trained on, never the row's own
    popular = drawn[(2, 2)]
    assert popular.count(3) > 4 * popular.count(1)  # 8 training rows against 1


def test_unobserved_rows_need_the_training_set():
    stream = CleanBatches(fake_dataset(6), FakeBPR(), 4, seed=1, device=CPU)
    with pytest.raises(ValueError, match="unobserved items need the training dataset"):
        stream.unobserved(next(stream), 1)


def test_clean_batches_sequential_rows_go_as_they_are():
    stream = CleanBatches(fake_dataset(6, sequential=True), FakeSequential(), 4, seed=1, device=CPU)
    batch = next(stream)
    assert "neg_item_id" not in batch.interaction and batch["item_id_list"].shape == (4, 3)
    FakeSequential().calculate_loss(batch)


class FakeLabelled(FakePointwise):
    """A pointwise model on labelled rows (NeuMF's shape): BCE on logits, ``LABEL`` = "label"."""

    input_type = InputType.POINTWISE

    def __init__(self) -> None:
        super().__init__(nn.BCEWithLogitsLoss())


def test_clean_batches_of_a_pointwise_model_are_positives_then_labelled_negatives():
    """Each clean row labelled 1, then ``negatives`` copies of the rows labelled 0 whose item is a
    drawn negative avoiding the row's item and the user's training items (RecBole's training
    rows of NeuMF)."""
    known = {0: {1, 2}, 1: {3}, 2: set()}
    exclude = train_set([(u, i) for u, items in known.items() for i in items])
    stream = CleanBatches(
        fake_dataset(12), FakeLabelled(), 4, seed=5, device=CPU, exclude=exclude, negatives=2
    )
    for _ in range(50):
        batch = next(stream)
        assert len(batch) == 12 and "neg_item_id" not in batch.interaction
        assert batch["label"].tolist() == [1.0] * 4 + [0.0] * 8
        for field in ("user_id", "rating"):  # the negatives copy their rows, twice, in order
            assert batch[field][4:].tolist() == batch[field][:4].tolist() * 2
        items, users = batch["item_id"].tolist(), batch["user_id"].tolist()
        for row in range(4, 12):
            assert items[row] not in known[users[row]] and items[row] != items[row % 4]
        positives = stream.positives(batch)
        assert len(positives) == 4 and torch.equal(positives["item_id"], batch["item_id"][:4])
    assert FakeLabelled().calculate_loss(batch).item() > 0


def test_clean_batches_without_sampled_negatives_are_labelled_positives():
    stream = CleanBatches(fake_dataset(6), FakeLabelled(), 4, seed=1, device=CPU, negatives=0)
    batch = next(stream)
    assert len(batch) == 4 and batch["label"].tolist() == [1.0] * 4


def test_clean_batches_of_other_models_carry_no_label():
    stream = CleanBatches(fake_dataset(6), FakeBPR(), 4, seed=1, device=CPU, negatives=3)
    batch = next(stream)
    assert "label" not in batch.interaction and len(batch) == 4
    assert stream.positives(batch) is batch


def test_a_pointwise_model_without_a_label_field_is_refused():
    model = FakeLabelled()
    model.LABEL = None
    with pytest.raises(ValueError, match="model FakeLabelled trains pointwise but names no label"):
        CleanBatches(fake_dataset(6), model, 4, seed=1, device=CPU)


@pytest.mark.parametrize(
    "args, expected",
    [
        ({"distribution": "uniform", "sample_num": 3}, 3),
        ({"distribution": "uniform", "sample_num": 1}, 1),
        ({"distribution": "none", "sample_num": 1}, 0),
        (None, 0),
    ],
)
def test_negatives_per_row_follows_the_training_sampler(args, expected):
    assert negatives_per_row({"train_neg_sample_args": args}) == expected


def test_alignment_equals_direct_computation_on_labelled_clean_batches():
    model = perturbed(FakeLabelled(), 4)
    dataset = SimpleNamespace(
        inter_feat=Interaction(
            {"user_id": torch.tensor([0, 1, 2, 0, 1]), "item_id": torch.tensor([1, 2, 3, 4, 1])}
        ),
        item_num=5,
    )
    clean = next(CleanBatches(dataset, model, 5, seed=2, device=CPU))
    assert clean["label"].tolist() == [1.0] * 5 + [0.0] * 5
    clean = Interaction({**clean.interaction, "label": clean["label"].double()})  # float64 model
    train = {**pointwise_interaction(), "label": pointwise_interaction()["label"].double()}
    got = per_sample_alignment(model, PerSampleLoss(model), train, clean)
    torch.testing.assert_close(got, direct_alignment(model, train, clean), rtol=1e-5, atol=1e-10)
    assert float(got.abs().min()) > 1e-4


def test_clean_batches_cover_each_pass_and_are_seeded():
    dataset = fake_dataset(9)
    stream = CleanBatches(dataset, FakeBPR(), 3, seed=7, device=CPU)
    batches = [next(stream) for _ in range(3)]
    assert sorted(stream.order.tolist()) == list(range(9))  # one pass = a permutation of the rows
    assert sorted(torch.cat([b["item_id"] for b in batches]).tolist()) == sorted(
        dataset.inter_feat["item_id"].tolist()
    )
    again = CleanBatches(dataset, FakeBPR(), 3, seed=7, device=CPU)
    assert all(torch.equal(b["user_id"], next(again)["user_id"]) for b in batches)
    other = CleanBatches(dataset, FakeBPR(), 3, seed=8, device=CPU)
    assert any(not torch.equal(b["item_id"], next(other)["item_id"]) for b in batches)
    # larger than the set: the whole set per batch
    assert len(next(CleanBatches(dataset, FakeBPR(), 2048, seed=7, device=CPU))) == 9


def test_clean_batches_state_round_trip():
    dataset = fake_dataset(10)
    stream = CleanBatches(dataset, FakeBPR(), 4, seed=3, device=CPU)
    for _ in range(3):
        next(stream)
    resumed = CleanBatches(dataset, FakeBPR(), 4, seed=99, device=CPU)
    resumed.load_state_dict(saved(stream.state_dict()))
    for _ in range(5):
        a, b = next(stream), next(resumed)
        assert all(torch.equal(a[k], b[k]) for k in a.interaction)


def test_guide_dataset_prefers_the_guide_split():
    guide, valid = object(), SimpleNamespace(_dataset=object())
    assert guide_dataset(SimpleNamespace(guide_rows=guide), valid) is guide
    assert guide_dataset(None, valid) is valid._dataset
    with pytest.raises(ValueError, match="valid_data"):
        guide_dataset(None, None)


def test_mean_one_rescales_and_has_no_gradient_along_the_scale():
    torch.testing.assert_close(mean_one(torch.tensor([1.0, 3.0])), torch.tensor([0.5, 1.5]))
    assert torch.equal(mean_one(torch.zeros(3)), torch.ones(3))
    weights = torch.tensor([0.5, 2.0, 1.5], requires_grad=True)
    (grad,) = torch.autograd.grad(
        (mean_one(weights) * torch.tensor([1.0, -2.0, 4.0])).sum(), weights
    )
    assert float((grad * weights).sum()) == pytest.approx(
        0.0, abs=float_tolerance(torch.float32, 8.0)
    )  # scaling w changes nothing


@pytest.mark.parametrize(
    "weights, expected",
    [
        ([1.0, 1.0, 1.0, 1.0], 1.0),
        ([4.0, 0.0, 0.0, 0.0], 0.25),
        ([1.0, 3.0], 16 / 20),
        ([0.0, 0.0], 1.0),
    ],
)
def test_effective_fraction(weights, expected):
    assert float(effective_fraction(torch.tensor(weights))) == pytest.approx(expected)


class DisjointBPR(FakeBPR):
    """FakeBPR with one user per pair of items, so users' gradients never overlap."""

    def __init__(self, users: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.user_embedding = nn.Embedding(users, 2)
        self.item_embedding = nn.Embedding(2 * users + 1, 2)
        with torch.no_grad():
            self.user_embedding.weight.copy_(torch.randn(users, 2, generator=gen))
            self.item_embedding.weight.copy_(torch.randn(2 * users + 1, 2, generator=gen))


def flipped_problem(users: int = 8):
    """Clean: user u prefers item 2u+1 over 2u+2. Training: every user once as in the clean set
    and once flipped ("marked": a false positive against the clean preference)."""
    model = DisjointBPR(users)
    user = torch.arange(users)
    good, bad = 2 * user + 1, 2 * user + 2
    clean = {"user_id": user, "item_id": good, "neg_item_id": bad}
    train = {
        "user_id": torch.cat([user, user]),
        "item_id": torch.cat([good, bad]),
        "neg_item_id": torch.cat([bad, good]),
    }
    marked = torch.arange(2 * users) >= users
    return model, train, clean, marked


def guidance_for(model, train, clean, lr: float = 0.1) -> Guidance:
    sample_loss = PerSampleLoss(model)
    return Guidance(model, sample_loss, repeat(clean), lr, train, sample_loss(train).losses)


def test_hard_meta_weights_are_the_expected_action():
    policy = HardPolicy(4, 8, 3)
    state = torch.randn(5, 4)
    expected = (torch.softmax(policy.logits(state), dim=1) * torch.arange(3.0)).sum(1)
    torch.testing.assert_close(policy.meta_weights(state, torch.Generator()), expected)
    soft = SoftPolicy(4, 8, 0.5)
    weights = soft.meta_weights(state, torch.Generator().manual_seed(1))
    assert weights.requires_grad and bool((weights > 0).all())


# --------------------------------------------------------------------------------------------
# config keys


def test_default_credit_is_epoch():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(), CPU)
    assert scheme.credit_mode == "epoch" and not scheme.needs_guidance


@pytest.mark.slow
@pytest.mark.parametrize("value", [0, -5, 2.5, "2048", True])
def test_bad_guide_batch_size_fails_before_training(value):
    config, train, _, _ = build("BPR", **SMALL)
    config["guide_batch_size"] = value
    with pytest.raises(ValueError, match="guide_batch_size"):
        rad.AutoDenoiseTrainer(config, fresh_model(config, train))


# --------------------------------------------------------------------------------------------
# end to end on ML-100K (l2rw on every model runs in test_trainer's every-scheme test)


@pytest.mark.slow
def test_guide_split_result_goes_to_the_scheme(monkeypatch):
    """With clean_valid_guide_ratio > 0 the scheme learns from the guide part's evaluation (its
    score is in the history), validation keeps selecting, and clean batches come from the guide."""
    config, train, valid, test = build(
        "BPR", denoise_scheme="autodenoise_s", clean_valid_guide_ratio=0.3, **SMALL
    )
    guide_loader, guide_rows = training_data_of(train).guide, training_data_of(train).guide_rows
    assert guide_loader is not None and len(guide_rows) < len(valid._dataset)
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    seen = []
    original = trainer.scheme.after_evaluation
    monkeypatch.setattr(
        trainer.scheme,
        "after_evaluation",
        lambda result, epoch: seen.append(result) or original(result, epoch),
    )
    trainer.fit(train, valid, saved=False)
    guide_gauc, _ = trainer.clean_auc(guide_loader)
    assert seen == [
        {"gauc": guide_gauc}
    ]  # the GAUC reward of the guide part, nothing of validation
    assert guide_gauc != trainer.clean_auc(valid)[0]
    record = trainer.history[-1]
    assert record["valid_score"] == pytest.approx(
        trainer.evaluate(valid, load_best_model=False)["ndcg@20"]
    )
    assert record["controller_reward"] == pytest.approx(guide_gauc)
    assert trainer.clean_batches is None  # epoch credit draws no clean batches
    # a reward RecBole computes: the guide part is evaluated by RecBole, its score recorded
    config, train, valid, test = build(
        "BPR",
        denoise_scheme="autodenoise_s",
        clean_valid_guide_ratio=0.3,
        reward_metric="NDCG@20",
        **SMALL,
    )
    ndcg = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    ndcg.fit(train, valid, saved=False)
    expected = ndcg.evaluate(training_data_of(train).guide, load_best_model=False)
    assert ndcg.history[-1]["guide_score"] == pytest.approx(expected["ndcg@20"])
    assert ndcg.history[-1]["controller_reward"] == pytest.approx(expected["ndcg@20"])
    assert ndcg.history[-1]["valid_score"] != ndcg.history[-1]["guide_score"]


@pytest.mark.slow
def test_no_guide_split_means_no_guide_evaluation():
    config, train, valid, _ = build("BPR", denoise_scheme="autodenoise_s", **SMALL)
    assert training_data_of(train).guide is None
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    trainer.fit(train, valid, saved=False)
    assert "guide_score" not in trainer.history[-1]
