"""Unit tests for the non-learning weighting schemes and the scheme registry.

Hand-built tensors with exact expected values, in the style of RecBole's metric tests.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import recbole_autodenoise  # noqa: F401  (compat patches, metric registration)
from recbole_autodenoise.config import plugin_defaults
from recbole_autodenoise.schemes import SCHEMES, Batch, WeightingScheme, register_scheme
from recbole_autodenoise.schemes.adt_rl import ReweightedLossScheme
from recbole_autodenoise.schemes.adt_tl import TruncatedLossScheme, drop_rate_at, truncation_weights
from recbole_autodenoise.schemes.default import DefaultScheme
from recbole_autodenoise.schemes.heuristic import HeuristicScheme, inverse_frequency_weights
from tests.conftest import assert_float_close, float_tolerance

CPU = torch.device("cpu")
# without recbole_autodenoise.experimental (its l2rw: tests/experimental)
MAIN_SCHEMES = [
    "adt_rl",
    "adt_tl",
    "autodenoise_h",
    "autodenoise_s",
    "dcf",
    "default",
    "heuristic",
    "oracle",
]


class FakeConfig:
    """Just enough of RecBole's Config: ``config[key]`` and ``final_config_dict``."""

    def __init__(self, **overrides):
        values = plugin_defaults()
        values.update(seed=2020, topk=[10, 20, 50], metrics=["Recall", "NDCG", "GAUC"])
        values.update(overrides)
        self.values = values
        self.final_config_dict = values

    def __getitem__(self, key):
        return self.values.get(key)


def make_batch(losses, item_ids=None) -> Batch:
    losses = torch.as_tensor(losses, dtype=torch.float32)
    if item_ids is None:
        item_ids = torch.zeros(losses.numel(), dtype=torch.long)
    return Batch(losses=losses, item_ids=torch.as_tensor(item_ids), epoch=0, epoch_fraction=0.0)


# --------------------------------------------------------------------------------------------
# registry


