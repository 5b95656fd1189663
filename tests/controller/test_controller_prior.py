"""The controller's prior (``controller_prior: adt_rl``): ADT-RL's weights times the controller's,
at mean 1; the prior's refusals and bad values without the experimental package. Shared helpers
for the controller's state and prior tests
(tests/experimental/test_experimental_loss_features.py)."""

from __future__ import annotations

import pytest
import torch
from recbole.data.interaction import Interaction
from torch.nn import functional as F

import recbole_autodenoise  # noqa: F401  (compat patches, metric registration)
from recbole_autodenoise.schemes import SCHEMES, Batch
from recbole_autodenoise.schemes.base import mean_one
from tests.conftest import assert_float_close, float_tolerance
from tests.controller.test_controller import CPU, FakeConfig


class FakeTrainSet:
    """What ``setup`` reads from RecBole's training dataset."""

    uid_field, iid_field = "user_id", "item_id"

    def __init__(self, users: list[int], items: list[int], user_num: int, item_num: int) -> None:
        self.inter_feat = Interaction(
            {"user_id": torch.tensor(users), "item_id": torch.tensor(items)}
        )
        self.user_num, self.item_num = user_num, item_num


def batch_of(rows, users, items, losses, epoch=0, epoch_fraction=0.0) -> Batch:
    return Batch(
        losses=torch.tensor(losses, dtype=torch.float32),
        item_ids=torch.tensor(items),
        epoch=epoch,
        epoch_fraction=epoch_fraction,
        user_ids=torch.tensor(users),
        row_ids=torch.tensor(rows),
    )


def soft_batch(losses: list[float]) -> Batch:
    return Batch(
        losses=torch.tensor(losses),
        item_ids=torch.zeros(len(losses), dtype=torch.long),
        epoch=0,
        epoch_fraction=0.0,
        user_repr=torch.randn(len(losses), 3),
        item_repr=torch.randn(len(losses), 3),
    )


def replayed_outputs(scheme, start: torch.Tensor, size: int, draws: int) -> list[torch.Tensor]:
    """The controller's softplus outputs for ``draws`` batches of ``size``, replayed from the
    generator state ``start`` (epoch credit learns nothing between batches and the heads are zero,
    so the output is state-free)."""
    gen = torch.Generator()
    gen.set_state(start)
    dist = scheme.policy.distribution(torch.zeros(size, scheme.input_size))
    return [
        F.softplus(dist.mean + dist.stddev * torch.randn(size, generator=gen)) for _ in range(draws)
    ]


def test_adt_rl_prior_times_the_controller_at_mean_one():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(controller_prior="adt_rl", adt_beta=0.7), CPU)
    losses = torch.tensor([0.1, 0.5, 2.0, 3.0])
    start = scheme.generator.get_state()
    weights = scheme.weights(soft_batch(losses.tolist()))
    raw = torch.exp(-0.7 * losses) * replayed_outputs(scheme, start, 4, 1)[0]
    assert_float_close(weights, raw * 4 / raw.sum())
    assert_float_close(weights.mean(), 1.0)


def test_adt_rl_prior_starts_at_adt_rl_as_the_noise_vanishes():
    scheme = SCHEMES.get("autodenoise_s")(
        FakeConfig(controller_prior="adt_rl", controller_init_std=1e-6), CPU
    )
    losses = torch.tensor([0.1, 0.5, 2.0, 3.0])
    batch = soft_batch(losses.tolist())
    # the controller outputs softplus(mu + 1e-6 eps) = 1 + O(1e-6 |eps|): ADT-RL's weights rescaled
    # to mean 1
    noise = (
        1e-6 * 10
    )  # |eps| < 10 and softplus' < 1, twice: the weight and the batch mean it is divided by
    atol = 2 * noise * 4 + float_tolerance(torch.float32, 4.0)
    torch.testing.assert_close(
        scheme.weights(batch), mean_one(torch.exp(-0.2 * losses)), rtol=0, atol=atol
    )


def test_hard_controller_refuses_the_adt_rl_prior():
    with pytest.raises(
        ValueError, match="'controller_prior' = 'adt_rl' is not supported by autodenoise_h"
    ):
        SCHEMES.get("autodenoise_h")(FakeConfig(controller_prior="adt_rl"), CPU)


def test_supervised_credit_refuses_the_prior():
    config = FakeConfig(controller_prior="adt_rl", controller_credit="supervised")
    with pytest.raises(ValueError) as error:
        SCHEMES.get("autodenoise_s")(config, CPU)
    assert str(error.value) == (
        "config key 'controller_prior' = 'adt_rl' is not supported with "
        "controller_credit 'supervised' (it fits the ratings alone); "
        "allowed there: 'none'"
    )


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("controller_state", "embeddings", "one of ['paper']"),
        ("controller_state", None, "one of ['paper']"),
        ("controller_prior", "dcf", "one of ['none', 'adt_rl']"),
        ("adt_beta", -1.0, "a number >= 0"),
    ],
)
@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_bad_values_without_experimental(main_only, name, key, value, allowed):
    with pytest.raises(ValueError) as error:
        SCHEMES.get(name)(FakeConfig(**{key: value}), CPU)
    assert str(error.value) == f"config key '{key}' = {value!r} is invalid: expected {allowed}"


@pytest.mark.parametrize(
    "key, value",
    [
        ("controller_state", "loss_features"),
        ("controller_state", "paper_product"),
        ("controller_prior", "adt_tl"),
        ("controller_credit", "user"),
        ("controller_credit", "meta"),
    ],
)
def test_experimental_names_say_how_to_import_them(main_only, key, value):
    with pytest.raises(ValueError) as error:
        SCHEMES.get("autodenoise_s")(FakeConfig(**{key: value}), CPU)
    assert str(error.value) == (
        f"config key {key!r} = {value!r}: {key} {value!r} is experimental: "
        "set experimental: true (command line: --experimental=true; "
        "Python: import recbole_autodenoise.experimental)"
    )
