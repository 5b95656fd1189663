"""Why L2RW does not train SASRec (issue 5): where its weight goes, batch by batch, and the loss a
popularity-only predictor would have on the same training targets.

    python -m benchmarks.l2rw_probe --data-path DATA_DIR [--epochs 2] [--model SASRec]

Prints, per batch: the share of samples whose target item is also a target in that batch's clean
batch, their share of the weight, the mean training loss, the weighted loss and the effective
fraction (Kish) of the weights; then the means and the cross-entropy of predicting every user the
training popularity distribution. Settings as the study (guide/select split 0.5, learning rate
3e-3).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import torch
from recbole.utils import get_model, init_seed

import recbole_autodenoise as rad
from recbole_autodenoise.experimental import l2rw
from recbole_autodenoise.schemes.base import effective_fraction


def popularity_cross_entropy(item_ids: torch.Tensor) -> float:
    """-sum_v p_v log p_v over the training targets: the loss of predicting popularity to
    everyone."""
    counts = torch.bincount(item_ids).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", required=True)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)

    records: list[list[float]] = []
    original = l2rw.LearningToReweight.weights

    def observed(self, batch):
        weights = original(self, batch)
        clean_items = batch.guidance.clean_batch()[batch.guidance.model.ITEM_ID].unique()
        shared = torch.isin(batch.item_ids, clean_items)
        losses = batch.guidance.train_losses.detach()
        records.append(
            [
                float(shared.float().mean()),
                float(weights[shared].sum() / weights.sum()),
                float(losses.mean()),
                float((weights * losses).mean()),
                float(effective_fraction(weights)),
            ]
        )
        return weights

    l2rw.LearningToReweight.weights = observed
    try:
        config = rad.make_config(
            args.model,
            args.dataset,
            config_dict={
                "data_path": args.data_path,
                "epochs": args.epochs,
                "show_progress": False,
                "state": "WARNING",
                "denoise_scheme": "l2rw",
                "learning_rate": 3e-3,
                "clean_valid_guide_ratio": 0.5,
            },
        )
        init_seed(config["seed"], config["reproducibility"])
        train, valid, _ = rad.data_preparation(config, rad.create_dataset(config))
        init_seed(config["seed"], config["reproducibility"])
        model = get_model(config["model"])(config, train._dataset).to(config["device"])
        rad.AutoDenoiseTrainer(config, model).fit(train, valid, saved=False)
    finally:
        l2rw.LearningToReweight.weights = original
    header = ["shared targets", "their weight", "mean loss", "weighted loss", "effective fraction"]
    print("batch | " + " | ".join(header))
    for index, row in enumerate(records):
        print(f"{index} | " + " | ".join(f"{v:.3f}" for v in row))
    means = [sum(r[k] for r in records) / len(records) for k in range(len(header))]
    print("mean | " + " | ".join(f"{v:.3f}" for v in means))
    targets = train._dataset.inter_feat[train._dataset.iid_field]
    print(
        f"popularity-only cross-entropy on the {len(targets)} training targets: "
        f"{popularity_cross_entropy(targets):.3f} nats"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
