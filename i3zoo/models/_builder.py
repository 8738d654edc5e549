"""From a registered name to a filled 3D model: the pretrained cfg, construction-time loading, features_only.

Shaped like timm's ``build_model_with_cfg``: resolve the cfg of a tag (a :class:`~i3zoo.weights.sources.VideoCfg`
with an optional overlay), build, load the weights through the source the cfg names
(:func:`i3zoo.weights.sources.load_pretrained`), wrap as a feature extractor. The loading happens inside the
model's constructor (``I3ResNet50(pretrained=True)`` is a promise the named classes keep), so the builder only
decides the class count and the wrapper. timm's registry, ``resolve_pretrained_cfg`` and ``FeatureListNet`` serve
5D models as they are; its ``load_pretrained`` does not (it adapts heads and input convolutions in 2D only and
loads into the built model, where ours must be inflated first).
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Optional

import torch
from timm.models import FeatureListNet
from timm.models._builder import pretrained_cfg_for_features, resolve_pretrained_cfg
from timm.models._features import FeatureGetterNet
from timm.models._features_fx import FeatureGraphNet
from torch import nn

from ..registry import arch_tags
from ..weights import preinflated  # noqa: F401  (registers the preinflated and published weight sources)
from ..weights.checkpoints import CheckpointError
from ..weights.config import MODEL_ARGS
from ..weights.sources import VideoCfg, load_pretrained
from .layers import check_clip, take_feature_indices

__all__ = ["resolve_cfg", "load_at_init", "create_registered", "VideoFeatureListNet", "wrap_features"]

#: overlay keys that name other weights than the tag's own
_WEIGHT_KEYS = ("url", "file", "state_dict", "hf_hub_id")


def resolve_cfg(arch_name: str, pretrained_cfg=None, pretrained_cfg_overlay=None) -> Dict[str, Any]:
    """The pretrained cfg for ``arch_name`` with an optional tag or cfg and overlay, as a dict.

    An unknown tag gets a ``ValueError`` listing the known ones (timm raises a bare RuntimeError).
    """
    if isinstance(pretrained_cfg, str):
        tags = arch_tags(arch_name)
        if pretrained_cfg not in tags:
            raise ValueError(
                f"unknown pretrained tag {pretrained_cfg!r} for {arch_name}; known tags: {', '.join(tags)}"
            )
    if isinstance(pretrained_cfg, dict):  # e.g. read back from a saved config.json (validated field by field)
        pretrained_cfg = VideoCfg(**{k: v for k, v in pretrained_cfg.items() if k in VideoCfg.__dataclass_fields__})
    # timm's cfg dataclass deep-copies every field: an in-memory state dict would be copied twice per model
    state_dict = (pretrained_cfg_overlay or {}).get("state_dict")
    if state_dict is not None:
        pretrained_cfg_overlay = {k: v for k, v in pretrained_cfg_overlay.items() if k != "state_dict"}
    cfg = resolve_pretrained_cfg(arch_name, pretrained_cfg, pretrained_cfg_overlay).to_dict()
    if state_dict is not None:
        cfg["state_dict"] = state_dict
    return cfg


def load_at_init(model: nn.Module, pretrained: bool, pretrained_cfg, pretrained_cfg_overlay,
                 cache_dir) -> Dict[str, Any]:
    """The cfg of a model being constructed (timm's ``model.pretrained_cfg``); with ``pretrained``, the weights it
    names fill the model: the tag's own, unless the overlay or a cfg dict names others."""
    cfg = resolve_cfg(model.arch_name, pretrained_cfg, pretrained_cfg_overlay)
    if pretrained:
        overridden = not (pretrained_cfg is None or isinstance(pretrained_cfg, str)) or any(
            (pretrained_cfg_overlay or {}).get(k) is not None for k in _WEIGHT_KEYS)
        load_pretrained(model, cfg, overridden=overridden, cache_dir=cache_dir)
    return cfg


class VideoFeatureListNet(FeatureListNet):
    """timm's ``FeatureListNet`` over an i3zoo model, checking the clip as the model's ``forward`` does.

    ``flatten_sequential`` defaults to the model's own ``feature_flatten_sequential``; ``kwargs`` are
    ``FeatureListNet``'s.
    """

    def __init__(self, model: nn.Module, out_indices, flatten_sequential: Optional[bool] = None, **kwargs) -> None:
        if flatten_sequential is None:
            flatten_sequential = model.feature_flatten_sequential
        super().__init__(model, out_indices=out_indices, flatten_sequential=flatten_sequential, **kwargs)
        self.clip_check = dict(model_name=type(model).__name__, in_chans=model.in_chans,
                               min_size=tuple(model.min_input_size))

    def forward(self, x: torch.Tensor):
        return super().forward(check_clip(x, **self.clip_check))


#: ``feature_cls`` -> the wrapper of a ``features_only`` model (timm's names and classes). Each path checks the
#: clip: the list in its ``forward``, the getter in the model's ``forward_intermediates``, the FX graph in its
#: traced ``check_clip`` call.
FEATURE_CLASSES = {"list": VideoFeatureListNet, "getter": FeatureGetterNet, "fx": FeatureGraphNet}


def _wrapper_arguments(cls: type) -> List[str]:
    """The keyword arguments a feature wrapper class takes besides the model and ``out_indices``."""
    names = []
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and not klass.__module__.startswith("torch."):  # not ModuleDict's
            names += [n for n, p in inspect.signature(klass.__init__).parameters.items()
                      if n not in ("self", "model", "out_indices", *names)
                      and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names


def wrap_features(model: nn.Module, feature_cls: Optional[str] = "list", out_indices=(0, 1, 2, 3, 4),
                  **feature_cfg: Any) -> nn.Module:
    """``model`` as a ``features_only`` extractor: timm's ``FeatureListNet`` (``"list"``, the default),
    ``FeatureGetterNet`` (``"getter"``: ``forward_intermediates``, the model pruned after the last feature) or
    ``FeatureGraphNet`` (``"fx"``: a torch.fx graph); each returns one 5D map per ``out_indices`` entry.
    ``feature_cfg``: further keyword arguments of the wrapper class (``output_fmt``, ``return_dict`` ...)."""
    feature_cls = "list" if feature_cls is None else feature_cls
    if feature_cls not in FEATURE_CLASSES:
        raise ValueError(f"unknown feature_cls {feature_cls!r}; allowed: {', '.join(map(repr, FEATURE_CLASSES))}")
    wrapper = FEATURE_CLASSES[feature_cls]
    allowed = _wrapper_arguments(wrapper)
    unknown = sorted(set(feature_cfg) - set(allowed))
    if unknown:
        raise ValueError(f"unknown feature_cfg key {unknown[0]!r} for feature_cls={feature_cls!r}; allowed: "
                         + ", ".join(["feature_cls", "out_indices", *allowed]))
    pretrained_cfg = model.pretrained_cfg
    take, _ = take_feature_indices(out_indices, len(model.feature_info), "out_indices")
    wrapped = wrapper(model, tuple(take), **feature_cfg)
    wrapped.pretrained_cfg = wrapped.default_cfg = pretrained_cfg_for_features(pretrained_cfg)
    return wrapped


def create_registered(model_cls, pretrained: bool = False, **kwargs) -> nn.Module:
    """Entry point behind every registered name: builds ``model_cls``, optionally as a timm feature extractor.

    ``features_only=True`` (with ``out_indices``, ``feature_cls`` and ``feature_cfg`` as timm's
    ``build_model_with_cfg`` takes them) wraps the model with :func:`wrap_features`; its features are 5D,
    (N, C, T', H', W').
    """
    feature_cfg = dict(kwargs.pop("feature_cfg", None) or {})
    features_only = kwargs.pop("features_only", False)
    for key in ("out_indices", "feature_cls"):
        if key in kwargs:
            feature_cfg[key] = kwargs.pop(key)
    saved_args = kwargs.pop("pretrained_model_args", None) or {}  # a hf-hub: / local-dir: config's model_args
    unknown = sorted(set(saved_args) - set(MODEL_ARGS))
    if unknown:  # timm has already merged them into kwargs: refuse before anything is built from them
        raise CheckpointError(f"config.json field 'model_args.{unknown[0]}' is not a constructor argument i3zoo "
                              f"restores; allowed: {', '.join(MODEL_ARGS)}")
    cfg = resolve_cfg(model_cls.arch_name, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay"))
    if "num_classes" not in kwargs:  # as timm: the weights' class count unless told otherwise (400 for Kinetics)
        kwargs["num_classes"] = cfg.get("num_classes") or 1000
    for key, value in (cfg.get("model_args") or {}).items():  # what the tag's weights compute with (VideoCfg)
        kwargs.setdefault(key, value)
    model = model_cls(pretrained=pretrained, **kwargs)
    return wrap_features(model, **feature_cfg) if features_only else model
