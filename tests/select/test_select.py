"""``python -m recbole_autodenoise.select``: ranking and recommendation on hand-built numbers,
argument errors before any cell, resuming and tuning with a stand-in cell runner, the trainer's
per-query validation record, and one short end-to-end run on ML-100K (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recbole_autodenoise.select import candidates as cand
from recbole_autodenoise.select import cells, command, stats

# ------------------------------------------------------------------------------------ statistics


def scores(*seed_rows, digest="users") -> stats.Scores:
    """A candidate's runs from per-query rows, one per seed (seeds 0, 1, ...)."""
    return stats.Scores(
        [
            stats.SeedScore(seed, float(np.mean(row)), np.asarray(row, float), digest)
            for seed, row in enumerate(seed_rows)
        ]
    )


def test_bootstrap_of_constant_scores_is_that_constant():
    estimates = stats.bootstrap(
        [np.full(40, 0.3), np.full(40, 0.3)], 500, np.random.default_rng(0), shared=True
    )
    np.testing.assert_allclose(estimates, 0.3)


def test_bootstrap_resamples_the_seeds():
    """Queries agree within a seed, seeds disagree: only seed resampling spreads the estimates."""
    estimates = stats.bootstrap(
        [np.zeros(30), np.ones(30)], 2000, np.random.default_rng(1), shared=True
    )
    assert set(np.round(estimates, 9)) == {0.0, 0.5, 1.0}
    assert stats.interval(estimates) == pytest.approx([0.0, 1.0])


def test_bootstrap_resamples_the_queries():
    """Seeds agree, queries disagree: only query resampling spreads the estimates."""
    row = np.array([0.0, 1.0] * 20)
    estimates = stats.bootstrap([row, row], 2000, np.random.default_rng(2), shared=True)
    low, high = stats.interval(estimates)
    assert low < 0.45 and high > 0.55  # the standard error of 40 fair coins is 0.079
    assert abs(estimates.mean() - 0.5) < 0.01


def test_shared_query_draws_keep_the_users_one_sample():
    """Five seeds scoring the same users alike: a shared draw keeps the users' spread (variance
    s2 / n), drawing each seed's queries apart would shrink it to about 0.36 s2 / n."""
    row = np.random.default_rng(3).random(50)
    shared = stats.bootstrap([row] * 5, 4000, np.random.default_rng(4), shared=True)
    apart = stats.bootstrap([row] * 5, 4000, np.random.default_rng(4), shared=False)
    assert shared.var() > 2 * apart.var()
    assert shared.var() == pytest.approx(row.var() / 50, rel=0.1)


def test_mean_interval_is_seeded_and_holds_the_mean():
    found = stats.mean_interval(
        scores([0, 1, 1, 0, 1] * 10, [1, 1, 0, 0, 1] * 10), seed=7, label="a"
    )
    again = stats.mean_interval(
        scores([0, 1, 1, 0, 1] * 10, [1, 1, 0, 0, 1] * 10), seed=7, label="a"
    )
    assert found == again
    assert found["ci"][0] < found["mean"] < found["ci"][1]
    assert found["method"] == "seeds x queries"


def test_without_per_query_scores_only_seeds_are_resampled():
    runs = stats.Scores([stats.SeedScore(0, 0.1), stats.SeedScore(1, 0.3)])
    found = stats.mean_interval(runs, seed=0, label="x")
    assert found["method"] == "seeds only (no per-query scores)"
    assert found["mean"] == pytest.approx(0.2) and found["ci"] == pytest.approx([0.1, 0.3])


def test_difference_is_paired_query_by_query():
    """A constant per-query gain of 0.05 under a large spread between queries: paired, its interval
    is tight and excludes 0; the two means' own intervals overlap widely."""
    base = np.random.default_rng(5).random(200)
    better, worse = scores(base + 0.05, base + 0.05), scores(base, base)
    diff = stats.difference(worse, better, seed=0, label="d")
    assert diff["mean"] == pytest.approx(-0.05)
    assert diff["ci"] == pytest.approx([-0.05, -0.05])
    assert not stats.contains_zero(diff["ci"])
    lo_better = stats.mean_interval(better, 0, "b")["ci"][0]
    assert lo_better < stats.mean_interval(worse, 0, "w")["ci"][1]


