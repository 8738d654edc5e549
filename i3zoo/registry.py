"""``create_model`` / ``list_models`` / ``is_model`` over i3zoo's models, which live in timm's registry.

The models are registered with timm (``timm.create_model("i3resnet50")`` works after ``import i3zoo``) by their
declarations (``i3zoo.models._declare``) through :func:`register`; these functions restrict timm's registry to the
modules that registered i3zoo models and turn unknown names into errors that name them. :func:`model_class` gives
the declared class of a name without building anything.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, List, Optional

import timm
from timm.models import (
    get_arch_pretrained_cfgs,
    model_entrypoint,
    parse_model_name,
    register_model,
    split_model_name_tag,
)
from torch import nn

from .weights.config import INFLATED_ARCH, read_source_config

__all__ = ["create_model", "list_models", "is_model", "list_tags", "arch_tags", "meta_model", "model_class",
           "register", "unregister"]

#: the prefix of a 2D network inflated on the fly: ``inflate:timm/convnext_tiny.fb_in1k``,
#: ``inflate:torchvision/efficientnet_b0``
INFLATE_PREFIX = f"{INFLATED_ARCH}:"

#: i3zoo's registered names -> the timm module (last part of the module name) that registered each
_REGISTERED: Dict[str, str] = {}


def register(entrypoint: Callable[..., nn.Module]) -> None:
    """Register a model's entry point with timm (its ``__name__`` is the model name; its module's ``default_cfgs``
    hold its tags, as timm's ``register_model`` reads them) as one of i3zoo's. ``entrypoint.model_cls`` is the
    model's class."""
    register_model(entrypoint)
    _REGISTERED[entrypoint.__name__] = entrypoint.__module__.rsplit(".", 1)[-1]


def unregister(name: str) -> None:
    """Remove a model registered with :func:`register` (a declaration undone, e.g. a test's toy variant).

    timm has no public way to remove a registration: its registry's tables are cleared of the name and its tags.
    """
    from timm.models import _registry

    if _REGISTERED.pop(name, None) is None:
        raise ValueError(f"{name!r} is not a registered i3zoo model")
    for tagged in _registry._model_with_tags.pop(name, []) + [name]:
        _registry._model_pretrained_cfgs.pop(tagged, None)
        _registry._model_has_pretrained.discard(tagged)
    module = _registry._model_to_module.pop(name, None)
    _registry._module_to_models.get(module, set()).discard(name)
    _registry._model_entrypoints.pop(name, None)
    _registry._model_default_cfgs.pop(name, None)


def list_models(filter: str = "", pretrained: bool = False) -> List[str]:
    """i3zoo's model names matching the wildcard ``filter``; with ``pretrained=True``, ``arch.tag`` names."""
    names = timm.list_models(filter, module=sorted(set(_REGISTERED.values())), pretrained=pretrained)
    return [name for name in names if split_model_name_tag(name)[0] in _REGISTERED]


def model_class(name: str) -> type:
    """The declared class of registered model ``name`` (``arch`` or ``arch.tag``), e.g. ``I3ResNet50``; nothing is
    built."""
    arch, tag = split_model_name_tag(name)
    if arch not in _REGISTERED or (tag and tag not in arch_tags(arch)):
        _check_name(name)  # raises, naming the close matches (it lists the registry: only on a miss)
    return model_entrypoint(arch).model_cls


def is_model(name: str) -> bool:
    """Whether ``name`` (``arch`` or ``arch.tag``) is one of i3zoo's models."""
    arch, tag = split_model_name_tag(name)
    if arch not in list_models():
        return False
    return not tag or tag in arch_tags(arch)


def list_tags(arch: str) -> List[str]:
    """The pretrained tags of ``arch`` (``["tv_in1k", "tv2_in1k"]``), default first."""
    _check_name(arch)
    return arch_tags(arch)


def arch_tags(arch: str) -> List[str]:
    """Tags registered for ``arch`` in timm's registry, default first; empty if there are none."""
    return [split_model_name_tag(name)[1] for name in get_arch_pretrained_cfgs(arch)]


def _check_name(name: str) -> None:
    arch, tag = split_model_name_tag(name)
    known = list_models()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {arch!r}.{hint} Known models: {', '.join(known)}")
    tags = arch_tags(arch)
    if tag and tag not in tags:
        raise ValueError(f"unknown pretrained tag {tag!r} for {arch}; known tags: {', '.join(tags)}")


def meta_model(name: str) -> nn.Module:
    """A shape-only copy of registered model ``name`` on the meta device: no memory, no initialisation.

    Enough to read what a model is (``min_input_size``, ``torchvision_arch``, parameter counts, FLOPs).
    """
    import torch

    with torch.device("meta"):
        return create_model(name)


def create_model(
    model_name: str,
    pretrained: bool = False,
    pretrained_cfg_overlay: Optional[Dict[str, Any]] = None,
    **kwargs: Any,
) -> nn.Module:
    """Create an i3zoo model by name, as ``timm.create_model`` does.

    Args:
        model_name: ``arch`` or ``arch.tag``, e.g. ``"i3resnet50"`` or ``"i3resnet50.tv2_in1k"``; a saved model,
            ``hf-hub:ORG/NAME`` or ``local-dir:PATH``; or any timm / torchvision 2D CNN inflated on the fly,
            ``inflate:timm/NAME[.TAG]`` or ``inflate:torchvision/NAME[.WEIGHTS]`` (with ``design=``; see
            :func:`i3zoo.inflate`).
        pretrained: fill the 3D model by inflating the tag's 2D ImageNet weights.
        pretrained_cfg_overlay: overrides of the weight source, e.g. ``dict(file="resnet50.pth")`` for a
            local 2D checkpoint or ``dict(url=...)`` for another download.
        **kwargs: model arguments: ``inflation`` ("center" | "mean"), ``num_classes``, ``in_chans``,
            ``drop_rate``, ``global_pool``, ``features_only`` with ``out_indices`` and ``feature_cls`` ("list",
            "getter" or "fx") or ``feature_cfg``, ``frozen_stages``, ``norm_eval``, ``cache_dir``.

    Returns:
        The model, in train mode like any freshly created torch module; input (N, C, T, H, W).
    """
    if model_name.startswith(INFLATE_PREFIX):  # timm's names take no other prefix: its "inflate" entry does it
        return timm.create_model(INFLATED_ARCH, source=model_name[len(INFLATE_PREFIX):], pretrained=pretrained,
                                 pretrained_cfg_overlay=pretrained_cfg_overlay, **kwargs)
    source, _ = parse_model_name(model_name)  # timm's: a bare "org/name" or path gets a hint to use a prefix
    if source is None:
        _check_name(model_name)
    else:  # timm would build any model the folder's config names: check it is one of ours, and sound
        read_source_config(model_name, [*list_models(), INFLATED_ARCH], cache_dir=kwargs.get("cache_dir"))
    return timm.create_model(model_name, pretrained=pretrained, pretrained_cfg_overlay=pretrained_cfg_overlay,
                             **kwargs)
