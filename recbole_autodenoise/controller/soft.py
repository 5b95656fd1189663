"""AutoDenoise-S: soft actions, weight softplus(w) with w ~ N(mu, sigma^2)."""

from __future__ import annotations

from recbole_autodenoise.checks import positive, read_key
from recbole_autodenoise.controller.policy import SoftPolicy
from recbole_autodenoise.controller.scheme import ControllerScheme
from recbole_autodenoise.schemes.base import register_scheme


@register_scheme("autodenoise_s")
class SoftAutoDenoise(ControllerScheme):
    config_keys = ("controller_init_std",)

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.init_std = read_key(config, "controller_init_std", positive, "a number > 0")

    def build_policy(self, input_size: int) -> SoftPolicy:
        return SoftPolicy(input_size, self.hidden_size, self.init_std)