def test_difference_needs_the_same_seeds():
    a = scores([1.0, 0.0])
    b = stats.Scores([stats.SeedScore(5, 0.5, np.array([1.0, 0.0]), "users")])
    with pytest.raises(ValueError, match="same seeds"):
        stats.difference(a, b, 0, "x")


def test_queries_of_other_users_are_not_paired():
    a, b = scores([1.0, 0.0, 1.0], digest="u1"), scores([0.0, 0.0, 1.0], digest="u2")
    assert stats.difference(a, b, 0, "x")["method"] == "seeds only (no per-query scores)"


SIMPLICITY = {"default": (0, 0), "adt_rl": (2, 1), "explicit": (6, 2)}


def test_a_clearly_worse_candidate_is_never_recommended():
    """Default is the simplest but clearly worse: the best is recommended."""
    rng = np.random.default_rng(6)
    base = [rng.random(300) * 0.1 for _ in range(3)]
    found = {
        "default": scores(*base),
        "adt_rl": scores(*[row + 0.02 for row in base]),
        "explicit": scores(*[row + 0.03 for row in base]),
    }
    ranking, recommended = stats.rank(found, SIMPLICITY, seed=0)
    assert [entry["candidate"] for entry in ranking] == ["explicit", "adt_rl", "default"]
    assert recommended == "explicit"
    assert [entry["within_noise"] for entry in ranking] == [True, False, False]


def test_the_simplest_within_noise_of_the_best_is_recommended():
    """explicit is best by a hair within the queries' noise, adt_rl clearly worse: Default wins."""
    rng = np.random.default_rng(7)
    rows = [rng.random(300) for _ in range(3)]
    noisy = [np.clip(row + rng.normal(0, 0.3, 300), 0, 1) for row in rows]
    found = {
        "default": scores(*rows),
        "explicit": scores(*[row + 0.002 for row in noisy]),
        "adt_rl": scores(*[row - 0.2 for row in rows]),
    }
    ranking, recommended = stats.rank(found, SIMPLICITY, seed=0)
    assert ranking[0]["candidate"] == "explicit"
    assert recommended == "default"
    by_name = {entry["candidate"]: entry for entry in ranking}
    assert by_name["default"]["within_noise"] and not by_name["adt_rl"]["within_noise"]
    assert stats.contains_zero(by_name["default"]["difference_to_best"]["ci"])


def test_smaller_is_better_metrics_rank_the_other_way():
    found = {"default": scores([0.5] * 20, [0.5] * 20), "adt_rl": scores([0.1] * 20, [0.1] * 20)}
    ranking, recommended = stats.rank(
        found, {"default": (0, 0), "adt_rl": (1, 1)}, seed=0, bigger=False
    )
    assert ranking[0]["candidate"] == "adt_rl" and recommended == "adt_rl"


# ------------------------------------------------------------------------------------ candidates


def test_builtin_candidates_and_their_simplicity():
    order = sorted(cand.BUILTIN.values(), key=lambda c: c.simplicity)
    assert order[0].name == "default" and order[-1].name == "explicit"
    assert cand.BUILTIN["explicit"].settings == {
        "controller_credit": "explicit",
        "explicit_negatives": 1,
        "guide_batch_size": 512,
    }
    assert cand.BUILTIN["default_chrono"].settings["clean_valid_guide_order"] == "chronological"
    for candidate in cand.BUILTIN.values():
        assert candidate.grid[0] == {} and len(candidate.grid) >= 4, candidate.name


