"""``schemes.protocol``: rating-reading diagnostics run only with ``allow_rating_diagnostics``
and say so in their results; a scheme or credit that learns from the validation rows is refused
where those rows also select the epoch (``clean_valid_guide_ratio`` 0). Both before any data
loads."""

from __future__ import annotations

import pytest
import torch

# l2rw, the user and meta credit below are experimental
import recbole_autodenoise.experimental  # noqa: F401
from recbole_autodenoise import cli
from recbole_autodenoise.quick_start import run
from recbole_autodenoise.schemes import SCHEMES
from recbole_autodenoise.schemes.protocol import check_protocol, reads_training_ratings
from tests.conftest import write_inter
from tests.schemes.test_schemes import FakeConfig

CPU = torch.device("cpu")
TINY = {
    "user_inter_num_interval": "[0,inf)",
    "item_inter_num_interval": "[0,inf)",
    "topk": [5],
    "valid_metric": "NDCG@5",
    "show_progress": False,
    "state": "WARNING",
    "epochs": 1,
}

# the settings that read the training ratings, and the refusal each gets without the opt-in
DIAGNOSTICS = [
    ({"denoise_scheme": "oracle"}, "config key 'denoise_scheme' = 'oracle'"),
    (
        {"denoise_scheme": "autodenoise_s", "controller_credit": "supervised"},
        "config key 'controller_credit' = 'supervised'",
    ),
    (
        {"denoise_scheme": "autodenoise_h", "controller_oracle_state": True},
        "config key 'controller_oracle_state' = True",
    ),
    (
        {
            "denoise_scheme": "autodenoise_s",
            "controller_credit": "supervised",
            "controller_oracle_state": True,
        },
        "config keys 'controller_credit' = 'supervised' and 'controller_oracle_state' = True",
    ),
]
# the settings that learn from the clean validation rows themselves
LEARNERS = [
    ({"denoise_scheme": "l2rw"}, "config key 'denoise_scheme' = 'l2rw'"),
    (
        {"denoise_scheme": "autodenoise_s", "controller_credit": "meta"},
        "config key 'controller_credit' = 'meta'",
    ),
    (
        {"denoise_scheme": "autodenoise_h", "controller_credit": "user"},
        "config key 'controller_credit' = 'user'",
    ),
    (
        {"denoise_scheme": "autodenoise_s", "controller_credit": "explicit"},
        "config key 'controller_credit' = 'explicit'",
    ),
]


def tiny_rows() -> list[tuple]:
    """12 users x 10 of 14 items, ratings 1-5, one second apart."""
    return [
        (u, 1 + (u + j) % 14, 1 + (u * j) % 5, 1000 * u + j)
        for u in range(1, 13)
        for j in range(10)
    ]


def opt_in_message(settings: str) -> str:
    return (
        f"{settings} reads the training rows' ratings (a diagnostic, never a denoising method): "
        "set allow_rating_diagnostics: true to run it "
        "(its results then say reads_training_ratings: true)"
    )


def split_message(settings: str) -> str:
    return (
        f"{settings} learns from the clean validation rows, "
        "and clean_valid_guide_ratio = 0.0 makes them the "
        "rows that select the epoch: set clean_valid_guide_ratio to 0.5 "
        "(half of each user's clean validation "
        "rows teach, the other half select)"
    )


# --- rating-reading diagnostics -------------------------------------------------------------
@pytest.mark.parametrize("settings, named", DIAGNOSTICS, ids=lambda v: str(v))
def test_diagnostics_are_refused_without_the_opt_in(settings, named):
    config = FakeConfig(**settings)
    assert config["allow_rating_diagnostics"] is False  # the declared default
    with pytest.raises(ValueError) as error:
        check_protocol(config)
    assert str(error.value) == opt_in_message(named)
    check_protocol(FakeConfig(**settings, allow_rating_diagnostics=True))
    assert reads_training_ratings(config)


@pytest.mark.parametrize(
    "settings",
    [{"denoise_scheme": name} for name in ("default", "heuristic", "adt_tl", "adt_rl", "dcf")]
    + [
        {
            "denoise_scheme": "autodenoise_s",
            "controller_credit": credit,
            "clean_valid_guide_ratio": 0.5,
        }
        for credit in ("epoch", "user", "meta", "explicit")
    ],
    ids=lambda v: "-".join(map(str, v.values())),
)
def test_methods_need_no_opt_in_and_read_no_ratings(settings):
    check_protocol(FakeConfig(**settings))
    assert not reads_training_ratings(FakeConfig(**settings))


