"""The one-command headroom check: its arithmetic on stand-in runs, and a real run on tiny data."""

from __future__ import annotations

import json

import pytest
from scipy import stats

from recbole_autodenoise import headroom
from tests.conftest import FAST

# clean-test NDCG@20 per (scheme, seed) of a stand-in runner
VALUES = {
    ("default", 2020): 0.040,
    ("default", 2021): 0.050,
    ("default", 2022): 0.060,
    ("oracle", 2020): 0.044,
    ("oracle", 2021): 0.052,
    ("oracle", 2022): 0.069,
    ("adt_rl", 2020): 0.040,
    ("adt_rl", 2021): 0.045,
    ("adt_rl", 2022): 0.066,
}


def fake_runner(calls):
    def run(model, dataset, config_files=None, config_dict=None):
        calls.append((model, dataset, config_files, dict(config_dict)))
        value = VALUES[(config_dict["denoise_scheme"], config_dict["seed"])]
        return {"test": {"ndcg@20": value, "recall@20": 2 * value}, "eval_protocol": "user_first"}

    return run


def test_headroom_is_the_mean_paired_relative_change_with_a_paired_t_test():
    calls = []
    result = headroom.measure(
        "BPR",
        "toy",
        [2020, 2021, 2022],
        ["default", "oracle", "adt_rl"],
        "ndcg@20",
        None,
        {"epochs": 3},
        runner=fake_runner(calls),
        log=lambda _: None,
    )
    opt_in = {"oracle": {"allow_rating_diagnostics": True}}  # only the oracle reads ratings
    expected = [
        {"epochs": 3, "denoise_scheme": s, "seed": 2020, **opt_in.get(s, {})}
        for s in ("default", "oracle", "adt_rl")
    ]
    assert [c[3] for c in calls[:3]] == expected
    changes = [0.1, 0.04, 0.15]
    summary = result.summary("oracle")
    assert summary["mean_relative_change"] == pytest.approx(sum(changes) / 3, rel=1e-12)
    assert summary["std_relative_change"] == pytest.approx(0.0550757054728611, rel=1e-9)
    expected_p = stats.ttest_rel([0.044, 0.052, 0.069], [0.040, 0.050, 0.060]).pvalue
    assert summary["paired_p"] == pytest.approx(expected_p, rel=1e-12)
    assert result.sentence() == (
        "removing low-rated training interactions changes clean-test ndcg@20 "
        "by +9.7 % ± 5.5 % for BPR on toy "
        f"(paired p = {expected_p:.3g}, 3 seeds), under eval_protocol user_first"
    )
    table = result.table().splitlines()
    assert table[0] == "clean test ndcg@20 (user_first protocol), fractions"
    assert table[3].startswith("oracle") and "+9.7%" in table[3]


def test_one_seed_gives_no_spread_and_no_p_value():
    result = headroom.Headroom(
        "BPR", "toy", "ndcg@20", "interaction", {"default": {1: 0.05}, "oracle": {1: 0.04}}
    )
    assert result.summary("oracle") == {
        "mean_relative_change": pytest.approx(-0.2),
        "std_relative_change": None,
        "paired_p": None,
        "seeds": 1,
    }
    assert result.sentence().startswith(
        "removing low-rated training interactions changes clean-test ndcg@20 by "
        "-20.0 % for BPR on toy, under"
    )


def test_unknown_metric_and_bad_arguments_are_refused(capsys):
    with pytest.raises(ValueError, match="--metric 'ndcg@7' is not among the test metrics"):
        headroom.measure(
            "BPR",
            "toy",
            [2020],
            ["default"],
            "ndcg@7",
            None,
            {},
            runner=fake_runner([]),
            log=lambda _: None,
        )
    with pytest.raises(SystemExit):
        headroom.parse_args(["--seeds=0"])
    with pytest.raises(SystemExit):
        headroom.parse_args(["--scheme=oracle"])
    assert "chosen by the headroom check itself" in capsys.readouterr().err


@pytest.mark.slow
def test_headroom_command_on_ml_100k_prints_its_verdict_and_writes_json(tmp_path, capsys):
    out = tmp_path / "headroom.json"
    argv = [
        "--model=BPR",
        "--dataset=ml-100k",
        "--seeds=1",
        "--no-adt-rl",
        f"--out={out}",
        "--user_inter_num_interval=[10,40]",
    ] + [f"--{k}={v}" for k, v in {**FAST, "epochs": 1}.items()]
    assert headroom.main(argv) == 0
    printed = capsys.readouterr().out
    assert "removing low-rated training interactions changes clean-test ndcg@20 by" in printed
    payload = json.loads(out.read_text())
    assert set(payload["values"]) == {"default", "oracle"}
    default, oracle = payload["values"]["default"]["2020"], payload["values"]["oracle"]["2020"]
    assert 0 < default < 1 and 0 < oracle < 1
    assert payload["summary"]["oracle"]["mean_relative_change"] == pytest.approx(
        (oracle - default) / default
    )
