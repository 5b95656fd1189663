"""The files written from the option declarations (``options``): the plugin lines of
``properties/overall.yaml`` and ``properties/experimental.yaml`` (``key: default  # (type) doc``;
RecBole's keys in them stay as they are) and the key table of ``docs/guide.md`` (between
``<!-- options:begin -->`` and ``<!-- options:end -->``).

``python -m recbole_autodenoise.option_files --write`` rewrites them; ``--check`` exits 1 naming
each file that differs from what the declarations give (``tests/test_options.py`` does the same).
Both import ``recbole_autodenoise.experimental``, whose options the files hold too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from recbole_autodenoise import options
from recbole_autodenoise.config import (
    EXPERIMENTAL_FILE,
    OVERALL_FILE,
    declared_rules,
    option_owners,
)
from recbole_autodenoise.files import atomic_write

GUIDE_FILE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"
BEGIN, END = "<!-- options:begin -->", "<!-- options:end -->"
EXPERIMENTAL_PACKAGE = "recbole_autodenoise.experimental"


def _is_experimental(owner) -> bool:
    module = getattr(owner, "__module__", None) or owner.__name__
    return module == EXPERIMENTAL_PACKAGE or module.startswith(EXPERIMENTAL_PACKAGE + ".")


def rows() -> list[tuple[options.Option, str, bool]]:
    """(option, owner's name, experimental?) of every declaration, experiments included."""
    import recbole_autodenoise.experimental  # noqa: F401  (registers its components)

    return [
        (option, name, _is_experimental(owner))
        for owner, name in option_owners()
        for option in options.own(owner)
    ]


def guide_section(text: str, table: str) -> str:
    """``text`` with ``table`` between the markers."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{GUIDE_FILE}: expected one {BEGIN} line, then one {END} line")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def expected() -> dict[Path, str]:
    """Each written file and the text the declarations give it."""
    found = rows()
    plugin = [
        option for option, _, experimental in found if not option.recbole and not experimental
    ]
    apart = [option for option, _, experimental in found if experimental]
    owned = [(option, name + (" (experimental)" if e else "")) for option, name, e in found]
    rules = declared_rules()
    texts = {
        OVERALL_FILE: options.rewrite_yaml(OVERALL_FILE.read_text(encoding="utf-8"), plugin),
        EXPERIMENTAL_FILE: options.rewrite_yaml(
            EXPERIMENTAL_FILE.read_text(encoding="utf-8"), apart
        ),
    }
    if GUIDE_FILE.exists():  # a checkout; an installed package has no docs
        table = options.render_table(owned, rules)
        texts[GUIDE_FILE] = guide_section(GUIDE_FILE.read_text(encoding="utf-8"), table)
    return texts


def stale() -> list[Path]:
    """The files whose text differs from ``expected``."""
    return [path for path, text in expected().items() if path.read_text(encoding="utf-8") != text]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the files")
    mode.add_argument("--check", action="store_true", help="exit 1 where a file differs")
    args = parser.parse_args(argv)
    if args.check:
        differ = stale()
        for path in differ:
            print(
                f"{path}: differs from the option declarations; run python -m "
                "recbole_autodenoise.option_files --write",
                file=sys.stderr,
            )
        return 1 if differ else 0
    for path, text in expected().items():
        if path.read_text(encoding="utf-8") != text:
            with atomic_write(path) as handle:
                handle.write(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
