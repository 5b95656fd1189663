"""How the AutoDenoise controller gets credit for its actions (``controller_credit``).

One small :class:`Credit` class per mode, registered by name: ``epoch`` (the paper's Eq. 10, one
REINFORCE update per validation), ``user`` (per-user clean-validation AUC against per-user
baselines), ``meta`` (per-batch meta-gradient through a virtual step on the clean set) and
``supervised`` (a diagnostic: the controller fitted to the ratings, the best its state allows) and
``explicit`` (the controller fitted to the validation period's explicit ratings, high and low). A new mode is one more class with ``@register_credit("name")``.
"""

from recbole_autodenoise.credit import epoch, explicit, meta, supervised, user  # noqa: F401  (registers the built-in modes)
from recbole_autodenoise.credit.base import CREDITS, Credit, register_credit

__all__ = ["CREDITS", "Credit", "register_credit"]
