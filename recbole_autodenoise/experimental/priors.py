"""``controller_prior: adt_tl``: the controller's weight times ADT-TL's 0/1 truncation (0 for the
batch's largest losses on its drop-rate schedule, the ``adt_*`` keys), mean 1 per batch; the
schedule is saved with the controller."""

from __future__ import annotations

from recbole_autodenoise.controller.prior import PRIORS
from recbole_autodenoise.schemes.adt_tl import TruncatedLossScheme

PRIORS.register("adt_tl")(TruncatedLossScheme)
