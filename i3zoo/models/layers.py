"""Building blocks shared by the 3D networks: temporal layer specs, the padded 3D convolution, input checks.

Input layout is (N, C, T, H, W), as in torchvision's video models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..weights.inflate import check_inflation_mode

__all__ = ["LayerSpec", "InflatedConv3d", "hold_in_eval", "temporal_padding_mode", "output_size", "size_after",
           "min_input_size", "valid_feature_indices", "take_feature_indices", "check_clip"]

Triple = Tuple[int, int, int]


@dataclass(frozen=True)
class LayerSpec:
    """Kernel, stride and padding of one 3D layer, each as (t, h, w)."""

    kernel: Triple
    stride: Triple = (1, 1, 1)
    padding: Triple = (0, 0, 0)
    ceil_mode: bool = False  # a pool that rounds its output size up (torchvision's GoogLeNet pools)

    def output_size(self, size: int, axis: int) -> int:
        """How many outputs this layer gives from ``size`` inputs along ``axis`` (0: t, 1: h, 2: w)."""
        return output_size(size, self.kernel[axis], self.stride[axis], self.padding[axis], self.ceil_mode)


def temporal_padding_mode(inflation: str) -> str:
    """The temporal padding an inflation mode needs to keep boring videos exact.

    ``center`` weights only see the centre tap, so zero padding is harmless (and is what the reference
    implementation used); ``mean`` weights sum over all taps, so padded frames must repeat the edge frames.
    """
    return "replicate" if check_inflation_mode(inflation) == "mean" else "zeros"


class InflatedConv3d(nn.Conv3d):
    """A ``Conv3d`` whose temporal padding may replicate edge frames while spatial padding stays zero.

    ``nn.Conv3d(padding_mode="replicate")`` would replicate along H and W too, which changes the 2D
    network's zero-padded borders, hence the explicit temporal pad.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spec: LayerSpec,
        *,
        temporal_padding: str = "zeros",
        bias: bool = False,
        groups: int = 1,
    ) -> None:
        pad_t, pad_h, pad_w = spec.padding
        self.temporal_pad = pad_t if temporal_padding == "replicate" else 0
        conv_padding = (pad_t - self.temporal_pad, pad_h, pad_w)
        super().__init__(in_channels, out_channels, spec.kernel, spec.stride, conv_padding, bias=bias, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.temporal_pad:
            x = F.pad(x, (0, 0, 0, 0, self.temporal_pad, self.temporal_pad), mode="replicate")
        return super().forward(x)


def output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool = False) -> int:
    """How many outputs a layer gives along one axis of ``size`` inputs (PyTorch's rule; < 1: none).

    floor((n + 2p - k) / s) + 1, or with ``ceil_mode`` rounded up, less a last window that would start in the
    right padding.
    """
    span = size + 2 * padding - kernel
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1 if span >= -stride + 1 else 0
    if out > 0 and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def size_after(path: Iterable[LayerSpec], size: Sequence[int]) -> Triple:
    """(T, H, W) after every layer on ``path`` (in order) for an input of ``size`` (T, H, W); < 1: no output."""
    out = list(size)
    for spec in path:
        out = [spec.output_size(n, axis) for axis, n in enumerate(out)]
    return tuple(out)  # type: ignore[return-value]


def min_input_size(path: Iterable[LayerSpec]) -> Triple:
    """Smallest (T, H, W) for which every layer on ``path`` (in order) yields at least one output.

    Walking the path backwards from one output, each layer needs the smallest input size that gives what the
    next layer needs (:func:`output_size` is monotonic in its input, so a search upwards finds it).
    """
    layers: List[LayerSpec] = list(path)
    need = [1, 1, 1]
    for spec in reversed(layers):
        for axis in range(3):
            k, s, p = spec.kernel[axis], spec.stride[axis], spec.padding[axis]
            size = 1
            while output_size(size, k, s, p, spec.ceil_mode) < need[axis]:
                size += 1
            need[axis] = size
    return tuple(need)  # type: ignore[return-value]


