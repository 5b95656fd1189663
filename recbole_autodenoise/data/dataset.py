"""The paper's clean-feedback protocol (Sec. 5.1) as RecBole dataset classes.

Training keeps *every* interaction as an implicit positive; validation and test keep only the
interactions whose rating is at least ``clean_rating_threshold``. The rating is never a model
feature or label, but it stays in the training rows so the learned weights of true and false
positives can be studied afterwards. Filtering (iterative k-core), the chronological 4:1:1 split
per user and the sequence histories are RecBole's own, driven by ``properties/overall.yaml``.
"""

from __future__ import annotations

import numbers
import os
from urllib.error import URLError

from recbole.data.dataset import Dataset, SequentialDataset
from recbole.utils import ModelType


class CleanFeedbackMixin:
    """Adds the rating checks and the clean filter of validation and test to a RecBole dataset."""

    def __init__(self, config) -> None:
        field = config["clean_rating_field"]
        threshold = config["clean_rating_threshold"]
        if not isinstance(field, str) or not field:
            raise ValueError(f"clean_rating_field must be a field name, got {field!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
            raise ValueError(f"clean_rating_threshold must be a number, got {threshold!r}")
        self.clean_rating_field = field
        self.clean_rating_threshold = float(threshold)
        super().__init__(config)

    def _load_data(self, token, dataset_path):
        super()._load_data(token, dataset_path)
        if self.inter_feat is None or self.clean_rating_field not in self.inter_feat.columns:
            columns = [] if self.inter_feat is None else list(self.inter_feat.columns)
            raise ValueError(
                f"data set [{self.dataset_name}] has no rating field '{self.clean_rating_field}' "
                f"(clean_rating_field) in {os.path.join(dataset_path, token + '.inter')}; "
                f"loaded columns: {columns}. The clean protocol needs explicit ratings: "
                f"add the field to the .inter file and to load_col."
            )

    def _download(self):
        target = os.path.join(self.dataset_path, f"{self.dataset_name}.inter")
        try:
            super()._download()
        except (URLError, OSError, EOFError, ValueError) as error:  # ValueError: a name RecBole can't fetch
            raise FileNotFoundError(
                f"data set [{self.dataset_name}] is not at {target} and could not be downloaded "
                f"({error}). Place a RecBole atomic file there, for example with "
                f"`python -m recbole_autodenoise.prepare RAW_RATINGS_FILE --name {self.dataset_name} "
                f"--data-path {os.path.dirname(os.path.normpath(self.dataset_path))}` "
                f"(MovieLens ratings.csv/ratings.dat, ML-100K u.data or Amazon ratings-only CSV)."
            ) from error

    def build(self):
        """RecBole's split, then drop the noisy (low-rated) rows from validation and test."""
        train, valid, test = super().build()
        return [train, self._keep_clean(valid, "validation"), self._keep_clean(test, "test")]

    def _keep_clean(self, split: Dataset, name: str) -> Dataset:
        ratings = split.inter_feat[self.clean_rating_field]
        clean = split.copy(split.inter_feat[ratings >= self.clean_rating_threshold])
        if len(clean) == 0:
            raise ValueError(
                f"clean_rating_threshold={self.clean_rating_threshold:g} leaves the {name} set of "
                f"[{self.dataset_name}] empty ({len(split)} rows before filtering, ratings between "
                f"{float(ratings.min()):g} and {float(ratings.max()):g})"
            )
        return clean


class CleanDataset(CleanFeedbackMixin, Dataset):
    """General (user, item) models such as BPR."""


class CleanSequentialDataset(CleanFeedbackMixin, SequentialDataset):
    """Sequential models such as GRU4Rec and SASRec: the target rows are filtered, histories keep
    everything."""


def create_dataset(config) -> Dataset:
    """Build the clean-feedback dataset that matches the model type in ``config``."""
    model_type = config["MODEL_TYPE"]
    if model_type == ModelType.GENERAL:
        return CleanDataset(config)
    if model_type == ModelType.SEQUENTIAL:
        return CleanSequentialDataset(config)
    raise ValueError(
        f"model [{config['model']}] is a {model_type.name.lower()} model; the clean-feedback "
        "protocol supports general and sequential models"
    )
