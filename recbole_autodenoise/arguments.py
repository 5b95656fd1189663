"""Command-line argument checks shared by the plugin's tools and ``benchmarks``.

The ``argparse`` ``type=`` functions return the parsed value or raise ``ArgumentTypeError`` saying
what was expected, so a tool prints ``error: argument --x: ...`` and exits 2 before any work. The
``check_*`` functions raise ``ValueError`` (the tools turn it into the same ``error:`` and exit 2).
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

MAX_SEEDS = 1000  # seeds of one command: each is a full training run per cell
MAX_SEED = 2**32 - 1  # numpy's seeds are 0 .. 2**32 - 1
DEFAULT_NAME_MAX = 255


def count(high: int) -> Callable[[str], int]:
    """An integer from 1 to ``high``."""

    def parse(text: str) -> int:
        value = _integer(text)
        if not 1 <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: expected an integer from 1 to {high}"
            )
        return value

    parse.__name__ = "count"
    return parse


def seed(text: str) -> int:
    """A seed: an integer from 0 to ``MAX_SEED``."""
    value = _integer(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range: expected a seed from 0 to {MAX_SEED}"
        )
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is invalid: expected a finite number of seconds > 0"
        )
    return value


def setting(text: str) -> str:
    """A ``KEY=VALUE`` config override with a non-empty key (the value is parsed by the tool)."""
    key, equals, _ = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return text


def model_name(text: str) -> str:
    """A RecBole or plugin model name (the close ones are named for a typo)."""
    from recbole_autodenoise.model import check_model

    try:
        check_model(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def input_file(text: str) -> str:
    """An existing, readable regular file (its text is checked by the reader)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a regular file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} is not readable")
    return text


def output_file(text: str) -> str:
    """A file path that can be written (``check_output_path``); nothing is created."""
    try:
        check_output_path(text, "")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def check_output_path(text: str | os.PathLike, option: str = "--out") -> Path:
    """``text`` as a file that can be written, else a ValueError naming ``option``, the path and
    why: empty, ending in '/', a directory or other non-file, a parent that is a file, a missing
    folder followed by '..', a name longer than the file system allows, an unwritable folder.
    Missing folders are allowed (the writer creates them); nothing is created here."""
    text = os.fspath(text)
    where = f"{option} {text}".strip() if text else (option or "the path")
    if not text:
        raise ValueError(f"{where} is empty: expected a file path")
    if "\0" in text:
        raise ValueError(f"{where!r} holds a NUL character")
    if text.endswith(("/", os.sep)) or (os.altsep and text.endswith(os.altsep)):
        raise ValueError(f"{where} ends in '/': expected a file path, not a folder")
    path = Path(text)
    _check_name_lengths(path, DEFAULT_NAME_MAX, where)  # before any look-up fails on a long name
    try:
        folder = _writable_folder(path, where)
    except OSError as error:
        raise ValueError(f"{where} cannot be examined ({error.strerror or error})") from None
    _check_name_lengths(path, _name_max(folder), where)
    try:
        handle, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=folder)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise ValueError(
            f"{where}: folder {folder} is not writable ({error.strerror or error})"
        ) from None
    return path


def _writable_folder(path: Path, where: str) -> Path:
    """The nearest folder of ``path`` that exists, once ``path`` is known to be no directory or
    other non-file and its missing folders hold no '..'."""
    if path.is_dir():
        raise ValueError(f"{where} is a directory: expected a file path")
    if path.exists() and not path.is_file():
        raise ValueError(f"{where} exists and is not a regular file")
    folder, missing = path.parent, []
    while not folder.exists():
        if folder.is_symlink():
            raise ValueError(f"{where}: its folder {folder} is a broken link")
        missing.append(folder)
        folder = folder.parent
    if any(part.name == ".." for part in missing):
        raise ValueError(
            f"{where}: folder {missing[-1]} does not exist, and '..' after it "
            "would create folders only to leave them"
        )
    if not folder.is_dir():
        raise ValueError(f"{where}: {folder} is a file, not a folder")
    return folder


def _check_name_lengths(path: Path, name_max: int, where: str) -> None:
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > name_max:
            raise ValueError(
                f"{where}: the name {part[:40]!r}... is {size} bytes long; the file "
                f"system allows {name_max}"
            )


def read_text(path: str | os.PathLike) -> str:
    """The UTF-8 text of ``path``; a ValueError naming the file (and the line of a byte that is
    not UTF-8) where it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a file") from None
    except OSError as error:
        raise ValueError(f"{path} cannot be read ({error.strerror or error})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}, line {line}: not UTF-8 text (byte {data[error.start]:#04x} "
            f"at offset {error.start})"
        ) from None


def check_dataset(name: str, data_path: str | os.PathLike | None) -> None:
    """A data set a run can find: ``<data_path>/<name>/<name>.inter`` (or pre-split
    ``<name>.<part>.inter`` files), or without ``data_path``
    RecBole's embedded ``ml-100k`` or a name RecBole downloads; else a ValueError saying where it
    was looked for and how to prepare it."""
    if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
        raise ValueError(f"--dataset {name!r} is not a data set name (a folder name, no '/')")
    if len(os.fsencode(f"{name}.inter")) > DEFAULT_NAME_MAX:
        raise ValueError(
            f"--dataset {name[:40]!r}... is longer than a file name may be "
            f"({DEFAULT_NAME_MAX} bytes with '.inter')"
        )
    if data_path is not None:
        folder = Path(data_path)
        if not folder.is_dir():
            raise ValueError(f"--data-path {data_path} is not a folder")
        atomic = folder / name / f"{name}.inter"
        split = list((folder / name).glob(f"{glob.escape(name)}.*.inter"))  # benchmark_filename
        if not atomic.is_file() and not split:
            raise ValueError(
                f"--dataset {name!r}: no {atomic}; write it with `python -m "
                f"recbole_autodenoise.prepare RATINGS_FILE --name {name} "
                f"--data-path {data_path}`"
            )
        return
    downloadable = _recbole_download_names()
    if name != "ml-100k" and name not in downloadable:
        raise ValueError(
            f"--dataset {name!r} is neither RecBole's embedded ml-100k nor a data set "
            f"RecBole can download: give --data-path, a folder holding "
            f"{name}/{name}.inter"
        )


def _recbole_download_names() -> set[str]:
    import recbole
    import yaml

    urls = Path(recbole.__file__).parent / "properties" / "dataset" / "url.yaml"
    names = yaml.safe_load(urls.read_text(encoding="utf-8")) if urls.is_file() else None
    return set(names) if isinstance(names, dict) else set()


def _integer(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return DEFAULT_NAME_MAX