def test_candidates_file_adds_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "slow:\n  scheme: default\n  settings: {learning_rate: 1.0e-4}\n"
        "  grid: {learning_rate: [1.0e-4, 3.0e-4], embedding_size: [32]}\n"
        "adt_rl:\n  grid: [{adt_beta: 0.3}]\n",
        encoding="utf-8",
    )
    registry, added = cand.load_candidates_file(path, dict(cand.BUILTIN))
    assert added == ["slow"]
    assert registry["slow"].grid == (
        {},
        {"learning_rate": 1e-4, "embedding_size": 32},
        {"learning_rate": 3e-4, "embedding_size": 32},
    )
    assert registry["slow"].simplicity == cand.max_builtin_simplicity() + 1
    assert registry["adt_rl"].grid == ({}, {"adt_beta": 0.3}) and registry["adt_rl"].simplicity == 2
    chosen = cand.resolve(None, registry, added)
    assert [c.name for c in chosen] == [*cand.DEFAULT_CANDIDATES, "slow"]
    assert [c.name for c in cand.resolve(["adt_rl"], registry, added)] == ["default", "adt_rl"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("x:\n  settings: {a: 1}\n", "new candidate 'x' needs a 'scheme'"),
        ("x:\n  scheme: default\n  seed: 3\n", "unknown fields ['seed']"),
        ("x:\n  scheme: default\n  settings: {seed: 3}\n", "sets ['seed'], which select sets"),
        ("x:\n  scheme: default\n  grid: {learning_rate: 0.1}\n", "needs a non-empty list"),
        ("- a\n", "must hold a mapping"),
    ],
)
def test_candidates_file_errors_name_the_problem(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        cand.load_candidates_file(path, dict(cand.BUILTIN))


# ------------------------------------------------------------------------------- a stand-in runner

QUERIES = 60


class FakeRunner:
    """Stands in for the cell subprocess: a cell's per-query scores follow its learning rate
    (``quality``) and its seed; every call is recorded."""

    def __init__(self, quality=None, fail=()):
        self.calls: list[tuple[str, str, int]] = []
        self.quality = quality or (lambda settings: settings.get("learning_rate", 1e-3) * 100)
        self.fail = set(fail)

    def record(self, settings):
        rng = np.random.default_rng(settings["seed"])
        hit = rng.random(QUERIES) < min(self.quality(settings), 1.0)
        return {
            "queries": QUERIES,
            "top_k": 50,
            "users_digest": "same-users",
            "hits": [[int(q), 1] for q in np.flatnonzero(hit)],
        }

    def __call__(self, job, folder, checkpoint):
        settings = job.spec.config_dict
        self.calls.append((job.mode, settings.get("learning_rate"), settings["seed"]))
        if (job.mode, settings.get("learning_rate")) in self.fail:
            raise cells.CellFailed("stand-in failure")
        assert settings["evaluate_test"] is False and settings["clean_valid_guide_ratio"] == 0.5
        record = self.record(settings)
        mean = len(record["hits"]) / QUERIES
        data = {"users": QUERIES, "train": 1000}
        if job.mode == "test":
            assert checkpoint == folder / "saved" / "best.pth"
            return {"test": {"ndcg@20": mean}, "per_query": {"user_first": record}, "data": data}
        return {
            "best_valid_score": round(mean, 6),
            "valid_per_query": record,
            "data": data,
            "stopping": {"best_epoch": 3, "epochs_trained": 5},
            "checkpoint_name": "best.pth",
        }


CANDIDATES = (
    "good:\n  scheme: default\n  settings: {learning_rate: 0.008}\n"
    "  grid: [{learning_rate: 0.001}, {learning_rate: 0.009}, {learning_rate: 0.002}]\n"
    "bad:\n  scheme: default\n  settings: {learning_rate: 0.0004}\n  simplicity: -1\n"
)


def argv(tmp_path, *extra):
    path = tmp_path / "candidates.yaml"
    path.write_text(CANDIDATES, encoding="utf-8")
    return [
        "--model=BPR",
        "--dataset=ml-100k",
        f"--candidates-file={path}",
        "--candidates=default,good,bad",
        "--seeds=2",
        f"--out={tmp_path / 'report.json'}",
        *extra,
    ]


@pytest.mark.slow
def test_select_with_a_stand_in_runner_ranks_recommends_and_tests_once(tmp_path, capsys):
    runner = FakeRunner()
    assert command.main(argv(tmp_path), runner=runner) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert [e["candidate"] for e in report["ranking"]] == ["good", "default", "bad"]
    assert report["recommended"]["candidate"] == "good"
    assert report["recommended"]["command"].startswith(
        "python run_recbole_denoise.py --model=BPR --dataset=ml-100k --scheme=default "
        "--learning_rate=0.008"
    )
    test = report["recommended"]["test"]
    assert set(test) >= {"recommended", "default", "difference"} and test["difference"]["mean"] > 0
    # the test set was read once per seed for the recommended candidate and Default, after training
    tests = [call for call in runner.calls if call[0] == "test"]
    assert sorted(tests, key=str) == sorted(
        [("test", 0.008, 2020), ("test", 0.008, 2021), ("test", None, 2020), ("test", None, 2021)],
        key=str,
    )
    assert runner.calls.index(tests[0]) == 6
    assert set(report["settings"]) >= {"args", "commit", "machine", "command"}
    out = capsys.readouterr()
    assert "recommended: good" in out.out and "--scheme=default" in out.out
    assert "start" in out.err and "done in" in out.err


@pytest.mark.slow
def test_a_rerun_skips_finished_cells_and_other_settings_do_not_reuse_them(tmp_path):
    first = FakeRunner()
    assert command.main(argv(tmp_path), runner=first) == 0
    again = FakeRunner()
    assert command.main(argv(tmp_path), runner=again) == 0
    assert again.calls == []
    changed = FakeRunner()
    assert command.main(argv(tmp_path, "--embedding_size=32"), runner=changed) == 0
    assert len([c for c in changed.calls if c[0] == "train"]) == 6


@pytest.mark.slow
def test_an_interrupted_select_resumes_where_it_stopped(tmp_path):
    class Interrupted(FakeRunner):
        def __call__(self, job, folder, checkpoint):
            if len(self.calls) == 3:
                raise KeyboardInterrupt
            return super().__call__(job, folder, checkpoint)

    with pytest.raises(KeyboardInterrupt):
        command.main(argv(tmp_path), runner=Interrupted())
    assert not (tmp_path / "report.json").exists()
    rest = FakeRunner()
    assert command.main(argv(tmp_path), runner=rest) == 0
    assert len([c for c in rest.calls if c[0] == "train"]) == 3


@pytest.mark.slow
def test_failed_cells_give_no_recommendation_and_leave_the_test_set_unread(tmp_path, capsys):
    runner = FakeRunner(fail={("train", 0.0004)})
    assert command.main(argv(tmp_path), runner=runner) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["recommended"] is None and set(report["failed"]) == {"bad"}
    assert [c for c in runner.calls if c[0] == "test"] == []
    assert "nothing is recommended" in capsys.readouterr().err
    retry = FakeRunner()
    assert command.main(argv(tmp_path), runner=retry) == 0
    assert [c for c in retry.calls if c[0] == "train"] == [
        ("train", 0.0004, 2020),
        ("train", 0.0004, 2021),
    ]


@pytest.mark.slow
def test_tuning_tries_the_first_k_configurations_at_the_first_seed(tmp_path):
    runner = FakeRunner()
    assert command.main(argv(tmp_path, "--tune=3"), runner=runner) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    good = [t for t in report["tuning"] if t["candidate"] == "good"]
    # {} (0.008), 0.001, 0.009: the first three; 0.002 is not tried
    assert [t["config"] for t in good] == [{}, {"learning_rate": 0.001}, {"learning_rate": 0.009}]
    assert all(t["seed"] == 2020 for t in report["tuning"])
    assert [t["chosen"] for t in good] == [False, False, True]
    by_name = {e["candidate"]: e for e in report["ranking"]}
    assert by_name["good"]["settings"] == {"learning_rate": 0.009}
    assert "--learning_rate=0.009" in report["recommended"]["command"]
    # bad has one configuration only; the chosen tuning cell is the first seed's (not run twice)
    train = [c for c in runner.calls if c[0] == "train"]
    assert len(train) == len(set(train)) == 7 + 3  # tuning cells, then the second seed's
    assert len([t for t in report["tuning"] if t["candidate"] == "default"]) == 3


@pytest.mark.slow
def test_a_separate_tuning_seed_and_the_test_of_every_candidate(tmp_path):
    runner = FakeRunner()
    extra = ("--tune=2", "--tune_seed=7", "--seed=2021", "--test=all")
    assert command.main(argv(tmp_path, *extra), runner=runner) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert all(t["seed"] == 7 for t in report["tuning"])
    train = [c for c in runner.calls if c[0] == "train"]
    # tuning at seed 7 is never reused: every candidate then runs both ranking seeds
    assert sorted({seed for _, _, seed in train}) == [7, 2021, 2022]
    assert len([c for c in train if c[2] != 7]) == 3 * 2
    tested = report["recommended"]["test"]["candidates"]
    assert set(tested) == {"default", "good", "bad"}
    assert sorted(c[2] for c in runner.calls if c[0] == "test") == [2021] * 3 + [2022] * 3
    assert report["settings"]["args"]["test"] == "all"
    assert report["settings"]["cell_commits"] == ["None"]  # the stand-in records no commit


def test_run_jobs_prints_a_line_per_cell_started_and_finished(tmp_path):
    lines = []
    spec = cells.CellSpec(
        "BPR", "ml-100k", {"seed": 1, "evaluate_test": False, "clean_valid_guide_ratio": 0.5}
    )
    job = cells.Job("one", spec)
    cells.run_jobs([job], cells.Store(tmp_path), FakeRunner(), 1, lines.append)
    assert lines[0] == "1 train cells: 0 already finished, 1 to run"
    assert lines[1].startswith("[1/1] start  one") and "done in" in lines[2] and "ETA" in lines[2]
    assert (
        json.loads((tmp_path / spec.key / "result.json").read_text())["checkpoint_name"]
        == "best.pth"
    )


def test_cell_keys_follow_the_settings_and_the_config_files_contents(tmp_path):
    file = tmp_path / "a.yaml"
    file.write_text("embedding_size: 32\n")
    one = cells.CellSpec("BPR", "ml-100k", {"seed": 1}, (str(file),), (cells.file_digest(file),))
    assert (
        one.key
        == cells.CellSpec(
            "BPR",
            "ml-100k",
            {"seed": 1, "show_progress": True},
            (str(file),),
            (cells.file_digest(file),),
        ).key
    )
    assert (
        one.key
        != cells.CellSpec(
            "BPR", "ml-100k", {"seed": 2}, (str(file),), (cells.file_digest(file),)
        ).key
    )
    file.write_text("embedding_size: 64\n")
    assert (
        one.key
        != cells.CellSpec(
            "BPR", "ml-100k", {"seed": 1}, (str(file),), (cells.file_digest(file),)
        ).key
    )


# ----------------------------------------------------------------------------- argument errors


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--candidates=default,magic"], "unknown candidate 'magic'; known: default,"),
        (["--seeds=0"], "--seeds=0 is invalid: expected an integer >= 1"),
        (["--jobs=0"], "--jobs=0 is invalid"),
        (["--tune=-1"], "--tune=-1 is invalid"),
        (["--denoise_scheme=adt_rl"], "--denoise_scheme is set by select"),
        (["--clean_valid_guide_ratio=0"], "--clean_valid_guide_ratio=0.0 is invalid"),
        (
            ["--learning_rat=0.1"],
            "unknown config key 'learning_rat'; did you mean 'learning_rate'?",
        ),
        (["--model=BPRR"], "unknown model 'BPRR'"),
        (
            ["--model=MultiVAE"],
            "candidate 'adt_rl' (as given): config key 'denoise_scheme' = 'adt_rl' weights "
            "training samples, and model MultiVAE is not supported for per-sample weighting",
        ),
        (["stray"], "unrecognised argument 'stray'"),
        (["--candidates-file=missing.yaml"], "candidates file not found: missing.yaml"),
        (["--config_files=missing.yaml"], "config file not found"),
        (
            ["--dataset=ml-latest-small", "--data_path=nowhere", "--candidates=default"],
            "data set folder",
        ),
    ],
)
def test_argument_errors_exit_2_before_any_cell(tmp_path, capsys, extra, message):
    def never(*args):
        raise AssertionError("a cell ran")

    base = ["--model=BPR", "--dataset=ml-100k", f"--out={tmp_path / 'r.json'}"]
    assert command.main(base + extra, runner=never) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.json.cells").exists()


