"""TensorFlow's "SAME" padding for 3D convolutions and max-pools, as DeepMind's I3D and its PyTorch ports pad.

TensorFlow (``tf.nn.convolution``, ``padding="SAME"``) gives ``ceil(n / s)`` outputs along an axis of ``n`` inputs
and pads ``max((ceil(n / s) - 1) * s + k - n, 0)`` in all, the smaller half before: the padding depends on the
input size, and is asymmetric where that total is odd (a 7x7x7 convolution strided 2 pads 2 before and 3 after an
even axis, 3 and 3 an odd one). Two rules, as the two PyTorch ports of DeepMind's checkpoints compute it:

* ``"tf"``: from the input size, TensorFlow's own rule (piergiaj/pytorch-i3d, ``Unit3D.compute_pad`` and
  ``MaxPool3dSamePadding``: the same arithmetic written per ``n % s``);
* ``"static"``: from kernel and stride alone, ``max(k - s, 0)``, with max-pools that round their output up
  (``ceil_mode=True``): hassony2/kinetics_i3d_pytorch's ``get_padding_shape`` as v-iashin/video_features runs it
  (``models/i3d/i3d_src/i3d_net.py``); equal to TensorFlow's where ``n`` is divisible by the stride.

Padding is with zeros, as both ports pad (before a max-pool the input is a ReLU's, so zeros are TensorFlow's
"ignore the padding"); a convolution may instead repeat the edge frames in time, which ``mean`` inflation needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import LayerSpec, Triple, output_size

__all__ = ["SAME_PADDING_RULES", "SameSpec", "same_pads", "pad_same", "SameConv3d", "SameMaxPool3d"]

#: the rules a design may pad by (see the module docstring)
SAME_PADDING_RULES = ("tf", "static")


def same_pads(size: int, kernel: int, stride: int, rule: str = "tf") -> Tuple[int, int]:
    """(before, after) padding of one axis of ``size`` inputs under ``rule`` ("tf" or "static")."""
    if rule == "tf":
        # (ceil(n / s) - 1) * s + k - n, written without ceil and max where k >= s (every layer of I3D), which
        # keeps the symbolic sizes of a torch.export trace short
        total = kernel - stride + (-size) % stride if kernel >= stride else \
            max((-(-size // stride) - 1) * stride + kernel - size, 0)
    elif rule == "static":
        total = max(kernel - stride, 0)
    else:
        raise ValueError(f"unknown SAME padding rule {rule!r}; allowed: {', '.join(map(repr, SAME_PADDING_RULES))}")
    return total // 2, total - total // 2


@dataclass(frozen=True)
class SameSpec(LayerSpec):
    """A layer padded "SAME" by ``rule``: ``padding`` is unused (the pads follow from the input size);
    ``ceil_mode`` is the pool's (the "static" rule's pools round up)."""

    rule: str = "tf"

    def output_size(self, size: int, axis: int) -> int:
        before, after = same_pads(size, self.kernel[axis], self.stride[axis], self.rule)
        return output_size(size + before + after, self.kernel[axis], self.stride[axis], 0, self.ceil_mode)

    def size_spec(self) -> LayerSpec:
        """A ``LayerSpec`` with this layer's output sizes by PyTorch's rule (kernel = stride, no padding; rounding
        up for TensorFlow's ``ceil(n / s)`` and the static pools, down for the static convolutions'
        ``floor(n / s)``): what a design's ``reduction_path`` states, so that every size rule of the zoo reads
        it as it reads any other layer."""
        return LayerSpec(self.stride, self.stride, (0, 0, 0), ceil_mode=self.rule == "tf" or self.ceil_mode)

    def is_static(self) -> bool:
        """Whether the pads are the same for every input size and symmetric (then the layer pads itself)."""
        return all(s == 1 and k % 2 == 1 for k, s in zip(self.kernel, self.stride))


def pad_same(x: torch.Tensor, kernel: Triple, stride: Triple, rule: str, replicate_time: bool = False) -> torch.Tensor:
    """``x`` (N, C, T, H, W) padded "SAME" by ``rule`` for a layer of ``kernel`` and ``stride``; zeros, or in time
    the edge frames repeated (``replicate_time``)."""
    (t0, t1), (h0, h1), (w0, w1) = (same_pads(n, k, s, rule) for n, k, s in zip(x.shape[2:], kernel, stride))
    if replicate_time and (t0 or t1):
        x = F.pad(x, (0, 0, 0, 0, t0, t1), mode="replicate")
        t0 = t1 = 0
    if t0 or t1 or h0 or h1 or w0 or w1:
        x = F.pad(x, (w0, w1, h0, h1, t0, t1))
    return x


# torch.fx cannot trace the size arithmetic: a traced graph calls pad_same as one function on every input
torch.fx.wrap("pad_same")


class SameConv3d(nn.Conv3d):
    """A ``Conv3d`` padded "SAME" by its spec's rule (``temporal_padding="replicate"`` repeats edge frames in time).

    Stride-1 layers with odd kernels pad (k - 1) / 2 on both sides under either rule, whatever the input size:
    they pad themselves (``nn.Conv3d``'s padding); the strided ones pad the input first.
    """

    def __init__(self, in_channels: int, out_channels: int, spec: SameSpec, *, temporal_padding: str = "zeros",
                 bias: bool = False) -> None:
        self.spec = spec
        self.replicate_time = temporal_padding == "replicate" and spec.kernel[0] > 1
        self.pads_itself = spec.is_static() and not self.replicate_time
        padding = tuple(k // 2 for k in spec.kernel) if self.pads_itself else 0
        super().__init__(in_channels, out_channels, spec.kernel, spec.stride, padding, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.pads_itself:
            x = pad_same(x, self.spec.kernel, self.spec.stride, self.spec.rule, self.replicate_time)
        return super().forward(x)


class SameMaxPool3d(nn.MaxPool3d):
    """A ``MaxPool3d`` padded "SAME" by its spec's rule, with zeros as the ports pad (its input is a ReLU's)."""

    def __init__(self, spec: SameSpec) -> None:
        self.spec = spec
        self.pads_itself = spec.is_static()
        super().__init__(spec.kernel, spec.stride, tuple(k // 2 for k in spec.kernel) if self.pads_itself else 0,
                         ceil_mode=spec.ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.pads_itself:
            x = pad_same(x, self.spec.kernel, self.spec.stride, self.spec.rule)
        return super().forward(x)
