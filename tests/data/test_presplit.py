"""Pre-split data: ``prepare --split-files`` and RecBole's ``benchmark_filename`` files.

The tiny split below is written by hand. Training has 10 rows (4 users, 8 items, none with 10
rows: the 10-core filter of ``overall.yaml`` would drop every row); validation 7 rows, 5 of them
rated >= 3; test 4 rows, 2 of them rated >= 3 (2 users). The files have no timestamps, the
validation file is comma-separated with CRLF line ends, as in EvalDenoisingRec's split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import FAST, SHARED_DATA

import recbole_autodenoise
from recbole_autodenoise import cli
from recbole_autodenoise.data import create_dataset, data_preparation
from recbole_autodenoise.data.dataloader import prepare_data
from recbole_autodenoise.prepare import main, prepare_split

TRAIN = [
    ("u1", "i1", 5),
    ("u1", "i2", 1),
    ("u1", "i3", 4),
    ("u2", "i1", 2),
    ("u2", "i4", 5),
    ("u2", "i5", 3),
    ("u3", "i2", 4),
    ("u3", "i6", 1),
    ("u3", "i7", 2),
    ("u4", "i8", 3),
]
VALID = [
    ("u1", "i4", 5),
    ("u1", "i5", 2),
    ("u2", "i2", 4),
    ("u2", "i3", 1),
    ("u3", "i1", 3),
    ("u3", "i3", 5),
    ("u4", "i1", 4),
]
TEST = [("u1", "i6", 5), ("u1", "i7", 1), ("u2", "i6", 3), ("u3", "i4", 2)]
PARTS = ("train", "valid", "test")
SPLIT = ["train", "valid", "test"]
UNTIMED = "user_id:token\titem_id:token\trating:float"
TIMED = UNTIMED + "\ttimestamp:float"
EDR = SHARED_DATA / "evaldenoisingrec-ml100k"


def clean(rows):
    return [row for row in rows if row[2] >= 3]


def write_raw(folder: Path, train=TRAIN, valid=VALID, test=TEST) -> list[Path]:
    """The three raw files: train tab-separated (LF), valid comma-separated (CRLF), test tabs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    layout = (
        ("train.txt", train, "\t", "\n"),
        ("valid.csv", valid, ",", "\r\n"),
        ("test.txt", test, "\t", "\n"),
    )
    for name, rows, sep, end in layout:
        path = folder / name
        path.write_bytes("".join(sep.join(map(str, row)) + end for row in rows).encode())
        paths.append(path)
    return paths


def convert(tmp_path: Path, name: str = "tiny", **rows) -> Path:
    """Raw files under tmp_path/raw converted into tmp_path/data/<name>; returns tmp_path/data."""
    prepare_split(write_raw(tmp_path / "raw", **rows), name, tmp_path / "data")
    return tmp_path / "data"


def presplit_config(data: Path, name: str = "tiny", model: str = "BPR", **overrides):
    return recbole_autodenoise.make_config(
        model,
        name,
        config_dict={
            "data_path": str(data),
            "benchmark_filename": SPLIT,
            "eval_protocol": "user",
            "state": "WARNING",
            **overrides,
        },
    )


def rows_of(dataset) -> list[tuple]:
    feat = dataset.inter_feat
    users = dataset.id2token(dataset.uid_field, feat[dataset.uid_field].numpy())
    items = dataset.id2token(dataset.iid_field, feat[dataset.iid_field].numpy())
    ratings = feat["rating"].numpy().astype(int).tolist()
    return sorted(zip(map(str, users), map(str, items), ratings))


# --------------------------------------------------------------------------- prepare --split-files


