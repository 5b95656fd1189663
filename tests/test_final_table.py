"""The final table says what it is (clean test set, model, data set, scheme, protocol, units) and
where the results file, the checkpoint and the logs went (issue 11.5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import FAST

from recbole_autodenoise import cli
from recbole_autodenoise.quick_start import (
    output_locations,
    results_table,
    table_heading,
)

RESULTS = {
    "model": "BPR",
    "dataset": "ml-100k",
    "denoise_scheme": "adt_tl",
    "eval_protocol": "interaction",
}


def test_heading_names_the_run_and_the_units():
    assert table_heading(RESULTS) == (
        "clean test set: model BPR, data set ml-100k, scheme adt_tl, eval protocol interaction; "
        "values are fractions (x100 for %)"
    )


def test_output_locations_one_per_line_and_say_what_was_not_written():
    assert output_locations(
        Path("out/r.json"), "saved/BPR.pth", "/x/log/BPR/a.log", "log_tensorboard/a"
    ).splitlines() == [
        "results file: out/r.json",
        "checkpoint:   saved/BPR.pth",
        "log:          /x/log/BPR/a.log",
        "tensorboard:  log_tensorboard/a",
    ]
    assert output_locations(None, None, None, None).splitlines() == [
        "results file: not written (set results_file to keep one)",
        "checkpoint:   not saved (saved=False)",
        "log:          none",
        "tensorboard:  none",
    ]


def test_table_rows_are_metrics_and_columns_are_k():
    table = results_table({"precision@10": 0.25, "ndcg@10": 0.5, "ndcg@20": 0.125}).splitlines()
    assert table[0] == "metric    " + "         @10" + "         @20"
    assert table[2] == "precision " + "    0.250000" + "         nan"
    assert table[3] == "ndcg      " + "    0.500000" + "    0.125000"
    assert len(table) == 4


@pytest.mark.slow
def test_a_run_prints_the_heading_the_table_and_where_its_files_went(tmp_path, capsys):
    results = tmp_path / "r.json"
    overrides = [f"--{key}={value}" for key, value in FAST.items() if key != "epochs"]
    code = cli.main(
        ["--model=BPR", "--scheme=default", "--epochs=1", f"--results_file={results}", *overrides]
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index(
        table_heading({**RESULTS, "denoise_scheme": "default", "eval_protocol": "user_first"})
    )
    assert lines[start + 1].startswith("metric ") and lines[start + 3].startswith("precision ")
    payload = json.loads(results.read_text())
    where = dict(line.split(":", 1) for line in lines[-4:])
    where = {name: value.strip() for name, value in where.items()}
    assert where["results file"] == str(results) and where["checkpoint"] == payload["checkpoint"]
    assert Path(payload["checkpoint"]).is_file()
    assert (
        where["log"] == "none"
    )  # pytest configured the root logger first: RecBole adds no log file
    assert Path(where["tensorboard"]).parent.name == "log_tensorboard"


def test_the_log_file_is_the_one_init_logger_adds(monkeypatch):
    import logging

    from recbole_autodenoise.config import make_config
    from recbole_autodenoise.quick_start import start_logging

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # a plain script's root logger, restored afterwards
    log = start_logging(make_config("BPR", "ml-100k", config_dict={"state": "WARNING"}))
    assert Path(log).is_file() and Path(log).parent == Path("log", "BPR").resolve()
    for handler in root.handlers:
        handler.close()
