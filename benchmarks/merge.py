"""Fold a study's rows into a results file: ``python -m benchmarks.merge DST.jsonl SRC.jsonl ...``.

A study split across processes or sessions writes each process's rows to its own JSONL (two
processes never append to one file). This copies into DST every finished (``status: ok``) row of
the SRC files whose cell key DST does not already hold as finished, in the SRC files' order, and
says what it took and what it left. Rows keep their command, machine and commit, so a merged row
still says where it came from. Failed rows and lines that are not JSON rows (a crash mid-write) stay
out. Rows of another data set than DST's are refused, and nothing is written then. DST is replaced
atomically (temporary file, then rename), so an interrupted merge leaves it as it was.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from benchmarks.grid import read_rows
from recbole_autodenoise.arguments import check_output_path, read_text
from recbole_autodenoise.files import atomic_write


def finished_keys(rows: Sequence[dict[str, Any]]) -> set[str]:
    return {row["key"] for row in rows if row.get("status") == "ok"}


def new_rows(
    held: Sequence[dict[str, Any]], sources: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The finished source rows whose key ``held`` lacks as finished, first occurrence only."""
    seen = finished_keys(held)
    taken = []
    for row in sources:
        if row.get("status") == "ok" and row["key"] not in seen:
            seen.add(row["key"])
            taken.append(row)
    return taken


def check_datasets(
    dst: Path, held: Sequence[dict[str, Any]], taken: Sequence[dict[str, Any]]
) -> None:
    datasets = {row.get("dataset") for row in held}
    foreign = sorted({str(row.get("dataset")) for row in taken} - datasets) if datasets else []
    if foreign:
        raise ValueError(
            f"{dst} holds rows of data set(s) {sorted(map(str, datasets))}; "
            f"the sources add {foreign}: merge them into their own file"
        )


def merge(dst: str | Path, sources: Sequence[str | Path]) -> tuple[int, int]:
    """Append the new finished rows of ``sources`` to ``dst``; returns (taken, left)."""
    missing = [str(path) for path in sources if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"no such source file(s): {missing}")
    dst = check_output_path(dst, "DST")  # before Path() drops a trailing '/'
    held = read_rows(dst)
    offered = [row for path in sources for row in read_rows(path)]
    taken = new_rows(held, offered)
    check_datasets(dst, held, taken)
    if taken:
        text = read_text(dst) if dst.exists() else ""
        if text and not text.endswith("\n"):
            text += "\n"
        dst.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(dst) as out:
            out.write(text + "".join(json.dumps(row, allow_nan=True) + "\n" for row in taken))
    return len(taken), len(offered) - len(taken)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dst", help="the results JSONL the report reads (created if missing)")
    parser.add_argument("sources", nargs="+", help="JSONL rows written by benchmarks.table3")
    args = parser.parse_args(argv)
    try:
        taken, left = merge(args.dst, args.sources)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    print(
        f"{args.dst}: took {taken} finished row(s); left {left} (already held, failed or repeated)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
