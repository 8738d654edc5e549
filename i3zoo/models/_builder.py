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

from typing import Any, Dict

import torch
from timm.models import FeatureListNet
from timm.models._builder import pretrained_cfg_for_features, resolve_pretrained_cfg
from torch import nn

from ..registry import arch_tags
from ..weights import preinflated  # noqa: F401  (registers the preinflated and published weight sources)
from ..weights.checkpoints import CheckpointError
from ..weights.config import MODEL_ARGS
from ..weights.sources import VideoCfg, load_pretrained
from .layers import check_clip

__all__ = ["resolve_cfg", "load_at_init", "create_registered", "VideoFeatureListNet"]

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
    """timm's ``FeatureListNet`` over an i3zoo model, checking the clip as the model's ``forward`` does."""

    def __init__(self, model: nn.Module, out_indices, flatten_sequential: bool) -> None:
        super().__init__(model, out_indices=out_indices, flatten_sequential=flatten_sequential)
        self.clip_check = dict(model_name=type(model).__name__, in_chans=model.in_chans,
                               min_size=tuple(model.min_input_size))

    def forward(self, x: torch.Tensor):
        check_clip(x, **self.clip_check)
        return super().forward(x)


def create_registered(model_cls, pretrained: bool = False, **kwargs) -> nn.Module:
    """Entry point behind every registered name: builds ``model_cls``, optionally as a timm feature extractor.

    ``features_only=True`` with ``out_indices`` wraps the model in timm's ``FeatureListNet``; its features
    are 5D, (N, C, T', H', W').
    """
    features_only = kwargs.pop("features_only", False)
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3, 4))
    saved_args = kwargs.pop("pretrained_model_args", None) or {}  # a hf-hub: / local-dir: config's model_args
    unknown = sorted(set(saved_args) - set(MODEL_ARGS))
    if unknown:  # timm has already merged them into kwargs: refuse before anything is built from them
        raise CheckpointError(f"config.json field 'model_args.{unknown[0]}' is not a constructor argument i3zoo "
                              f"restores; allowed: {', '.join(MODEL_ARGS)}")
    if "num_classes" not in kwargs:  # as timm: the weights' class count unless told otherwise (400 for Kinetics)
        cfg = resolve_cfg(model_cls.arch_name, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay"))
        kwargs["num_classes"] = cfg.get("num_classes") or 1000
    model = model_cls(pretrained=pretrained, **kwargs)
    if features_only:
        pretrained_cfg = model.pretrained_cfg
        stages = len(model.feature_info)
        if not all(isinstance(i, int) and -stages <= i < stages for i in out_indices):
            raise ValueError(f"out_indices must be stage indices in range({stages}); got {tuple(out_indices)}")
        model = VideoFeatureListNet(model, out_indices, model.feature_flatten_sequential)
        model.pretrained_cfg = model.default_cfg = pretrained_cfg_for_features(pretrained_cfg)
    return model
