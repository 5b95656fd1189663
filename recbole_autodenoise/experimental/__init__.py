"""What docs/research-log.md and docs/results.md report as no gain, kept runnable apart from the
method: nothing here is registered until this package is imported (``import
recbole_autodenoise.experimental``, or the config key ``experimental: true``, which imports it).

Importing it registers

- ``denoise_scheme: l2rw`` (``l2rw``): Learning to Reweight without a controller;
- ``controller_credit: user`` (``user_credit``) and ``meta`` (``meta_credit``, ``meta_step``);
- ``controller_state: paper_product`` (``states``) and ``loss_features`` (``loss_features``);
- ``controller_prior: adt_tl`` (``priors``);
- the explicit credit's ``explicit_canaries`` (``canaries``) and ``explicit_weight_power``
  (``explicit``),

and adds ``properties/experimental.yaml``, their keys and defaults, to the plugin's own.
"""

from recbole_autodenoise.experimental import (  # noqa: F401  (registers them, in this order)
    explicit,
    l2rw,
    meta_credit,
    priors,
    states,
    user_credit,
)
from recbole_autodenoise.experimental import loss_features  # noqa: F401  (after states: its order)
from recbole_autodenoise.registry import EXPERIMENTAL_PROPERTY_FILE, add_property_file

PROPERTY_FILE = EXPERIMENTAL_PROPERTY_FILE
add_property_file(PROPERTY_FILE)