def test_missing_out_is_an_error():
    assert command.main(["--model=BPR", "--dataset=ml-100k"]) == 2


# ------------------------------------------------------------------------- trainer and quick_start


def test_the_trainer_keeps_the_best_epochs_per_query_validation():
    from recbole_autodenoise.trainer import AutoDenoiseTrainer

    trainer = AutoDenoiseTrainer.__new__(AutoDenoiseTrainer)
    trainer._saving, trainer.best_valid_per_query = False, None
    callback = trainer._after_validation(None, verbose=False)
    for epoch, (step, record) in enumerate(
        [(0, "first"), (0, "better"), (1, "worse"), (2, "worse still")]
    ):
        trainer.cur_step, trainer._valid_per_query = (
            step,
            record,
        )  # cur_step 0: RecBole took it as the best
        callback(epoch, 0.0)
    assert trainer.best_valid_per_query == "better"


def test_evaluate_test_must_be_a_bool(tmp_path, capsys):
    from recbole_autodenoise import cli

    assert (
        cli.main(["--model=BPR", "--dataset=ml-100k", "--evaluate_test=maybe", "--epochs=1"]) == 2
    )
    assert (
        "config key 'evaluate_test' = 'maybe' is invalid: expected true or false"
        in capsys.readouterr().err
    )
    assert not Path("saved").exists()