def test_prepare_converts_the_three_files_exactly(tmp_path, capsys):
    raw = write_raw(tmp_path / "raw")
    data = tmp_path / "data"
    code = main(["--split-files", *map(str, raw), "--name", "tiny", "--data-path", str(data)])
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    folder = data / "tiny"
    assert out[:3] == [
        f"wrote 10 training rows (4 users, 8 items) to {folder / 'tiny.train.inter'}",
        f"wrote 7 validation rows (4 users, 5 items) to {folder / 'tiny.valid.inter'}",
        f"wrote 4 test rows (3 users, 3 items) to {folder / 'tiny.test.inter'}",
    ]
    assert f"--dataset=tiny --data_path={data} --benchmark_filename=" in out[3]
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["tiny.test.inter", "tiny.train.inter", "tiny.valid.inter"]
    for part, rows in zip(PARTS, (TRAIN, VALID, TEST)):
        text = (folder / f"tiny.{part}.inter").read_text()
        assert text == "\n".join([UNTIMED, *("\t".join(map(str, r)) for r in rows)]) + "\n"


def test_prepare_reads_a_header_and_timestamps(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    files = []
    for part, rows in zip(PARTS, (TRAIN, VALID, TEST)):
        path = raw / f"{part}.csv"
        body = "".join(f"{t},{r},{i},{u}\n" for t, (u, i, r) in enumerate(rows, start=100))
        path.write_text("timestamp,rating,item_id,user_id\n" + body)
        files.append(path)
    summary = prepare_split(files, "timed", tmp_path / "data")
    assert summary.timestamps and [p.rows for p in summary.parts] == [10, 7, 4]
    lines = (tmp_path / "data" / "timed" / "timed.test.inter").read_text().splitlines()
    assert lines == [TIMED, "u1\ti6\t5\t100", "u1\ti7\t1\t101", "u2\ti6\t3\t102", "u3\ti4\t2\t103"]


@pytest.mark.parametrize(
    ("part", "rows", "file", "reason"),
    [
        (
            "valid",
            VALID + [("u9", "i1", 4)],
            "valid.csv, line 8",
            "user 'u9' is not in the training file train.txt",
        ),
        (
            "test",
            TEST + [("u9", "i1", 4)],
            "test.txt, line 5",
            "user 'u9' is not in the training file train.txt",
        ),
        (
            "test",
            TEST + [("u1", "i9", 4)],
            "test.txt, line 5",
            "item 'i9' is not in the training file train.txt",
        ),
        (
            "valid",
            VALID + [("u1", "i2", 4)],
            "valid.csv, line 8",
            "(user, item) = ('u1', 'i2') is also in the training file train.txt, line 2",
        ),
        (
            "test",
            TEST + [("u2", "i4", 4)],
            "test.txt, line 5",
            "(user, item) = ('u2', 'i4') is also in the training file train.txt, line 5",
        ),
        (
            "test",
            TEST + [("u1", "i4", 4)],
            "test.txt, line 5",
            "(user, item) = ('u1', 'i4') is also in the validation file valid.csv, line 1",
        ),
        (
            "train",
            TRAIN + [("u1", "i1", 2)],
            "train.txt, line 11",
            "(user, item) = ('u1', 'i1') repeats line 1",
        ),
        ("valid", VALID + [("u1", "i6", "")], "valid.csv, line 8", "missing rating ''"),
        ("valid", VALID + [("u1", "i6", "NA")], "valid.csv, line 8", "missing rating 'NA'"),
        ("test", TEST + [("u1", "i8")], "test.txt, line 5", "got 2 (missing rating)"),
        ("test", [("u1", "i6")], "test.txt, line 1", "missing rating: 2 fields"),
        ("valid", [], "valid.csv", "no data rows"),
    ],
)
def test_bad_splits_are_refused_naming_file_and_reason(tmp_path, capsys, part, rows, file, reason):
    raw = write_raw(tmp_path / "raw", **{part: rows})
    data = tmp_path / "data"
    code = main(["--split-files", *map(str, raw), "--name", "tiny", "--data-path", str(data)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {file}: ") and reason in err, err
    assert not data.exists() or not any(data.iterdir())  # nothing written, no folder left


def test_validation_and_test_may_share_pairs_where_the_split_means_it(tmp_path, capsys):
    raw = write_raw(tmp_path / "raw", test=TEST + [("u1", "i4", 5), ("u3", "i3", 5)])
    args = ["--split-files", *map(str, raw), "--name", "tiny", "--data-path", str(tmp_path / "d")]
    assert main(args) == 2
    assert "--allow-valid-test-overlap" in capsys.readouterr().err
    assert main([*args, "--allow-valid-test-overlap"]) == 0
    out = capsys.readouterr().out
    assert "wrote 6 test rows" in out and "2 test rows share their (user, item)" in out


def test_timestamps_in_some_files_only_are_refused(tmp_path):
    raw = write_raw(tmp_path / "raw")
    raw[2].write_text("u1\ti6\t5\t100\n")
    with pytest.raises(ValueError, match=r"test.txt, line 1: a timestamp column, unlike train.txt"):
        prepare_split(raw, "tiny", tmp_path / "data")


def test_existing_files_are_kept_unless_forced_and_a_refusal_keeps_them(tmp_path, capsys):
    data = convert(tmp_path)
    before = {p.name: p.read_bytes() for p in (data / "tiny").iterdir()}
    raw = write_raw(tmp_path / "raw2", test=TEST[:1])
    args = ["--split-files", *map(str, raw), "--name", "tiny", "--data-path", str(data)]
    assert main(args) == 2
    assert "already exist(s); use --force" in capsys.readouterr().err
    bad = write_raw(tmp_path / "raw3", test=TEST + [("u9", "i1", 5)])
    assert (
        main(
            ["--split-files", *map(str, bad), "--name", "tiny", "--data-path", str(data), "--force"]
        )
        == 2
    )
    assert {p.name: p.read_bytes() for p in (data / "tiny").iterdir()} == before
    assert main([*args, "--force"]) == 0
    assert (data / "tiny" / "tiny.test.inter").read_text() == f"{UNTIMED}\nu1\ti6\t5\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either INPUT or --split-files"),
        (["x.csv", "--split-files", "a", "b", "c"], "give either INPUT or --split-files"),
        (
            ["--split-files", "a", "b", "c", "--dedupe"],
            "--dedupe do(es) not apply to --split-files",
        ),
        (["x.csv", "--allow-valid-test-overlap"], "applies to --split-files only"),
    ],
)
def test_prepare_arguments_that_do_not_go_together(capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        main([*args, "--name", "tiny"])
    assert stop.value.code == 2 and message in capsys.readouterr().err


# --------------------------------------------------------------------------- the data set


@pytest.mark.parametrize(
    ("presplit_filter", "valid", "test"),
    [("threshold", clean(VALID), clean(TEST)), ("as_given", VALID, TEST)],
)
def test_data_set_has_exactly_the_given_rows_without_k_core(tmp_path, presplit_filter, valid, test):
    config = presplit_config(convert(tmp_path), clean_presplit_filter=presplit_filter)
    # overall.yaml's 10-core filter is set; RecBole runs no filter on benchmark files
    assert config["user_inter_num_interval"] == "[10,inf)"
    dataset = create_dataset(config)
    split = dataset.build_split()
    assert rows_of(split.train) == sorted(TRAIN)
    assert rows_of(split.select) == sorted(valid)
    assert rows_of(split.test) == sorted(test)
    assert rows_of(split.valid_rated) == sorted(VALID) and rows_of(split.test_rated) == sorted(TEST)
    assert (len(split.train), len(split.select), len(split.test)) == (10, len(valid), len(test))


def test_loaders_evaluate_the_given_test_users_without_user_first(tmp_path):
    config = presplit_config(convert(tmp_path))
    bundle = prepare_data(config, create_dataset(config))
    train, valid, test = bundle.training.train, bundle.training.select, bundle.test
    assert len(train._dataset) == 10 and len(valid._dataset) == 5 and len(test._dataset) == 2
    users = test._dataset.id2token("user_id", test.uid_list.numpy())
    assert sorted(map(str, users)) == ["u1", "u2"]
    assert list(bundle.test_by_protocol) == ["interaction", "user"]  # no times: no user_first


def test_a_test_pair_also_in_validation_is_relevant_not_masked(tmp_path):
    raw = write_raw(tmp_path / "raw", test=TEST + [("u1", "i4", 5)])
    prepare_split(raw, "tiny", tmp_path / "data", allow_valid_test_overlap=True)
    config = presplit_config(tmp_path / "data")
    dataset = create_dataset(config)
    _, valid, test = data_preparation(config, dataset)
    u1, i4, i5 = dataset.token2id("user_id", "u1"), *dataset.token2id("item_id", ["i4", "i5"])
    assert i4 in test.uid2positive_item[u1].tolist()
    assert i4 not in test.uid2history_item[u1].tolist()
    assert i5 in test.uid2history_item[u1].tolist()  # a validation item that is no test item
    assert i4 in valid.uid2positive_item[u1].tolist()


@pytest.mark.parametrize(
    ("presplit_filter", "guide", "select"),
    [
        ("threshold", 1, 4),  # clean rows per user 1, 1, 2, 1: only u3 gives one to the guide
        ("as_given", 3, 4),  # rows per user 2, 2, 2, 1
    ],
)
def test_guide_split_of_given_validation_rows(tmp_path, presplit_filter, guide, select):
    config = presplit_config(
        convert(tmp_path),
        clean_presplit_filter=presplit_filter,
        clean_valid_guide_ratio=0.5,
        seed=3,
    )
    split = create_dataset(config).build_split()
    guide_rows, select_rows = rows_of(split.guide), rows_of(split.select)
    assert (len(guide_rows), len(select_rows)) == (guide, select)
    kept = clean(VALID) if presplit_filter == "threshold" else VALID
    assert sorted(guide_rows + select_rows) == sorted(kept)
    assert len({row[0] for row in guide_rows}) == guide  # one guide row per user with >= 2
    assert rows_of(split.train) == sorted(TRAIN)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"clean_valid_guide_ratio": 0.5, "clean_valid_guide_order": "chronological"},
            (
                r"clean_valid_guide_order='chronological' \(with clean_valid_guide_ratio=0.5\) "
                r"needs each "
                r"validation row's time; the pre-split files of \[tiny\] .* "
                r"have no time field 'timestamp'"
            ),
        ),
        (
            {"eval_protocol": "user_first"},
            r"eval_protocol='user_first' needs each held-out row's time.*use eval_protocol: user",
        ),
    ],
)
def test_what_needs_times_is_refused_without_them(tmp_path, overrides, message):
    config = presplit_config(convert(tmp_path), **overrides)
    with pytest.raises(ValueError, match=message):
        create_dataset(config)


