"""``config.json`` of a pre-inflated folder, read as untrusted data and validated field by field.

timm builds whatever architecture a config names, with whatever ``model_args`` it holds; a config must not
be a key that opens the door: it cannot name another model, pass other constructor arguments, redirect the
weights to another source, skip the sha256 check, or make a verified classifier look like one to replace.
This module imports nothing of i3zoo but ``checkpoints`` and ``text`` (``registry`` uses it before timm sees a name).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from ..text import MAX_CLASSES, check_label_names
from .checkpoints import CheckpointError, offline, require_regular_file

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "CARD_NAME", "MODEL_ARGS", "INFLATED_ARCH", "INFLATED_ARGS",
           "validate_config", "read_config",
           "read_source_config", "hub_file"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
#: the constructor arguments a config's ``model_args`` may set (what ``save_pretrained`` writes)
MODEL_ARGS = ("inflation", "num_classes", "in_chans", "global_pool", "drop_rate", "transform_input", "same_padding",
              "bn_eps")
#: the architecture name of an inflated 2D network (``inflate:timm/NAME``), and the arguments only it restores:
#: which 2D network, in which temporal design
INFLATED_ARCH = "inflate"
INFLATED_ARGS = ("source", "design")
#: pretrained-cfg fields that name where weights come from: a config never sets them (timm's export drops them)
_SOURCE_FIELDS = ("url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source",
                  "weights_source")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _class_count(value: Any, field: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CLASSES:
        raise CheckpointError(f"{source}: config.json field {field!r} must be an integer from 0 to {MAX_CLASSES:,}; "
                              f"got {value!r}")
    return value


def _check_class_counts(config: Dict[str, Any], source: str) -> None:
    model_args, cfg = config.get("model_args", {}), config.get("pretrained_cfg", {})
    counts = {field: _class_count(value, field, source) for field, value in (
        ("num_classes", config.get("num_classes")), ("model_args.num_classes", model_args.get("num_classes")),
        ("pretrained_cfg.num_classes", cfg.get("num_classes"))) if value is not None}
    for field, names in (("label_names", config.get("label_names")),
                         ("pretrained_cfg.label_names", cfg.get("label_names"))):
        if names is not None:
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise CheckpointError(f"{source}: config.json field {field!r} must be a list of strings")
            try:
                check_label_names(names, f"{source}: config.json field {field!r}")
            except ValueError as e:
                raise CheckpointError(str(e)) from None
            counts[f"len({field})"] = len(names)
    if len(set(counts.values())) > 1:
        raise CheckpointError(f"{source}: config.json class counts disagree: "
                              + ", ".join(f"{k} = {v}" for k, v in counts.items()))


def validate_config(config: Any, source: str, architectures: Sequence[str]) -> Dict[str, Any]:
    """Check a parsed ``config.json``; return it unchanged.

    It must be an object naming one of ``architectures``, whose ``model_args`` are constructor arguments
    i3zoo restores (``MODEL_ARGS``), whose class counts (``num_classes``, ``model_args``, ``pretrained_cfg``,
    ``label_names``) agree, whose ``pretrained_cfg`` names no weight source and keeps the architecture's
    layer names, and whose ``"i3zoo"`` block records the weights' sha256 as 64 hex digits.

    Raises:
        CheckpointError: naming the field that is wrong.
    """
    from timm.models import get_pretrained_cfg

    if not isinstance(config, dict):
        raise CheckpointError(f"{source}: config.json must be a JSON object; it holds a {type(config).__name__}")
    arch = config.get("architecture")
    if not isinstance(arch, str) or arch not in architectures:
        raise CheckpointError(f"{source}: config.json field 'architecture' is {arch!r}, not an i3zoo architecture "
                              f"({', '.join(architectures)}); i3zoo loads only its own models")
    for field in ("model_args", "pretrained_cfg", "i3zoo"):
        if field in config and not isinstance(config[field], dict):
            raise CheckpointError(f"{source}: config.json field {field!r} must be a JSON object; got "
                                  f"{type(config[field]).__name__}")
    allowed = MODEL_ARGS + (INFLATED_ARGS if arch == INFLATED_ARCH else ())
    unknown = sorted(set(config.get("model_args", {})) - set(allowed))
    if unknown:
        raise CheckpointError(f"{source}: config.json field 'model_args.{unknown[0]}' is not a constructor argument "
                              f"i3zoo restores; allowed: {', '.join(allowed)}")
    _check_class_counts(config, source)
    cfg = config.get("pretrained_cfg", {})
    sourced = [k for k in _SOURCE_FIELDS if k in cfg]
    if sourced:
        raise CheckpointError(f"{source}: config.json field 'pretrained_cfg.{sourced[0]}' names a weight source; "
                              "a saved config never does (the weights are the folder's model.safetensors)")
    default = get_pretrained_cfg(arch)
    for field in ("classifier", "first_conv"):
        expected = getattr(default, field, None)
        if field in cfg and cfg[field] != expected:
            raise CheckpointError(f"{source}: config.json field 'pretrained_cfg.{field}' is {cfg[field]!r}; "
                                  f"{arch}'s is {expected!r}")
    meta = config.get("i3zoo")
    if meta is None:
        raise CheckpointError(f"{source}: config.json has no 'i3zoo' block, so no sha256 for model.safetensors; "
                              "refusing unverified weights")
    sha = meta.get("weights_sha256")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise CheckpointError(f"{source}: config.json field 'i3zoo.weights_sha256' must be 64 hex digits; got "
                              f"{sha!r}. Refusing unverified weights")
    return config


def read_config(path: Path, source: str, architectures: Sequence[str]) -> Dict[str, Any]:
    """Read ``path`` (a regular file holding JSON) and validate it."""
    try:
        config = json.loads(require_regular_file(path, "config").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{source}: config.json is not valid JSON: {e}") from None
    return validate_config(config, source, architectures)


def hub_file(repo_id: str, filename: str, revision: Optional[str], cache_dir) -> Path:
    """A file of a Hugging Face Hub repo; offline: from the cache or not at all, without a network attempt."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                                local_files_only=offline()))


def read_source_config(model_name: str, architectures: Sequence[str], *, cache_dir=None) -> Optional[Dict[str, Any]]:
    """The validated config of an ``hf-hub:`` / ``local-dir:`` name, before timm builds what it names.

    Returns None for a plain registered name.
    """
    from timm.models import parse_model_name

    source, model_id = parse_model_name(model_name)
    if source == "local-dir":
        return read_config(Path(model_id) / CONFIG_NAME, f"local-dir:{Path(model_id).name}", architectures)
    if source == "hf-hub":
        from timm.models._hub import hf_split

        repo_id, revision = hf_split(model_id)
        return read_config(hub_file(repo_id, CONFIG_NAME, revision, cache_dir), f"hf-hub:{model_id}", architectures)
    return None
