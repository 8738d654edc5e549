"""I3ResNet: torchvision's ResNets (He et al., *Deep Residual Learning*, 2016) inflated to 3D: the Bottleneck
ResNets (50/101/152), ResNeXt (Xie et al., 2017: grouped 3x3) and Wide ResNet (Zagoruyko & Komodakis, 2016: wider
bottlenecks), and the BasicBlock ResNets (18/34).

Mirrors ``torchvision.models.resnet`` module for module (``conv1, bn1, relu, maxpool, layer1..4, fc``;
Bottleneck ``conv1..3, bn1..3, downsample.0/1``; BasicBlock ``conv1, bn1, conv2, bn2, downsample.0/1``), so a
torchvision state dict inflates key by key.

The temporal design is data (:class:`ResNetDesign`), one of ``RESNET_DESIGNS``:

* ``seed`` -- the reference implementation's (the default): 3x7x7 stem, 3x3x3 in every bottleneck, time
  halved by the stem max-pool and by the first block of layer2..4 (16x in all); any T >= 1.
* ``i3d`` -- PyTorchVideo's ``i3d_r50`` (Carreira & Zisserman, 2017, as trained in PySlowFast): 5x7x7 stem,
  3x1x1 temporal kernels on the first convolution of every block of layer1 and of alternating blocks of
  layer2..4, a 2x1x1 temporal max-pool after layer1.
* ``slowonly`` -- PyTorchVideo's ``slow_r50`` (Feichtenhofer et al., *SlowFast Networks*, 2019): 1x7x7 stem,
  3x1x1 temporal kernels on the first convolution of every block of layer3 and layer4 only; time never pooled.
* ``c2d`` -- PyTorchVideo's ``c2d_r50``: no temporal kernel at all, only the 2x1x1 max-pool after layer1.

PyTorchVideo strides space on the 3x3 convolution like torchvision (ResNet v1.5) and never strides time in a
block, so the three PyTorchVideo designs are torchvision's ResNet-50 with (t, h, w) kernels: layer for layer
the same network (``i3zoo.weights.pytorchvideo`` maps its checkpoints onto these module names).

A BasicBlock has two 3x3 convolutions and no 1x1, so only two of the designs carry over
(``BASIC_RESNET_DESIGNS``): ``seed`` (3x3x3 on both 3x3s, time strided with space by the first convolution of
layer2..4) and ``c2d`` (every kernel one frame deep, the same 2x1x1 pool after layer1). ``i3d`` and
``slowonly`` are defined by 3x1x1 kernels on a block's 1x1 convolution, which a BasicBlock lacks; nobody
publishes them for ResNet-18/34, so they are not offered there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..weights.pytorchvideo import kinetics_tag
from ..weights.torchvision_imagenet import Torchvision2D
from ._declare import Variant, declare
from ._model import I3DNet
from .layers import InflatedConv3d, LayerSpec, Triple

__all__ = [
    "ResNetDesign", "StageDesign", "BottleneckDesign", "BasicBlockDesign", "RESNET_DESIGNS", "BASIC_RESNET_DESIGNS",
    "Bottleneck3d", "BasicBlock3d", "I3ResNet", "VARIANTS",
]  # and the named classes of VARIANTS (declare, at the end)


@dataclass(frozen=True)
class BottleneckDesign:
    """The three convolutions of one bottleneck block, unstrided; kernels and paddings are (t, h, w)."""

    conv1: LayerSpec
    conv2: LayerSpec
    conv3: LayerSpec = LayerSpec((1, 1, 1))
    strided_conv = "conv2"  # torchvision (ResNet v1.5) strides the 3x3, not the first 1x1


@dataclass(frozen=True)
class BasicBlockDesign:
    """The two 3x3 convolutions of one BasicBlock, unstrided; kernels and paddings are (t, h, w)."""

    conv1: LayerSpec
    conv2: LayerSpec
    strided_conv = "conv1"  # torchvision's BasicBlock strides its first convolution


BlockDesign = Union[BottleneckDesign, BasicBlockDesign]


@dataclass(frozen=True)
class StageDesign:
    """One stage (``layerN``): its blocks' convolutions, the stride of its first block, a pool after it.

    ``blocks`` repeat in turn over the stage's blocks (block i is ``blocks[i % len(blocks)]``, PyTorchVideo's
    convention for I3D's alternating kernels), so one design serves every depth. The first block strides its
    ``strided_conv`` (a Bottleneck's 3x3 ``conv2``, a BasicBlock's ``conv1``, as torchvision) and its 1x1x1
    shortcut projection by ``stride``.
    """

    blocks: Tuple[BlockDesign, ...]
    stride: Triple = (1, 1, 1)
    pool_after: Optional[LayerSpec] = None  # a max-pool between this stage and the next

    def block(self, index: int) -> BlockDesign:
        """Block ``index`` of the stage, with the stage's stride on the first block's strided convolution."""
        design = self.blocks[index % len(self.blocks)]
        if index:
            return design
        strided = design.strided_conv
        return replace(design, **{strided: replace(getattr(design, strided), stride=self.stride)})

    def strided(self) -> LayerSpec:
        """The first block's strided convolution (the one layer of the stage that changes the clip size)."""
        first = self.block(0)
        return getattr(first, first.strided_conv)

    def downsample(self) -> LayerSpec:
        """The first block's shortcut projection: 1x1x1, strided like the block."""
        return LayerSpec((1, 1, 1), self.stride)


