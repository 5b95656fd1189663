"""How the AutoDenoise controller gets credit for its actions (``controller_credit``).

One small :class:`Credit` class per mode, registered by name: ``epoch`` (the paper's Eq. 10, one
REINFORCE update per validation), ``supervised`` (a diagnostic: the controller fitted to the
ratings, the best its state allows) and ``explicit`` (the controller fitted to the validation
period's explicit ratings, high and low). A credit sees its controller through a
:class:`ControllerHandle`, never the scheme. A new mode is one more class with
``@register_credit("name")``.
"""

# importing the built-in modes registers them
from recbole_autodenoise.controller.credit import epoch, explicit, supervised  # noqa: F401
from recbole_autodenoise.controller.credit.base import (
    CREDITS,
    ControllerHandle,
    Credit,
    register_credit,
)

__all__ = ["CREDITS", "ControllerHandle", "Credit", "register_credit"]
