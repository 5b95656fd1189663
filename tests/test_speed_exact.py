"""The fast paths of issue 15 give what the straightforward computations give.

Each reference (the computation the package used before) lives here as a test helper, not in the
package: the REINFORCE score by autograd on a second forward pass; the clean reward (GAUC) over
one full-sort query per clean validation interaction.
"""

from __future__ import annotations

import pytest
import torch

import recbole_autodenoise.experimental  # noqa: F401  (the user credit below: experimental)
import recbole_autodenoise  # noqa: F401  (compat patches, metric registration)
from recbole_autodenoise.controller import HardPolicy, Policy, SoftPolicy
from tests.conftest import FAST, assert_float_close


def reference_sample_scored(policy: Policy, state: torch.Tensor, generator: torch.Generator):
    """The old path: ``sample`` under no_grad, then autograd of sum_j log pi(a_j | s_j) on a
    fresh forward pass."""
    action, weight = policy.sample(state, generator)
    params = list(policy.parameters())
    grads = torch.autograd.grad(policy.log_prob(state, action).sum(), params, allow_unused=True)
    return action, weight, [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def seeded(seed: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def random_policy(policy: Policy, seed: int, scale: float = 0.5) -> Policy:
    """Every parameter random (the heads start at zero, the trunk at PyTorch's init)."""
    gen = seeded(seed)
    with torch.no_grad():
        for param in policy.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * scale)
    return policy


def assert_same_score(policy: Policy, state: torch.Tensor, seed: int = 3) -> None:
    action, weight, grads = policy.sample_scored(state, seeded(seed))
    ref_action, ref_weight, ref_grads = reference_sample_scored(policy, state, seeded(seed))
    assert torch.equal(action, ref_action) and torch.equal(weight, ref_weight)  # the same draws
    assert len(grads) == len(ref_grads)
    for got, expected in zip(grads, ref_grads):
        assert got.shape == expected.shape
        assert_float_close(got, expected, steps=64)


POLICIES = {
    "hard3": lambda size: HardPolicy(size, 8, 3),
    "hard2": lambda size: HardPolicy(size, 8, 2),
    "hard5": lambda size: HardPolicy(size, 8, 5),
    "soft": lambda size: SoftPolicy(size, 8, 0.1),
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_one_row(name):
    torch.manual_seed(0)
    assert_same_score(
        random_policy(POLICIES[name](4), seed=1), torch.randn(1, 4, generator=seeded(2))
    )


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_as_initialised(name):
    """Zero-initialised heads: the trunk's gradient is exactly zero in both paths."""
    torch.manual_seed(0)
    policy = POLICIES[name](5)
    state = torch.randn(64, 5, generator=seeded(4))
    assert_same_score(policy, state)
    _, _, grads = policy.sample_scored(state, seeded(3))
    assert all(torch.count_nonzero(g) == 0 for g in grads[:4])


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_random_policy_many_rows(name):
    torch.manual_seed(0)
    policy = random_policy(POLICIES[name](6), seed=7)
    assert_same_score(policy, torch.randn(300, 6, generator=seeded(8)) * 2)


def test_soft_variance_clamped_and_saturated_rows():
    """Rows whose variance head is far below the clamp (no gradient through it) or above
    softplus' threshold 20 (slope 1)."""
    torch.manual_seed(0)
    policy = random_policy(SoftPolicy(3, 4, 0.1), seed=9, scale=0.3)
    with torch.no_grad():
        policy.var_head.weight.zero_()
        policy.var_head.weight[0, 0] = 1.0
    hidden_probe = torch.randn(40, 3, generator=seeded(10))
    for raw in (-40.0, 25.0):  # softplus(-40) < MIN_VARIANCE; 25 > threshold
        with torch.no_grad():
            policy.var_head.bias.fill_(raw)
        assert_same_score(policy, hidden_probe)


def test_dead_relu_units():
    """A trunk unit that never fires gets no gradient, as autograd's."""
    torch.manual_seed(0)
    policy = random_policy(HardPolicy(4, 6, 3), seed=11)
    with torch.no_grad():
        policy.trunk[0].bias[:3] = -100.0
    state = torch.randn(50, 4, generator=seeded(12))
    assert_same_score(policy, state)
    _, _, grads = policy.sample_scored(state, seeded(3))
    assert torch.count_nonzero(grads[0][:3]) == 0 and torch.count_nonzero(grads[1][:3]) == 0


def test_sample_is_unchanged_by_scoring():
    """``sample`` and ``sample_scored`` consume the generator alike: the stream of draws
    continues."""
    policy = random_policy(SoftPolicy(4, 8, 0.1), seed=13)
    state = torch.randn(20, 4, generator=seeded(14))
    gen_a, gen_b = seeded(5), seeded(5)
    policy.sample_scored(state, gen_a)
    policy.sample(state, gen_b)
    assert torch.equal(gen_a.get_state(), gen_b.get_state())


# --------------------------------------------------------------------------------------------
# the clean reward: per-pair AUC from one sorted pass per row


def assert_same_auc(scores, positive_u, positive_i):
    from recbole_autodenoise.evaluation.per_user import _compared_auc, _sorted_auc

    fast = _sorted_auc(scores, positive_u, positive_i)
    assert fast is not None
    expected = _compared_auc(scores, positive_u, positive_i)
    assert torch.equal(torch.isnan(fast), torch.isnan(expected))
    assert torch.equal(
        fast[~torch.isnan(fast)], expected[~torch.isnan(expected)]
    )  # same counts, same division


def test_auc_by_hand_ties_and_masks():
    inf = float("inf")
    scores = torch.tensor(
        [
            [
                -inf,
                0.5,
                0.2,
                0.5,
                -inf,
                0.9,
                0.5,
            ],  # positives 1 (tied with a negative and a positive), 3, 5
            [-inf, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # all tied
            [-inf, 0.3, -inf, -inf, -inf, -inf, -inf],  # the positive alone: no negative, NaN
            [-inf, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0],  # no positive in this row
        ]
    )
    positive_u = torch.tensor([0, 0, 0, 1, 1, 2])
    positive_i = torch.tensor([1, 3, 5, 2, 6, 1])
    from recbole_autodenoise.evaluation.per_user import _sorted_auc

    auc = _sorted_auc(scores, positive_u, positive_i)
    # row 0: negatives 0.2, 0.5 (item 6); pos 0.5 -> (1 + 0.5) / 2, pos 0.9 -> 2 / 2
    expected = torch.tensor([0.75, 0.75, 1.0, 0.5, 0.5, float("nan")], dtype=torch.float64)
    torch.testing.assert_close(auc, expected, rtol=0, atol=0, equal_nan=True)
    assert_same_auc(scores, positive_u, positive_i)


@pytest.mark.parametrize(
    "block", [2**18, 50, 120]
)  # one block; one row per block; two rows per block
def test_auc_pairs_in_any_order_and_random_ties(block, monkeypatch):
    monkeypatch.setattr("recbole_autodenoise.evaluation.per_user.BLOCK_ELEMENTS", block)
    gen = seeded(21)
    scores = torch.randint(0, 7, (30, 50), generator=gen).float()  # many ties
    scores[torch.rand(30, 50, generator=gen) < 0.2] = -float("inf")
    scores[:, 0] = -float("inf")
    pairs = torch.randperm(30 * 49, generator=gen)[:200]
    positive_u, positive_i = pairs // 49, pairs % 49 + 1
    scores[positive_u, positive_i] = torch.randint(
        0, 7, (200,), generator=gen
    ).float()  # positives finite
    assert_same_auc(scores, positive_u, positive_i)


def test_auc_without_any_tie():
    gen = seeded(22)
    scores = torch.randn(12, 40, generator=gen)
    scores[:, 0] = -float("inf")
    positive_u = torch.tensor([0, 0, 3, 5, 5, 5, 11])
    positive_i = torch.tensor([4, 9, 1, 2, 3, 39, 7])
    assert_same_auc(scores, positive_u, positive_i)


def test_auc_with_signed_zeros_and_ties_at_zero():
    """-0.0 == 0.0: NumPy's sort may put either first; the counts come from comparisons alike."""
    scores = torch.tensor(
        [[-float("inf"), 0.0, -0.0, 0.0, -0.0, 1.0, -1.0], [-0.0, 0.0, 0.0, -0.0, 2.0, 0.0, -0.0]]
    )
    positive_u, positive_i = torch.tensor([0, 0, 1, 1]), torch.tensor([1, 2, 0, 4])
    assert_same_auc(scores, positive_u, positive_i)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.int64])
def test_sort_rows_equals_torch_sort(dtype):
    from recbole_autodenoise.evaluation.per_user import sort_rows

    gen = seeded(23)
    values = (torch.randn(9, 31, generator=gen) * 3).round().to(dtype)  # ties
    if dtype.is_floating_point:
        values[values > 2] = -float("inf")
    assert torch.equal(sort_rows(values), torch.sort(values, dim=1).values)


@pytest.mark.parametrize("shape", [(7, 13), (5, 0), (0, 4), (1, 1)])
def test_count_per_row_equals_torch_sum(shape):
    from recbole_autodenoise.evaluation.per_user import count_per_row

    mask = torch.rand(shape, generator=seeded(24)) < 0.4
    for view in (mask, mask.t().contiguous().t(), mask[:, ::2]):  # strided views count alike
        counts = count_per_row(view)
        assert counts.dtype == torch.int64
        assert torch.equal(counts, view.sum(1))


def test_row_counts_numpy_path_equals_torch_comparisons():
    """The CPU path (NumPy) against torch's comparisons, NaN, +inf, -inf and ties included; bfloat16
    takes torch's path and must agree with its float32 copy on NumPy's."""
    from recbole_autodenoise.evaluation.per_user import _row_counts

    scores = torch.randint(-3, 4, (6, 11), generator=seeded(25)).float()
    scores[0, 2], scores[1, 3], scores[2, :4] = float("nan"), float("inf"), -float("inf")
    own = scores[:, 5:6].clone()
    expected = (torch.isinf(scores).sum(1), (scores < own).sum(1), (scores == own).sum(1))
    for got in (_row_counts(scores, own), _row_counts(scores.bfloat16(), own.bfloat16())):
        assert all(torch.equal(g, e) for g, e in zip(got, expected))
    assert _row_counts(scores, own)[0].tolist() == [0, 1, 4, 0, 0, 0]


def test_count_per_row_by_hand():
    from recbole_autodenoise.evaluation.per_user import count_per_row

    mask = torch.tensor([[True, False, True], [False, False, False], [True, True, True]])
    assert count_per_row(mask).tolist() == [2, 0, 3]


@pytest.mark.parametrize("case", ["nan", "posinf", "masked_positive", "repeated_pair"])
def test_auc_falls_back_to_the_comparison(case):
    from recbole_autodenoise.evaluation.per_user import (
        _any_positives_auc,
        _compared_auc,
        _sorted_auc,
    )

    scores = torch.tensor([[0.1, 0.4, 0.3, 0.2], [0.5, 0.2, 0.9, 0.1]])
    positive_u, positive_i = torch.tensor([0, 1, 1]), torch.tensor([1, 0, 2])
    if case == "nan":
        scores[1, 3] = float("nan")
    elif case == "posinf":
        scores[0, 0] = float("inf")
    elif case == "masked_positive":
        scores[1, 2] = -float("inf")
    else:
        positive_u, positive_i = torch.tensor([0, 0, 1]), torch.tensor([1, 1, 2])
    assert _sorted_auc(scores, positive_u, positive_i) is None
    torch.testing.assert_close(
        _any_positives_auc(scores, positive_u, positive_i),
        _compared_auc(scores, positive_u, positive_i),
        rtol=0,
        atol=0,
        equal_nan=True,
    )


# --------------------------------------------------------------------------------------------
# end to end on ML-100K: the fast paths against the reference computations


def train_ml100k(scheme: str, reference: bool, **overrides):
    """Two epochs of BPR under the default protocol (user_first: the reward is a second pass over
    every clean validation interaction); ``reference`` swaps the old computations back in."""
    from recbole.utils import init_seed

    import recbole_autodenoise as rad
    from recbole_autodenoise.data.dataloader import InteractionFullSortEvalDataLoader
    from recbole_autodenoise.model import get_model

    config = rad.make_config(
        "BPR",
        "ml-100k",
        config_dict={
            **FAST,
            "denoise_scheme": scheme,
            "user_inter_num_interval": "[10,60]",
            **overrides,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    train, valid, _ = rad.data_preparation(config, rad.create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = get_model("BPR")(config, train._dataset)
    trainer = rad.AutoDenoiseTrainer(config, model)
    with pytest.MonkeyPatch.context() as patch:
        if reference:
            patch.setattr(Policy, "sample_scored", reference_sample_scored)
            patch.setattr(
                InteractionFullSortEvalDataLoader, "user_batches", lambda self: iter(self)
            )
        trainer.fit(train, valid, saved=False)
    return trainer


@pytest.mark.parametrize(
    "scheme, overrides",
    [
        ("autodenoise_s", {}),
        ("autodenoise_h", {}),
        ("autodenoise_s", {"controller_credit": "user", "clean_valid_guide_ratio": 0.5}),
    ],
)
@pytest.mark.slow
def test_ml100k_run_equals_the_reference(scheme, overrides):
    fast, slow = train_ml100k(scheme, False, **overrides), train_ml100k(scheme, True, **overrides)
    assert len(fast.history) == len(slow.history) == FAST["epochs"]
    for got, expected in zip(fast.history, slow.history):
        assert set(got) == set(expected)
        assert "controller_reward" in got
        for key, value in expected.items():
            if key.endswith("seconds"):
                continue
            # float64 sums in another order (reward), float32 steps after a controller update
            assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-9, nan_ok=True), key
    assert fast.history[0]["controller_reward"] == pytest.approx(
        slow.history[0]["controller_reward"], rel=1e-14
    )
    for (name, got), expected in zip(
        fast.scheme.policy.state_dict().items(), slow.scheme.policy.state_dict().values()
    ):
        assert_float_close(got, expected, steps=256)
    for got, expected in zip(fast.model.parameters(), slow.model.parameters()):
        assert_float_close(got.detach(), expected.detach(), steps=256)


# --------------------------------------------------------------------------------------------
# benchmarks.cost: the schedule and the table (no training)


def test_cost_schedule_interleaves_and_rotates():
    from benchmarks.cost import schedule

    order = schedule(
        [("BPR", 3), ("GRU4Rec", 2)],
        ["default", "adt_rl", "autodenoise_s"],
        ["after", "before"],
        2,
        ["default", "autodenoise_s"],
    )
    first = [(v, s) for r, m, _, v, s in order if r == 0 and m == "BPR"]
    assert first == [
        ("after", "default"),
        ("before", "default"),
        ("after", "adt_rl"),
        ("after", "autodenoise_s"),
        ("before", "autodenoise_s"),
    ]
    second = [(v, s) for r, m, _, v, s in order if r == 1 and m == "BPR"]
    assert second == first[1:] + first[:1]
    assert len(order) == 2 * 2 * 5 and {e for _, m, e, _, _ in order if m == "GRU4Rec"} == {2}


def test_cost_cell_times_skip_the_first_epoch():
    from benchmarks.cost import cell_times, cpu_times

    epochs = [
        {"train_seconds": 9.0, "valid_seconds": 9.0},
        {"train_seconds": 1.0, "valid_seconds": 0.5},
        {"train_seconds": 3.0, "valid_seconds": 0.25},
        {"train_seconds": 2.0, "valid_seconds": 0.75},
    ]
    assert cell_times({"epochs": epochs}) == {"train": 2.0, "valid": 0.5, "total": 2.5}
    cpu = {"train": [9.0, 1.0, 3.0], "valid": [9.0, 0.5, 0.25]}
    assert cpu_times(cpu) == {"train": 2.0, "valid": 0.375, "total": 2.375}


def test_cost_summary_pairs_ratios_by_repetition():
    from benchmarks.cost import summarise

    def row(scheme, repetition, train, valid, rss, variant="after"):
        return {
            "status": "ok",
            "variant": variant,
            "model": "BPR",
            "scheme": scheme,
            "repetition": repetition,
            "cpu": {"train": train, "valid": valid, "total": train + valid},
            "times": {"train": 2 * train, "valid": valid, "total": 2 * train + valid},
            "peak_memory": {"peak_rss_mb": rss},
        }

    rows = [
        row("default", 0, 1.0, 1.0, 100.0),
        row("autodenoise_s", 0, 1.5, 1.0, 100.0),
        row("default", 1, 2.0, 1.0, 100.0),
        row("autodenoise_s", 1, 2.2, 1.2, 110.0),
        {
            "status": "failed",
            "variant": "after",
            "model": "BPR",
            "scheme": "adt_rl",
            "repetition": 0,
        },
    ]
    table = summarise(rows).splitlines()
    line = next(entry for entry in table if "autodenoise_s" in entry)
    # CPU: train 1.5 and 1.1 -> median 1.30; valid 1.0 and 1.2; total 1.25 and 1.133...; wall total
    # 4/3 and 5.6/5; RSS 1.0 and 1.1
    assert line == (
        "| after | BPR | autodenoise_s | 1.850 | 1.100 | 1.30x (1.10-1.50) | 1.10x (1.00-1.20) | "
        "1.19x (1.13-1.25) | 1.23x (1.12-1.33) | 1.05x (1.00-1.10) | - |"
    )
    assert not any("adt_rl" in entry for entry in table)


def test_cost_summary_gives_the_gpu_memory_ratio_for_cells_on_a_gpu():
    from benchmarks.cost import summarise

    def row(scheme, repetition, gpu_mb):
        return {
            "status": "ok",
            "variant": "gpu",
            "model": "SASRec",
            "scheme": scheme,
            "repetition": repetition,
            "cpu": {"train": 1.0, "valid": 1.0, "total": 2.0},
            "times": {"train": 1.0, "valid": 1.0, "total": 2.0},
            "peak_memory": {"peak_rss_mb": 100.0, "cuda_max_allocated_mb": gpu_mb},
        }

    rows = [
        row("default", 0, 400.0),
        row("autodenoise_h", 0, 420.0),
        row("default", 1, 400.0),
        row("autodenoise_h", 1, 460.0),
    ]
    line = next(entry for entry in summarise(rows).splitlines() if "autodenoise_h" in entry)
    assert line.endswith("| 1.00x (1.00-1.00) | 1.10x (1.05-1.15) |")


def test_cost_device_sets_recboles_gpu_id(monkeypatch, tmp_path):
    import benchmarks.cost as cost

    seen = {}
    monkeypatch.setattr(cost, "run", lambda args: seen.update(device=args.device) or 0)
    assert (
        cost.main(["--device", "cuda", "--out", str(tmp_path / "c.jsonl")]) == 0
        and seen["device"] == "cuda"
    )
    assert cost.DEVICE_OVERRIDES["cuda"] == {"gpu_id": "0"} and cost.DEVICE_OVERRIDES["cpu"] == {
        "gpu_id": ""
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--models", "BPR"], "MODEL:EPOCHS"),
        (["--models", "BPR:1"], "MODEL:EPOCHS"),
        (["--code", "old=/nonexistent"], "NAME=PATH"),
        (["--schemes", "adt_rl"], "need 'default'"),
        (["--device", "tpu"], "invalid choice"),
    ],
)
def test_cost_refuses_bad_arguments(argv, message, capsys):
    from benchmarks.cost import main

    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert message in str(raised.value) + capsys.readouterr().err
