"""Pre-inflated weights: ``save_pretrained``, ``push_to_hub``, and reading them back.

A saved variant is a folder in timm's Hugging Face layout: ``model.safetensors`` (never a pickle), a
timm-layout ``config.json`` (written by timm's own ``save_config_for_hf``) with i3zoo's video facts under a
top-level ``"i3zoo"`` key, and ``README.md``, the model card. ``create_model("hf-hub:org/name[@rev]")`` and
``create_model("local-dir:PATH")`` load such a folder (timm parses the name and config; i3zoo checks the
weights' sha256 and loads them strictly).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import nn

from .checkpoints import CheckpointError, sha256_of

__all__ = ["save_pretrained", "push_to_hub", "WEIGHTS_NAME", "CONFIG_NAME", "CARD_NAME"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
FORMAT_VERSION = 1


# --- reading -----------------------------------------------------------------------------------------------

def _read_verified(weights: Path, config: Path, expected_sha256: Optional[str], source: str):
    from safetensors.torch import load_file

    meta = json.loads(config.read_text(encoding="utf-8")).get("i3zoo", {})
    expected = expected_sha256 or meta.get("weights_sha256")
    if not expected:
        raise CheckpointError(f"{source}: config.json records no sha256 for {WEIGHTS_NAME}; refusing unverified weights")
    actual = sha256_of(weights)
    if actual != expected:
        raise CheckpointError(
            f"{source}: {WEIGHTS_NAME} ({weights}) does not match its recorded sha256: expected {expected}, got "
            f"{actual}. It was not loaded; delete the file (or the Hugging Face cache entry) and download it again."
        )
    try:
        state_dict = load_file(str(weights), device="cpu")
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{source}: {weights} is not a readable safetensors file: {e}") from e
    return state_dict, dict(meta, source=source)


def read_preinflated(pretrained_cfg: Dict[str, Any], *, cache_dir=None) -> Tuple[Dict[str, torch.Tensor], Dict]:
    """The 3D state dict and the ``"i3zoo"`` config block of an ``hf-hub:`` or ``local-dir:`` model."""
    if pretrained_cfg["source"] == "local-dir":
        folder = Path(pretrained_cfg["file"])
        return _read_verified(folder / WEIGHTS_NAME, folder / CONFIG_NAME, None, f"local-dir:{folder.name}")
    from huggingface_hub import hf_hub_download
    from timm.models._hub import hf_split

    repo_id, revision = hf_split(pretrained_cfg["hf_hub_id"])
    config = hf_hub_download(repo_id, CONFIG_NAME, revision=revision, cache_dir=cache_dir)
    weights = hf_hub_download(repo_id, WEIGHTS_NAME, revision=revision, cache_dir=cache_dir)
    return _read_verified(Path(weights), Path(config), None, f"hf-hub:{pretrained_cfg['hf_hub_id']}")


def read_published(name: str, record, *, cache_dir=None):
    """The Hub copy of registered tag ``name``, hash-checked; None (with a warning) if the Hub cannot serve it."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache

    try:
        if not isinstance(try_to_load_from_cache(record.repo_id, WEIGHTS_NAME, revision=record.revision,
                                                 cache_dir=cache_dir), str):
            # hf_hub_download retries an unreachable Hub with backoff for about 25 s before it gives up; one
            # plain request tells sooner, and there is a fallback to go to
            get_hf_file_metadata(hf_hub_url(record.repo_id, WEIGHTS_NAME, revision=record.revision))
        config = hf_hub_download(record.repo_id, CONFIG_NAME, revision=record.revision, cache_dir=cache_dir)
        weights = hf_hub_download(record.repo_id, WEIGHTS_NAME, revision=record.revision, cache_dir=cache_dir)
    except Exception as e:  # offline, unreachable, repo gone: all mean "inflate the 2D source instead"
        warnings.warn(
            f"pre-inflated weights for {name} could not be fetched from the Hugging Face Hub "
            f"({record.repo_id}@{record.revision[:12]}: {type(e).__name__}); inflating the 2D source instead",
            stacklevel=4,
        )
        return None
    return _read_verified(Path(weights), Path(config), record.sha256, f"hf-hub:{record.repo_id}")


def check_inflation(info: Dict[str, Any], model: nn.Module) -> None:
    saved = info.get("inflation")
    if saved and saved != model.inflation:
        raise ValueError(
            f"{info['source']} holds weights inflated in {saved!r} mode; they cannot fill a model built with "
            f"inflation={model.inflation!r} (drop the inflation argument to use the saved mode)"
        )


# --- writing -----------------------------------------------------------------------------------------------

