"""AutoDenoise-H: hard actions, weight k in {0, ..., A-1} (drop, keep, duplicate for A = 3)."""

from __future__ import annotations

from recbole_autodenoise.checks import read_key
from recbole_autodenoise.controller.policy import HardPolicy
from recbole_autodenoise.controller.scheme import ControllerScheme
from recbole_autodenoise.schemes.base import register_scheme


@register_scheme("autodenoise_h")
class HardAutoDenoise(ControllerScheme):
    config_keys = ("controller_num_actions",)

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.num_actions = read_key(
            config,
            "controller_num_actions",
            lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2,
            "an integer >= 2 (action k gives weight k)",
        )
        if self.prior != "none":
            raise ValueError(
                f"config key 'controller_prior' = {self.prior!r} is not supported by autodenoise_h (its weights "
                "0, 1, 2, ... cannot start at 1 for every sample); allowed: 'none', or use autodenoise_s"
            )

    def build_policy(self, input_size: int) -> HardPolicy:
        return HardPolicy(input_size, self.hidden_size, self.num_actions)
