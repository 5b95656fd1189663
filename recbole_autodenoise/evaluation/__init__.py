"""Evaluation: RecBole's evaluator plus the F1 metric the paper reports."""

from recbole_autodenoise.evaluation.metrics import F1, register_metrics

__all__ = ["F1", "register_metrics"]
