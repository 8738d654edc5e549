"""I3ResNet: torchvision's Bottleneck ResNets (He et al., *Deep Residual Learning*, 2016) inflated to 3D.

Mirrors ``torchvision.models.resnet`` module for module (``conv1, bn1, relu, maxpool, layer1..4, fc``;
Bottleneck ``conv1..3, bn1..3, downsample.0/1``), so a torchvision state dict inflates key by key.
The temporal design is the reference implementation's (see ``RESNET_DESIGN``): time is halved by the stem
max-pool and by the first block of layer2..4, 16x in all, and any T >= 1 is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from timm.models import generate_default_cfgs, register_model
from torch import nn
from torchvision.models import ResNet50_Weights, ResNet101_Weights, ResNet152_Weights

from ._builder import create_registered, pretrained_cfg_from_torchvision
from ._model import I3DNet
from .layers import InflatedConv3d, LayerSpec

__all__ = ["RESNET_DESIGN", "Bottleneck3d", "I3ResNet", "I3ResNet50", "I3ResNet101", "I3ResNet152"]


@dataclass(frozen=True)
class ResNetDesign:
    """Temporal design of an I3ResNet; kernels, strides and paddings are (t, h, w)."""

    stem_conv: LayerSpec = LayerSpec(kernel=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3))
    stem_pool: LayerSpec = LayerSpec(kernel=(3, 3, 3), stride=(2, 2, 2), padding=(1, 1, 1))
    #: bottleneck conv2 is t x 3 x 3; conv1/conv3 are 1 x 1 x 1
    block_time_kernel: int = 3
    #: a strided block (and its downsample) strides time like space: (s, s, s)
    block_strides_time: bool = True

    def block_conv2(self, stride: int) -> LayerSpec:
        t = self.block_time_kernel
        return LayerSpec((t, 3, 3), (self._time_stride(stride), stride, stride), (t // 2, 1, 1))

    def downsample(self, stride: int) -> LayerSpec:
        return LayerSpec((1, 1, 1), (self._time_stride(stride), stride, stride))

    def _time_stride(self, stride: int) -> int:
        return stride if self.block_strides_time else 1


RESNET_DESIGN = ResNetDesign()
_POINTWISE = LayerSpec((1, 1, 1))


class Bottleneck3d(nn.Module):
    """torchvision's Bottleneck (1x1 -> 3x3 -> 1x1, stride on the 3x3) with 3D kernels."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        *,
        design: ResNetDesign = RESNET_DESIGN,
        temporal_padding: str = "zeros",
    ) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = InflatedConv3d(inplanes, planes, _POINTWISE)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = InflatedConv3d(planes, planes, design.block_conv2(stride), temporal_padding=temporal_padding)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = InflatedConv3d(planes, out, _POINTWISE)
        self.bn3 = nn.BatchNorm3d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity  # in place, as torchvision: a new tensor here costs ~10% of the forward at batch 8
        return self.relu(out)


