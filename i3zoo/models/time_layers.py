"""The layers that give any 2D network a time axis while its own forward code runs per frame.

An inflated network (:mod:`i3zoo.models.inflated`) keeps time folded into the batch, ``(N*T, C, H, W)``, so that
every per-frame operation of the 2D network (norms, activations, squeeze-excite, residual sums, spatial pools,
attention) runs unchanged. Only the layers here see the clip: :class:`TimeConv` (a 2D convolution given a temporal
kernel: it unfolds time, runs a ``Conv3d`` with the inflated kernel and folds back) and :class:`TimePool` (a
temporal max-pool after a stage, a forward hook so the 2D module keeps its name and keys). Both read the batch
size ``N`` of the running clip from one :class:`ClipState` shared by the model, set once per forward: ``T`` is
then ``x.shape[0] // N`` wherever it is needed, so a temporal stride needs no bookkeeping.

Convolutions that are not plain ``nn.Conv2d`` and that this module knows: timm's TF-"same" ones
(``Conv2dSame``, ``StdConv2dSame``, ``ScaledStdConv2dSame``: padded per frame by timm's own ``pad_same``), the
weight-standardized ones (``StdConv2d``, ``ScaledStdConv2d``: see :class:`TimeConv`), padding modes other than
zeros and string paddings. Any other ``nn.Conv2d`` subclass that overrides ``forward`` is refused when a design
asks for a temporal kernel on it (it stays exact per frame when the design does not).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..weights.inflate import inflate_conv_weight
from .layers import temporal_padding_mode

__all__ = ["ClipState", "TimeConv", "TimePool", "fold", "unfold", "conv_kind", "UninflatableError"]


class UninflatableError(ValueError):
    """A layer of a 2D network cannot be given a temporal kernel; the message names it and says why."""


class ClipState:
    """The batch size of the clip running through an inflated network (``None`` outside a forward)."""

    def __init__(self) -> None:
        self.batch: Optional[int] = None

    def frames(self, x: torch.Tensor, where: str) -> int:
        """``T`` of the folded ``(N*T, ...)`` tensor ``x``."""
        if self.batch is None:
            raise RuntimeError(f"{where} runs inside an inflated video network, which gives it (N, C, T, H, W) clips; "
                               "call the network, not this layer")
        return x.shape[0] // self.batch


def fold(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, ...) -> (N*T, C, ...): time into the batch, frame-major within each clip."""
    return x.transpose(1, 2).flatten(0, 1)


