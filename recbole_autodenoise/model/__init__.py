"""The plugin's own RecBole models and the model lookup: this package first, then RecBole's (as
RecBole-GNN does). RecBole's ``Config`` accepts the class in place of a name."""

from __future__ import annotations

from recbole_autodenoise.model.softmax_mf import SoftmaxMF

PLUGIN_MODELS = {"SoftmaxMF": SoftmaxMF}


def get_model(name: str) -> type:
    """The model class called ``name``: one of ``PLUGIN_MODELS``, else RecBole's; an unknown name
    fails with a ValueError naming the close ones."""
    from recbole_autodenoise.config import check_model

    return check_model(name)


__all__ = ["PLUGIN_MODELS", "SoftmaxMF", "get_model"]
