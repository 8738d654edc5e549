"""Reading 2D checkpoints and fetching them, hash-checked, into torch.hub's checkpoint cache.

Only plain weights are ever read: ``.safetensors``, or ``.pth`` through ``torch.load(weights_only=True)``.
Downloads land where torch.hub and torchvision keep theirs (``<torch.hub.get_dir()>/checkpoints``), so a
torchvision checkpoint a user already has is reused -- after its hash has been checked.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Dict, Optional, Union
from urllib.parse import urlparse

import torch
from filelock import FileLock
from torch.hub import HASH_REGEX, download_url_to_file, get_dir

__all__ = ["CheckpointError", "read_state_dict", "expected_hash_prefix", "cached_path", "fetch_checkpoint",
           "sha256_of"]

PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint could not be read, or is not the file it claims to be."""


def sha256_of(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """Read a state dict of tensors from a ``.safetensors`` or ``.pth`` file, on the CPU.

    A ``.pth`` may hold the state dict itself or wrap it as ``{"state_dict": ...}``, ``{"model": ...}`` or
    ``{"model_state": ...}`` (PySlowFast / PyTorchVideo ``.pyth`` files).
    Pickles are never trusted: anything beyond tensors and containers is refused.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint must be a file (.pth or .safetensors), got a directory: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from e
    try:
        # memory-map zip checkpoints: tensors are read as they are inflated, not all at once
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path} is not a plain weights file (torch.load with weights_only=True refused it; i3zoo never "
            f"unpickles arbitrary objects): {str(e).splitlines()[0]}"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} could not be read as a PyTorch checkpoint (truncated or corrupt?): {e}") from e
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "model", "model_state"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in checkpoint.items()}


def expected_hash_prefix(url: str) -> Optional[str]:
    """The sha256 prefix torch.hub reads from a file name such as ``resnet50-0676ba61.pth``, if any."""
    match = HASH_REGEX.search(os.path.basename(urlparse(url).path))
    return match.group(1) if match and match.group(1) else None


def cached_path(url: str, cache_dir: Optional[PathLike] = None) -> Path:
    """Where ``url`` is (or would be) kept: torch.hub's checkpoint folder, or ``cache_dir``."""
    folder = Path(cache_dir) if cache_dir else Path(get_dir()) / "checkpoints"
    return folder / os.path.basename(urlparse(url).path)


def _lock_for(path: Path) -> FileLock:
    """An inter-process lock for ``path``, kept outside the cache so that the cache holds only checkpoints."""
    folder = Path(tempfile.gettempdir()) / "i3zoo-locks"
    folder.mkdir(exist_ok=True)
    return FileLock(str(folder / (hashlib.sha1(str(path.resolve()).encode()).hexdigest() + ".lock")))


def _download(url: str, path: Path, prefix: Optional[str], progress: bool) -> None:
    """Download to a temporary name beside ``path``; move it into place only once complete and verified."""
    try:
        download_url_to_file(url, str(path), hash_prefix=prefix, progress=progress)
    except RuntimeError as e:
        if "invalid hash value" in str(e):
            raise CheckpointError(
                f"download of {url} does not match its known hash ({e}); it was discarded, nothing was loaded"
            ) from e
        raise
    except OSError as e:
        raise CheckpointError(
            f"could not download {url}: {e}. Without network access, pass a local copy of the 2D weights with "
            "pretrained_cfg_overlay=dict(file=PATH)"
        ) from e


def fetch_checkpoint(url: str, *, cache_dir: Optional[PathLike] = None, progress: bool = True) -> Path:
    """Return a local, hash-checked copy of ``url``, downloading it (with a progress bar) if needed.

    The expected hash is the sha256 prefix in the file name (torchvision's ``name-<hash>.pth``); it is checked
    for a fresh download and for a file found in the cache alike. A cached file that fails the check is never
    loaded: it is downloaded anew once, and if that is not possible the error names the file, both hashes and
    what to do. Downloads go to a temporary name and are moved into place only once complete and verified;
    a file lock lets one process download while others wait for the finished file.
    """
    path = cached_path(url, cache_dir)
    prefix = expected_hash_prefix(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock_for(path):
        if not path.is_file():
            _download(url, path, prefix, progress)
            return path
        actual = sha256_of(path) if prefix else None
        if prefix is None or actual.startswith(prefix):
            return path
        try:
            _download(url, path, prefix, progress)
        except CheckpointError as e:
            raise CheckpointError(
                f"cached file {path} does not match the hash known for {url}: expected a sha256 starting with "
                f"{prefix}, got {actual}. It was not loaded, and downloading it anew failed ({e}). Delete the "
                "file and run again once the URL can be reached, or pass a local copy of the 2D weights with "
                "pretrained_cfg_overlay=dict(file=PATH)."
            ) from None
        warnings.warn(f"cached file {path} did not match the hash known for {url} (sha256 {actual}); "
                      "it was downloaded anew", stacklevel=2)
        return path