#: what saving reads from a model; weights/ checks for these rather than importing the model classes
SAVED_ATTRIBUTES = ("arch_name", "pretrained_cfg", "inflation", "num_classes", "in_chans", "global_pool",
                    "drop_rate", "video_facts")


def _unwrap(model: nn.Module) -> nn.Module:
    if not isinstance(model, nn.Module) or not getattr(model, "arch_name", "") or not all(
            hasattr(model, a) for a in SAVED_ATTRIBUTES):
        raise TypeError(f"save_pretrained takes a registered i3zoo model (e.g. from create_model); got {type(model).__name__}")
    return model


def model_args_of(model: nn.Module) -> Dict[str, Any]:
    """Every constructor argument that shapes the model (and the inflation mode), for ``config.json``."""
    return dict(inflation=model.inflation, num_classes=model.num_classes, in_chans=model.in_chans,
                global_pool=model.global_pool, drop_rate=model.drop_rate)


def _public_source_2d(model: nn.Module) -> Dict[str, Any]:
    """The 2D source for the config: its sha256 (hashed here, at export), never its local path."""
    source = getattr(model, "source_2d", None) or {}
    public = {k: v for k, v in source.items() if not k.startswith("_")}
    if source.get("_path"):
        public["sha256"] = sha256_of(source["_path"])
    return public


def _write_atomically(target: Path, write) -> None:
    """``write(tmp_path)`` into a temporary file beside ``target``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make an export unreadable to others
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_pretrained(model: nn.Module, directory: Union[str, os.PathLike], *, measure: bool = True) -> Path:
    """Write ``model`` as a Hub-ready folder: ``model.safetensors``, ``config.json``, ``README.md``.

    Every file is written to a temporary name in ``directory`` and renamed into place, so a failure never
    leaves a partial file. With ``measure``, the boring-video equivalence of the weights against their 2D
    source (when the model was inflated from one) is measured and recorded in the config and the card.

    Returns:
        The folder.
    """
    from safetensors.torch import save_file
    from timm.models._hub import save_config_for_hf

    from .cards import render_card
    from .verify import measure_equivalence

    model = _unwrap(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}

    weights = directory / WEIGHTS_NAME
    _write_atomically(weights, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    weights_sha256 = sha256_of(weights)

    equivalence = measure_equivalence(model) if measure else {"measured": False, "why": "not asked for"}
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        timm_config = Path(scratch) / CONFIG_NAME
        save_config_for_hf(model, str(timm_config), model_args=model_args_of(model))
        config = json.loads(timm_config.read_text())
    config["i3zoo"] = dict(
        format_version=FORMAT_VERSION,
        **model.video_facts(),
        source_2d=_public_source_2d(model),
        weights_sha256=weights_sha256,
        equivalence=equivalence,
    )
    _write_atomically(directory / CONFIG_NAME, lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"))
    card = render_card(f"{model.arch_name}.{model.pretrained_cfg.get('tag')}", inflation=model.inflation,
                       num_classes=model.num_classes, equivalence=equivalence, source_2d=config["i3zoo"]["source_2d"])
    _write_atomically(directory / CARD_NAME, lambda tmp: tmp.write_text(card, encoding="utf-8"))
    return directory


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    token: Optional[str] = None,
    private: bool = False,
    revision: Optional[str] = None,
    commit_message: str = "Add i3zoo pre-inflated weights",
    endpoint: Optional[str] = None,
):
    """Save ``model`` and upload the folder to the Hugging Face Hub in one commit.

    Creates the repository (and the ``revision`` branch) if needed. The token is handed to huggingface_hub
    only (``None``: its usual ``HF_TOKEN`` / login); it is never written to any file.

    Returns:
        huggingface_hub's ``CommitInfo`` for the upload (``.oid`` is the commit).
    """
    with tempfile.TemporaryDirectory(prefix="i3zoo-push-") as folder:
        save_pretrained(model, folder)
        return upload_saved(folder, repo_id, token=token, private=private, revision=revision,
                            commit_message=commit_message, endpoint=endpoint)


def upload_saved(folder, repo_id: str, *, token=None, private=False, revision=None,
                 commit_message="Add i3zoo pre-inflated weights", endpoint=None):
    """Upload a ``save_pretrained`` folder in one commit, creating the repo and branch if needed.

    ``create_commit`` with the folder's files, not ``upload_folder``: the latter may split a large upload
    into several commits ("... (part 2)"), and a variant must land whole or not at all.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from .._version import __version__

    api = HfApi(endpoint=endpoint, token=token, library_name="i3zoo", library_version=__version__)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    operations = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in files]
    return api.create_commit(repo_id=repo_id, operations=operations, revision=revision,
                             commit_message=commit_message)
