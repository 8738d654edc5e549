"""The ``preinflated`` and ``published`` weight sources: ``save_pretrained`` folders read back.

A saved variant is a folder in timm's Hugging Face layout (``hub.py`` writes it): ``model.safetensors``, a
timm-layout ``config.json`` with i3zoo's video facts under ``"i3zoo"``, and the model card.
``create_model("hf-hub:org/name[@rev]")`` and ``create_model("local-dir:PATH")`` load such a folder: timm parses
the name and config (marking the cfg's ``source``), this source validates the config field by field, checks the
weights' sha256 and hands them to the strict fill. A registered tag with a record in ``published.py`` is read from
its Hub copy first (hash-checked against the record); when the Hub cannot serve it, the tag's own source is asked.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from .checkpoints import CheckpointError, check_state_dict, offline, sha256_of
from .config import CONFIG_NAME, INFLATED_ARCH, WEIGHTS_NAME, hub_file, read_config
from .published import PUBLISHED, HubWeights
from .sources import WeightSource, classes_in, register_source

__all__ = ["Preinflated", "Published", "read_preinflated", "read_published", "check_inflation"]

Loaded = Tuple[Dict[str, torch.Tensor], Dict[str, Any]]


def _read_verified(weights: Path, config: Path, expected_sha256: Optional[str], source: str) -> Loaded:
    """The state dict of a pre-inflated folder, hash-checked, and the config's ``"i3zoo"`` block.

    The block gains ``source`` and ``num_classes`` (the config's, validated; :func:`check_classes` checks it
    against the classifier in the weights).
    """
    from safetensors.torch import load_file

    from ..registry import list_models

    parsed = read_config(config, source, [*list_models(), INFLATED_ARCH])
    meta = parsed["i3zoo"]
    expected = (expected_sha256 or meta["weights_sha256"]).lower()
    actual = sha256_of(weights)
    if actual != expected:
        raise CheckpointError(
            f"{source}: {WEIGHTS_NAME} ({weights}) does not match its recorded sha256: expected {expected}, got "
            f"{actual}. It was not loaded; delete the file (or the Hugging Face cache entry) and download it again."
        )
    try:
        state_dict = check_state_dict(load_file(str(weights), device="cpu"), f"{source}: {WEIGHTS_NAME}")
    except CheckpointError:
        raise
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{source}: {weights} is not a readable safetensors file: {e}") from e
    num_classes = parsed.get("num_classes", parsed.get("model_args", {}).get("num_classes"))
    return state_dict, dict(meta, source=source, num_classes=num_classes)


def read_preinflated(pretrained_cfg: Dict[str, Any], *, cache_dir=None) -> Loaded:
    """The 3D state dict and the ``"i3zoo"`` config block of an ``hf-hub:`` or ``local-dir:`` model."""
    if pretrained_cfg["source"] == "local-dir":
        folder = Path(pretrained_cfg["file"])
        return _read_verified(folder / WEIGHTS_NAME, folder / CONFIG_NAME, None, f"local-dir:{folder.name}")
    from timm.models._hub import hf_split

    repo_id, revision = hf_split(pretrained_cfg["hf_hub_id"])
    config = hub_file(repo_id, CONFIG_NAME, revision, cache_dir)
    weights = hub_file(repo_id, WEIGHTS_NAME, revision, cache_dir)
    return _read_verified(weights, config, None, f"hf-hub:{pretrained_cfg['hf_hub_id']}")


def read_published(name: str, record: HubWeights, *, cache_dir=None) -> Optional[Loaded]:
    """The Hub copy of registered tag ``name``, hash-checked; None (with a warning) if the Hub cannot serve it."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(record.repo_id, WEIGHTS_NAME, revision=record.revision,
                                               cache_dir=cache_dir), str)
    try:
        if not cached and not offline():
            # hf_hub_download retries an unreachable Hub with backoff for about 25 s before it gives up; one
            # plain request tells sooner, and there is a fallback to go to
            get_hf_file_metadata(hf_hub_url(record.repo_id, WEIGHTS_NAME, revision=record.revision))
        config = hub_file(record.repo_id, CONFIG_NAME, record.revision, cache_dir)
        weights = hub_file(record.repo_id, WEIGHTS_NAME, record.revision, cache_dir)
    except Exception as e:  # offline, unreachable, repo gone: all mean "inflate the 2D source instead"
        warnings.warn(
            f"pre-inflated weights for {name} could not be fetched from the Hugging Face Hub "
            f"({record.repo_id}@{record.revision[:12]}: {type(e).__name__}); inflating the 2D source instead",
            stacklevel=5,
        )
        return None
    return _read_verified(weights, config, record.sha256, f"hf-hub:{record.repo_id}")


def check_inflation(info: Dict[str, Any], model: nn.Module) -> None:
    """Weights saved in one inflation mode never fill a model built for the other (their temporal padding
    differs)."""
    saved = info.get("inflation")
    if saved and saved != model.inflation:
        raise ValueError(
            f"{info['source']} holds weights inflated in {saved!r} mode; they cannot fill a model built with "
            f"inflation={model.inflation!r} (drop the inflation argument to use the saved mode)"
        )


def check_classes(state_dict: Dict[str, torch.Tensor], model: nn.Module, info: Dict[str, Any]) -> None:
    """The config (validated alone) and the classifier in the weights agree on the class count."""
    held = classes_in(state_dict, model.classifier_name)
    if info.get("num_classes") is not None and info["num_classes"] != held:
        raise CheckpointError(f"{info['source']}: config.json says {info['num_classes']} classes, but the "
                              f"classifier in {WEIGHTS_NAME} has {held}")


def _record(model: nn.Module, state_dict: Dict[str, torch.Tensor], info: Dict[str, Any]) -> Loaded:
    check_inflation(info, model)
    check_classes(state_dict, model, info)
    # the weights' own provenance (the 2D file they were inflated from), as saved; `_source` names the folder in
    # errors (private keys never reach a saved config)
    return state_dict, dict(info.get("source_2d") or {}, _source=info["source"])


@register_source
class Preinflated(WeightSource):
    """An ``hf-hub:`` or ``local-dir:`` folder written by ``save_pretrained``."""

    kind = "preinflated"

    def read(self, cfg: Dict[str, Any], model: nn.Module, *, cache_dir=None) -> Loaded:
        return _record(model, *read_preinflated(cfg, cache_dir=cache_dir))


@register_source
class Published(WeightSource):
    """The Hub copy of a registered tag (a record in ``published.py``), when it was saved in the model's inflation
    mode and the Hub can serve it; otherwise None, and the tag's own source is asked."""

    kind = "published"

    def read(self, cfg: Dict[str, Any], model: nn.Module, *, cache_dir=None) -> Optional[Loaded]:
        name = f"{cfg.get('architecture')}.{cfg.get('tag')}"
        record = PUBLISHED.get(name)
        if record is None or record.inflation != model.inflation:
            return None
        loaded = read_published(name, record, cache_dir=cache_dir)
        return None if loaded is None else _record(model, *loaded)
