"""README.md's promises: the adoption snippet runs as written, and CI calls its test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_exactly_two_commands_and_ci_runs_the_second():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(first_block) == 2
    install_and_run, test_command = first_block
    assert "pip install" in install_and_run and "run_recbole_denoise.py" in install_and_run
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_snippet_adopts_the_plugin_in_a_plain_recbole_script(capsys):
    snippet = re.search(r"<!-- readme-snippet:start -->\n```python\n(.*?)```", README, re.S).group(1)
    exec(compile(snippet, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    ndcg = float(re.search(r"'ndcg@20', np.float64\(([0-9.e-]+)\)|'ndcg@20': ([0-9.e-]+)", printed).group(1))
    assert 0.0 < ndcg < 1.0
