"""Every RecBole model a user brings: negatives follow ``loss_type``, and the coverage matrix —
each supported model x {default, adt_rl, autodenoise_s} trains one short epoch on a tiny data set
(40 users x 30 items, hand-built) with finite metrics, weights and parameters; refused models give
their reason."""

from __future__ import annotations

import math
import random

import pytest
import torch
from recbole.utils import get_model, init_seed

from recbole_autodenoise import create_dataset, data_preparation, make_config
from recbole_autodenoise.losses import PerSampleLoss
from recbole_autodenoise.trainer import AutoDenoiseTrainer
from tests.conftest import write_inter

# --------------------------------------------------------------------------------------------
# negative sampling follows the model's loss_type


@pytest.mark.parametrize("model", ["NARM", "STAMP", "Caser", "BERT4Rec", "SRGNN", "GCSAN", "GRU4Rec", "SASRec"])
def test_cross_entropy_sequential_models_get_no_negatives(model):
    config = make_config(model, "ml-100k")
    assert config["loss_type"] == "CE"
    assert config["train_neg_sample_args"] == {"distribution": "none", "sample_num": "none", "alpha": "none",
                                               "dynamic": False, "candidate_num": 0}


def test_bpr_loss_type_gets_one_uniform_negative():
    for model, overrides in (("GRU4Rec", {"loss_type": "BPR"}), ("FPMC", {}), ("BPR", {}), ("NeuMF", {})):
        args = make_config(model, "ml-100k", config_dict=overrides)["train_neg_sample_args"]
        assert (args["distribution"], args["sample_num"]) == ("uniform", 1), model


def test_negatives_set_by_the_user_are_kept(tmp_path):
    config = make_config("GRU4Rec", "ml-100k", config_dict={"loss_type": "BPR", "train_neg_sample_args": None})
    assert config["train_neg_sample_args"]["distribution"] == "none"
    # RecBole's own refusal of negatives with a CE loss stays the user's to see
    with pytest.raises(ValueError, match="should be None when the loss_type is CE"):
        make_config("NARM", "ml-100k", config_dict={"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}})
    path = tmp_path / "negatives.yaml"
    path.write_text("train_neg_sample_args:\n  distribution: uniform\n  sample_num: 2\n", encoding="utf-8")
    args = make_config("FPMC", "ml-100k", config_files=[str(path)])["train_neg_sample_args"]
    assert (args["distribution"], args["sample_num"]) == ("uniform", 2)