# --------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_select_end_to_end_on_ml100k_never_recommends_a_worse_candidate(tmp_path, capsys):
    """Default against a candidate that barely trains (learning rate 1e-7), declared simpler than
    Default so that only its validation scores keep it from being recommended."""
    path = tmp_path / "worse.yaml"
    path.write_text(
        "worse:\n  scheme: default\n  settings: {learning_rate: 1.0e-7}\n  simplicity: -1\n"
    )
    args = [
        "--model=BPR",
        "--dataset=ml-100k",
        "--candidates=default,worse",
        f"--candidates-file={path}",
        "--seeds=2",
        "--epochs=2",
        "--jobs=2",
        "--learning_rate=0.01",
        "--train_batch_size=4096",
        "--eval_batch_size=262144",
        f"--out={tmp_path / 'report.json'}",
    ]
    assert command.main(args) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report) >= {"ranking", "recommended", "tuning", "settings"}
    assert [e["candidate"] for e in report["ranking"]] == ["default", "worse"]
    worse = report["ranking"][1]
    assert not worse["within_noise"] and worse["difference_to_best"]["ci"][1] < 0
    for entry in report["ranking"]:
        assert set(entry) >= {"candidate", "valid_mean", "ci", "seeds", "per_seed", "settings"}
        assert entry["ci"][0] <= entry["valid_mean"] <= entry["ci"][1] and entry["seeds"] == 2
    found = report["recommended"]
    assert found["candidate"] == "default"
    assert found["command"].startswith(
        "python run_recbole_denoise.py --model=BPR --dataset=ml-100k --scheme=default"
    )
    assert set(found["test"]) >= {"recommended", "default", "difference"}
    assert found["test"]["default"]["mean"] > 0.02
    assert report["settings"]["args"]["seeds"] == [2020, 2021] and "machine" in report["settings"]
    # the cells never read the test set; their per-query validation is the best epoch's score
    for entry in report["ranking"]:
        for seed in entry["per_seed"]:
            result = json.loads(
                (tmp_path / "report.json.cells" / seed["cell"] / "result.json").read_text()
            )
            assert "test" not in result and result["plugin_config"]["evaluate_test"] is False
            assert seed["valid"] == pytest.approx(result["best_valid_score"], abs=1e-6)
    assert "recommended: default" in capsys.readouterr().out

    def never(*args):
        raise AssertionError("a finished cell ran again")

    assert command.main(args, runner=never) == 0


