"""Reading 2D checkpoints and fetching them, hash-checked, into torch.hub's checkpoint cache.

Only plain weights are ever read, and only from regular files: ``.safetensors`` (recognised by its content
whatever the suffix), or a PyTorch file through ``torch.load(weights_only=True)``. Downloads land where
torch.hub and torchvision keep theirs (``<torch.hub.get_dir()>/checkpoints``), so a torchvision checkpoint a
user already has is reused -- after its hash has been checked.

A cache entry is what it claims: a file whose name carries a sha256 prefix (torchvision's
``resnet50-0676ba61.pth``) keeps that name and is checked against it; any other file is cached under a name
derived from its whole URL, and its sha256 is recorded at the first download (``.i3zoo/NAME.sha256`` in the
cache folder) and checked on every reuse. Locks live in the same ``.i3zoo`` folder: the user's own.

torch.hub's ``download_url_to_file`` is not used: it has no time-out (a stalled server hangs it forever) and
does not check the body against Content-Length.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pickle
import re
import socket
import stat
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union
from urllib.parse import urlparse, urlunparse

import torch
from filelock import FileLock
from torch.hub import get_dir

from ..files import write_atomically

__all__ = ["CheckpointError", "read_state_dict", "check_state_dict", "expected_hash_prefix", "cached_path",
           "fetch_checkpoint", "sha256_of", "require_regular_file", "public_url", "offline", "DOWNLOAD_TIMEOUT"]

PathLike = Union[str, os.PathLike]

#: seconds a download may wait to connect or for the next bytes; ``I3ZOO_DOWNLOAD_TIMEOUT`` overrides it
DOWNLOAD_TIMEOUT = 30.0
# torch.hub's rule (a hex run between '-' and '.'), upper case accepted and at least 8 digits, so that a
# name such as 'densenet-121.pth' is not mistaken for a hash
_HASH_IN_NAME = re.compile(r"-([a-fA-F0-9]{8,64})\.")
# wrappers of training checkpoints (PyTorchVideo: model_state)
_STATE_DICT_KEYS = ("state_dict", "model", "model_state")


class CheckpointError(RuntimeError):
    """A checkpoint could not be read, or is not the file it claims to be."""


def public_url(url: str) -> str:
    """``url`` without credentials, query string or fragment: what may appear in configs, cards, logs, errors.

    Signed download URLs carry their credentials in the query string.
    """
    parts = urlparse(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunparse((parts.scheme, netloc, parts.path, "", "", ""))


def offline() -> bool:
    """Whether network access is off (``HF_HUB_OFFLINE=1``, or ``i3zoo ... --offline``): then nothing is fetched."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {
        "1", "ON", "YES", "TRUE"}


