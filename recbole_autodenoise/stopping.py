"""Early stopping around RecBole's: a minimum number of epochs, and how a run ended.

RecBole stops after ``stopping_step`` validations without gain. ``held_patience`` keeps it from
firing before ``stopping_min_epochs`` epochs have trained, so a run whose first validations happen
to be its best cannot end as an untrained model by accident; ``summary`` says how a run ended.
"""

from __future__ import annotations

from typing import Any


def held_patience(cur_step: int, epoch: int, min_epochs: int, stopping_step: int) -> int:
    """RecBole's patience counter ``cur_step`` after the validation of ``epoch``: before
    ``min_epochs`` epochs have trained, kept one short of running out. The kept count is
    min(true count, stopping_step), so from the minimum on the stop fires exactly where the true
    count exceeds ``stopping_step``."""
    return min(cur_step, stopping_step - 1) if epoch + 1 < min_epochs else cur_step


def summary(
    history: list[dict[str, Any]], epochs: int, bigger: bool, min_epochs: int
) -> dict[str, Any]:
    """How a run ended, from its per-epoch ``history``: ``best_epoch`` (RecBole's rule: the last
    validation at least as good as every earlier one, ``bigger`` is better where true; None
    without validation), ``epochs_trained``, ``hit_epoch_cap`` (it ran all ``epochs``: it may not
    have converged) and ``stopped_early`` (early stopping ended it)."""
    best_epoch, best = None, None
    for record in history:
        score = record.get("valid_score")  # epochs without validation (eval_step > 1) have none
        if score is None:
            continue
        if best is None or (score >= best if bigger else score <= best):
            best_epoch, best = record["epoch"], score
    trained = history[-1]["epoch"] + 1 if history else 0
    return {
        "best_epoch": best_epoch,
        "epochs_trained": trained,
        "hit_epoch_cap": trained >= epochs,
        "stopped_early": 0 < trained < epochs,
        "stopping_min_epochs": min_epochs,
    }
