"""The data a run trains on is the data the user named, read as written.

* ``--dataset=ml-100k --data_path=DIR`` reads ``DIR/ml-100k/ml-100k.inter``, not RecBole's embedded
  copy (the default only without a user ``data_path``);
* every file a data set is read from is logged and kept in the results file with its absolute path,
  sha256 and row count;
* interaction files RecBole would silently change (a rating or timestamp typed ``:token``, empty
  rating, timestamp or id cells) are refused naming the field and the count of bad rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from tests.conftest import INTER_HEADER, write_inter

import recbole_autodenoise as rad
from recbole_autodenoise import cli, quick_start
from recbole_autodenoise.data import create_dataset

NO_FILTER = {
    "user_inter_num_interval": "[0,inf)",
    "item_inter_num_interval": "[0,inf)",
    "state": "WARNING",
}
RUN = {
    **NO_FILTER,
    "topk": [5],
    "valid_metric": "NDCG@5",
    "show_progress": False,
    "epochs": 1,
    "denoise_scheme": "default",
    "eval_protocol": "interaction",
}


def user_rows() -> list[tuple]:
    """6 users x 7 of 9 items, ratings 1-5 (4 on each user's last 3), distinct timestamps: 42 rows,
    none repeated."""
    return [
        (f"u{u}", f"i{1 + (u + j) % 9}", 1 + (u * j) % 5 if j < 4 else 4, 1000 * u + j)
        for u in range(6)
        for j in range(7)
    ]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- ml-100k and data_path


def test_user_ml100k_under_data_path_is_the_data_read(tmp_path, caplog):
    inter = write_inter(tmp_path, "ml-100k", user_rows())
    config = rad.make_config(
        "BPR", "ml-100k", config_dict={"data_path": str(tmp_path), **NO_FILTER}
    )
    assert Path(config["data_path"]) == tmp_path / "ml-100k"
    with caplog.at_level(logging.INFO):
        dataset = create_dataset(config)
    assert dataset.inter_num == 42  # not the embedded ML-100K's 100,000
    assert dataset.data_files == [{"path": str(inter), "sha256": sha256(inter), "rows": 42}]
    lines = [r.getMessage() for r in caplog.records if "read from" in r.getMessage()]
    assert lines == [f"data set [ml-100k] read from {inter} (sha256 {sha256(inter)}, 42 rows)"]


@pytest.mark.slow
def test_without_data_path_ml100k_is_recboles_embedded_copy():
    import recbole

    config = rad.make_config("BPR", "ml-100k", config_dict=NO_FILTER)
    embedded = Path(recbole.__file__).resolve().parent / "dataset_example" / "ml-100k"
    embedded = embedded / "ml-100k.inter"
    assert Path(config["data_path"]).resolve() == embedded.parent
    [source] = create_dataset(config).data_files
    assert Path(source["path"]) == embedded
    assert (source["sha256"], source["rows"]) == (sha256(embedded), 100_000)


def test_user_data_path_without_ml100k_is_refused_before_loading(tmp_path, capsys):
    with pytest.raises(FileNotFoundError) as info:
        rad.make_config("BPR", "ml-100k", config_dict={"data_path": str(tmp_path), **NO_FILTER})
    message = str(info.value)
    assert f"data_path' = {str(tmp_path)!r}" in message
    assert str(tmp_path / "ml-100k" / "ml-100k.inter") in message and "embedded" in message
    assert cli.main(["--model=BPR", "--dataset=ml-100k", f"--data_path={tmp_path}"]) == 2
    assert capsys.readouterr().err.startswith("error: config key 'data_path'")


def test_a_loaded_user_file_is_recorded_too(tmp_path):
    inter = write_inter(tmp_path, "withusers", user_rows())
    users = inter.parent / "withusers.user"
    users.write_text(
        "user_id:token\tage:float\n" + "".join(f"u{u}\t{20 + u}\n" for u in range(6)),
        encoding="utf-8",
    )
    load_col = {"inter": ["user_id", "item_id", "rating", "timestamp"], "user": ["user_id", "age"]}
    config = rad.make_config(
        "BPR",
        "withusers",
        config_dict={"data_path": str(tmp_path), "load_col": load_col, **NO_FILTER},
    )
    assert create_dataset(config).data_files == [
        {"path": str(inter), "sha256": sha256(inter), "rows": 42},
        {"path": str(users), "sha256": sha256(users), "rows": 6},
    ]


@pytest.mark.slow
def test_results_file_records_the_data_files(tmp_path):
    inter = write_inter(tmp_path, "ml-100k", user_rows())
    results_file = tmp_path / "out" / "results.json"
    results = quick_start.run(
        "BPR",
        "ml-100k",
        config_dict={"data_path": str(tmp_path), "results_file": str(results_file), **RUN},
        saved=False,
    )
    expected = [{"path": str(inter), "sha256": sha256(inter), "rows": 42}]
    assert results["data"]["files"] == expected
    assert json.loads(results_file.read_text(encoding="utf-8"))["data"]["files"] == expected


# ---------------------------------------------------------------------- hand-written atomic files


def write_lines(tmp_path: Path, name: str, header: str, lines: list[str]) -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.inter"
    path.write_text(header + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def good_lines() -> list[str]:
    return [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in user_rows()]


def load(tmp_path: Path, name: str):
    config = rad.make_config("BPR", name, config_dict={"data_path": str(tmp_path), **NO_FILTER})
    return create_dataset(config)


@pytest.mark.parametrize(
    "field, header",
    [
        ("rating", "user_id:token\titem_id:token\trating:token\ttimestamp:float\n"),
        ("timestamp", "user_id:token\titem_id:token\trating:float\ttimestamp:token\n"),
    ],
)
def test_rating_or_timestamp_typed_token_is_refused(tmp_path, field, header):
    path = write_lines(tmp_path, "typed", header, good_lines())
    with pytest.raises(ValueError) as info:
        load(tmp_path, "typed")
    message = str(info.value)
    assert message.startswith(f"{path}: field '{field}'") and "is typed :token" in message
    assert f"'{field}:float'" in message


@pytest.mark.parametrize(
    "field, column, bad_rows",
    [
        ("rating", 2, (3, 17)),
        ("timestamp", 3, (40,)),
        ("user_id", 0, (0, 5, 9)),
        ("item_id", 1, (41,)),
    ],
)
def test_empty_cells_are_refused_with_the_field_and_the_count(tmp_path, field, column, bad_rows):
    lines = good_lines()
    for row in bad_rows:
        cells = lines[row].split("\t")
        cells[column] = ""
        lines[row] = "\t".join(cells)
    path = write_lines(tmp_path, "holes", INTER_HEADER, lines)
    with pytest.raises(ValueError) as info:
        load(tmp_path, "holes")
    assert str(info.value).startswith(
        f"{path}: field '{field}' has {len(bad_rows)} empty or NA cells of 42 rows "
        f"(the first on data row {bad_rows[0] + 1}); RecBole would silently "
    )


def test_na_spelling_in_a_rating_cell_counts_as_empty(tmp_path):
    lines = good_lines()
    cells = lines[7].split("\t")
    lines[7] = "\t".join([*cells[:2], "NaN", cells[3]])
    write_lines(tmp_path, "nan", INTER_HEADER, lines)
    with pytest.raises(ValueError, match=r"field 'rating' has 1 empty or NA cells of 42 rows"):
        load(tmp_path, "nan")


def test_non_numeric_rating_names_the_file(tmp_path):
    lines = good_lines()
    lines[2] = "u0\ti9\tgood\t1"
    path = write_lines(tmp_path, "text", INTER_HEADER, lines)
    with pytest.raises(ValueError, match=rf"^{path}: "):
        load(tmp_path, "text")


def test_cli_reports_bad_cells_as_an_error_before_training(tmp_path, capsys):
    lines = good_lines()
    for row in (0, 1):
        cells = lines[row].split("\t")
        lines[row] = "\t".join([*cells[:2], "", cells[3]])
    write_lines(tmp_path, "ml-100k", INTER_HEADER, lines)
    code = cli.main(
        [
            "--model=BPR",
            "--dataset=ml-100k",
            f"--data_path={tmp_path}",
            "--scheme=default",
            "--user_inter_num_interval=[0,inf)",
            "--item_inter_num_interval=[0,inf)",
            "--state=WARNING",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    inter = tmp_path / "ml-100k" / "ml-100k.inter"
    assert err.startswith(f"error: {inter}: field 'rating' has 2 empty")
    assert not list(tmp_path.glob("saved/*"))  # no checkpoint: refused before training
