"""The method: AutoDenoise's controller in one package.

- ``policy``: the controller's networks (hard and soft heads) and the REINFORCE accumulator;
- ``state``: what the controller sees of a sample (``controller_state``);
- ``credit``: how it learns (``controller_credit``), through a narrow ``ControllerHandle``;
- ``prior``: a baseline scheme it can start from (``controller_prior``);
- ``scheme``: ``ControllerScheme``, the weighting scheme the trainer calls, with ``hard``
  (``autodenoise_h``) and ``soft`` (``autodenoise_s``) on top.

Importing the package registers both schemes (``schemes.SCHEMES``), the credits, the states and
the priors; ``import recbole_autodenoise`` does.
"""

from recbole_autodenoise.controller.credit import CREDITS, ControllerHandle, Credit, register_credit
from recbole_autodenoise.controller.hard import HardAutoDenoise
from recbole_autodenoise.controller.policy import (
    INV_SOFTPLUS_OF_ONE,
    HardPolicy,
    Policy,
    ReinforceAccumulator,
    SoftPolicy,
)
from recbole_autodenoise.controller.prior import PRIORS
from recbole_autodenoise.controller.scheme import ControllerScheme, parse_reward_metric
from recbole_autodenoise.controller.soft import SoftAutoDenoise
from recbole_autodenoise.controller.state import (
    STATES,
    StateFeatures,
    controller_state,
    register_state,
)

__all__ = [
    "CREDITS",
    "INV_SOFTPLUS_OF_ONE",
    "PRIORS",
    "STATES",
    "ControllerHandle",
    "ControllerScheme",
    "Credit",
    "HardAutoDenoise",
    "HardPolicy",
    "Policy",
    "ReinforceAccumulator",
    "SoftAutoDenoise",
    "SoftPolicy",
    "StateFeatures",
    "controller_state",
    "parse_reward_metric",
    "register_credit",
    "register_state",
]
