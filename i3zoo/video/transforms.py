"""Clip transforms from a model's pretrained cfg, built on ``torchvision.transforms.v2``.

Frames arrive as decoded: uint8 (T, C, H, W). ``transforms.v2`` treats a ``tv_tensors.Video`` as one sample,
so a random crop or flip is drawn once and applied to every frame. The last step moves time behind the
channels: float (C, T, H, W), the layout of one clip of the models' (N, C, T, H, W) input.

Evaluation follows timm's ``crop_pct`` convention: resize the short side to ``input_size / crop_pct``, then
crop the centre (or three crops along the long side, as SlowFast and MMAction2 test). Training uses a random
resized crop and a horizontal flip.

How frames are resized is part of a tag's protocol (its cfg's ``resize_antialias`` and ``resize_float``): by
default uint8 frames are resized with antialiasing (torchvision's ``Resize``); PyTorchVideo's Kinetics weights were
evaluated on frames divided by 255 and then resized by ``short_side_scale``
(``pytorchvideo/transforms/functional.py``: ``torch.nn.functional.interpolate``, bilinear, no antialiasing), which
:class:`ShortSideScale` repeats exactly -- up to 43 of 255 levels apart from the default on a 720p video.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Union

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2

from ..errors import UsageError

__all__ = ["transforms_for", "ClipLayout", "ThreeCrop", "ShortSideScale"]

_INTERPOLATION = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
                  "nearest": InterpolationMode.NEAREST}


class ClipLayout(nn.Module):
    """(T, C, H, W) frames -> (C, T, H, W) clip; (K, T, C, H, W) crops -> (K, C, T, H, W)."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.transpose(-4, -3).contiguous().as_subclass(torch.Tensor)


class ThreeCrop(nn.Module):
    """Three ``size`` x ``size`` crops along the long side (start, centre, end): (T, C, H, W) -> (3, T, C, s, s).

    ``transforms.v2`` has five- and ten-crop but no three-crop, the usual multi-crop test of video models
    (SlowFast, MMAction2), so it is written here; it only slices.
    """

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        height, width = frames.shape[-2:]
        if min(height, width) < self.size:
            raise ValueError(f"three-crop of {self.size} needs frames at least that large; got {height}x{width}")
        crops = []
        for fraction in (0.0, 0.5, 1.0):
            top = round((height - self.size) * fraction) if height > width else (height - self.size) // 2
            left = round((width - self.size) * fraction) if width >= height else (width - self.size) // 2
            crops.append(frames[..., top:top + self.size, left:left + self.size])
        return torch.stack(crops)


