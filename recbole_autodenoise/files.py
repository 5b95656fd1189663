"""Atomic file writes: bad input, an interrupt or a full disk never leaves a half-written file in
place, and a replaced file keeps its permissions."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from contextlib import contextmanager
from typing import IO, Iterator

# a full device, or a full quota on it
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def atomic_write(path: str | os.PathLike, binary: bool = False) -> Iterator[IO]:
    """Yield a handle on a temporary file beside ``path``; rename it over ``path`` only when the
    block finishes, otherwise remove it (the previous file, if any, stays untouched). The file gets
    the permissions of the one it replaces; a new one gets ``0o666`` less the umask (``0o644``
    under the usual umask), as files opened for writing do. A full disk (``ENOSPC``, ``EDQUOT``:
    raised by the write itself or, as ``torch.save`` does, under another exception) is one
    ValueError: ``no space left on <path>``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    mode = _mode_for(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
        os.fchmod(fd, mode)
        text = {} if binary else {"encoding": "utf-8"}
        with os.fdopen(fd, "wb" if binary else "w", **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        full = _no_space(error)
        if full is not None:
            kept = "the previous file is kept" if os.path.exists(path) else "nothing was written"
            raise ValueError(f"no space left on {path} ({full.strerror or full}): {kept}") from None
        raise


def _mode_for(path: str) -> int:
    """The permission bits of the file at ``path``, else ``0o666`` less the process's umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask: from ``/proc`` where it shows it (Linux), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _no_space(error: BaseException | None) -> OSError | None:
    """The full-disk ``OSError`` that ``error`` is, or was raised from or during; else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _NO_SPACE:
            return error
        error = error.__cause__ or error.__context__
    return None
