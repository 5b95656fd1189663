"""Bad arguments of the helper commands (``benchmarks.table3``, ``tune``, ``report``, ``compare``,
``merge`` and ``recbole_autodenoise.headroom``): each gets ``error: ...`` on stderr and exit
status 2 before any work, and nothing is written. The shared checks of
``recbole_autodenoise.arguments`` on hand-made paths."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from benchmarks import compare, merge, report, table3, tune
from benchmarks.grid import SCHEMES, make_cells, run_grid
from recbole_autodenoise import arguments, headroom
from tests.conftest import write_inter
from tests.benchmarks.test_benchmarks import Counting, quiet

NOT_UTF8 = b'{"key": "a"}\n\xff\xfe not text\n'


def refused(main, argv, capsys) -> str:
    """``main(argv)`` stops with status 2; its stderr (which says ``error: ...``)."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "error: " in err, err
    return err


@pytest.fixture
def data(tmp_path):
    """A data set ``d`` under ``tmp_path/data`` (table3 and tune look for ``d/d.inter`` there)."""
    write_inter(tmp_path / "data", "d", [(1, 1, 5.0, 1.0)])
    return ["--dataset", "d", "--data-path", str(tmp_path / "data")]


@pytest.fixture
def results(tmp_path):
    """A JSONL of finished cells of ml-latest-small (BPR, the paper's schemes, 2 seeds; no
    ``test_by_protocol``)."""
    out = tmp_path / "rows.jsonl"
    run_grid(make_cells("ml-latest-small", ["BPR"], SCHEMES, [1, 2]), out, Counting(), log=quiet)
    return out


# --- table3 -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--seeds", "0"],
            "argument --seeds: '0' is out of range: expected an integer from 1 to 1000",
        ),
        (["--seeds", "1001"], "argument --seeds: '1001' is out of range"),
        (["--seeds", "two"], "argument --seeds: 'two' is not an integer"),
        (
            ["--seed-base", "-1"],
            "argument --seed-base: '-1' is out of range: expected a seed from 0",
        ),
        (["--seed-base", str(2**32 - 2), "--seeds", "3"], "goes past the largest seed 4294967295"),
        (["--models", "BPR", "NoSuchModel"], "argument --models: unknown model 'NoSuchModel'"),
        (["--models", "bpr"], "did you mean 'BPR'?"),
        (
            ["--cell-timeout", "-5"],
            "argument --cell-timeout: '-5' is invalid: expected a finite number",
        ),
        (["--cell-timeout", "0"], "'0' is invalid"),
        (["--cell-timeout", "nan"], "'nan' is invalid"),
        (["--set", "epochs"], "argument --set: 'epochs' is not KEY=VALUE"),
        (
            ["--set", "learnin_rate=0.1"],
            "BPR / default: unknown config key 'learnin_rate'; did you mean 'learning_rate'?",
        ),
    ],
)
def test_table3_refuses_bad_arguments_before_any_cell(tmp_path, data, capsys, extra, message):
    out = tmp_path / "r.jsonl"
    err = refused(
        table3.main,
        [*data, "--models", "BPR", "--schemes", "default", "--out", str(out), *extra, "--dry-run"],
        capsys,
    )
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing written


def test_table3_refuses_unknown_data_sets_and_unusable_output_paths(tmp_path, data, capsys):
    base = ["--models", "BPR", "--schemes", "default", "--dry-run"]
    out = ["--out", str(tmp_path / "r.jsonl")]
    assert (
        "--dataset 'nosuch' is neither RecBole's embedded ml-100k nor a data set RecBole can "
        "download" in refused(table3.main, ["--dataset", "nosuch", *base, *out], capsys)
    )
    missing = tmp_path / "data" / "e" / "e.inter"
    assert (
        f"--dataset 'e': no {missing}; write it with `python -m recbole_autodenoise.prepare"
        in refused(
            table3.main,
            ["--dataset", "e", "--data-path", str(tmp_path / "data"), *base, *out],
            capsys,
        )
    )
    assert "--data-path" in refused(
        table3.main, ["--dataset", "d", "--data-path", str(missing), *base, *out], capsys
    )
    assert f"--out {tmp_path} is a directory" in refused(
        table3.main, [*data, *base, "--out", str(tmp_path)], capsys
    )
    assert "ends in '/'" in refused(
        table3.main, [*data, *base, "--out", f"{tmp_path}/new/"], capsys
    )
    (tmp_path / "old.jsonl").write_bytes(NOT_UTF8)
    assert "old.jsonl, line 2: not UTF-8 text (byte 0xff" in refused(
        table3.main, [*data, *base, "--out", str(tmp_path / "old.jsonl")], capsys
    )
    (tmp_path / "c.yaml").write_bytes(b"epochs: 2\n# caf\xe9\n")
    assert "c.yaml, line 2: not UTF-8 text" in refused(
        table3.main, [*data, *base, *out, "--config-files", str(tmp_path / "c.yaml")], capsys
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "data", "old.jsonl"]


