"""README.md's promises: the adoption snippet runs as written, and CI calls its test command."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_exactly_two_commands_and_ci_runs_the_second():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(first_block) == 2
    install_and_run, test_command = first_block
    assert install_and_run.startswith("pip install -e . && python run_recbole_denoise.py ")
    assert (
        "--dataset=ml-100k" in install_and_run and "torch" not in install_and_run
    )  # no pin forced on users
    # the test command installs what the tests need (the test extra) before running them
    assert test_command == "pip install -e '.[test]' && python -m pytest -q tests"
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    # CI installs the CPU torch from this machine's disk first, so the test command keeps it
    assert ci_lines.index("pip install -q torch==2.13.0") < ci_lines.index(test_command)


def test_the_test_extra_holds_what_the_suite_imports():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extra = {
        re.split(r"[<>=]", line.strip())[0]
        for line in cfg["options.extras_require"]["test"].splitlines()
        if line
    }
    assert extra == {"pytest", "ruff", "matplotlib"}


def test_readme_is_short_and_its_links_and_figure_exist():
    assert len(README.splitlines()) <= 175
    targets = re.findall(r"\]\(((?!https?:)[^)#]+)\)", README)
    assert (
        "docs/results.md" in targets and "docs/research-log.md" in targets and "LICENSE" in targets
    )
    assert any(target.endswith(".png") for target in targets)
    assert [target for target in targets if not (ROOT / target).exists()] == []


def test_license_is_the_mit_license_setup_cfg_names():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2026 recbole-autodenoise developers\n")
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_the_research_log_left_the_readme():
    log = (ROOT / "docs" / "research-log.md").read_text(encoding="utf-8")
    for heading in (
        "## Beyond the paper: credit the controller can learn from",
        "## Measured (docs/results-2026-11-26.md)",
    ):
        assert heading in log and heading not in README
    assert "p = " not in README and "issue 5" not in README and "H100" not in README


@pytest.mark.slow
def test_readme_snippet_adopts_the_plugin_in_a_plain_recbole_script(capsys):
    snippet = re.search(r"<!-- readme-snippet:start -->\n```python\n(.*?)```", README, re.S).group(
        1
    )
    exec(compile(snippet, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    ndcg = float(
        re.search(r"'ndcg@20', np.float64\(([0-9.e-]+)\)|'ndcg@20': ([0-9.e-]+)", printed).group(1)
    )
    assert 0.0 < ndcg < 1.0
