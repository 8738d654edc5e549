"""Writing a file atomically: the one helper behind every file i3zoo writes in place (cache entries and their
hash records, extracted features, benchmark results); and claiming a file before computing it (:func:`claim`),
so that independent processes sharing a folder compute each file once.

Imports nothing of i3zoo, so every wing may use it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import BinaryIO, Callable, Optional, TypeVar, Union

try:
    import fcntl
except ImportError:  # Windows: see claim()
    fcntl = None

__all__ = ["write_atomically", "claim", "Claim", "claim_path"]

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


# ---------------------------------------------------------------- claims


def claim_path(path: Union[str, os.PathLike]) -> Path:
    """The claim file of ``path``: ``.NAME.claim`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.claim")


class Claim:
    """An exclusive claim on a file still to be written: a ``flock`` lock on its claim file, held by an open file
    descriptor, so it dies with the process that holds it (``kill -9`` included) and a successor can take it."""

    def __init__(self, path: Path, fd: Optional[int]):
        self.path, self.fd = path, fd

    def release(self) -> None:
        """Remove the claim file, then let go of the lock (a waiter that locked the removed file sees that it
        was removed and tries again). Safe to call twice."""
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def claim(path: Union[str, os.PathLike]) -> Optional[Claim]:
    """Claim ``path`` (a file still to be written) for this process, without waiting: a :class:`Claim`, or None
    when another process holds it.

    The claim is an exclusive ``flock`` on :func:`claim_path` (no central service: any process that sees the
    folder takes part, on one machine or on a network file system with ``flock``, e.g. NFS; Lustre needs its
    ``flock`` mount option). The holder's host and process id are written into the file for people to read.
    A claim says who computes ``path``, not whether ``path`` is complete: the caller checks that after claiming.
    Where ``fcntl`` does not exist (Windows) every claim succeeds: runs stay atomic and resumable, but two
    concurrent jobs may compute one file twice.

    Raises:
        OSError: the file system refuses ``flock`` (the message says so).
    """
    target = claim_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        return Claim(target, os.open(target, os.O_RDWR | os.O_CREAT, 0o644))
    while True:
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as e:
            os.close(fd)
            raise OSError(f"cannot lock {target} ({e}): the file system of this folder does not support flock "
                          "locks (Lustre: mount with -o flock), which concurrent jobs need") from None
        try:
            same = os.stat(target).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # its holder finished and removed it between our open and our lock: take the new one
    os.ftruncate(fd, 0)
    os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
    return Claim(target, fd)
