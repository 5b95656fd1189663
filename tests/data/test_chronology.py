"""Exact chronological order: timestamps 1 s apart near today's Unix time (float32 spacing
128 s)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import write_inter

import recbole_autodenoise
from recbole_autodenoise.data import create_dataset

NO_FILTER = {
    "user_inter_num_interval": "[0,inf)",
    "item_inter_num_interval": "[0,inf)",
    "state": "WARNING",
}
T0 = 1_760_000_000  # a multiple of 128: T0 + 1 ... T0 + 63 all round to T0 in float32
# Per user, items in chronological order, 1 s apart; 4 train / 1 validation / 1 test (RS 4:1:1).
CHRONO = {"u1": ["a", "b", "c", "d", "e", "f"], "u2": ["f", "e", "d", "c", "b", "a"]}


def rows() -> list[tuple]:
    out = []
    for base, (user, items) in zip((1, 20), CHRONO.items()):
        out += [(user, item, 5, T0 + base + k) for k, item in enumerate(items)]
    return out[::-1]  # newest first in the file: float32 ties would keep this (wrong) order


def split_rows(dataset) -> list[tuple[str, str]]:
    feat = dataset.inter_feat
    users = dataset.id2token(dataset.uid_field, feat[dataset.uid_field].numpy())
    items = dataset.id2token(dataset.iid_field, feat[dataset.iid_field].numpy())
    return sorted(zip(map(str, users), map(str, items)))


def test_float32_really_merges_these_timestamps() -> None:
    # The premise: without the fix every timestamp of the file is one float32 value.
    assert len(np.unique(np.array([r[3] for r in rows()], dtype=np.float32))) == 1


@pytest.mark.parametrize("model", ["BPR", "SASRec"])
def test_split_follows_exact_seconds(tmp_path, model: str) -> None:
    write_inter(tmp_path, "chrono", rows())
    config = recbole_autodenoise.make_config(
        model, "chrono", config_dict={"data_path": str(tmp_path), **NO_FILTER}
    )
    train, valid, test = create_dataset(config).build()
    first = 1 if model == "SASRec" else 0  # a sequential user's first interaction is history only
    expected = {
        part: sorted((u, items[i]) for u, items in CHRONO.items() for i in idx)
        for part, idx in (("train", range(first, 4)), ("valid", [4]), ("test", [5]))
    }
    assert split_rows(train) == expected["train"]
    assert split_rows(valid) == expected["valid"]
    assert split_rows(test) == expected["test"]


def loaded_items(tmp_path, rows: list[tuple]) -> tuple[list[str], object]:
    write_inter(tmp_path, "ties", rows)
    config = recbole_autodenoise.make_config(
        "BPR", "ties", config_dict={"data_path": str(tmp_path), **NO_FILTER}
    )
    dataset = create_dataset(config)
    dataset._change_feat_format()
    return [
        str(i)
        for i in dataset.id2token(dataset.iid_field, dataset.inter_feat[dataset.iid_field].numpy())
    ], dataset


def test_only_float32_collisions_move_and_values_stay(tmp_path) -> None:
    # a, c, e share one float32 value (T0) but not their seconds; they swap among their own
    # positions 0, 2, 4; b and d (other float32 values, or exact ties) keep their places.
    items, dataset = loaded_items(
        tmp_path,
        [
            ("u", "a", 5, T0 + 3),
            ("u", "b", 5, 964982703),
            ("u", "c", 5, T0 + 1),
            ("u", "d", 5, T0 + 500),
            ("u", "e", 5, T0 + 2),
            ("u", "f", 5, T0 + 1),
        ],
    )
    assert items == ["f", "b", "c", "d", "e", "a"]  # f and c: same second, split_seed 0's hash
    assert dataset.inter_feat["timestamp"].tolist() == [T0, 964982720.0, T0, T0 + 512, T0, T0]


def test_file_without_collisions_is_untouched(tmp_path) -> None:
    items, _ = loaded_items(tmp_path, [("u", "a", 5, 300), ("u", "b", 5, 100), ("u", "c", 5, 200)])
    assert items == ["a", "b", "c"]