def unfold(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(N*T, C, ...) -> (N, C, T, ...): the inverse of :func:`fold` for ``batch`` clips."""
    return x.unflatten(0, (batch, -1)).transpose(1, 2)


_SAME = ("Conv2dSame", "Conv2dSameExport", "StdConv2dSame", "ScaledStdConv2dSame")
_STANDARDIZED = ("StdConv2d", "StdConv2dSame", "ScaledStdConv2d", "ScaledStdConv2dSame")


def conv_kind(conv: nn.Module) -> str:
    """``"plain"``, ``"same"`` (TF padding), ``"standardized"``, ``"standardized-same"``, or ``"unknown"`` (a
    Conv2d subclass with a forward of its own, which only runs per frame)."""
    name = type(conv).__name__
    timm_layer = type(conv).__module__.startswith("timm.")
    if timm_layer and name in _STANDARDIZED:
        return "standardized-same" if name in _SAME else "standardized"
    if timm_layer and name in _SAME:
        return "same"
    if type(conv).forward is nn.Conv2d.forward:
        return "plain"
    return "unknown"


class TimeConv(nn.Conv3d):
    """A 2D convolution given a ``time_kernel``-frame temporal kernel (and ``time_stride``), on folded clips.

    The spatial part is the 2D layer's: stride, dilation, groups, bias, its padding (zeros, another padding mode,
    or TF "same" computed per frame as timm does). The kernel is inflated from the 2D one (``center`` or
    ``mean``); temporal padding is ``time_kernel // 2`` on both sides, zeros in ``center`` mode and repeated edge
    frames in ``mean`` mode, so a clip of one repeated frame gives the 2D layer's output at every frame.

    Weight standardization (timm's ``StdConv2d`` / ``ScaledStdConv2d``, NFNets and BiT) standardizes the kernel's
    temporal sum as the 2D layer standardizes its kernel, and moves every tap by the same per-channel affine map:
    the taps then sum to the 2D layer's standardized kernel, so the equivalence holds in both modes (temporal padding
    then repeats edge frames in both, since a centre-inflated kernel's zero taps move too), and a trained kernel is
    standardized once per output channel as in 2D.
    """

    def __init__(self, conv: nn.Conv2d, state: ClipState, *, time_kernel: int, time_stride: int = 1,
                 inflation: str = "center", name: str = "") -> None:
        kind = conv_kind(conv)
        if kind == "unknown":
            raise UninflatableError(
                f"layer {name or type(conv).__name__} is a {type(conv).__module__}.{type(conv).__name__}, an "
                "nn.Conv2d subclass with a forward of its own, which i3zoo cannot give a temporal kernel (it knows "
                "plain, TF-'same' and weight-standardized convolutions); give its stage a temporal kernel of 1")
        dtype, device = conv.weight.dtype, conv.weight.device
        super().__init__(conv.in_channels, conv.out_channels, (time_kernel, *conv.kernel_size),
                         (time_stride, *conv.stride), 0, (1, *conv.dilation), conv.groups, conv.bias is not None,
                         device=device, dtype=dtype)
        self.state, self.inflation, self.layer_name = state, inflation, name
        self.time_pad = time_kernel // 2
        # standardization moves every tap, the zero ones of a centre inflation too: only repeated edge frames
        # keep a boring clip's edges exact then
        self.time_padding = "replicate" if kind.startswith("standardized") else temporal_padding_mode(inflation)
        self.same = kind.endswith("same") and getattr(conv, "same_pad", True)
        self.spatial_pad = self._spatial_padding(conv)
        self.spatial_pad_mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
        self.eps = getattr(conv, "eps", None) if kind.startswith("standardized") else None
        self.scale = getattr(conv, "scale", None)
        if self.scale is not None:
            self.gain = conv.gain  # the 2D layer's parameter, same name: its key maps one to one
        with torch.no_grad():
            if not conv.weight.is_meta:
                self.weight.copy_(inflate_conv_weight(conv.weight, time_kernel, inflation))
                if conv.bias is not None:
                    self.bias.copy_(conv.bias)

    def _spatial_padding(self, conv: nn.Conv2d) -> Tuple[int, int, int, int]:
        """(left, right, top, bottom) of the 2D layer, as ``F.pad`` takes it (TF "same" ones: computed per input)."""
        if self.same:
            return (0, 0, 0, 0)
        if isinstance(conv.padding, str):  # torch's own "same" / "valid": fixed for a stride-1 convolution
            if conv.padding == "valid":
                return (0, 0, 0, 0)
            total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
            (top, left) = (t // 2 for t in total)
            return (left, total[1] - left, top, total[0] - top)
        ph, pw = conv.padding
        return (pw, pw, ph, ph)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, time_padding={self.time_padding!r}"
                + (", same=True" if self.same else "") + (", standardized=True" if self.eps is not None else ""))

    def kernel(self) -> torch.Tensor:
        """The kernel the convolution uses: the weight, or its standardized form (see the class docstring)."""
        if self.eps is None:
            return self.weight
        out, taps = self.out_channels, self.weight.shape[2]
        summed = self.weight.sum(2).reshape(out, -1)
        var, mean = torch.var_mean(summed, dim=1, unbiased=False)
        scale = torch.rsqrt(var + self.eps)
        if self.scale is not None:
            scale = scale * self.gain.view(-1) * self.scale
        shape = (out, 1, 1, 1, 1)
        return self.weight * scale.view(shape) - (mean * scale / taps).view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = self.state.batch
        self.state.frames(x, self.layer_name or "TimeConv")
        left, right, top, bottom = self.spatial_pad
        # zero padding the convolution can do itself (no padded copy of the clip): symmetric, zeros
        conv_pads = self.spatial_pad_mode == "constant" and left == right and top == bottom
        if self.same:
            from timm.layers import pad_same

            x = pad_same(x, self.kernel_size[1:], self.stride[1:], self.dilation[1:])
        elif any(self.spatial_pad) and not conv_pads:
            x = F.pad(x, self.spatial_pad, mode=self.spatial_pad_mode)
        clip = unfold(x, batch)
        time_pad = self.time_pad
        if time_pad and self.time_padding == "replicate":
            clip = F.pad(clip, (0, 0, 0, 0, time_pad, time_pad), mode="replicate")
            time_pad = 0
        padding = (time_pad, top, left) if conv_pads else (time_pad, 0, 0)
        out = F.conv3d(clip, self.kernel(), self.bias, self.stride, padding, self.dilation, self.groups)
        return fold(out)


class TimePool:
    """A temporal max-pool of ``size`` frames at stride ``size`` after a 2D module, as a forward hook (the module
    keeps its name, keys and code). Any per-frame output pools, maps or token sequences alike."""

    def __init__(self, state: ClipState, size: int) -> None:
        self.state, self.size = state, size

    def __call__(self, module: nn.Module, args, output):
        if isinstance(output, (list, tuple)):  # a stage that hands on several tensors (SelecSLS): each pooled
            return type(output)(self(module, args, item) for item in output)
        batch = self.state.batch
        frames = self.state.frames(output, "a temporal pool")
        if output.dim() == 4:  # maps: the 3D pool the hand-written models use (torch.export keeps T symbolic)
            return fold(F.max_pool3d(unfold(output, batch), (self.size, 1, 1), (self.size, 1, 1)))
        per_frame = output.shape[1:]  # token sequences and the like
        kept = frames // self.size * self.size  # floor, as a max-pool: a last incomplete window is dropped
        series = output.reshape(batch, frames, -1)[:, :kept].unflatten(1, (-1, self.size))
        return series.amax(2).reshape(-1, *per_frame)
