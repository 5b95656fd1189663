"""The plugin's own RecBole models and the model lookup: this package first, then RecBole's (as
RecBole-GNN does). RecBole's ``Config`` accepts the class in place of a name."""

from __future__ import annotations

import difflib
import importlib
import inspect
from functools import lru_cache
from typing import Any

from recbole_autodenoise.model.pointwise import CDAEPointwise, LightGCNPointwise
from recbole_autodenoise.model.softmax_mf import SoftmaxMF

PLUGIN_MODELS = {
    "SoftmaxMF": SoftmaxMF,
    "LightGCNPointwise": LightGCNPointwise,
    "CDAEPointwise": CDAEPointwise,
}

# RecBole's model packages, without exlib_recommender (its import needs lightgbm and xgboost)
MODEL_PACKAGES = (
    "general_recommender",
    "sequential_recommender",
    "context_aware_recommender",
    "knowledge_aware_recommender",
)


@lru_cache(maxsize=1)
def recbole_model_names() -> tuple[str, ...]:
    """The model classes of RecBole's model packages (``get_model`` finds each by its name)."""
    from recbole.model.abstract_recommender import AbstractRecommender

    names = set()
    for package in MODEL_PACKAGES:
        module = importlib.import_module(f"recbole.model.{package}")
        names |= {
            name
            for name, obj in vars(module).items()
            if inspect.isclass(obj)
            and issubclass(obj, AbstractRecommender)
            and obj.__module__.startswith(f"recbole.model.{package}.")
        }
    return tuple(sorted(names))


def check_model(model: Any) -> type:
    """The model class called ``model``: the plugin's own first, then RecBole's; an unknown name
    fails naming the close ones (never RecBole's import errors of its optional models)."""
    if isinstance(model, str) and model in PLUGIN_MODELS:
        return PLUGIN_MODELS[model]
    names = recbole_model_names()
    if isinstance(model, str) and model in names:
        from recbole.utils import get_model

        return get_model(model)
    known = sorted(names + tuple(PLUGIN_MODELS))
    by_case = [name for name in known if name.lower() == str(model).lower()]
    close = by_case or difflib.get_close_matches(str(model), known, n=3, cutoff=0.6)
    hint = (
        f"did you mean {' or '.join(repr(name) for name in close)}?"
        if close
        else f"RecBole's models include {', '.join(names[:12])}, ... (recbole.model); "
        f"the plugin's: {', '.join(sorted(PLUGIN_MODELS))}"
    )
    raise ValueError(f"unknown model {model!r}: not a RecBole or plugin model; {hint}")


def get_model(name: str) -> type:
    """The model class called ``name``: one of ``PLUGIN_MODELS``, else RecBole's; an unknown name
    fails with a ValueError naming the close ones."""
    return check_model(name)


__all__ = [
    "PLUGIN_MODELS",
    "CDAEPointwise",
    "LightGCNPointwise",
    "SoftmaxMF",
    "check_model",
    "get_model",
]