def test_unknown_scheme_lists_all_six(main_only):
    with pytest.raises(ValueError) as info:
        SCHEMES.get("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in MAIN_SCHEMES:
        assert name in message
    assert set(MAIN_SCHEMES) <= set(SCHEMES.names())
    assert "l2rw" not in message  # experimental: registered only by its package


def test_builtin_names_map_to_their_classes():
    assert SCHEMES.get("default") is DefaultScheme
    assert SCHEMES.get("heuristic") is HeuristicScheme
    assert SCHEMES.get("adt_tl") is TruncatedLossScheme
    assert SCHEMES.get("adt_rl") is ReweightedLossScheme
    for name in MAIN_SCHEMES:
        assert SCHEMES.get(name).name == name


def test_register_custom_scheme():
    name = "unit_test_halves"
    try:

        @register_scheme(name)
        class Halves(WeightingScheme):
            def weights(self, batch):
                return torch.full_like(batch.losses, 0.5)

        assert name in SCHEMES
        assert SCHEMES.get(name) is Halves
        assert Halves.name == name
        scheme = SCHEMES.get(name)(FakeConfig(), CPU)
        assert torch.equal(scheme.weights(make_batch([1.0, 2.0])), torch.tensor([0.5, 0.5]))
        # registering the same class again is harmless, another class under the name is not
        register_scheme(name)(Halves)

        class Other(WeightingScheme):
            pass

        with pytest.raises(ValueError, match="already registered"):
            register_scheme(name)(Other)
    finally:
        SCHEMES._entries.pop(name, None)
    assert name not in SCHEMES


def test_default_is_unweighted():
    scheme = SCHEMES.get("default")(FakeConfig(), CPU)
    assert scheme.weights(make_batch([0.3, 4.0])) is None
    assert scheme.after_evaluation({"gauc": 0.5}, 0) == {}
    assert scheme.state_dict() == {}


# --------------------------------------------------------------------------------------------
# heuristic: inverse item frequency, mean weight 1 over the training samples


def test_inverse_frequency_single_item():
    table = inverse_frequency_weights(torch.tensor([2, 2, 2]), 4)
    assert torch.equal(table, torch.tensor([0.0, 0.0, 1.0, 0.0]))


def test_inverse_frequency_exact_values():
    items = torch.tensor([1, 1, 1, 2, 3, 3])
    table = inverse_frequency_weights(items, 5)
    # N = 6 samples, 3 distinct items: w_i = 6 / (3 * f_i); items 0 and 4 never occur
    expected = torch.tensor([0.0, 6 / (3 * 3), 6 / (3 * 1), 6 / (3 * 2), 0.0])
    assert table.dtype == torch.float32
    torch.testing.assert_close(table, expected, rtol=0, atol=0)
    assert table[items].double().mean().item() == pytest.approx(
        1.0, abs=float_tolerance(torch.float32)
    )


def test_inverse_frequency_uniform_items_all_one():
    items = torch.tensor([1, 2, 3, 1, 2, 3])
    assert torch.equal(inverse_frequency_weights(items, 4), torch.tensor([0.0, 1.0, 1.0, 1.0]))


def test_heuristic_scheme_setup_and_lookup():
    dataset = SimpleNamespace(
        inter_feat={"item_id": torch.tensor([1, 1, 1, 2, 3, 3])}, iid_field="item_id", item_num=5
    )
    scheme = SCHEMES.get("heuristic")(FakeConfig(), CPU)
    scheme.setup(dataset)
    weights = scheme.weights(make_batch([9.0, 9.0, 9.0, 9.0, 9.0], item_ids=[3, 1, 4, 2, 1]))
    torch.testing.assert_close(weights, torch.tensor([1.0, 2 / 3, 0.0, 2.0, 2 / 3]), rtol=0, atol=0)
    # the weight depends on the item only, never on the loss
    again = scheme.weights(make_batch([0.0, 1.0, 2.0, 3.0, 4.0], item_ids=[3, 1, 4, 2, 1]))
    assert torch.equal(weights, again)


# --------------------------------------------------------------------------------------------
# adt_tl: truncated loss


def test_drop_rate_schedule_edges():
    assert drop_rate_at(0, 0.2, 11) == 0.0
    assert drop_rate_at(10, 0.2, 11) == pytest.approx(0.2)
    assert drop_rate_at(11, 0.2, 11) == 0.2
    assert drop_rate_at(10**6, 0.2, 11) == 0.2
    # a single gradual step: 0 at the first iteration (np.linspace(0, max, 1) == [0]), max after
    assert drop_rate_at(0, 0.3, 1) == 0.0
    assert drop_rate_at(1, 0.3, 1) == 0.3
    assert drop_rate_at(5, 0.0, 11) == 0.0


def test_drop_rate_schedule_is_linspace():
    schedule = np.linspace(0, 0.2, 11)
    for iteration, expected in enumerate(schedule):
        assert drop_rate_at(iteration, 0.2, 11) == pytest.approx(expected, abs=1e-12)
    assert drop_rate_at(5, 0.2, 11) == pytest.approx(0.1, abs=1e-12)


def test_truncation_no_drop_all_one():
    losses = torch.tensor([0.5, 3.0, 1.0, 2.0])
    assert torch.equal(truncation_weights(losses, 0.0), torch.ones(4))


def test_truncation_drops_largest():
    losses = torch.tensor([0.3, 5.0, 0.1, 0.7, 9.0, 0.2, 0.4, 0.9, 0.6, 0.8])
    weights = truncation_weights(losses, 0.2)
    expected = torch.full((10,), 10 / 8)
    expected[[1, 4]] = 0.0  # the two largest losses (5.0 and 9.0)
    torch.testing.assert_close(weights, expected, rtol=0, atol=0)
    assert weights.sum().item() == pytest.approx(10.0)


def test_truncation_keeps_at_least_one():
    losses = torch.tensor([3.0, 1.0, 2.0])
    weights = truncation_weights(losses, 0.9)  # int(0.1 * 3) = 0 -> still keep the smallest
    assert torch.equal(weights, torch.tensor([0.0, 3.0, 0.0]))


def test_truncated_scheme_iteration_counter():
    scheme = SCHEMES.get("adt_tl")(FakeConfig(adt_max_drop_rate=0.5, adt_num_gradual=3), CPU)
    losses = [4.0, 1.0, 3.0, 2.0]
    # rates 0, 0.25, 0.5, 0.5 -> keep 4, 3, 2, 2 of the 4 samples
    expected = [
        [1.0, 1.0, 1.0, 1.0],
        [0.0, 4 / 3, 4 / 3, 4 / 3],
        [0.0, 2.0, 0.0, 2.0],
        [0.0, 2.0, 0.0, 2.0],
    ]
    for step, row in enumerate(expected):
        assert scheme.iteration == step
        torch.testing.assert_close(
            scheme.weights(make_batch(losses)), torch.tensor(row), rtol=0, atol=0
        )
    assert scheme.iteration == 4
    assert scheme.state_dict() == {"iteration": 4}


def test_truncated_scheme_state_round_trip():
    config = FakeConfig(adt_max_drop_rate=0.5, adt_num_gradual=3)
    first = SCHEMES.get("adt_tl")(config, CPU)
    for _ in range(2):
        first.weights(make_batch([4.0, 1.0, 3.0, 2.0]))
    resumed = SCHEMES.get("adt_tl")(config, CPU)
    resumed.load_state_dict(first.state_dict())
    assert resumed.iteration == 2
    # the resumed scheme continues at drop rate 0.5, not at 0
    assert torch.equal(
        resumed.weights(make_batch([4.0, 1.0, 3.0, 2.0])), torch.tensor([0.0, 2.0, 0.0, 2.0])
    )
    assert torch.equal(
        first.weights(make_batch([4.0, 1.0, 3.0, 2.0])), torch.tensor([0.0, 2.0, 0.0, 2.0])
    )


@pytest.mark.parametrize(
    "key, value",
    [
        ("adt_max_drop_rate", 1.5),
        ("adt_max_drop_rate", 1.0),
        ("adt_max_drop_rate", -0.1),
        ("adt_max_drop_rate", "0.2"),
        ("adt_num_gradual", 0),
        ("adt_num_gradual", -5),
        ("adt_num_gradual", 2.5),
        ("adt_num_gradual", True),
    ],
)
def test_truncated_scheme_rejects_bad_config(key, value):
    with pytest.raises(ValueError, match=key):
        SCHEMES.get("adt_tl")(FakeConfig(**{key: value}), CPU)


def test_missing_key_is_reported():
    config = FakeConfig()
    del config.values["adt_num_gradual"]
    with pytest.raises(ValueError, match="'adt_num_gradual' is missing"):
        SCHEMES.get("adt_tl")(config, CPU)


# --------------------------------------------------------------------------------------------
# adt_rl: reweighted loss


def test_reweighted_beta_zero_all_one():
    scheme = SCHEMES.get("adt_rl")(FakeConfig(adt_beta=0.0), CPU)
    assert torch.equal(scheme.weights(make_batch([0.0, 1.0, 7.5])), torch.ones(3))


def test_reweighted_exact_values():
    scheme = SCHEMES.get("adt_rl")(FakeConfig(adt_beta=0.2), CPU)
    losses = torch.tensor([0.0, 1.0, 2.5, 10.0])
    weights = scheme.weights(make_batch(losses))
    assert torch.equal(weights, torch.exp(-0.2 * losses))
    expected = torch.tensor([1.0, math.exp(-0.2), math.exp(-0.5), math.exp(-2.0)])
    assert_float_close(weights, expected)
    # p^beta with p = exp(-loss): the larger the loss, the smaller the weight
    assert bool((weights[1:] < weights[:-1]).all())


@pytest.mark.parametrize("value", [-0.1, "0.2", None])
def test_reweighted_rejects_bad_beta(value):
    with pytest.raises(ValueError, match="adt_beta"):
        SCHEMES.get("adt_rl")(FakeConfig(adt_beta=value), CPU)


# --------------------------------------------------------------------------------------------
# heuristic_alpha: weight proportional to f^-alpha, mean 1 over the training samples


def test_tempered_inverse_frequency_exact_values():
    items = torch.tensor([1, 1, 1, 1, 2, 3, 3])  # f = 4, 1, 2 over N = 7 samples
    # alpha = 0.5: sum_j f_j^(1 - alpha) = 2 + 1 + sqrt(2); w_i = 7 f_i^-0.5 / that
    norm = 3 + math.sqrt(2)
    expected = torch.tensor([0.0, 7 / 2 / norm, 7 / norm, 7 / math.sqrt(2) / norm, 0.0])
    table = inverse_frequency_weights(items, 5, alpha=0.5)
    eps = torch.finfo(torch.float32).eps
    torch.testing.assert_close(table, expected.float(), rtol=2 * eps, atol=0)
    assert table[items].double().mean().item() == pytest.approx(1.0, abs=8 * eps)


def test_alpha_zero_is_default_and_one_is_the_paper():
    items = torch.tensor([1, 1, 1, 2, 3, 3])
    assert torch.equal(
        inverse_frequency_weights(items, 5, alpha=0.0), torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0])
    )
    torch.testing.assert_close(
        inverse_frequency_weights(items, 5, alpha=1.0),
        torch.tensor([0.0, 6 / 9, 2.0, 1.0, 0.0]),
        rtol=torch.finfo(torch.float32).eps,
        atol=0,
    )


