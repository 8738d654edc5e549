"""``optimize_for_inference``: a faster, eval-only copy of a model with the same call signature.

BatchNorm is folded into the convolution it follows (torch's ``fuse_conv_bn_eval``), the weights can live in
the channels-last 3D layout (what oneDNN and cuDNN prefer for Conv3d) and in bfloat16 (AMX units on recent
CPUs, tensor cores on GPUs), and the result can be ``torch.compile``d. Input and output stay float32
(N, C, T, H, W) -> (N, num_classes); the input check still runs first.
"""

from __future__ import annotations

import copy
import warnings
from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .models.layers import check_clip

__all__ = ["optimize_for_inference", "InferenceModel", "conv_bn_pairs", "native_bfloat16", "replace_module"]


def conv_bn_pairs(model: nn.Module) -> List[Tuple[str, str]]:
    """(conv, batchnorm) module names where the BatchNorm directly normalises that convolution's output.

    The pairs are the family's declaration (``conv_bn_pairs``: child names relative to any module), e.g. every
    ResNet block's ``convK``/``bnK`` and ``downsample.0``/``.1``, every Inception-v1 ``BasicConv3d``'s
    ``conv``/``bn``; a DenseNet is pre-activation (BN-ReLU-conv), so it declares only ``conv0``/``norm0`` and each
    dense layer's ``conv1``/``norm2``.
    """
    pairs = []
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        for conv, bn in model.conv_bn_pairs:
            try:
                found = module.get_submodule(conv), module.get_submodule(bn)
            except AttributeError:
                continue
            if isinstance(found[0], nn.Conv3d) and isinstance(found[1], nn.BatchNorm3d):
                pairs.append((prefix + conv, prefix + bn))
    return pairs


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule called ``name`` (dotted) is."""
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent), attr, new)


def _fuse(model: nn.Module) -> nn.Module:
    for conv_name, bn_name in conv_bn_pairs(model):
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        replace_module(model, conv_name, fuse_conv_bn_eval(conv, bn))
        replace_module(model, bn_name, nn.Identity())
    return model


class _Float32AvgPool3d(nn.Module):
    """AvgPool3d computed in float32: PyTorch's CPU kernel has no bfloat16 version (DenseNet transitions)."""

    def __init__(self, pool: nn.AvgPool3d) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x.float()).to(x.dtype)


def _pools_in_float32(model: nn.Module) -> None:
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.AvgPool3d):
            replace_module(model, name, _Float32AvgPool3d(module))


def native_bfloat16(device: torch.device) -> bool:
    """Whether bfloat16 convolutions on ``device`` run on fast kernels.

    GPUs from Ampere on, and CPUs whose oneDNN has bfloat16 kernels (AVX512-BF16, AMX). Elsewhere (AVX2-only
    CPUs) PyTorch falls back to a reference convolution that is two orders of magnitude slower than float32
    (the benchmark measures the ratio on the machine it runs on).
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(supported and supported())
    return True  # other backends: no known slow path


class InferenceModel(nn.Module):
    """Wraps an optimized copy: float32 (N, C, T, H, W) in, float32 logits out."""

    def __init__(self, model: nn.Module, *, dtype: torch.dtype, channels_last: bool, compiled: bool) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
        self.in_chans, self.min_input_size = model.in_chans, model.min_input_size
        self.name = type(model).__name__
        self._forward = torch.compile(model) if compiled else model

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_clip(x, model_name=self.name, in_chans=self.in_chans, min_size=self.min_input_size)
        x = x.to(dtype=self.dtype, memory_format=self.memory_format)
        return self._forward(x).float()


def optimize_for_inference(
    model: nn.Module,
    *,
    dtype: Optional[torch.dtype] = None,
    channels_last: bool = True,
    fuse_bn: bool = True,
    compile: bool = False,
) -> InferenceModel:
    """An eval-mode copy of ``model`` for inference; ``model`` itself is left as it is.

    Args:
        model: an i3zoo model.
        dtype: compute dtype (``torch.bfloat16`` for AMX / tensor cores); default: the model's. bfloat16 where
            the hardware has no bfloat16 kernels (see :func:`native_bfloat16`) is much slower and warns.
        channels_last: keep weights and activations in the channels-last 3D layout.
        fuse_bn: fold each BatchNorm into the convolution before it.
        compile: ``torch.compile`` the result (slow first call; needs a C++ compiler on CPU).

    Returns:
        A module taking float32 (N, C, T, H, W) clips and returning float32 (N, num_classes) logits.
    """
    from .models._model import I3DNet

    if not isinstance(model, I3DNet):
        raise TypeError(f"optimize_for_inference takes an i3zoo model (not features_only); got {type(model).__name__}")
    optimized = copy.deepcopy(model).eval()
    if fuse_bn:
        optimized = _fuse(optimized)
    dtype = dtype or next(model.parameters()).dtype
    device = next(model.parameters()).device
    if dtype == torch.bfloat16 and not native_bfloat16(device):
        lacking = "a GPU before Ampere" if device.type == "cuda" else "no AVX512-BF16 or AMX"
        warnings.warn(
            f"bfloat16 convolutions have no fast kernels on this {device.type} ({lacking}): PyTorch runs them on "
            "a reference path far slower than float32. Leave dtype=None for float32 unless you want bfloat16 "
            "numerics rather than speed.",
            UserWarning, stacklevel=2,
        )
    optimized = optimized.to(dtype=dtype)
    if dtype == torch.bfloat16:
        _pools_in_float32(optimized)
    if channels_last:
        optimized = optimized.to(memory_format=torch.channels_last_3d)
    for p in optimized.parameters():
        p.requires_grad_(False)
    return InferenceModel(optimized, dtype=dtype, channels_last=channels_last, compiled=compile).eval()
