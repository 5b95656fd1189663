"""Data protocol: the paper's clean-feedback datasets and evaluation dataloaders, plus optional
noise injection (``noise_rate``) and the guide/select split of clean validation
(``clean_valid_guide_ratio``); ``prepare_data`` returns them as one ``DataBundle``."""

from recbole_autodenoise.data.bundle import DataBundle, TrainingData
from recbole_autodenoise.data.dataloader import (
    EVAL_PROTOCOLS,
    InteractionFullSortEvalDataLoader,
    UserFirstFullSortEvalDataLoader,
    data_preparation,
    first_rows,
    prepare_data,
    test_protocols,
)
from recbole_autodenoise.data.dataset import CleanDataset, CleanSequentialDataset, create_dataset
from recbole_autodenoise.data.noise import INJECTED_FIELD, NOISE_KINDS

__all__ = [
    "EVAL_PROTOCOLS",
    "INJECTED_FIELD",
    "NOISE_KINDS",
    "CleanDataset",
    "CleanSequentialDataset",
    "DataBundle",
    "InteractionFullSortEvalDataLoader",
    "TrainingData",
    "UserFirstFullSortEvalDataLoader",
    "create_dataset",
    "data_preparation",
    "first_rows",
    "prepare_data",
    "test_protocols",
]
