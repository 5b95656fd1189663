"""Tests for ``python -m recbole_autodenoise.prepare`` (raw ratings -> RecBole .inter)."""

from __future__ import annotations

import os
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
        ["AKM1MP6P0OYPR\t0132793040\t5.0\t1365811200", "A2CX7LUOHB2NDG\t0321732944\t1.0\t1341100800",
         "AKM1MP6P0OYPR\tB00004TRD9\t4.0\t975196800"],
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
    assert summary == PrepareSummary(rows=3, users=2, items=2 if fmt != "amazon-csv" else 3, path=out)
    assert _lines(out) == [HEADER, *expected, ""]
    assert os.listdir(data / "toy") == ["toy.inter"]


@pytest.mark.parametrize("fmt", list(CASES))
def test_auto_detection(tmp_path: Path, fmt: str) -> None:
    file_name, text, _ = CASES[fmt]
    assert detect_format(_write(tmp_path, file_name, text)) == fmt


def test_auto_detection_of_real_headers(tmp_path: Path) -> None:
    # The shared Amazon copies carry a header; headerless numeric ids look like MovieLens.
    assert detect_format(_write(tmp_path, "a.csv", "UserId,ItemId,rating,timestamp\nA1,B1,5.0,1\n")) == "amazon-csv"
    assert detect_format(_write(tmp_path, "m.csv", "1,31,2.5,1260759144\n")) == "movielens-csv"


def test_amazon_header_is_skipped(tmp_path: Path) -> None:
    src = _write(tmp_path, "ratings.csv", "user_id,item_id,rating,timestamp\nA2IBPI20UZIR0U,1384719342,5.0,1393545600\n")
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
        (",5,4.0,964982703", "empty user or item"),
        ("1, ,4.0,964982703", "empty user or item"),
    ],
)
def test_malformed_row_stops_with_location_and_leaves_nothing(tmp_path: Path, bad_line: str, reason: str) -> None:
    src = _write(tmp_path, "ratings.csv",
                 f"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n{bad_line}\n1,3,4.0,964981247\n")
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
    args = [str(src), "--name", "ml-1m", "--data-path", str(tmp_path / "d"), "--format", "movielens-dat"]
    assert main(args) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"wrote 3 rows (2 users, 2 items) to {tmp_path / 'd' / 'ml-1m' / 'ml-1m.inter'}"
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_module_entry_point_uses_default_data_path(tmp_path: Path) -> None:
    src = _write(tmp_path, *CASES["amazon-csv"][:2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-m", "recbole_autodenoise.prepare", str(src), "--name", "amz"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
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
