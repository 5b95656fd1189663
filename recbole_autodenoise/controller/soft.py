"""AutoDenoise-S: soft actions, weight softplus(w) with w ~ N(mu, sigma^2)."""

from __future__ import annotations

from recbole_autodenoise.checks import positive
from recbole_autodenoise.controller.policy import SoftPolicy
from recbole_autodenoise.controller.scheme import ControllerScheme
from recbole_autodenoise.options import Option, declare
from recbole_autodenoise.schemes.base import register_scheme


@register_scheme("autodenoise_s")
class SoftAutoDenoise(ControllerScheme):
    OPTIONS = declare(
        Option(
            "controller_init_std",
            "float",
            0.1,
            "AutoDenoise-S: initial std of the Gaussian before softplus",
            positive,
            "a number > 0",
        ),
    )

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.init_std = config["controller_init_std"]

    def build_policy(self, input_size: int) -> SoftPolicy:
        return SoftPolicy(input_size, self.hidden_size, self.init_std)