def test_a_cell_records_the_commit_that_computed_it(tmp_path, monkeypatch):
    from recbole_autodenoise.select import child, machine

    monkeypatch.setattr(child, "run_cell", lambda mode, spec: {"best_valid_score": 0.5})
    monkeypatch.setattr(machine, "git_commit", lambda: "abc123")
    spec = tmp_path / "spec.json"
    spec.write_text("{}", encoding="utf-8")
    assert child.main(["train", str(spec), str(tmp_path / "out.json")]) == 0
    found = json.loads((tmp_path / "out.json").read_text())
    assert found == {"best_valid_score": 0.5, "commit": "abc123"}


def test_without_per_query_scores_the_valid_score_is_the_best_epochs_metric_not_its_loss():
    """A run that picks its epoch by a validation loss (valid_selection: loss) keeps that loss as
    best_valid_score; select ranks by the metric at that epoch."""
    result = {
        "best_valid_score": 0.58,  # a BCE loss
        "best_valid_result": {"ndcg@20": 0.0745, "valid_loss": 0.58},
        "valid_per_query": None,
    }
    assert command.valid_scores(result, "ndcg@20") == (0.0745, None, None)
    with pytest.raises(ValueError, match=r"no validation recall@20 at its best epoch"):
        command.valid_scores(result, "recall@20")
