"""Data protocol: the paper's clean-feedback datasets and evaluation dataloaders."""

from recbole_autodenoise.data.dataloader import EVAL_PROTOCOLS, InteractionFullSortEvalDataLoader, data_preparation
from recbole_autodenoise.data.dataset import CleanDataset, CleanSequentialDataset, create_dataset

__all__ = [
    "EVAL_PROTOCOLS",
    "CleanDataset",
    "CleanSequentialDataset",
    "InteractionFullSortEvalDataLoader",
    "create_dataset",
    "data_preparation",
]