def test_heuristic_scheme_reads_alpha():
    dataset = SimpleNamespace(
        inter_feat={"item_id": torch.tensor([1, 1, 1, 1, 2])}, iid_field="item_id", item_num=3
    )
    scheme = SCHEMES.get("heuristic")(FakeConfig(heuristic_alpha=2.0), CPU)
    scheme.setup(dataset)
    # f = 4, 1; sum_j f_j^-1 = 1.25; w = 5 f^-2 / 1.25 -> 0.25 and 4
    assert torch.equal(
        scheme.weights(make_batch([1.0, 1.0], item_ids=[1, 2])), torch.tensor([0.25, 4.0])
    )


@pytest.mark.parametrize("value", [-0.5, "1", None, True])
def test_heuristic_rejects_bad_alpha(value):
    with pytest.raises(ValueError, match="'heuristic_alpha'"):
        SCHEMES.get("heuristic")(FakeConfig(heuristic_alpha=value), CPU)


# --------------------------------------------------------------------------------------------
# adt_gradual_unit: the drop-rate schedule counted in epochs


def test_truncated_schedule_in_epochs():
    scheme = SCHEMES.get("adt_tl")(
        FakeConfig(adt_max_drop_rate=0.5, adt_num_gradual=1, adt_gradual_unit="epoch"), CPU
    )
    scheme.batches_per_epoch = 3  # the trainer sets it before setup
    scheme.setup(None)
    assert scheme.gradual_iterations == 3
    losses = [4.0, 1.0, 3.0, 2.0]
    # rates 0, 0.25, 0.5 over the first epoch's 3 batches (linspace(0, 0.5, 3)), then 0.5
    keeps = [4, 3, 2, 2]
    for keep in keeps:
        assert int((scheme.weights(make_batch(losses)) > 0).sum()) == keep


def test_truncated_schedule_in_iterations_is_the_default():
    scheme = SCHEMES.get("adt_tl")(FakeConfig(), CPU)
    scheme.batches_per_epoch = 27
    scheme.setup(None)
    assert scheme.gradual_unit == "iteration" and scheme.gradual_iterations == 30000


def test_truncated_schedule_in_epochs_needs_batches_per_epoch():
    scheme = SCHEMES.get("adt_tl")(FakeConfig(adt_gradual_unit="epoch"), CPU)
    with pytest.raises(ValueError, match="batches per epoch"):
        scheme.setup(None)


@pytest.mark.parametrize("value", ["epochs", "", None, 1])
def test_truncated_rejects_bad_unit(value):
    with pytest.raises(ValueError, match="'adt_gradual_unit'"):
        SCHEMES.get("adt_tl")(FakeConfig(adt_gradual_unit=value), CPU)