@dataclass(frozen=True)
class ResNetDesign:
    """Temporal design of an I3ResNet: the stem convolution and max-pool, then four stages."""

    name: str
    summary: str  # one line for model cards
    stem_conv: LayerSpec
    stem_pool: LayerSpec
    stages: Tuple[StageDesign, StageDesign, StageDesign, StageDesign]

    def reduction_path(self) -> List[LayerSpec]:
        """The layers that change the clip size, in order (unstrided blocks keep it: odd kernels, k // 2 pads)."""
        path = [self.stem_conv, self.stem_pool]
        for stage in self.stages:
            path.append(stage.strided())
            if stage.pool_after is not None:
                path.append(stage.pool_after)
        return path

    def time_kernels(self) -> List[List[Tuple[int, int]]]:
        """Per stage, the cycle of (conv1, conv2) temporal kernel sizes: what distinguishes the designs."""
        return [[(b.conv1.kernel[0], b.conv2.kernel[0]) for b in stage.blocks] for stage in self.stages]


def _bottleneck(conv1_time: int, conv2_time: int) -> BottleneckDesign:
    """A block with a conv1_time x 1 x 1 first and a conv2_time x 3 x 3 second convolution ("same" padding)."""
    return BottleneckDesign(
        conv1=LayerSpec((conv1_time, 1, 1), padding=(conv1_time // 2, 0, 0)),
        conv2=LayerSpec((conv2_time, 3, 3), padding=(conv2_time // 2, 1, 1)),
    )


_SPACE_STRIDE = (1, 2, 2)
_TIME_POOL = LayerSpec((2, 1, 1), (2, 1, 1))  # PyTorchVideo's stage1_pool: halves time after layer1
_STEM_1x7x7 = LayerSpec((1, 7, 7), (1, 2, 2), (0, 3, 3))
_STEM_POOL_1x3x3 = LayerSpec((1, 3, 3), (1, 2, 2), (0, 1, 1))
_C2D, _T1, _T2 = _bottleneck(1, 1), _bottleneck(3, 1), _bottleneck(1, 3)

RESNET_DESIGNS: Dict[str, ResNetDesign] = {
    design.name: design
    for design in (
        ResNetDesign(
            "seed",
            "conv1 3×7×7, bottleneck conv2 3×3×3, time strided like space",
            stem_conv=LayerSpec((3, 7, 7), (1, 2, 2), (1, 3, 3)),
            stem_pool=LayerSpec((3, 3, 3), (2, 2, 2), (1, 1, 1)),
            stages=(StageDesign((_T2,)),) + tuple(StageDesign((_T2,), (2, 2, 2)) for _ in range(3)),
        ),
        ResNetDesign(
            "i3d",
            "PyTorchVideo's I3D design, `i3d_r50`: stem 5×7×7, 3×1×1 temporal kernels on the first convolution "
            "of every layer1 block and of alternating blocks of layer2..4, a 2×1×1 temporal max-pool after layer1",
            stem_conv=LayerSpec((5, 7, 7), (1, 2, 2), (2, 3, 3)),
            stem_pool=_STEM_POOL_1x3x3,
            stages=(StageDesign((_T1,), pool_after=_TIME_POOL), StageDesign((_T1, _C2D), _SPACE_STRIDE),
                    StageDesign((_T1, _C2D), _SPACE_STRIDE), StageDesign((_C2D, _T1), _SPACE_STRIDE)),
        ),
        ResNetDesign(
            "slowonly",
            "PyTorchVideo's SlowOnly design, `slow_r50`: stem 1×7×7, 3×1×1 temporal kernels on the first "
            "convolution of every layer3 and layer4 block, time never pooled",
            stem_conv=_STEM_1x7x7,
            stem_pool=_STEM_POOL_1x3x3,
            stages=(StageDesign((_C2D,)), StageDesign((_C2D,), _SPACE_STRIDE),
                    StageDesign((_T1,), _SPACE_STRIDE), StageDesign((_T1,), _SPACE_STRIDE)),
        ),
        ResNetDesign(
            "c2d",
            "PyTorchVideo's C2D design, `c2d_r50`: no temporal kernel, a 2×1×1 temporal max-pool after layer1",
            stem_conv=_STEM_1x7x7,
            stem_pool=_STEM_POOL_1x3x3,
            stages=(StageDesign((_C2D,), pool_after=_TIME_POOL),) + tuple(
                StageDesign((_C2D,), _SPACE_STRIDE) for _ in range(3)),
        ),
    )
}
RESNET_DESIGN = RESNET_DESIGNS["seed"]  # the default


def _basic_block(time: int) -> BasicBlockDesign:
    """A BasicBlock whose two 3x3 convolutions are time x 3 x 3 ("same" padding)."""
    conv = LayerSpec((time, 3, 3), padding=(time // 2, 1, 1))
    return BasicBlockDesign(conv1=conv, conv2=conv)


#: the designs of the BasicBlock ResNets (18, 34): the two of ``RESNET_DESIGNS`` that a block without a 1x1 keeps
BASIC_RESNET_DESIGNS: Dict[str, ResNetDesign] = {
    design.name: design
    for design in (
        replace(RESNET_DESIGN, summary="conv1 3×7×7, both 3×3 convolutions of every block 3×3×3, time strided like "
                                       "space", stages=tuple(replace(stage, blocks=(_basic_block(3),))
                                                             for stage in RESNET_DESIGN.stages)),
        replace(RESNET_DESIGNS["c2d"], summary="PyTorchVideo's C2D design carried to BasicBlocks: no temporal kernel, "
                                               "a 2×1×1 temporal max-pool after layer1",
                stages=tuple(replace(stage, blocks=(_basic_block(1),)) for stage in RESNET_DESIGNS["c2d"].stages)),
    )
}

#: the block types, named as in I3ResNet's ``block`` argument, and their designs
_BLOCK_DESIGNS = {"bottleneck": RESNET_DESIGNS, "basic": BASIC_RESNET_DESIGNS}


def resnet_design(temporal: str, block: str = "bottleneck") -> ResNetDesign:
    """The design named ``temporal`` for ``block`` ResNets; ``ValueError`` naming the known ones otherwise."""
    if block not in _BLOCK_DESIGNS:
        raise ValueError(f"unknown block {block!r}; allowed: {', '.join(map(repr, _BLOCK_DESIGNS))}")
    designs = _BLOCK_DESIGNS[block]
    if temporal not in designs:
        raise ValueError(f"unknown temporal design {temporal!r}; allowed: {', '.join(map(repr, designs))} "
                         f"(for {block} ResNets)")
    return designs[temporal]


class Bottleneck3d(nn.Module):
    """torchvision's Bottleneck (1x1 -> 3x3 -> 1x1, stride on the 3x3) with the (t, h, w) kernels of ``design``.

    ``groups`` and ``width_per_group`` are torchvision's: the 3x3 is grouped (ResNeXt) or the block widened
    (Wide ResNet).
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        design: BottleneckDesign,
        downsample: Optional[nn.Module] = None,
        *,
        temporal_padding: str = "zeros",
        groups: int = 1,
        width_per_group: int = 64,
    ) -> None:
        super().__init__()
        out = planes * self.expansion
        width = int(planes * (width_per_group / 64.0)) * groups  # torchvision's: ResNeXt and Wide ResNet widths
        self.conv1 = InflatedConv3d(inplanes, width, design.conv1, temporal_padding=temporal_padding)
        self.bn1 = nn.BatchNorm3d(width)
        self.conv2 = InflatedConv3d(width, width, design.conv2, temporal_padding=temporal_padding, groups=groups)
        self.bn2 = nn.BatchNorm3d(width)
        self.conv3 = InflatedConv3d(width, out, design.conv3, temporal_padding=temporal_padding)
        self.bn3 = nn.BatchNorm3d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = design.conv2.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity  # in place, as torchvision: a new tensor here costs ~10% of the forward at batch 8
        return self.relu(out)


class BasicBlock3d(nn.Module):
    """torchvision's BasicBlock (3x3 -> 3x3, stride on the first) with the (t, h, w) kernels of ``design``."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        design: BasicBlockDesign,
        downsample: Optional[nn.Module] = None,
        *,
        temporal_padding: str = "zeros",
    ) -> None:
        super().__init__()
        self.conv1 = InflatedConv3d(inplanes, planes, design.conv1, temporal_padding=temporal_padding)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = InflatedConv3d(planes, planes, design.conv2, temporal_padding=temporal_padding)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample
        self.stride = design.conv1.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class I3ResNet(I3DNet):
    """A ResNet inflated to 3D. Input (N, C, T, H, W), output (N, num_classes).

    Args:
        block_counts: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50; set by the named subclasses.
        temporal: the temporal design, a key of ``RESNET_DESIGNS`` (``"seed"``, ``"i3d"``, ``"slowonly"``,
            ``"c2d"``) or, for BasicBlock ResNets, of ``BASIC_RESNET_DESIGNS`` (``"seed"``, ``"c2d"``). A named
            model has one design, part of its registered name (``i3resnet50_i3d``); the generic
            ``I3ResNet(block_counts=..., temporal=...)`` builds any depth in any design.
        block: ``"bottleneck"`` (ResNet-50 and deeper, ResNeXt, Wide ResNet) or ``"basic"`` (ResNet-18/34).
        groups, width_per_group: torchvision's bottleneck widths: 32 and 4 for ResNeXt-50 32x4d, 1 and 128 for
            Wide ResNet-50-2 (a BasicBlock takes only 1 and 64, as torchvision's).
        Every other (keyword) argument is :class:`i3zoo.models._model.I3DNet`'s: ``pretrained``, ``inflation``,
        ``num_classes``, ``in_chans``, ``drop_rate``, ``global_pool``, ``pretrained_cfg``,
        ``pretrained_cfg_overlay``, ``cache_dir``.
    """

    block_counts: Tuple[int, int, int, int] = (0, 0, 0, 0)
    temporal: str = "seed"
    block: str = "bottleneck"
    groups: int = 1
    width_per_group: int = 64
    classifier_name = "fc"
    card_template = "i3resnet"
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"), ("downsample.0", "downsample.1"))

    def _build(self, block_counts: Optional[Sequence[int]] = None, temporal: Optional[str] = None,
               block: Optional[str] = None, groups: Optional[int] = None,
               width_per_group: Optional[int] = None) -> None:
        self.block_counts = tuple(block_counts) if block_counts is not None else self.block_counts
        if temporal is not None and self.arch_name and temporal != type(self).temporal \
                and temporal in _BLOCK_DESIGNS[type(self).block]:  # (an unknown design: resnet_design says so)
            # the registered name says which design its weights belong to: one name, one design
            block_arg = "" if type(self).block == "bottleneck" else f"block={type(self).block!r}, "
            named = [c.arch_name for c in _named_resnets()
                     if c.torchvision_arch == self.torchvision_arch and c.temporal == temporal]
            instead = f"use {named[0]!r}" if named else \
                f"use I3ResNet(block_counts={self.block_counts}, {block_arg}temporal={temporal!r}) " \
                "(no registered weights)"
            raise ValueError(f"{self.arch_name} has the {type(self).temporal!r} temporal design; for {temporal!r} "
                             f"{instead}")
        self.temporal = temporal or type(self).temporal
        self.block = block or type(self).block
        self.groups = groups or type(self).groups
        self.width_per_group = width_per_group or type(self).width_per_group
        self.design = design = resnet_design(self.temporal, self.block)
        if self.block == "basic" and (self.groups, self.width_per_group) != (1, 64):
            raise ValueError(f"a BasicBlock ResNet takes groups=1 and width_per_group=64 (as torchvision's); got "
                             f"groups={self.groups}, width_per_group={self.width_per_group}")
        self.block_class = Bottleneck3d if self.block == "bottleneck" else BasicBlock3d
        expansion = self.block_class.expansion
        pad = self.temporal_padding
        self.conv1 = InflatedConv3d(self.in_chans, 64, design.stem_conv, temporal_padding=pad)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = _max_pool(design.stem_pool)
        self.inplanes = 64
        self.feature_info = [dict(num_chs=64, reduction=2, module="relu")]
        for index, (planes, count, stage) in enumerate(zip((64, 128, 256, 512), self.block_counts, design.stages),
                                                       start=1):
            setattr(self, f"layer{index}", self._make_layer(planes, count, stage))
            self.feature_info.append(
                dict(num_chs=planes * expansion, reduction=4 * 2 ** (index - 1), module=f"layer{index}")
            )
            if stage.pool_after is not None:
                # registered right after its stage: forward_features (I3DNet.backbone_modules) and timm's
                # FeatureListNet run the children in registration order
                setattr(self, f"layer{index}_pool", _max_pool(stage.pool_after))
        self.num_features = 512 * expansion
        self.fc = nn.Linear(self.num_features, self.num_classes) if self.num_classes else nn.Identity()
        self._init_weights()

    def _make_layer(self, planes: int, count: int, stage: StageDesign) -> nn.Sequential:
        pad = self.temporal_padding
        block_class, out = self.block_class, planes * self.block_class.expansion
        widths = dict(groups=self.groups, width_per_group=self.width_per_group) if block_class is Bottleneck3d else {}
        downsample = None
        if stage.stride != (1, 1, 1) or self.inplanes != out:
            downsample = nn.Sequential(InflatedConv3d(self.inplanes, out, stage.downsample()), nn.BatchNorm3d(out))
        blocks = [block_class(self.inplanes, planes, stage.block(0), downsample, temporal_padding=pad, **widths)]
        self.inplanes = out
        blocks += [block_class(self.inplanes, planes, stage.block(i), temporal_padding=pad, **widths)
                   for i in range(1, count)]
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
        return self.design.reduction_path()

    def stage_modules(self) -> List[List[nn.Module]]:
        """The stem (conv1, bn1), then layer1..4 (with the time pool after a stage, which has no parameters)."""
        return [[self.conv1, self.bn1]] + [[getattr(self, f"layer{i}")] for i in range(1, 5)]

    def group_matcher(self, coarse: bool = False):
        return dict(stem=r"^conv1|^bn1|^maxpool", blocks=r"^layer(\d+)" if coarse else r"^layer(\d+)\.(\d+)")


def _max_pool(spec: LayerSpec) -> nn.MaxPool3d:
    return nn.MaxPool3d(spec.kernel, spec.stride, spec.padding)


def _named_resnets() -> List[type]:
    return [c for c in I3ResNet.__subclasses__() if c.arch_name]


# --- the variants: each model declared once (``_declare.declare``) ----------------------------------------------

_RESNEXT = """
@inproceedings{xie2017aggregated,
  title={Aggregated Residual Transformations for Deep Neural Networks},
  author={Xie, Saining and Girshick, Ross and Doll{\\'a}r, Piotr and Tu, Zhuowen and He, Kaiming},
  booktitle={CVPR}, year={2017}
}"""
_WIDE_RESNET = """
@inproceedings{zagoruyko2016wide,
  title={Wide Residual Networks},
  author={Zagoruyko, Sergey and Komodakis, Nikos},
  booktitle={BMVC}, year={2016}
}"""
_R18, _R34_50, _R101, _R152 = (2, 2, 2, 2), (3, 4, 6, 3), (3, 4, 23, 3), (3, 8, 36, 3)
_RESNET18, _RESNET34 = Torchvision2D("resnet18", "ResNet-18"), Torchvision2D("resnet34", "ResNet-34")
_RESNET50 = Torchvision2D("resnet50", "ResNet-50")
_BASIC = dict(block="basic")

VARIANTS = [
    Variant("i3resnet18", "I3ResNet18", "ResNet-18 inflated to 3D (BasicBlocks, 3x3x3 on both convolutions)",
            _RESNET18, dict(_BASIC, block_counts=_R18)),
    Variant("i3resnet34", "I3ResNet34", "ResNet-34 inflated to 3D (BasicBlocks, 3x3x3 on both convolutions)",
            _RESNET34, dict(_BASIC, block_counts=_R34_50)),
    Variant("i3resnet18_c2d", "I3ResNet18C2D",
            "ResNet-18 in the C2D design (no temporal kernel, a 2x1x1 time pool after layer1)",
            _RESNET18, dict(_BASIC, temporal="c2d", block_counts=_R18)),
    Variant("i3resnet34_c2d", "I3ResNet34C2D",
            "ResNet-34 in the C2D design (no temporal kernel, a 2x1x1 time pool after layer1)",
            _RESNET34, dict(_BASIC, temporal="c2d", block_counts=_R34_50)),
    Variant("i3resnet50", "I3ResNet50", "ResNet-50 inflated to 3D", _RESNET50, dict(block_counts=_R34_50)),
    Variant("i3resnet101", "I3ResNet101", "ResNet-101 inflated to 3D", Torchvision2D("resnet101", "ResNet-101"),
            dict(block_counts=_R101)),
    Variant("i3resnet152", "I3ResNet152", "ResNet-152 inflated to 3D", Torchvision2D("resnet152", "ResNet-152"),
            dict(block_counts=_R152)),
    Variant("i3resnet50_i3d", "I3ResNet50I3D", "ResNet-50 in PyTorchVideo's I3D design (``i3d_r50``)", _RESNET50,
            dict(temporal="i3d", block_counts=_R34_50), extra_tags=dict(ptv_k400=kinetics_tag("i3d"))),
    Variant("i3resnet50_slowonly", "I3ResNet50SlowOnly", "ResNet-50 in PyTorchVideo's SlowOnly design (``slow_r50``)",
            _RESNET50, dict(temporal="slowonly", block_counts=_R34_50),
            extra_tags=dict(ptv_k400=kinetics_tag("slowonly"))),
    Variant("i3resnet50_c2d", "I3ResNet50C2D", "ResNet-50 in PyTorchVideo's C2D design (``c2d_r50``)", _RESNET50,
            dict(temporal="c2d", block_counts=_R34_50), extra_tags=dict(ptv_k400=kinetics_tag("c2d"))),
    Variant("i3resnext50_32x4d", "I3ResNeXt50_32x4d",
            "ResNeXt-50 32x4d inflated to 3D (32 groups of 4 channels per 3x3)",
            Torchvision2D("resnext50_32x4d", "ResNeXt-50 32x4d", citation=_RESNEXT),
            dict(block_counts=_R34_50, groups=32, width_per_group=4)),
    Variant("i3resnext101_32x8d", "I3ResNeXt101_32x8d", "ResNeXt-101 32x8d inflated to 3D",
            Torchvision2D("resnext101_32x8d", "ResNeXt-101 32x8d", citation=_RESNEXT),
            dict(block_counts=_R101, groups=32, width_per_group=8)),
    Variant("i3resnext101_64x4d", "I3ResNeXt101_64x4d", "ResNeXt-101 64x4d inflated to 3D",
            Torchvision2D("resnext101_64x4d", "ResNeXt-101 64x4d", citation=_RESNEXT),
            dict(block_counts=_R101, groups=64, width_per_group=4)),
    Variant("i3wide_resnet50_2", "I3WideResNet50_2", "Wide ResNet-50-2 inflated to 3D (bottlenecks twice as wide)",
            Torchvision2D("wide_resnet50_2", "Wide ResNet-50-2", citation=_WIDE_RESNET),
            dict(block_counts=_R34_50, width_per_group=128)),
    Variant("i3wide_resnet101_2", "I3WideResNet101_2", "Wide ResNet-101-2 inflated to 3D",
            Torchvision2D("wide_resnet101_2", "Wide ResNet-101-2", citation=_WIDE_RESNET),
            dict(block_counts=_R101, width_per_group=128)),
]
__all__ += declare(I3ResNet, VARIANTS, __name__)
