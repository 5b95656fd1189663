"""AutoDenoise-H: hard actions, weight k in {0, ..., A-1} (drop, keep, duplicate for A = 3)."""

from __future__ import annotations

from recbole_autodenoise.checks import is_int
from recbole_autodenoise.controller.policy import HardPolicy
from recbole_autodenoise.controller.scheme import ControllerScheme
from recbole_autodenoise.options import Option, Rule, declare
from recbole_autodenoise.schemes.base import register_scheme


def check_no_prior(config) -> None:
    """The hard controller's weights cannot start at 1 for every sample: no prior."""
    prior = config["controller_prior"]
    if prior != "none":
        raise ValueError(
            f"config key 'controller_prior' = {prior!r} is not supported by autodenoise_h (its "
            "weights 0, 1, 2, ... cannot start at 1 for every sample); allowed: 'none', or use "
            "autodenoise_s"
        )


@register_scheme("autodenoise_h")
class HardAutoDenoise(ControllerScheme):
    OPTIONS = declare(
        Option(
            "controller_num_actions",
            "int",
            3,
            "AutoDenoise-H: A actions, action k gives weight k",
            lambda v: is_int(v) and v >= 2,
            "an integer >= 2 (action k gives weight k)",
        ),
    )
    RULES = (Rule(("controller_prior",), "none with autodenoise_h", check_no_prior),)

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.num_actions = config["controller_num_actions"]

    def build_policy(self, input_size: int) -> HardPolicy:
        return HardPolicy(input_size, self.hidden_size, self.num_actions)
