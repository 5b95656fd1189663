"""What a scheme learns from after each validation (``AutoDenoiseTrainer._valid_epoch``).

Where the data pipeline made a guide loader (``TrainingData.guide``: the guide part of a
guide/select split, or every clean validation interaction under ``user_first``, whose validation
loader holds one query per user) the scheme learns from it, else from the validation pass itself;
validation selects. The GAUC reward and the per-user AUCs of ``needs_user_rewards`` come from the
full-sort scores (``per_user.CleanAUC``, cheaper than RecBole's full ranking): collected during
the validation pass where that is their source, else from one pass over the guide loader. Any
other reward metric is RecBole's evaluation of the guide loader.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from recbole_autodenoise.controller import parse_reward_metric
from recbole_autodenoise.data.dataloader import InteractionFullSortEvalDataLoader
from recbole_autodenoise.evaluation.metrics import ensure_metric
from recbole_autodenoise.evaluation.per_user import CleanAUC


def reward_key(config: Any, scheme: Any) -> str | None:
    """The metric ``scheme``'s reward reads (``reward_metric``: 'gauc', 'ndcg@20', ...), or
    ``None`` for a scheme without ``needs_reward``. A metric RecBole computes joins ``metrics``
    (``config`` changes); GAUC is computed here (``clean_auc``)."""
    if not scheme.needs_reward:
        return None
    key = parse_reward_metric(config["reward_metric"], list(config["topk"] or []))
    if key != "gauc":
        ensure_metric(config, key)
    return key


def accumulator(trainer) -> CleanAUC:
    """An empty clean-AUC accumulator over the training data's users."""
    return CleanAUC(trainer.train_data._dataset.user_num, trainer.model.USER_ID, trainer.device)


@torch.no_grad()
def clean_auc(trainer, loader) -> tuple[float, torch.Tensor]:
    """RecBole's GAUC over ``loader`` and each user's mean AUC ([num_users], NaN where none),
    from the same full-sort scores as RecBole's evaluation, without its full ranking (a test
    checks the equality with RecBole's GAUC)."""
    trainer.model.eval()
    found = accumulator(trainer)
    # one query per interaction of a general model: the same pairs from one score row per user
    by_user = isinstance(loader, InteractionFullSortEvalDataLoader)
    batches = loader.user_batches() if by_user else loader
    for batched_data in batches:
        found.add(*trainer._full_sort_batch_eval(batched_data))
    return found.result()


class RewardPass:
    """One validation's reward for ``trainer``'s scheme, from ``guide`` (``None``: from the
    validation pass). ``collector``: where the validation pass must collect clean AUCs, else
    ``None``."""

    def __init__(self, trainer, guide) -> None:
        self.trainer, self.guide = trainer, guide
        self.own_gauc = trainer.reward_key == "gauc"
        self.wants_auc = self.own_gauc or trainer.scheme.needs_user_rewards
        self.collector = accumulator(trainer) if self.wants_auc and guide is None else None

    def learn_from(
        self, valid_result: dict[str, Any], evaluate: Callable[[Any], tuple[float, dict[str, Any]]]
    ) -> tuple[Any, Any]:
        """(what the scheme learns from, the guide loader's score where RecBole evaluated it, else
        ``None``), after the validation pass gave ``valid_result``; ``evaluate``: RecBole's
        ``_valid_epoch`` of a loader. Hands the per-user AUCs to a scheme that needs them."""
        trainer = self.trainer
        if self.wants_auc:
            if self.collector is not None:
                gauc, per_user = self.collector.result()
            else:
                gauc, per_user = clean_auc(trainer, self.guide)
            if trainer.scheme.needs_user_rewards:
                trainer.scheme.observe_user_rewards(per_user)
            if self.own_gauc:
                return {**(valid_result if self.guide is None else {}), "gauc": gauc}, None
            return valid_result, None
        if trainer.reward_key is not None and self.guide is not None:
            guide_score, guide_result = evaluate(self.guide)
            return guide_result, guide_score
        return valid_result, None
