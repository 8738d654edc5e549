"""Writing a file atomically: the one helper behind every file i3zoo writes in place (cache entries and their
hash records, extracted features, benchmark results).

Imports nothing of i3zoo, so every wing may use it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable, TypeVar, Union

__all__ = ["write_atomically"]

T = TypeVar("T")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_atomically(path: Union[str, os.PathLike], write: Callable[[BinaryIO], T]) -> T:
    """``write(file object)`` to a temporary name beside ``path`` (``.NAME.tmp-PID``), flushed to disk, then
    renamed to ``path``; returns what ``write`` returned.

    If ``write`` raises (or the process is interrupted), the temporary file is removed and ``path`` is left as
    it was. What a killed process left under a temporary name for ``path`` is removed by the next write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a process that was killed
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            result = write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        return result
    finally:
        temporary.unlink(missing_ok=True)
