"""The baseline schemes a controller can start from (``controller_prior``).

The controller's weight is multiplied by the prior scheme's and each batch is rescaled to mean 1
(``schemes.base.mean_one``). Every registered prior is built with the run's config, so each of its
keys is checked whichever prior the run uses. ``adt_rl``: ADT-RL's exp(-adt_beta * loss).
"""

from __future__ import annotations

from recbole_autodenoise.registry import Registry
from recbole_autodenoise.schemes.adt_rl import ReweightedLossScheme
from recbole_autodenoise.schemes.base import WeightingScheme

PRIORS: Registry[type[WeightingScheme]] = Registry(
    "controller_prior", experimental=("adt_tl",), sort=False
)
PRIORS.register("adt_rl")(ReweightedLossScheme)
