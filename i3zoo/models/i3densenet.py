"""I3DenseNet: torchvision's DenseNets (Huang et al., *Densely Connected Convolutional Networks*, 2017) in 3D.

Mirrors ``torchvision.models.densenet`` module for module (``features.conv0, norm0, relu0, pool0,
denseblockN.denselayerM.{norm1, relu1, conv1, norm2, relu2, conv2}, transitionN.{norm, relu, conv, pool},
norm5``, ``classifier``), so a torchvision state dict inflates key by key. The temporal design is the
reference implementation's, written as data like the ResNets' (``DenseNetDesign``, ``DENSENET_DESIGNS``, one
design: ``seed``): every convolution is one frame deep and only the three transitions pool time, so a clip needs
T >= 8. The head averages over T, H and W (the reference flattened
T x C for one fixed T; the global average gives the same numbers and accepts any T).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..weights.torchvision_imagenet import Torchvision2D
from ._declare import Variant, declare
from ._model import I3DNet
from .layers import InflatedConv3d, LayerSpec

__all__ = [
    "DenseNetDesign", "DENSENET_DESIGNS", "DENSENET_DESIGN", "DenseLayer3d", "DenseBlock3d", "Transition3d",
    "I3DenseNet", "VARIANTS",
]  # and the named classes of VARIANTS (declare, at the end)


@dataclass(frozen=True)
class DenseNetDesign:
    """Temporal design of an I3DenseNet: the stem convolution and max-pool, every dense layer's two
    convolutions, and each transition's convolution and the average pool between blocks; (t, h, w)."""

    name: str = "seed"
    summary: str = "conv0 1×7×7, every convolution one frame deep, time pooled 2× by each transition"
    stem_conv: LayerSpec = LayerSpec(kernel=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3))
    stem_pool: LayerSpec = LayerSpec(kernel=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
    layer_conv1: LayerSpec = LayerSpec(kernel=(1, 1, 1))
    layer_conv2: LayerSpec = LayerSpec(kernel=(1, 3, 3), padding=(0, 1, 1))
    transition_conv: LayerSpec = LayerSpec(kernel=(1, 1, 1))
    transition_pool: LayerSpec = LayerSpec(kernel=(2, 2, 2), stride=(2, 2, 2))

    def reduction_path(self, num_blocks: int) -> List[LayerSpec]:
        """The layers that change the clip size: the stem, and the pool of each of the num_blocks - 1 transitions."""
        return [self.stem_conv, self.stem_pool] + [self.transition_pool] * (num_blocks - 1)


DENSENET_DESIGNS = {"seed": DenseNetDesign()}
DENSENET_DESIGN = DENSENET_DESIGNS["seed"]


class DenseLayer3d(nn.Module):
    """torchvision's _DenseLayer: BN-ReLU-conv 1x1x1 (bottleneck) then BN-ReLU-conv 1x3x3."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float,
                 *, temporal_padding: str = "zeros", design: DenseNetDesign = DENSENET_DESIGN) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm3d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = InflatedConv3d(num_input_features, bn_size * growth_rate, design.layer_conv1,
                                    temporal_padding=temporal_padding)
        self.norm2 = nn.BatchNorm3d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = InflatedConv3d(bn_size * growth_rate, growth_rate, design.layer_conv2,
                                    temporal_padding=temporal_padding)
        self.drop_rate = float(drop_rate)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        x = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
        x = self.conv2(self.relu2(self.norm2(x)))
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x


class DenseBlock3d(nn.ModuleDict):
    """torchvision's _DenseBlock: each layer sees the concatenation of the block input and earlier outputs."""

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int,
                 drop_rate: float, *, temporal_padding: str = "zeros",
                 design: DenseNetDesign = DENSENET_DESIGN) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer3d(num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate,
                                 temporal_padding=temporal_padding, design=design)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition3d(nn.Sequential):
    """torchvision's _Transition: BN-ReLU-conv 1x1x1, then a 2x2x2 average pool (halves T, H and W)."""

    def __init__(self, num_input_features: int, num_output_features: int, *,
                 design: DenseNetDesign = DENSENET_DESIGN) -> None:
        super().__init__()
        self.norm = nn.BatchNorm3d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = InflatedConv3d(num_input_features, num_output_features, design.transition_conv)
        pool = design.transition_pool
        self.pool = nn.AvgPool3d(pool.kernel, pool.stride, pool.padding)