def total_stride(path: Iterable[LayerSpec]) -> Triple:
    """Product of the strides along ``path``, per axis (t, h, w)."""
    out = [1, 1, 1]
    for spec in path:
        out = [o * s for o, s in zip(out, spec.stride)]
    return tuple(out)  # type: ignore[return-value]


def valid_feature_indices(indices: Any, count: int) -> bool:
    """Whether ``indices`` picks features as timm does (``feature_take_indices``, ``out_indices``): a count from 1
    to ``count`` (the last ones), or a non-empty sequence of indices in ``range(-count, count)``."""
    if isinstance(indices, int) and not isinstance(indices, bool):
        return 1 <= indices <= count
    return isinstance(indices, Sequence) and len(indices) > 0 and all(
        isinstance(i, int) and not isinstance(i, bool) and -count <= i < count for i in indices)


def take_feature_indices(indices: Any, count: int, name: str = "indices") -> Tuple[List[int], int]:
    """timm's ``feature_take_indices`` (None: all ``count``, n: the last n, a sequence: those, negative from the
    end) as absolute indices and the largest, with a ``ValueError`` naming what is allowed instead of timm's
    assertion; ``name`` is the argument's name in that message."""
    from timm.models._features import feature_take_indices

    if indices is not None and not valid_feature_indices(indices, count):
        raise ValueError(f"{name} must be None (all {count} features), a count from 1 to {count} (the last ones) "
                         f"or feature indices in range(-{count}, {count}); got {indices!r}")
    return feature_take_indices(count, indices)


def check_clip(x: torch.Tensor, *, model_name: str, in_chans: int, min_size: Triple) -> torch.Tensor:
    """Return ``x`` if it is a float (N, C, T, H, W) clip the model accepts; raise ``ValueError`` otherwise
    (``TypeError`` for a non-tensor).

    ``x`` is returned so that the check sits in the data flow: ``torch.fx`` tracing (which cannot look inside it,
    its branches depend on the shape) records it as one call that a traced graph runs on every input (see
    ``torch.fx.wrap`` in ``_model.py``) and that dead-code elimination keeps.
    """
    min_t, min_h, min_w = min_size
    allowed = (
        f"{model_name} takes a floating-point video tensor of shape (N, C, T, H, W) with N >= 1, "
        f"C = {in_chans}, T >= {min_t}, H >= {min_h}, W >= {min_w}"
    )
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{allowed}; got {type(x).__name__}")
    if x.dim() != 5:
        hint = (" (a single image? repeat it along a time axis: x.unsqueeze(2).repeat(1, 1, T, 1, 1))"
                if x.dim() == 4 else "")
        raise ValueError(f"{allowed}; got a {x.dim()}-D tensor of shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise ValueError(
            f"{allowed}; got dtype {x.dtype}. Convert and normalize the frames first, e.g. "
            "x.float() / 255 followed by the ImageNet mean/std normalization"
        )
    n, c, t, h, w = x.shape
    if c != in_chans:
        raise ValueError(f"{allowed}; got C = {c} in shape {tuple(x.shape)} (layout is N, C, T, H, W)")
    if n < 1:
        raise ValueError(f"{allowed}; got an empty batch, shape {tuple(x.shape)}")
    if t < min_t or h < min_h or w < min_w:
        raise ValueError(
            f"{allowed}; got T = {t}, H = {h}, W = {w}. The minimum clip for {model_name} is "
            f"{min_t}x{min_h}x{min_w} (T x H x W)"
        )
    return x


def hold_in_eval(model: nn.Module, frozen: Iterable[nn.Module], norm_eval: bool) -> None:
    """MMAction2's training conventions after ``model.train()``: the ``frozen`` modules (frozen stages) back in
    eval mode, and with ``norm_eval`` every BatchNorm too (running statistics used, never updated)."""
    for module in frozen:
        module.eval()
    if norm_eval:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