def test_timed_pre_split_files_keep_user_first(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    files = []
    for part, rows in zip(PARTS, (TRAIN, VALID, TEST)):
        files.append(raw / part)
        files[-1].write_text(
            "".join(f"{u}\t{i}\t{r}\t{900 - t}\n" for t, (u, i, r) in enumerate(rows))
        )
    prepare_split(files, "timed", tmp_path / "data")
    config = presplit_config(tmp_path / "data", "timed", eval_protocol="user_first")
    bundle = prepare_data(config, create_dataset(config))
    train, test = bundle.training.train, bundle.test
    assert list(bundle.test_by_protocol) == ["user_first", "interaction", "user"]
    # u1's clean test row is i6 alone; u2's is i6: one query each
    assert len(test._dataset) == 2 and len(train._dataset) == 10


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (
            {"clean_presplit_filter": "all"},
            ValueError,
            (
                r"config key 'clean_presplit_filter' = 'all' is invalid: "
                r"expected one of \['threshold', "
                r"'as_given'\]"
            ),
        ),
        (
            {"benchmark_filename": ["train", "test"]},
            ValueError,
            r"config key 'benchmark_filename' = \['train', 'test'\] is invalid: expected three",
        ),
        ({"benchmark_filename": ["train", "valid", "../test"]}, ValueError, "three distinct part"),
        (
            {"benchmark_filename": ["train", "valid", "final"]},
            FileNotFoundError,
            (
                r"has no .*tiny.final.inter; "
                r"write the files .*prepare --split-files TRAIN VALID TEST "
                r"--name tiny"
            ),
        ),
        (
            {
                "noise_rate": 0.1,
                "eval_args": {
                    "split": {"RS": [4, 1, 1]},
                    "order": "TO",
                    "group_by": "user",
                    "mode": "full",
                },
            },
            ValueError,
            "noise_rate=0.1 cannot be used with benchmark_filename",
        ),
    ],
)
def test_bad_pre_split_settings_are_refused(tmp_path, overrides, error, message):
    folder = convert(tmp_path)
    with pytest.raises(error, match=message):  # make_config refuses what needs no data
        create_dataset(presplit_config(folder, **overrides))