class I3DenseNet(I3DNet):
    """A DenseNet inflated to 3D. Input (N, C, T, H, W) with T >= 8, output (N, num_classes).

    Args:
        growth_rate, block_config, num_init_features, bn_size: torchvision's DenseNet hyper-parameters, set
            by the named subclasses. Every other (keyword) argument is :class:`i3zoo.models._model.I3DNet`'s.
    """

    growth_rate: int = 32
    block_config: Tuple[int, int, int, int] = (6, 12, 24, 16)
    num_init_features: int = 64
    bn_size: int = 4
    temporal: str = "seed"  # the one DenseNet design
    classifier_name = "classifier"
    first_conv_name = "features.conv0"
    card_template = "i3densenet"
    # pre-activation (BN-ReLU-conv): only the BatchNorms that follow a convolution fold, the stem's and each dense
    # layer's second
    conv_bn_pairs = (("conv0", "norm0"), ("conv1", "norm2"))
    feature_flatten_sequential = True  # feature_info names modules inside `features`
    zero_classifier_bias = True

    def _build(self, growth_rate: Optional[int] = None, block_config: Optional[Sequence[int]] = None,
               num_init_features: Optional[int] = None, bn_size: Optional[int] = None) -> None:
        growth_rate = growth_rate or self.growth_rate
        self.block_config = block_config = tuple(block_config or self.block_config)
        num_features = num_init_features or self.num_init_features
        bn_size = bn_size or self.bn_size
        self.design = design = DENSENET_DESIGNS[self.temporal]
        pad = self.temporal_padding
        pool0 = design.stem_pool
        self.features = nn.Sequential(OrderedDict([
            ("conv0", InflatedConv3d(self.in_chans, num_features, design.stem_conv, temporal_padding=pad)),
            ("norm0", nn.BatchNorm3d(num_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool3d(pool0.kernel, pool0.stride, pool0.padding)),
        ]))
        self.feature_info = [dict(num_chs=num_features, reduction=2, module="features.relu0")]
        reduction = 4
        for i, num_layers in enumerate(block_config, start=1):
            block = DenseBlock3d(num_layers, num_features, bn_size, growth_rate, 0.0, temporal_padding=pad,
                                 design=design)
            self.features.add_module(f"denseblock{i}", block)
            num_features += num_layers * growth_rate
            if i != len(block_config):
                self.feature_info.append(
                    dict(num_chs=num_features, reduction=reduction, module=f"features.denseblock{i}")
                )
                self.features.add_module(f"transition{i}", Transition3d(num_features, num_features // 2,
                                                                        design=design))
                num_features //= 2
                reduction *= 2
        self.features.add_module("norm5", nn.BatchNorm3d(num_features))
        self.feature_info.append(dict(num_chs=num_features, reduction=reduction, module="features.norm5"))
        self.num_features = num_features
        self.classifier = nn.Linear(num_features, self.num_classes) if self.num_classes else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def reduction_path(self) -> Sequence[LayerSpec]:
        return self.design.reduction_path(len(self.block_config))

    def _features_end(self, x: torch.Tensor) -> torch.Tensor:
        """torchvision's DenseNet ends its features with a ReLU after ``norm5`` (in ``forward``)."""
        return F.relu(x)

    def stage_modules(self) -> List[List[nn.Module]]:
        """The stem (conv0, norm0), then denseblockN with the transition after it (the last with norm5)."""
        groups = [[self.features.conv0, self.features.norm0]]
        for i in range(1, len(self.block_config) + 1):
            after = f"transition{i}" if i != len(self.block_config) else "norm5"
            groups.append([getattr(self.features, f"denseblock{i}"), getattr(self.features, after)])
        return groups

    def group_matcher(self, coarse: bool = False):
        return dict(
            stem=r"^features\.conv0|^features\.norm0",
            blocks=r"^features\.(?:denseblock|transition)(\d+)" if coarse else [
                (r"^features\.denseblock(\d+)\.denselayer(\d+)", None),
                (r"^features\.transition(\d+)", (99999,)),
            ],
        )


# --- the variants: each model declared once (``_declare.declare``) ----------------------------------------------

VARIANTS = [
    Variant("i3densenet121", "I3DenseNet121", "DenseNet-121 inflated to 3D",
            Torchvision2D("densenet121", "DenseNet-121"),
            dict(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64)),
    Variant("i3densenet161", "I3DenseNet161", "DenseNet-161 inflated to 3D",
            Torchvision2D("densenet161", "DenseNet-161"),
            dict(growth_rate=48, block_config=(6, 12, 36, 24), num_init_features=96)),
    Variant("i3densenet169", "I3DenseNet169", "DenseNet-169 inflated to 3D",
            Torchvision2D("densenet169", "DenseNet-169"),
            dict(growth_rate=32, block_config=(6, 12, 32, 32), num_init_features=64)),
    Variant("i3densenet201", "I3DenseNet201", "DenseNet-201 inflated to 3D",
            Torchvision2D("densenet201", "DenseNet-201"),
            dict(growth_rate=32, block_config=(6, 12, 48, 32), num_init_features=64)),
]
__all__ += declare(I3DenseNet, VARIANTS, __name__)