_FILE_KINDS = ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
               (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def require_regular_file(path: PathLike, what: str = "checkpoint") -> Path:
    """``path`` if it is (or links to) a regular file; otherwise an error, before anything opens it.

    A FIFO would block the reader forever and a device such as ``/dev/zero`` would never end.

    Raises:
        FileNotFoundError, IsADirectoryError: for a missing path or a directory.
        CheckpointError: for a FIFO, a device or a socket (directly or through a symlink).
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file not found: {path}") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{what} must be a file (.pth or .safetensors), got a directory: {path}")
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "special file")
        via = " (through a symlink)" if path.is_symlink() else ""
        raise CheckpointError(f"{path} is a {kind}{via}, not a regular file; i3zoo reads a {what} only from a "
                              "regular file, and did not open it")
    return path


def sha256_of(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(require_regular_file(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _format_of(path: Path) -> str:
    """``"zip"`` / ``"pickle"`` (PyTorch), ``"safetensors"`` or ``"unknown"``, from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    # safetensors first: its 8-byte little-endian header length may well start with the byte 0x80
    if len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= path.stat().st_size - 8:
        return "safetensors"
    if head[:1] == b"\x80":  # pickle protocol 2+ opcode: PyTorch's legacy (non-zip) format
        return "pickle"
    return "unknown"


def _refused_global(path: Path, error: Exception) -> str:
    """The Python object a refused pickle asks for (read without running anything), or ''."""
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        if unsafe:
            return ", ".join(unsafe)
    except Exception:  # older torch, or a pickle it cannot scan: fall back to torch's message
        pass
    match = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", str(error))
    return match.group(1) if match else ""


def check_state_dict(checkpoint: Any, source: str) -> Dict[str, torch.Tensor]:
    """A state dict of tensors from what a file (or an in-memory overlay) held, or an error naming the entry.

    A training checkpoint's wrapper (``{"state_dict": ...}``, ``{"model": ...}``, ``{"model_state": ...}``) is
    unwrapped; DataParallel's ``module.`` prefix is dropped.
    """
    if isinstance(checkpoint, Mapping):
        for key in _STATE_DICT_KEYS:
            if isinstance(checkpoint.get(key), Mapping):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{source} does not hold a state dict of tensors (it holds a "
                              f"{type(checkpoint).__name__})")
    for key, value in checkpoint.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{source}: state dict key {key!r} is a {type(key).__name__}, not a string")
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor; a checkpoint "
                                  "must be a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in checkpoint.items()}


def read_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """Read a state dict of tensors from a safetensors or PyTorch file, on the CPU.

    The format is recognised by the file's content, not its suffix. A PyTorch file may hold the state dict
    itself or wrap it (``state_dict`` / ``model`` / ``model_state``). Pickles are never trusted: anything
    beyond tensors and containers is refused, naming the Python object it asked for.
    """
    path = require_regular_file(path)
    kind = "safetensors" if path.suffix == ".safetensors" else _format_of(path)
    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            return check_state_dict(load_file(str(path), device="cpu"), str(path))
        except CheckpointError:
            raise
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from e
    if kind == "unknown":
        raise CheckpointError(f"{path} is neither a PyTorch checkpoint (zip or pickle) nor a safetensors file "
                              "(judged by its first bytes); i3zoo reads only these two formats")
    try:
        # memory-map zip checkpoints: tensors are read as they are inflated, not all at once
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        refused = _refused_global(path, e)
        what = f"it asks to load the Python object {refused}, which" if refused else "its pickle"
        raise CheckpointError(
            f"{path} is not a plain weights file: {what} torch.load(weights_only=True) refused. i3zoo never "
            "unpickles arbitrary objects; save a state dict of tensors (or a .safetensors file) instead"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} could not be read as a PyTorch checkpoint (truncated or corrupt?): {e}") from e
    return check_state_dict(checkpoint, str(path))


def expected_hash_prefix(url: str) -> Optional[str]:
    """The sha256 prefix (lower case) in a file name such as ``resnet50-0676ba61.pth``, if any."""
    match = _HASH_IN_NAME.search(os.path.basename(urlparse(url).path))
    return match.group(1).lower() if match else None


def _file_name(url: str) -> str:
    name = os.path.basename(urlparse(url).path)
    if not name:
        raise CheckpointError(f"{public_url(url)} names no file (its path ends in '/' or is empty); give the URL "
                              "of the checkpoint file itself")
    return name


def cached_path(url: str, cache_dir: Optional[PathLike] = None) -> Path:
    """Where ``url`` is (or would be) kept: torch.hub's checkpoint folder, or ``cache_dir``.

    A file name with a hash prefix is kept as it is (torchvision's own cache entry); any other is prefixed
    with a digest of the whole URL, so that two URLs never share an entry.
    """
    folder = Path(cache_dir) if cache_dir else Path(get_dir()) / "checkpoints"
    name = _file_name(url)
    if expected_hash_prefix(url):
        return folder / name
    return folder / f"url-{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"


def _private_dir(path: Path) -> Path:
    folder = path.parent / ".i3zoo"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _lock_for(path: Path) -> FileLock:
    """An inter-process lock for cache entry ``path``, beside it in the user's own cache."""
    return FileLock(str(_private_dir(path) / f"{path.name}.lock"))


def _record_path(path: Path) -> Path:
    return _private_dir(path) / f"{path.name}.sha256"


def _timeout() -> float:
    value = os.environ.get("I3ZOO_DOWNLOAD_TIMEOUT")
    try:
        return float(value) if value else DOWNLOAD_TIMEOUT
    except ValueError:
        raise ValueError(f"I3ZOO_DOWNLOAD_TIMEOUT must be a number of seconds; got {value!r}") from None


def _download(url: str, path: Path, prefix: Optional[str], progress: bool) -> str:
    """Download ``url`` to ``path``; returns its sha256. Complete and verified, or nothing is left behind.

    The body goes to a temporary name beside ``path`` and is moved into place only when its length matches
    Content-Length and its hash the name's prefix; any failure (Ctrl-C included) removes it.
    """
    from tqdm.auto import tqdm

    shown, timeout = public_url(url), _timeout()

    def receive(f) -> str:  # raising here leaves no file behind (write_atomically)
        request = urllib.request.Request(url, headers={"User-Agent": "i3zoo"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            digest, size = hashlib.sha256(), 0
            with tqdm(total=expected, unit="B", unit_scale=True, desc=path.name, disable=not progress) as bar:
                while True:
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
        if expected is not None and size != expected:
            raise CheckpointError(f"download of {shown} ended after {size} of {expected} bytes; the partial file "
                                  "was discarded")
        actual = digest.hexdigest()
        if prefix and not actual.startswith(prefix):
            raise CheckpointError(f"download of {shown} does not match its known hash (expected a sha256 starting "
                                  f"with {prefix}, got {actual}); it was discarded, nothing was loaded")
        return actual

    try:
        return write_atomically(path, receive)
    except (socket.timeout, TimeoutError) as e:
        raise CheckpointError(f"download of {shown} stalled: nothing arrived for {timeout:g} s ({e}); the partial "
                              "file was discarded. Set I3ZOO_DOWNLOAD_TIMEOUT for a slower link") from None
    except http.client.IncompleteRead as e:
        raise CheckpointError(f"download of {shown} ended early ({len(e.partial)} bytes in the last read, "
                              f"{e.expected} missing); the partial file was discarded") from None
    except urllib.error.HTTPError as e:
        raise CheckpointError(f"could not download {shown}: HTTP {e.code} {e.reason}. Without network access, "
                              "pass a local copy of the weights with pretrained_cfg_overlay=dict(file=PATH)") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", e)
        raise CheckpointError(f"could not download {shown}: {reason}. Without network access, pass a local copy "
                              "of the weights with pretrained_cfg_overlay=dict(file=PATH)") from None


def _write_record(path: Path, sha256: str) -> None:
    write_atomically(_record_path(path), lambda f: f.write(f"{sha256}\n".encode()))


def _expected_hash(url: str, path: Path) -> Optional[str]:
    """The hash a cached ``path`` must have: the name's prefix, or the sha256 recorded at its first download."""
    prefix = expected_hash_prefix(url)
    if prefix:
        return prefix
    record = _record_path(path)
    text = record.read_text().strip() if record.is_file() else ""
    return text if re.fullmatch(r"[0-9a-f]{64}", text) else None


def fetch_checkpoint(url: str, *, cache_dir: Optional[PathLike] = None, progress: bool = True) -> Path:
    """Return a local, hash-checked copy of ``url``, downloading it (with a progress bar) if needed.

    The expected hash is the sha256 prefix in the file name (torchvision's ``name-<hash>.pth``) or, for a name
    without one, the sha256 recorded when the file was first downloaded; it is checked for a fresh download
    and for a file found in the cache alike. A cached file that fails the check (or has lost its record) is
    never loaded: it is downloaded anew once, and if that is not possible the error names the file, both
    hashes and what to do. Offline (``HF_HUB_OFFLINE=1``) nothing is downloaded. A file lock lets one
    process download while others wait for the finished file.
    """
    path = cached_path(url, cache_dir)
    shown = public_url(url)
    prefix = expected_hash_prefix(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock_for(path):
        cached = path.exists() or path.is_symlink()
        if cached:
            expected = _expected_hash(url, path)
            actual = sha256_of(path)  # refuses a FIFO or device in the cache before reading it
            if expected and actual.startswith(expected):
                return path
            problem = (f"cached file {path} does not match the hash known for {shown}: expected a sha256 starting "
                       f"with {expected}, got {actual}" if expected else
                       f"cached file {path} has no sha256 recorded at its download, so it cannot be trusted")
        if offline():
            raise CheckpointError(
                (f"{problem}; offline (HF_HUB_OFFLINE), so it was not downloaded anew" if cached else
                 f"offline (HF_HUB_OFFLINE): {shown} is not in the cache ({path}) and nothing is downloaded")
                + ". Pass a local copy of the weights with pretrained_cfg_overlay=dict(file=PATH)")
        try:
            sha256 = _download(url, path, prefix, progress)
        except CheckpointError as e:
            if not cached:
                raise
            raise CheckpointError(
                f"{problem}. It was not loaded, and downloading it anew failed ({e}). Delete the file and run "
                "again once the URL can be reached, or pass a local copy of the weights with "
                "pretrained_cfg_overlay=dict(file=PATH)."
            ) from None
        if not prefix:
            _write_record(path, sha256)
        if cached:
            warnings.warn(f"{problem}; it was downloaded anew", stacklevel=2)
        return path