# --- tune -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seeds", "0"], "argument --seeds: '0' is out of range"),
        (["--model", "NoSuchModel"], "argument --model: unknown model 'NoSuchModel'"),
        (["--cell-timeout", "-1"], "argument --cell-timeout: '-1' is invalid"),
        (["--grid", "=1,2"], "--grid expects key=v1,v2,..., got '=1,2'"),
        (["--grid", "learnin_rate=1,2"], "unknown config key 'learnin_rate'"),
        (["--dataset", "nosuch"], "--dataset 'nosuch': no "),
    ],
)
def test_tune_refuses_bad_arguments_before_any_cell(
    tmp_path, data, capsys, monkeypatch, extra, message
):
    monkeypatch.setattr(tune, "run_grid", lambda *a, **k: pytest.fail("a cell ran"))
    argv = [
        *data,
        "--model",
        "BPR",
        "--grid",
        "learning_rate=1e-3,2e-3",
        "--properties-dir",
        str(tmp_path / "props"),
        *extra,
    ]
    assert message in refused(tune.main, argv, capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_tune_refuses_a_properties_folder_that_is_a_file_or_a_yaml_that_is_not_utf8(
    tmp_path, data, capsys, monkeypatch
):
    monkeypatch.setattr(tune, "run_grid", lambda *a, **k: pytest.fail("a cell ran"))
    (tmp_path / "props").write_text("a file")
    argv = [*data, "--model", "BPR", "--grid", "learning_rate=1e-3,2e-3", "--properties-dir"]
    assert "the tuned yaml" in refused(tune.main, [*argv, str(tmp_path / "props")], capsys)
    tuned = tmp_path / "p2" / "d" / "BPR-default.yaml"
    tuned.parent.mkdir(parents=True)
    tuned.write_bytes(b"learning_rate: 0.1\n\xff\n")
    assert "BPR-default.yaml, line 2: not UTF-8 text" in refused(
        tune.main, [*argv, str(tmp_path / "p2")], capsys
    )


# --- report -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_report_refuses_missing_or_non_utf8_inputs_bad_outputs_and_unknown_choices(
    tmp_path, results, capsys
):
    out = str(tmp_path / "report.md")
    assert f"argument results: no such file: {tmp_path / 'none.jsonl'}" in refused(
        report.main, [str(tmp_path / "none.jsonl"), "--out", out], capsys
    )
    assert "is not a regular file" in refused(report.main, [str(tmp_path), "--out", out], capsys)
    (tmp_path / "bad.jsonl").write_bytes(NOT_UTF8)
    assert "bad.jsonl, line 2: not UTF-8 text" in refused(
        report.main, [str(tmp_path / "bad.jsonl"), "--out", out], capsys
    )
    assert f"argument --out: {tmp_path} is a directory" in refused(
        report.main, [str(results), "--out", str(tmp_path)], capsys
    )
    assert "ends in '/'" in refused(report.main, [str(results), "--out", f"{tmp_path}/r/"], capsys)
    assert "name a Markdown file" in refused(
        report.main, [str(results), "--out", str(tmp_path / "r.csv")], capsys
    )
    (tmp_path / "csvdir.csv").mkdir()  # where the CSV beside --out csvdir.md would go
    assert "csvdir.csv is a directory" in refused(
        report.main, [str(results), "--out", str(tmp_path / "csvdir.md")], capsys
    )
    assert "argument --protocol: invalid choice: 'userfirst'" in refused(
        report.main, [str(results), "--out", out, "--protocol", "userfirst"], capsys
    )
    assert "--protocol 'user': no finished row has test results under it" in refused(
        report.main, [str(results), "--out", out, "--protocol", "user"], capsys
    )
    assert "--dataset 'ml-1m': " in refused(
        report.main, [str(results), "--out", out, "--dataset", "ml-1m"], capsys
    )
    (tmp_path / "empty.jsonl").write_text("")
    assert "hold no finished rows" in refused(
        report.main, [str(tmp_path / "empty.jsonl"), "--out", out], capsys
    )
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "report.csv").exists()


