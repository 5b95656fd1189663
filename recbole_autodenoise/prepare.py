"""Convert raw rating files into RecBole atomic ``<data_path>/<name>/<name>.inter`` files.

Usage: ``python -m recbole_autodenoise.prepare INPUT --name NAME [--data-path DIR]
[--format auto|movielens-csv|movielens-dat|ml100k|amazon-csv] [--force]``
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
# Field separator and whether a header line may come first, per format.
FORMATS: dict[str, tuple[str, bool]] = {
    "movielens-csv": (",", True),
    "movielens-dat": ("::", False),
    "ml100k": ("\t", False),
    "amazon-csv": (",", True),
}


class PrepareError(ValueError):
    """Bad input or refused output; the message is meant for the user as is."""


@dataclass(frozen=True)
class PrepareSummary:
    rows: int
    users: int
    items: int
    path: Path


def _number(text: str) -> float:
    # float() also accepts "1_000"; raw data never legitimately contains that.
    if "_" in text:
        raise ValueError(text)
    return float(text)


def _is_number(text: str) -> bool:
    try:
        _number(text.strip())
    except ValueError:
        return False
    return True


def detect_format(input_path: str | os.PathLike[str]) -> str:
    """Guess the format from the first line, so users need not name it for the common files."""
    path = Path(input_path)
    try:
        with path.open(encoding="utf-8-sig") as f:
            first = f.readline().strip()
    except UnicodeDecodeError:
        raise PrepareError(f"{path.name}, line 1: not valid UTF-8") from None
    if "::" in first and len(first.split("::")) == 4:
        return "movielens-dat"
    if len(first.split("\t")) == 4:
        return "ml100k"
    fields = [x.strip() for x in first.split(",")]
    if len(fields) == 4:
        if [x.lower() for x in fields[:2]] == ["userid", "movieid"]:
            return "movielens-csv"
        if _is_number(fields[2]) and fields[0].isdigit() and fields[1].isdigit():
            return "movielens-csv"  # headerless numeric ids: MovieLens-style
        return "amazon-csv"
    raise PrepareError(f"cannot detect the format of {path.name}; use --format with one of: "
                       + ", ".join(FORMATS))


def _rows(f: TextIO, file_name: str, fmt: str) -> Iterator[tuple[str, str, str, str]]:
    """Yield validated (user, item, rating, timestamp) strings; stop at the first bad line."""
    sep, may_have_header = FORMATS[fmt]
    blank_at = 0
    lineno = 0

    def fail(reason: str, at: int | None = None) -> PrepareError:
        return PrepareError(f"{file_name}, line {at or lineno}: {reason}")

    try:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                blank_at = blank_at or lineno  # tolerated only at the end of the file
                continue
            if blank_at:
                raise fail("blank line in the middle of the file", blank_at)
            fields = [x.strip() for x in line.split(sep)]
            if len(fields) != 4:
                raise fail(f"expected 4 fields separated by {sep!r}, got {len(fields)}")
            user, item, rating, ts = fields
            if lineno == 1 and may_have_header and not _is_number(rating) and not _is_number(ts):
                continue
            if not user or not item:
                raise fail("empty user or item")
            if "\t" in user or "\t" in item:
                raise fail("user or item contains a tab")
            try:
                r = _number(rating)
            except ValueError:
                raise fail(f"non-numeric rating {rating!r}") from None
            if not math.isfinite(r):
                raise fail(f"rating not finite {rating!r}")
            try:
                t = _number(ts)
            except ValueError:
                raise fail(f"non-numeric timestamp {ts!r}") from None
            if not math.isfinite(t) or t < 0:
                raise fail(f"negative or non-finite timestamp {ts!r}")
            # Keep digit strings verbatim (no float rounding); "9.6e8" / "964982703.0" -> integer.
            yield user, item, rating, ts if ts.isdigit() else (str(int(t)) if t.is_integer() else ts)
    except UnicodeDecodeError as e:
        raise fail(f"not valid UTF-8 ({e.reason})", lineno + 1) from None


def prepare(input_path: str | os.PathLike[str], name: str, data_path: str | os.PathLike[str] = "dataset",
            fmt: str = "auto", force: bool = False) -> PrepareSummary:
    """Stream ``input_path`` into ``<data_path>/<name>/<name>.inter``, atomically.

    The output is written to a temp file next to it and moved into place only once every
    line has been validated, so a failure never leaves a partial or clobbered dataset.
    """
    src = Path(input_path)
    if not src.is_file():
        raise PrepareError(f"input file not found: {src}")
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise PrepareError(f"invalid dataset name {name!r}")
    if fmt == "auto":
        fmt = detect_format(src)
    elif fmt not in FORMATS:
        raise PrepareError(f"unknown format {fmt!r}; choose auto or one of: " + ", ".join(FORMATS))
    out_dir = Path(data_path) / name
    out = out_dir / f"{name}.inter"
    if out.exists() and not force:
        raise PrepareError(f"{out} already exists; use --force to overwrite it")
    made_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="\n", delete=False,
                                      dir=out_dir, prefix=f".{name}.inter.", suffix=".tmp")
    users: set[str] = set()
    items: set[str] = set()
    rows = 0
    try:
        with tmp, src.open(encoding="utf-8-sig") as f:
            tmp.write(HEADER)
            for user, item, rating, ts in _rows(f, src.name, fmt):
                tmp.write(f"{user}\t{item}\t{rating}\t{ts}\n")
                users.add(user)
                items.add(item)
                rows += 1
            if rows == 0:
                raise PrepareError(f"{src.name}: no data rows")
            tmp.flush()
            os.fsync(tmp.fileno())
        mask = os.umask(0)  # NamedTemporaryFile is 0600; give the result normal permissions
        os.umask(mask)
        os.chmod(tmp.name, 0o666 & ~mask)
        os.replace(tmp.name, out)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        if made_dir:
            try:
                out_dir.rmdir()  # only succeeds if we created it and it is still empty
            except OSError:
                pass
        raise
    return PrepareSummary(rows=rows, users=len(users), items=len(items), path=out)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 2 with a one-line message on any user-facing error."""
    p = argparse.ArgumentParser(prog="python -m recbole_autodenoise.prepare", description=__doc__.splitlines()[0])
    p.add_argument("input", help="raw ratings file")
    p.add_argument("--name", required=True, help="dataset name (output folder and file stem)")
    p.add_argument("--data-path", default="dataset", help="RecBole data_path (default: dataset)")
    p.add_argument("--format", default="auto", choices=["auto", *FORMATS], dest="fmt")
    p.add_argument("--force", action="store_true", help="overwrite an existing .inter file")
    args = p.parse_args(argv)
    try:
        s = prepare(args.input, args.name, args.data_path, args.fmt, args.force)
    except (PrepareError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {s.rows} rows ({s.users} users, {s.items} items) to {s.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