def test_as_given_needs_pre_split_files(tmp_path):
    folder = convert(tmp_path)
    with pytest.raises(  # make_config refuses it, before any data loads
        ValueError,
        match=r"'clean_presplit_filter' = 'as_given' needs pre-split "
        r"files \(benchmark_filename\)",
    ):
        create_dataset(
            presplit_config(folder, benchmark_filename=None, clean_presplit_filter="as_given")
        )


def test_one_file_without_timestamps_is_refused_for_the_chronological_split(tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    (folder / "flat.inter").write_text(
        UNTIMED + "\n" + "".join(f"{u}\t{i}\t{r}\n" for u, i, r in TRAIN + VALID + TEST)
    )
    config = recbole_autodenoise.make_config(
        "BPR", "flat", config_dict={"data_path": str(tmp_path), "state": "WARNING"}
    )
    with pytest.raises(
        ValueError,
        match=r"flat.inter: no time field 'timestamp'.*eval_args order: "
        r"TO\) needs it",
    ):
        create_dataset(config)


def test_sequential_models_need_recbole_histories_in_pre_split_files(tmp_path):
    config = presplit_config(convert(tmp_path), model="SASRec")
    with pytest.raises(ValueError, match=r"have no 'item_id_list' field"):
        create_dataset(config)


@pytest.mark.parametrize("value", ["['train','valid','test']", "[train,valid,test]"])
def test_the_command_line_reads_benchmark_filename(value):
    _, overrides = cli.parse_args(["--model=BPR", f"--benchmark_filename={value}"])
    assert overrides["benchmark_filename"] == SPLIT


# --------------------------------------------------------------------------- EvalDenoisingRec


@pytest.mark.slow
def test_evaldenoisingrec_split_end_to_end(tmp_path, capsys):
    if not EDR.is_dir():
        pytest.skip(f"{EDR} not present")
    data = tmp_path / "data"
    raw = [EDR / "ml100k.train.rating", EDR / "ml100k.valid.rating", EDR / "ml100k.test.negative"]
    args = ["--split-files", *map(str, raw), "--name", "edr", "--data-path", str(data)]
    assert main(args) == 2  # its test set holds the validation set's rating-5 rows
    assert main([*args, "--allow-valid-test-overlap"]) == 0
    out = capsys.readouterr().out
    assert "wrote 79619 training rows (943 users, 1611 items)" in out
    assert "wrote 9901 validation rows (943 users, 1290 items)" in out
    assert "wrote 3594 test rows (707 users, 855 items)" in out
    assert "1707 test rows share their (user, item)" in out

    config = presplit_config(data, "edr")
    train, valid, test = data_preparation(config, create_dataset(config))
    assert (len(train._dataset), len(valid._dataset), len(test._dataset)) == (79619, 7659, 3594)
    assert len(np.unique(test.uid_list.numpy())) == 707

    results = tmp_path / "r.json"
    code = cli.main(
        [
            "--model=BPR",
            "--dataset=edr",
            f"--data_path={data}",
            "--benchmark_filename=['train','valid','test']",
            "--scheme=default",
            "--eval_protocol=user",
            "--epochs=1",
            "--stopping_min_epochs=0",
            f"--results_file={results}",
            "--show_progress=False",
            "--state=WARNING",
            f"--train_batch_size={FAST['train_batch_size']}",
        ]
    )
    assert code == 0, capsys.readouterr().err
    found = json.loads(results.read_text())
    assert (found["data"]["train"], found["data"]["test"]) == (79619, 3594)
    assert found["epochs"] and len(found["epochs"]) == 1
    assert set(found["test_by_protocol"]) == {"interaction", "user"}
    assert 0 <= found["test"]["ndcg@20"] <= 1