# --- compare ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_compare_refuses_missing_or_non_utf8_inputs_and_unknown_models_or_schemes(
    tmp_path, results, capsys
):
    assert "no such file" in refused(compare.main, [str(tmp_path / "none.jsonl")], capsys)
    (tmp_path / "bad.jsonl").write_bytes(NOT_UTF8)
    assert "bad.jsonl, line 2: not UTF-8 text" in refused(
        compare.main, [str(tmp_path / "bad.jsonl")], capsys
    )
    assert "--model ['SASRec']: no finished row of it in the files; they hold ['BPR']" in refused(
        compare.main, [str(results), "--model", "SASRec"], capsys
    )
    assert "--against ['adt']: not a scheme; choose from" in refused(
        compare.main, [str(results), "--against", "adt"], capsys
    )
    assert "no finished rows with a reference scheme" in refused(
        compare.main, [str(results), "--against", "dcf"], capsys
    )
    assert (
        compare.main([str(results), "--model", "BPR"]) == 0 and "### BPR" in capsys.readouterr().out
    )


# --- merge ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_merge_refuses_a_directory_or_non_utf8_destination_and_non_utf8_sources(
    tmp_path, results, capsys
):
    assert f"DST {tmp_path} is a directory" in refused(
        merge.main, [str(tmp_path), str(results)], capsys
    )
    assert "ends in '/'" in refused(merge.main, [f"{tmp_path}/x/", str(results)], capsys)
    dst = tmp_path / "dst.jsonl"
    dst.write_bytes(NOT_UTF8)
    assert "dst.jsonl, line 2: not UTF-8 text" in refused(
        merge.main, [str(dst), str(results)], capsys
    )
    assert dst.read_bytes() == NOT_UTF8
    (tmp_path / "src.jsonl").write_bytes(NOT_UTF8)
    assert "src.jsonl, line 2: not UTF-8 text" in refused(
        merge.main, [str(tmp_path / "new.jsonl"), str(tmp_path / "src.jsonl")], capsys
    )
    assert not (tmp_path / "new.jsonl").exists()


# --- headroom ---------------------------------------------------------------------------------
def fake_run(calls):
    def run(model, dataset, config_files=None, config_dict=None):
        calls.append(config_dict["denoise_scheme"])
        return {
            "test": {"recall@10": 0.1 + 0.01 * len(calls), "ndcg@20": 0.05},
            "eval_protocol": "user_first",
        }

    return run


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--metric", "ndcg@7"],
            "--metric 'ndcg@7' is not a test metric of these runs: choose from ['precision@10'",
        ),
        (["--metric", "hit@10"], "--metric 'hit@10' is not a test metric"),
        (["--metric", "ndcg"], "--metric 'ndcg' is not a test metric"),
        (["--metric", "ndcg@20", "--learnin_rate=1"], "unknown config key 'learnin_rate'"),
    ],
)
def test_headroom_checks_the_metric_before_any_training(monkeypatch, capsys, extra, message):
    calls = []
    monkeypatch.setattr("recbole_autodenoise.quick_start.run", fake_run(calls))
    assert headroom.main(["--model=BPR", "--dataset=ml-100k", "--seeds=1", *extra]) == 2
    assert message in capsys.readouterr().err and calls == []


def test_headroom_takes_a_metric_of_the_runs_topk_and_writes_into_a_new_folder(
    tmp_path, monkeypatch, capsys
):
    calls = []
    monkeypatch.setattr("recbole_autodenoise.quick_start.run", fake_run(calls))
    out = tmp_path / "new" / "h.json"
    argv = [
        "--model=BPR",
        "--dataset=ml-100k",
        "--seeds=1",
        "--no-adt-rl",
        "--metric=Recall@10",
        f"--out={out}",
    ]
    assert headroom.main(argv) == 0
    assert calls == ["default", "oracle"] and json.loads(out.read_text())["metric"] == "recall@10"


@pytest.mark.parametrize(
    "out, message",
    [
        ("{tmp}", "is a directory"),
        ("{tmp}/x/", "ends in '/'"),
        ("{tmp}/a/../h.json", "'..' after it"),
        ("{tmp}/f/h.json", "is a file, not a folder"),
        ("/proc/h.json", "is not writable"),
        ("{tmp}/" + "n" * 300 + ".json", "the file system allows"),
        ("", "is empty"),
    ],
)
def test_headroom_refuses_an_unusable_out_before_any_training(
    tmp_path, monkeypatch, capsys, out, message
):
    calls = []
    monkeypatch.setattr("recbole_autodenoise.quick_start.run", fake_run(calls))
    (tmp_path / "f").write_text("a file")
    err = refused(
        headroom.main,
        ["--model=BPR", "--dataset=ml-100k", f"--out={out.format(tmp=tmp_path)}"],
        capsys,
    )
    assert "argument --out: " in err and message in err and calls == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


