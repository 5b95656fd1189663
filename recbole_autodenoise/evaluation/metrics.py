"""F1@K as a first-class RecBole metric (RecBole 1.2.1 ships Precision and Recall but no F1), and
the checks of the evaluated metrics against the model and the reward."""

from __future__ import annotations

import numpy as np
from recbole.evaluator import register
from recbole.evaluator.base_metric import TopkMetric


class F1(TopkMetric):
    r"""F1_ is the harmonic mean of Precision@K and Recall@K, computed per query and averaged.

    .. _F1: https://en.wikipedia.org/wiki/F-score

    .. math::
       \mathrm {F1@K} = \frac{1}{|U|}\sum_{u \in U}
       \frac{2 \cdot P_u@K \cdot R_u@K}{P_u@K + R_u@K},\quad
       P_u@K = \frac{|\hat{R}(u) \cap R(u)|}{K},\;
       R_u@K = \frac{|\hat{R}(u) \cap R(u)|}{|R(u)|}

    A query without a hit counts 0. With one target per query (the paper's per-interaction
    protocol) this reduces to :math:`2 \cdot \mathrm{Recall@K} / (K + 1)`.
    """

    def __init__(self, config):
        super().__init__(config)

    def calculate_metric(self, dataobject):
        pos_index, pos_len = self.used_info(dataobject)
        result = self.metric_info(pos_index, pos_len)
        return self.topk_result("f1", result)

    def metric_info(self, pos_index, pos_len):
        hits = np.cumsum(pos_index, axis=1)
        precision = hits / np.arange(1, pos_index.shape[1] + 1)
        recall = hits / pos_len.reshape(-1, 1)
        total = precision + recall
        return np.divide(
            2 * precision * recall, total, out=np.zeros_like(total, dtype=float), where=total > 0
        )


PLUGIN_METRICS = {"f1": F1}


def register_metrics() -> None:
    """Add our metrics to RecBole's registry dicts (in place, so Config and Evaluator see them)."""
    for name, metric_cls in PLUGIN_METRICS.items():
        register.metrics_dict[name] = metric_cls
        register.metric_information[name] = metric_cls.metric_need
        register.metric_types[name] = metric_cls.metric_type
        if metric_cls.smaller and name not in register.smaller_metrics:
            register.smaller_metrics.append(name)


def check_metrics(config, model) -> None:
    """``topk`` within the model's items and ``valid_metric`` among the evaluated ``metrics``."""
    num_items = getattr(model, "n_items", None)  # n_items counts the padding id
    if num_items is not None and max(config["topk"] or [0]) >= num_items:
        raise ValueError(
            f"config key 'topk' = {config['topk']} asks for more items than the data "
            f"set has ({num_items - 1})"
        )
    valid_name = str(config["valid_metric"]).split("@")[0].lower()
    if valid_name not in [m.lower() for m in config["metrics"]]:
        raise ValueError(
            f"config key 'valid_metric' = {config['valid_metric']!r} is not among the evaluated "
            f"metrics {list(config['metrics'])}"
        )


def ensure_metric(config, metric_key: str) -> None:
    """A reward RecBole computes on validation: its metric joins ``metrics`` if absent."""
    name = metric_key.split("@")[0]
    if name not in [m.lower() for m in config["metrics"]]:
        config["metrics"] = list(config["metrics"]) + [name]
