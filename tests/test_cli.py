"""The command line: argument parsing, scheme precedence, errors before training, a real run."""

from __future__ import annotations

import json

import pytest

import recbole_autodenoise.experimental  # noqa: F401  (the meta credit below: experimental)
import recbole_autodenoise as rad
from recbole_autodenoise import cli


def test_overrides_are_parsed_like_recbole_key_value_arguments():
    args, overrides = cli.parse_args(
        [
            "--model=SASRec",
            "--dataset=ml-1m",
            "--learning_rate=5e-4",
            "--topk=[10, 20]",
            "--show_progress=false",
        ]
    )
    assert (args.model, args.dataset) == ("SASRec", "ml-1m")
    assert overrides == {"learning_rate": 5e-4, "topk": [10, 20], "show_progress": False}


def test_scheme_precedence_flag_then_config_then_the_one_default(tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text("denoise_scheme: adt_rl\n", encoding="utf-8")
    assert cli.parse_args(["--config_files", str(config)])[1] == {}
    assert cli.parse_args(["--config_files", str(config), "--scheme=heuristic"])[1] == {
        "denoise_scheme": "heuristic"
    }
    assert cli.parse_args(["--denoise_scheme=autodenoise_s"])[1] == {
        "denoise_scheme": "autodenoise_s"
    }
    assert cli.parse_args([])[1] == {}  # the config's default, the same as Python's
    assert rad.make_config("BPR", "ml-100k")["denoise_scheme"] == "default"


@pytest.mark.slow
def test_bad_input_exits_2_with_the_reason_and_writes_nothing(tmp_path, capsys):
    results = tmp_path / "out.json"
    code = cli.main(
        [
            "--model=BPR",
            "--dataset=ml-100k",
            "--scheme=magic",
            f"--results_file={results}",
            "--epochs=1",
            "--show_progress=False",
        ]
    )
    assert code == 2
    assert "unknown denoise_scheme 'magic'" in capsys.readouterr().err
    assert not results.exists()


@pytest.mark.slow
def test_cli_runs_a_scheme_and_writes_the_results_file(tmp_path, capsys):
    results = tmp_path / "sub" / "bpr.json"
    code = cli.main(
        [
            "--model=BPR",
            "--dataset=ml-100k",
            "--scheme=autodenoise_h",
            "--epochs=1",
            "--show_progress=False",
            "--state=WARNING",
            f"--results_file={results}",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "precision" in printed and "@50" in printed
    payload = json.loads(results.read_text())
    assert (
        payload["model"] == "BPR"
        and payload["denoise_scheme"] == "autodenoise_h"
        and payload["seed"] == 2020
    )
    assert set(payload["test"]) >= {
        f"{m}@{k}" for m in ("precision", "recall", "f1", "ndcg") for k in (10, 20, 50)
    }
    assert abs(payload["test"]["precision@10"] - payload["test"]["recall@10"] / 10) < 1e-6
    assert payload["timing"]["epochs_trained"] == 1 and payload["epochs"][0]["train_seconds"] > 0
    assert {"tp_mean_weight", "fp_mean_weight", "per_epoch"} <= set(payload["weight_study"])
    assert "controller_reward" in payload["epochs"][0]
    plugin = payload["plugin_config"]
    assert plugin["denoise_scheme"] == "autodenoise_h" and plugin["controller_credit"] == "epoch"
    assert "learning_rate" not in plugin  # RecBole's own keys stay out


@pytest.mark.slow
def test_cli_runs_the_beyond_the_paper_keys_on_gru4rec(tmp_path):
    """Issue 5 from the command line: meta credit, guide/select split, injected noise and the
    diagnostics together, on the model that needs cuDNN-free double backward on a GPU."""
    results = tmp_path / "gru.json"
    code = cli.main(
        [
            "--model=GRU4Rec",
            "--dataset=ml-100k",
            "--scheme=autodenoise_s",
            "--controller_credit=meta",
            "--clean_valid_guide_ratio=0.5",
            "--noise_rate=0.1",
            "--noise_kind=foreign",
            "--denoise_diagnostics=True",
            "--epochs=1",
            "--user_inter_num_interval=[10,60]",
            "--show_progress=False",
            "--state=WARNING",
            f"--results_file={results}",
        ]
    )
    assert code == 0
    payload = json.loads(results.read_text())
    study, epoch = payload["weight_study"], payload["epochs"][0]
    assert study["injected_samples"] > 0 and study["injected_mean_weight"] > 0
    assert (
        epoch["controller_meta_updates"] > 0 and "guide_score" not in epoch
    )  # meta learns per batch
    assert 0 < epoch["controller_effective_fraction"] <= 1
    assert payload["plugin_config"]["meta_normalize_weights"] is True
    assert {f"diag_{g}_alignment" for g in ("tp", "fp", "injected")} <= set(epoch)
    assert 0 < payload["test"]["ndcg@20"] < 1