# --- the shared checks ------------------------------------------------------------------------
def test_argument_types_parse_good_values_and_say_what_bad_ones_lack():
    assert (arguments.count(5)("5"), arguments.seed("0"), arguments.positive_seconds("2.5")) == (
        5,
        0,
        2.5,
    )
    for parse, text in [
        (arguments.count(5), "6"),
        (arguments.count(5), "1.5"),
        (arguments.seed, "4294967296"),
        (arguments.positive_seconds, "inf"),
        (arguments.positive_seconds, "-0.1"),
        (arguments.setting, "=1"),
        (arguments.model_name, "NoSuchModel"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
    assert (
        arguments.setting("epochs=3") == "epochs=3"
        and arguments.model_name("SoftmaxMF") == "SoftmaxMF"
    )


def test_output_path_checks_create_nothing_and_allow_missing_folders(tmp_path):
    assert (
        arguments.check_output_path(tmp_path / "a" / "b" / "r.json")
        == tmp_path / "a" / "b" / "r.json"
    )
    with pytest.raises(
        ValueError, match=r"--out .*: folder .*x does not exist, and '\.\.' after it"
    ):
        arguments.check_output_path(tmp_path / "x" / ".." / "r.json")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "x").mkdir()
    arguments.check_output_path(tmp_path / "x" / ".." / "r.json")  # '..' after a folder that exists
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(ValueError, match="is a broken link"):
        arguments.check_output_path(tmp_path / "link" / "r.json")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValueError, match="exists and is not a regular file"):
        arguments.check_output_path(tmp_path / "pipe", "--out")


def test_read_text_names_the_file_and_the_line_of_a_bad_byte(tmp_path):
    (tmp_path / "ok.txt").write_text("é\n", encoding="utf-8")
    assert arguments.read_text(tmp_path / "ok.txt") == "é\n"
    (tmp_path / "bad.txt").write_bytes(b"a\nb\nc\x80\n")
    with pytest.raises(
        ValueError, match=r"bad.txt, line 3: not UTF-8 text \(byte 0x80 at offset 5\)"
    ):
        arguments.read_text(tmp_path / "bad.txt")
    with pytest.raises(ValueError, match="is a directory"):
        arguments.read_text(tmp_path)


def test_check_dataset_finds_the_atomic_file_or_a_name_recbole_downloads(tmp_path):
    write_inter(tmp_path, "d", [(1, 1, 5.0, 1.0)])
    arguments.check_dataset("d", tmp_path)
    arguments.check_dataset("ml-100k", None)
    arguments.check_dataset("ml-1m", None)  # RecBole downloads it
    write_inter(tmp_path, "s", [(1, 1, 5.0, 1.0)]).rename(tmp_path / "s" / "s.train.inter")
    arguments.check_dataset("s", tmp_path)  # pre-split files (benchmark_filename)
    for name, data_path, message in [
        ("../d", tmp_path, "not a data set name"),
        ("", None, "not a data set name"),
        ("e", tmp_path, "no "),
        ("d", tmp_path / "d" / "d.inter", "is not a folder"),
        ("d", None, "neither RecBole's embedded ml-100k"),
        ("n" * 300, tmp_path, "longer than a file name may be"),
    ]:
        with pytest.raises(ValueError, match=message):
            arguments.check_dataset(name, data_path)


@pytest.mark.slow
def test_the_commands_say_error_and_exit_2_from_the_command_line(tmp_path):
    import subprocess
    import sys

    from tests.test_ddp import REPO

    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    (tmp_path / "bad.jsonl").write_bytes(NOT_UTF8)
    commands = [
        (
            ["benchmarks.table3", "--dataset", "ml-100k", "--seeds", "0"],
            "argument --seeds: '0' is out of range",
        ),
        (
            [
                "benchmarks.tune",
                "--dataset",
                "ml-100k",
                "--model",
                "NoSuchModel",
                "--grid",
                "epochs=1",
            ],
            "unknown model 'NoSuchModel'",
        ),
        (
            ["benchmarks.report", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "r.md")],
            "not UTF-8 text",
        ),
        (["benchmarks.compare", str(tmp_path / "none.jsonl")], "no such file"),
        (["benchmarks.merge", str(tmp_path), str(tmp_path / "bad.jsonl")], "is a directory"),
        (
            ["recbole_autodenoise.headroom", "--metric=ndcg@7"],
            "--metric 'ndcg@7' is not a test metric",
        ),
    ]
    for command, message in commands:
        done = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert (done.returncode, done.stdout) == (2, ""), (command, done.stderr)
        assert (
            "error: " in done.stderr and message in done.stderr and "Traceback" not in done.stderr
        ), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]