@pytest.mark.parametrize(
    "settings",
    [s for s, _ in DIAGNOSTICS]
    + [
        {"denoise_scheme": "autodenoise_s"},
        {"denoise_scheme": "autodenoise_s", "controller_credit": "explicit"},
        {"denoise_scheme": "default"},
    ],
    ids=lambda v: "-".join(map(str, v.values())),
)
def test_the_config_check_agrees_with_the_built_scheme(settings):
    """What the check reads from the config is what the scheme the trainer builds reads."""
    config = FakeConfig(**settings, allow_rating_diagnostics=True)
    scheme = SCHEMES.get(settings["denoise_scheme"])(config, CPU)
    assert bool(scheme.reads_ratings) == reads_training_ratings(config)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_the_opt_in_is_a_boolean(value):
    with pytest.raises(ValueError) as error:
        check_protocol(FakeConfig(allow_rating_diagnostics=value))
    assert (
        str(error.value)
        == f"config key 'allow_rating_diagnostics' = {value!r} is invalid: expected true or false"
    )


def test_refused_before_any_data_loads(tmp_path, capsys):
    """The data path does not exist: the refusal comes first, from ``run`` and from the CLI."""
    missing = str(tmp_path / "missing")
    with pytest.raises(ValueError, match="allow_rating_diagnostics: true"):
        run("BPR", "tiny", config_dict={**TINY, "data_path": missing, "denoise_scheme": "oracle"})
    argv = [
        "--model=BPR",
        "--dataset=tiny",
        f"--data_path={missing}",
        "--scheme=autodenoise_s",
        "--controller_credit=supervised",
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: config key 'controller_credit' = 'supervised' reads the training rows' ratings"
    )
    assert not (tmp_path / "missing").exists()


@pytest.mark.slow
def test_results_say_whether_the_training_ratings_were_read(tmp_path):
    write_inter(tmp_path, "tiny", tiny_rows())
    common = {**TINY, "data_path": str(tmp_path)}
    oracle = run(
        "BPR",
        "tiny",
        config_dict={**common, "denoise_scheme": "oracle", "allow_rating_diagnostics": True},
        saved=False,
    )
    default = run(
        "BPR",
        "tiny",
        config_dict={**common, "denoise_scheme": "default", "allow_rating_diagnostics": True},
        saved=False,
    )
    assert oracle["reads_training_ratings"] is True and default["reads_training_ratings"] is False
    assert oracle["plugin_config"]["allow_rating_diagnostics"] is True


# --- learning from the rows that select -----------------------------------------------------
@pytest.mark.parametrize("settings, named", LEARNERS, ids=lambda v: str(v))
def test_validation_learners_are_refused_on_one_validation_set(settings, named):
    with pytest.raises(ValueError) as error:
        check_protocol(FakeConfig(**settings))
    assert str(error.value) == split_message(named)
    check_protocol(FakeConfig(**settings, clean_valid_guide_ratio=0.5))
    check_protocol(FakeConfig(**settings, clean_valid_guide_ratio=0.2))


@pytest.mark.parametrize(
    "settings",
    [
        {
            "denoise_scheme": "autodenoise_s",
            "controller_credit": "epoch",
        },  # the paper's Algorithm 1 and protocol
        {
            "denoise_scheme": "autodenoise_s",
            "controller_credit": "supervised",
            "allow_rating_diagnostics": True,
        },
        {"denoise_scheme": "adt_rl"},
    ],
    ids=lambda v: "-".join(map(str, v.values())),
)
def test_others_run_on_one_validation_set(settings):
    check_protocol(FakeConfig(**settings))


def test_a_validation_learner_on_one_set_is_refused_before_any_data_loads(tmp_path, capsys):
    missing = str(tmp_path / "missing")
    argv = [
        "--model=BPR",
        "--dataset=tiny",
        f"--data_path={missing}",
        "--scheme=autodenoise_s",
        "--controller_credit=explicit",
        "--explicit_negatives=1",
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "'controller_credit' = 'explicit' learns from the clean validation rows" in err
    assert "set clean_valid_guide_ratio to 0.5" in err


def test_make_config_checks_the_protocol_after_the_scheme_rules(tmp_path):
    """The protocol rules live in ``make_config`` (every entry point: ``run``, ``select``, the
    benchmarks) and come after the scheme's own rules."""
    from recbole_autodenoise.config import make_config

    common = {**TINY, "data_path": str(tmp_path / "missing")}
    with pytest.raises(ValueError, match="'denoise_scheme' = 'oracle' reads the training rows"):
        make_config("BPR", "tiny", config_dict={**common, "denoise_scheme": "oracle"})
    with pytest.raises(ValueError, match="'denoise_scheme' = 'l2rw' learns from the clean"):
        make_config("BPR", "tiny", config_dict={**common, "denoise_scheme": "l2rw"})
    config = make_config(
        "BPR",
        "tiny",
        config_dict={**common, "denoise_scheme": "l2rw", "clean_valid_guide_ratio": 0.5},
    )
    assert config["clean_valid_guide_ratio"] == 0.5
    assert not (tmp_path / "missing").exists()