class ShortSideScale(nn.Module):
    """Float (..., H, W) frames with the short side scaled to ``size`` and the long side in proportion (rounded
    down), by plain bilinear interpolation: PyTorchVideo's ``short_side_scale`` (same arithmetic, same call)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        height, width = frames.shape[-2:]
        if width < height:
            new_height, new_width = int(math.floor((float(height) / width) * self.size)), self.size
        else:
            new_height, new_width = self.size, int(math.floor((float(width) / height) * self.size))
        flat = frames.reshape(-1, *frames.shape[-3:]).as_subclass(torch.Tensor)  # (N, C, H, W) for interpolate
        resized = torch.nn.functional.interpolate(flat, size=(new_height, new_width), mode="bilinear",
                                                  align_corners=False)
        resized = resized.reshape(*frames.shape[:-2], new_height, new_width)
        return tv_tensors.wrap(resized, like=frames) if isinstance(frames, tv_tensors.Video) else resized


class _AsVideo(nn.Module):
    # a plain (T, C, H, W) tensor is a batch of images to transforms.v2; a Video is one sample
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be (T, 3, H, W); got shape {tuple(frames.shape)}")
        return tv_tensors.Video(frames)


def _cfg_of(model_or_cfg: Union[nn.Module, Mapping[str, Any], str]) -> Dict[str, Any]:
    if isinstance(model_or_cfg, str):
        from ..registry import meta_model

        return dict(meta_model(model_or_cfg).pretrained_cfg)
    if isinstance(model_or_cfg, nn.Module):
        cfg = getattr(model_or_cfg, "pretrained_cfg", None)
        if cfg is None:
            raise ValueError(f"{type(model_or_cfg).__name__} has no pretrained_cfg; pass the cfg dict instead")
        return dict(cfg)
    if isinstance(model_or_cfg, Mapping):
        return dict(model_or_cfg)
    raise ValueError(f"transforms_for takes a model, a pretrained cfg dict or a model name; "
                     f"got {type(model_or_cfg).__name__}")


def transforms_for(
    model_or_cfg: Union[nn.Module, Mapping[str, Any], str],
    train: bool = False,
    *,
    crop_size: int = None,
    three_crop: bool = False,
) -> v2.Compose:
    """The clip transform a model expects: uint8 (T, 3, H, W) frames -> normalized float (3, T, S, S).

    Args:
        model_or_cfg: an i3zoo model, its ``pretrained_cfg`` (``mean``, ``std``, ``input_size``,
            ``crop_pct``, ``interpolation``) or a registered model name.
        train: random resized crop and horizontal flip instead of resize and centre crop.
        crop_size: override the cfg's ``input_size`` (e.g. 112 for quick runs).
        three_crop: evaluation with three crops along the long side; output (3, 3, T, S, S).

    Returns:
        A ``torchvision.transforms.v2.Compose``.
    """
    cfg = _cfg_of(model_or_cfg)
    missing = [k for k in ("mean", "std", "input_size") if k not in cfg]
    if missing:
        raise ValueError(f"the pretrained cfg lacks {', '.join(missing)}; it has {', '.join(sorted(cfg))}")
    channels = cfg["input_size"][0]
    if channels != 3:  # video frames are RGB: a flow stream's input is computed (i3zoo.video.flow), not decoded
        raise UsageError(f"transforms_for makes RGB clips (3 channels), but the model takes {channels}-channel "
                         "input: DeepMind I3D's flow stream takes optical flow (i3zoo extract --streams flow)")
    size = int(crop_size or cfg["input_size"][-1])
    if size < 1:
        raise ValueError(f"crop_size must be >= 1; got {size}")
    interpolation_name = cfg.get("interpolation", "bilinear")
    if interpolation_name not in _INTERPOLATION:
        raise ValueError(f"interpolation {interpolation_name!r} is not supported; choose from "
                         f"{', '.join(_INTERPOLATION)}")
    interpolation = _INTERPOLATION[interpolation_name]
    if train and three_crop:
        raise ValueError("three_crop is an evaluation transform; it cannot be combined with train=True")
    to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(cfg["mean"]), std=list(cfg["std"]))]
    if train:
        spatial = [v2.RandomResizedCrop(size, scale=(0.25, 1.0), interpolation=interpolation, antialias=True),
                   v2.RandomHorizontalFlip()]
        return v2.Compose([_AsVideo(), *spatial, *to_float, ClipLayout()])
    crop_pct = float(cfg.get("crop_pct") or 1.0)
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must be in (0, 1]; got {crop_pct}")
    resize = size if three_crop else math.floor(size / crop_pct)
    crop = ThreeCrop(size) if three_crop else v2.CenterCrop(size)
    if cfg.get("resize_float"):  # PyTorchVideo's protocol: to [0, 1] floats, then resized
        if interpolation_name != "bilinear" or cfg.get("resize_antialias", True):
            raise ValueError("resize_float follows PyTorchVideo's short_side_scale: bilinear, resize_antialias=False")
        return v2.Compose([_AsVideo(), to_float[0], ShortSideScale(resize), crop, to_float[1], ClipLayout()])
    antialias = bool(cfg.get("resize_antialias", True))
    return v2.Compose([_AsVideo(), v2.Resize(resize, interpolation=interpolation, antialias=antialias), crop,
                       *to_float, ClipLayout()])