class I3ResNet(I3DNet):
    """A Bottleneck ResNet inflated to 3D. Input (N, C, T, H, W), output (N, num_classes).

    Args:
        block_counts: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50; set by the named subclasses.
        Every other (keyword) argument is :class:`i3zoo.models._model.I3DNet`'s: ``pretrained``, ``inflation``,
        ``num_classes``, ``in_chans``, ``drop_rate``, ``global_pool``, ``pretrained_cfg``,
        ``pretrained_cfg_overlay``, ``cache_dir``.
    """

    block_counts: Tuple[int, int, int, int] = (0, 0, 0, 0)
    classifier_name = "fc"

    def _build(self, block_counts: Optional[Sequence[int]] = None) -> None:
        self.block_counts = tuple(block_counts) if block_counts is not None else self.block_counts
        design, pad = RESNET_DESIGN, self.temporal_padding
        self.conv1 = InflatedConv3d(self.in_chans, 64, design.stem_conv, temporal_padding=pad)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(design.stem_pool.kernel, design.stem_pool.stride, design.stem_pool.padding)
        self.inplanes = 64
        self.feature_info = [dict(num_chs=64, reduction=2, module="relu")]
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), self.block_counts), start=1):
            stride = 1 if index == 1 else 2
            setattr(self, f"layer{index}", self._make_layer(planes, count, stride))
            self.feature_info.append(
                dict(num_chs=planes * Bottleneck3d.expansion, reduction=4 * 2 ** (index - 1), module=f"layer{index}")
            )
        self.num_features = 512 * Bottleneck3d.expansion
        self.fc = nn.Linear(self.num_features, self.num_classes) if self.num_classes else nn.Identity()
        self._init_weights()

    def _make_layer(self, planes: int, count: int, stride: int) -> nn.Sequential:
        design, pad = RESNET_DESIGN, self.temporal_padding
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck3d.expansion:
            downsample = nn.Sequential(
                InflatedConv3d(self.inplanes, planes * Bottleneck3d.expansion, design.downsample(stride)),
                nn.BatchNorm3d(planes * Bottleneck3d.expansion),
            )
        blocks = [Bottleneck3d(self.inplanes, planes, stride, downsample, design=design, temporal_padding=pad)]
        self.inplanes = planes * Bottleneck3d.expansion
        blocks += [Bottleneck3d(self.inplanes, planes, design=design, temporal_padding=pad) for _ in range(1, count)]
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        # torchvision's initialisation, so a randomly initialised model trains like torchvision's
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def reduction_path(self) -> Sequence[LayerSpec]:
        design = RESNET_DESIGN
        return [design.stem_conv, design.stem_pool] + [design.block_conv2(2)] * 3

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> (N, 2048, T/16, H/32, W/32) (sizes rounded up)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self._run_stages(x, [self.layer1, self.layer2, self.layer3, self.layer4])

    def group_matcher(self, coarse: bool = False):
        return dict(stem=r"^conv1|^bn1|^maxpool", blocks=r"^layer(\d+)" if coarse else r"^layer(\d+)\.(\d+)")


class I3ResNet50(I3ResNet):
    """ResNet-50 inflated to 3D. Weights: ``tv_in1k`` (default), ``tv2_in1k``."""

    arch_name, torchvision_arch = "i3resnet50", "resnet50"
    block_counts = (3, 4, 6, 3)


class I3ResNet101(I3ResNet):
    """ResNet-101 inflated to 3D. Weights: ``tv_in1k`` (default), ``tv2_in1k``."""

    arch_name, torchvision_arch = "i3resnet101", "resnet101"
    block_counts = (3, 4, 23, 3)


class I3ResNet152(I3ResNet):
    """ResNet-152 inflated to 3D. Weights: ``tv_in1k`` (default), ``tv2_in1k``."""

    arch_name, torchvision_arch = "i3resnet152", "resnet152"
    block_counts = (3, 8, 36, 3)


default_cfgs = generate_default_cfgs({
    f"{arch}.{tag}": pretrained_cfg_from_torchvision(weights, classifier="fc", first_conv="conv1")
    for arch, enum in (("i3resnet50", ResNet50_Weights), ("i3resnet101", ResNet101_Weights),
                       ("i3resnet152", ResNet152_Weights))
    for tag, weights in (("tv_in1k", enum.IMAGENET1K_V1), ("tv2_in1k", enum.IMAGENET1K_V2))
})


@register_model
def i3resnet50(pretrained: bool = False, **kwargs) -> I3ResNet50:
    """ResNet-50 inflated to 3D; see :class:`I3ResNet`."""
    return create_registered(I3ResNet50, pretrained, **kwargs)


@register_model
def i3resnet101(pretrained: bool = False, **kwargs) -> I3ResNet101:
    """ResNet-101 inflated to 3D; see :class:`I3ResNet`."""
    return create_registered(I3ResNet101, pretrained, **kwargs)


@register_model
def i3resnet152(pretrained: bool = False, **kwargs) -> I3ResNet152:
    """ResNet-152 inflated to 3D; see :class:`I3ResNet`."""
    return create_registered(I3ResNet152, pretrained, **kwargs)
