"""The experimental package apart from the method: registered only when imported (``import
recbole_autodenoise.experimental`` or ``experimental: true``), its own keys, and what it adds to
the controller (moved from tests/controller/test_controller.py, test_explicit_credit.py,
tests/schemes/test_schemes.py and tests/test_config_bounds.py with their expected values
unchanged)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import recbole_autodenoise.experimental  # noqa: F401  (registers what it holds)
from recbole_autodenoise import registry
from recbole_autodenoise.config import EXPERIMENTAL_FILE, experimental_keys, known_keys, make_config
from recbole_autodenoise.controller import CREDITS, PRIORS, STATES
from recbole_autodenoise.experimental import PROPERTY_FILE
from recbole_autodenoise.experimental.explicit import ExplicitCreditExtras
from recbole_autodenoise.experimental.states import product_state
from recbole_autodenoise.schemes import SCHEMES
from recbole_autodenoise.schemes.adt_rl import ReweightedLossScheme
from recbole_autodenoise.schemes.adt_tl import TruncatedLossScheme
from recbole_autodenoise.schemes.base import mean_one
from recbole_autodenoise.schemes.default import DefaultScheme
from recbole_autodenoise.schemes.heuristic import HeuristicScheme
from tests.test_config_bounds import cli_error
from tests.controller.test_controller import CPU, FakeConfig, toy_batch
from tests.controller.test_explicit_credit import EXPLICIT, FakeGuidance, training_batch

ROOT = Path(__file__).resolve().parents[2]
ALL_SCHEMES = [
    "adt_rl",
    "adt_tl",
    "autodenoise_h",
    "autodenoise_s",
    "dcf",
    "default",
    "heuristic",
    "l2rw",
    "oracle",
]
OPT_IN = (
    "set experimental: true (command line: --experimental=true; Python: import "
    "recbole_autodenoise.experimental)"
)


# --------------------------------------------------------------------------------------------
# what importing the package registers


def test_importing_registers_exactly_the_declared_experimental_names():
    for kind, found in (
        (SCHEMES, ["l2rw"]),
        (CREDITS, ["meta", "user"]),
        (STATES, ["paper_product", "loss_features"]),
        (PRIORS, ["adt_tl"]),
    ):
        assert sorted(kind.experimental) == sorted(found)
        assert set(found) <= set(kind.names())
    assert CREDITS.get("explicit") is ExplicitCreditExtras
    assert PROPERTY_FILE == EXPERIMENTAL_FILE and PROPERTY_FILE in registry.EXTRA_PROPERTY_FILES


def test_the_experimental_keys_are_known_only_with_the_package(main_only):
    keys = experimental_keys()
    assert keys == {
        "meta_interval",
        "loss_ema_decay",
        "meta_normalize_weights",
        "meta_virtual_step",
        "explicit_canaries",
        "explicit_weight_power",
    }
    assert not keys & known_keys()
    overall = (ROOT / "recbole_autodenoise" / "properties" / "overall.yaml").read_text("utf-8")
    assert not [key for key in keys if f"\n{key}:" in overall]


def test_the_experimental_keys_load_with_the_package():
    config = make_config(
        "BPR",
        "ml-100k",
        config_dict={"experimental": True, "meta_interval": 3, "denoise_scheme": "autodenoise_s"},
    )
    assert config["meta_interval"] == 3 and config["loss_ema_decay"] == 0.9
    assert experimental_keys() <= known_keys()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--denoise_scheme=l2rw"], f"denoise_scheme 'l2rw' is experimental: {OPT_IN}"),
        (
            ["--scheme=autodenoise_s", "--controller_credit=user"],
            f"controller_credit 'user' is experimental: {OPT_IN}",
        ),
        (
            ["--scheme=default", "--controller_credit=meta"],
            f"controller_credit 'meta' is experimental: {OPT_IN}",
        ),
        (
            ["--controller_state=loss_features"],
            f"controller_state 'loss_features' is experimental: {OPT_IN}",
        ),
        (
            ["--scheme=default", "--controller_prior=adt_tl"],
            f"controller_prior 'adt_tl' is experimental: {OPT_IN}",
        ),
        (["--explicit_canaries=0.1"], f"config key 'explicit_canaries' is experimental: {OPT_IN}"),
        (["--meta_interval=2"], f"config key 'meta_interval' is experimental: {OPT_IN}"),
        (
            ["--experimental=maybe"],
            "config key 'experimental' = 'maybe' is invalid: expected true or false",
        ),
    ],
)
def test_naming_an_experiment_without_the_package_fails_before_any_data(
    capsys, main_only, args, message
):
    assert cli_error(capsys, *args) == message


def test_an_experimental_key_in_a_config_file_names_the_file(tmp_path, main_only):
    path = tmp_path / "run.yaml"
    path.write_text("loss_ema_decay: 0.5\n", encoding="utf-8")
    with pytest.raises(ValueError) as error:
        make_config("BPR", "ml-100k", config_files=[str(path)])
    assert str(error.value) == (
        f"config file {path}: config key 'loss_ema_decay' is experimental: {OPT_IN}"
    )


@pytest.mark.slow
def test_the_key_imports_the_package_in_a_fresh_process(tmp_path):
    """Without the package a run naming the user credit fails; ``experimental: true`` (here from
    a config file) imports it and the same settings pass."""
    (tmp_path / "on.yaml").write_text("experimental: true\n", encoding="utf-8")
    script = textwrap.dedent(f"""
        import sys
        import recbole_autodenoise as rad
        settings = {{"denoise_scheme": "autodenoise_s", "controller_credit": "user",
                     "meta_interval": 2, "clean_valid_guide_ratio": 0.5}}
        try:
            rad.make_config("BPR", "ml-100k", config_dict=settings)
        except ValueError as error:
            print("refused:", error)
        assert "recbole_autodenoise.experimental" not in sys.modules
        config = rad.make_config("BPR", "ml-100k", config_files=[{str(tmp_path / "on.yaml")!r}],
                                 config_dict=settings)
        print("accepted:", config["controller_credit"], config["meta_interval"])
    """)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "refused: config key 'meta_interval' is experimental: " + OPT_IN,
        "accepted: user 2",
    ]


def test_a_checkpoint_with_experimental_keys_resumes_with_the_opt_in():
    from recbole_autodenoise.checkpoints import check_same_settings

    saved = {"epochs": 1, "meta_interval": 2, "loss_ema_decay": 0.5}
    check_same_settings(saved, {**saved, "epochs": 2, "experimental": True}, "x.pth")
    with pytest.raises(ValueError) as error:
        check_same_settings(saved, {"epochs": 2, "experimental": False}, "x.pth")
    assert str(error.value).startswith(
        "x.pth was trained with loss_ema_decay=0.5, this run leaves it unset; meta_interval=2, "
        "this run leaves it unset (the checkpoint's loss_ema_decay, meta_interval: "
        + OPT_IN
        + "): "
    )


def test_experimental_keys_at_their_defaults_on_one_side_only_are_no_change():
    """A process that imported the experimental package holds its keys at their defaults; one that
    did not (a rank, a later resume) lacks them: the same run either way."""
    from recbole_autodenoise.checkpoints import check_same_settings

    defaults = {"epochs": 1, "meta_interval": 1, "loss_ema_decay": 0.9}
    check_same_settings(defaults, {"epochs": 2}, "x.pth")
    check_same_settings({"epochs": 1}, {**defaults, "epochs": 2}, "x.pth")
    with pytest.raises(ValueError, match="meta_interval unset, this run uses 3"):
        check_same_settings({"epochs": 1}, {"epochs": 1, "meta_interval": 3}, "x.pth")


def test_benchmark_cells_keep_their_keys_with_the_opt_in():
    from benchmarks.grid import overrides_hash

    assert overrides_hash({"controller_credit": "meta", "experimental": True}) == overrides_hash(
        {"controller_credit": "meta"}
    )


# --------------------------------------------------------------------------------------------
# the registries' listings with the package (tests/schemes/test_schemes.py,
# tests/test_config_bounds.py)


def test_unknown_scheme_lists_all_six():
    with pytest.raises(ValueError) as info:
        SCHEMES.get("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in ALL_SCHEMES:
        assert name in message
    assert set(ALL_SCHEMES) <= set(SCHEMES.names())


def test_builtin_names_map_to_their_classes():
    assert SCHEMES.get("default") is DefaultScheme
    assert SCHEMES.get("heuristic") is HeuristicScheme
    assert SCHEMES.get("adt_tl") is TruncatedLossScheme
    assert SCHEMES.get("adt_rl") is ReweightedLossScheme
    for name in ALL_SCHEMES:
        assert SCHEMES.get(name).name == name


def test_an_unknown_scheme_lists_the_registered_ones_before_any_data(capsys):
    message = cli_error(capsys, "--denoise_scheme=bogus")
    assert message == (
        "unknown denoise_scheme 'bogus'; available: adt_rl, adt_tl, autodenoise_h, autodenoise_s, "
        "dcf, default, heuristic, l2rw, oracle, udt"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--controller_credit=bogus"],
            "unknown controller_credit 'bogus'; available: epoch, explicit, meta, supervised, user",
        ),
        (
            ["--scheme=default", "--controller_credit=bogus"],  # checked whichever scheme runs
            "unknown controller_credit 'bogus'; available: epoch, explicit, meta, supervised, user",
        ),
    ],
)
def test_plugin_values_are_refused_before_the_data_set_loads(capsys, args, message):
    got = cli_error(capsys, *args)
    assert got.startswith(message), got


# --------------------------------------------------------------------------------------------
# the controller with the package (tests/controller/test_controller.py, test_explicit_credit.py)


def test_controller_state_with_the_product():
    user = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    item = torch.tensor([[5.0, -1.0], [0.5, 2.0]])
    losses = torch.tensor([0.5, 0.25])
    state = product_state(user, item, losses, 0.75)
    expected = torch.tensor(
        [[1.0, 2.0, 5.0, -1.0, 5.0, -2.0, 0.5, 0.75], [3.0, 4.0, 0.5, 2.0, 1.5, 8.0, 0.25, 0.75]]
    )
    assert torch.equal(state, expected)


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_paper_product_widens_the_controller_input_by_d(name):
    batch = toy_batch(8, seed=4)
    d = batch.user_repr.shape[1]
    plain = SCHEMES.get(name)(FakeConfig(), CPU)
    product = SCHEMES.get(name)(FakeConfig(controller_state="paper_product"), CPU)
    plain.weights(batch)
    product.weights(batch)
    assert product.input_size == plain.input_size + d == 3 * d + 2


def test_first_reward_baseline_needs_epoch_credit():
    with pytest.raises(
        ValueError,
        match="'baseline_init' = 'first_reward' applies to controller_credit 'epoch' only",
    ):
        SCHEMES.get("autodenoise_s")(
            FakeConfig(baseline_init="first_reward", controller_credit="user"), CPU
        )


def test_the_weight_power_sharpens_the_same_fitted_weights():
    # same seed, same batches: the fit and the draws are identical, only the applied weights differ
    plain, sharp = (
        SCHEMES.get("autodenoise_s")(FakeConfig(**EXPLICIT, explicit_weight_power=p), CPU)
        for p in (1.0, 3)
    )
    for step in range(3):
        weights = plain.weights(training_batch(step, FakeGuidance(step))[0])
        torch.testing.assert_close(
            sharp.weights(training_batch(step, FakeGuidance(step))[0]), mean_one(weights**3)
        )


@pytest.mark.parametrize("value", [0, -1.0, "2", None, True])
def test_the_weight_power_must_be_positive(value):
    with pytest.raises(
        ValueError,
        match=f"config key 'explicit_weight_power' = {value!r} is invalid: expected a number > 0",
    ):
        SCHEMES.get("autodenoise_s")(FakeConfig(**EXPLICIT, explicit_weight_power=value), CPU)


def test_the_weight_power_belongs_to_explicit_credit():
    with pytest.raises(
        ValueError,
        match="'explicit_weight_power' = 2.0 applies to controller_credit 'explicit' only "
        r"\(this run uses 'epoch'\); leave it at 1",
    ):
        SCHEMES.get("autodenoise_s")(FakeConfig(explicit_weight_power=2.0), CPU)


def test_loss_features_are_refused_with_the_reason():
    with pytest.raises(
        ValueError,
        match="'controller_state' = 'loss_features' is not supported with controller_credit "
        "'explicit' \\(its loss history exists for training rows only\\); "
        "allowed there: 'paper', 'paper_product'",
    ):
        SCHEMES.get("autodenoise_s")(FakeConfig(controller_state="loss_features", **EXPLICIT), CPU)


def test_observed_labels_need_rows_labelled_zero():
    with pytest.raises(
        ValueError,
        match="'explicit_labels' = 'observed' labels every rated row 1, "
        "so the fit needs rows labelled 0: set "
        "explicit_negatives >= 1 \\(or explicit_canaries > 0\\)",
    ):
        SCHEMES.get("autodenoise_s")(FakeConfig(**EXPLICIT, explicit_labels="observed"), CPU)
