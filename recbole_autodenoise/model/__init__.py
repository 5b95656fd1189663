"""The plugin's own RecBole models and the model lookup: this package first, then RecBole's (as
RecBole-GNN does). RecBole's ``Config`` accepts the class in place of a name."""

from __future__ import annotations

from recbole_autodenoise.model.softmax_mf import SoftmaxMF

PLUGIN_MODELS = {"SoftmaxMF": SoftmaxMF}


def get_model(name: str) -> type:
    """The model class called ``name``: one of ``PLUGIN_MODELS``, else RecBole's."""
    if not isinstance(name, str):
        raise ValueError(f"unknown model {name!r}: expected a model name")
    if name in PLUGIN_MODELS:
        return PLUGIN_MODELS[name]
    from recbole.utils import get_model as recbole_get_model

    try:
        return recbole_get_model(name)
    except ValueError as error:
        raise ValueError(f"unknown model '{name}': {error} (plugin models: {sorted(PLUGIN_MODELS)})") from None
    except (ImportError, AttributeError) as error:
        # RecBole's search ends in exlib_recommender, whose import needs lightgbm and xgboost;
        # a wrongly cased name ("bpr") finds the module but not the class.
        raise ValueError(
            f"unknown model '{name}': not a RecBole model ({type(error).__name__}: {error}); "
            f"plugin models: {sorted(PLUGIN_MODELS)}"
        ) from None


__all__ = ["PLUGIN_MODELS", "SoftmaxMF", "get_model"]
