"""I3InceptionV1: the network of *Quo Vadis, Action Recognition?* (Carreira & Zisserman, 2017), inflated from
torchvision's GoogLeNet (Szegedy et al., *Going Deeper with Convolutions*, 2015, with BatchNorm).

Mirrors ``torchvision.models.googlenet`` module for module (``conv1, maxpool1, conv2, conv3, maxpool2,
inception3a, inception3b, maxpool3, inception4a..4e, maxpool4, inception5a, inception5b, fc``; every
convolution a ``BasicConv2d`` ``conv``/``bn``; Inception branches ``branch1``, ``branch2.0/1``,
``branch3.0/1``, ``branch4.1``), so a torchvision state dict inflates key by key.

The temporal design is the paper's (Fig. 3), written as data (:class:`InceptionDesign`): a 7x7x7 stem
convolution strided 2 in time too, 1x3x3 max-pools before the second convolution block and before Mixed_3
(``maxpool1``, ``maxpool2``), a 3x3x3 max-pool strided 2 in time before Mixed_4 (``maxpool3``), a 2x2x2 one
before Mixed_5 (``maxpool4``), every 3x3 convolution and every branch max-pool 3x3x3. Time is reduced 8x.
The paper's TensorFlow pads "SAME"; here the spatial paddings are torchvision's (the weights' own) and time is
padded where a clip of any length needs it: ``conv1`` by 3, ``maxpool3`` by 1.

Where torchvision's GoogLeNet differs from the paper's Inception-v1, the weights decide and torchvision's
choice is kept:

* the "5x5" branch (``branch3``) is a 3x3 convolution (torchvision's known deviation, pytorch/vision#906),
  inflated to 3x3x3 like every 3x3;
* the pools round their output sizes up (``ceil_mode=True``), spatially as torchvision and in time alike;
* ``transform_input``: the ImageNet weights were trained on inputs normalised to [-1, 1]; torchvision's
  ``IMAGENET1K_V1`` model takes ImageNet-normalised images and re-normalises them first. So does this model
  (``transform_input=True``, the default for 3 channels), so it takes the same input as every i3zoo model;
* the auxiliary classifiers (``aux1``, ``aux2``) are dropped, as torchvision drops them for pretrained
  evaluation; the inflation loader ignores exactly their keys (the declaration's ``ignored_keys``) and nothing else;
* the head is a global average over T, H and W and the linear ``fc`` (torchvision's), where the paper has a
  2x7x7 average pool, a 1x1x1 convolution and an average of the logits over time: the same function for a
  clip of the size it was trained on, and any clip size here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..weights.deepmind_i3d import deepmind_kinetics_tags
from ..weights.torchvision_imagenet import Torchvision2D
from ._declare import Variant, declare
from ._model import I3DNet
from .layers import InflatedConv3d, LayerSpec
from .same_padding import SAME_PADDING_RULES, SameConv3d, SameMaxPool3d, SameSpec

__all__ = ["InceptionDesign", "INCEPTION_DESIGNS", "deepmind_design", "deepmind_head_pool", "BasicConv3d",
           "Inception3d", "ImageNetToInceptionInput",
           "I3Inception", "VARIANTS", "DEEPMIND_VARIANTS"]  # and the named class of VARIANTS (declare, at the end)


@dataclass(frozen=True)
class InceptionDesign:
    """Temporal design of an I3InceptionV1: each torchvision layer's (t, h, w) kernel, stride and padding."""

    name: str = "i3d"
    summary: str = ("conv1 7×7×7 /2, 1×3×3 pools before conv2 and Mixed_3, a 3×3×3 /2 pool "
                    "before Mixed_4 and a 2×2×2 /2 before Mixed_5, every 3×3 convolution and branch pool 3×3×3")
    conv1: LayerSpec = LayerSpec((7, 7, 7), (2, 2, 2), (3, 3, 3))
    maxpool1: LayerSpec = LayerSpec((1, 3, 3), (1, 2, 2), ceil_mode=True)
    conv2: LayerSpec = LayerSpec((1, 1, 1))
    conv3: LayerSpec = LayerSpec((3, 3, 3), padding=(1, 1, 1))
    maxpool2: LayerSpec = LayerSpec((1, 3, 3), (1, 2, 2), ceil_mode=True)
    maxpool3: LayerSpec = LayerSpec((3, 3, 3), (2, 2, 2), (1, 0, 0), ceil_mode=True)
    maxpool4: LayerSpec = LayerSpec((2, 2, 2), (2, 2, 2), ceil_mode=True)
    branch_1x1: LayerSpec = LayerSpec((1, 1, 1))
    branch_3x3: LayerSpec = LayerSpec((3, 3, 3), padding=(1, 1, 1))  # branch2's 3x3 and branch3's "5x5"
    branch_pool: LayerSpec = LayerSpec((3, 3, 3), padding=(1, 1, 1), ceil_mode=True)
    #: "global": an average over T, H and W (torchvision's); "deepmind": the original's 2x7x7 average pool at
    #: stride 1, then the mean of what it gives (:func:`deepmind_head_pool`)
    head: str = "global"

    def reduction_path(self) -> List[LayerSpec]:
        """The layers that change the clip size, in order (the 3x3x3 convolutions and branch pools keep it);
        a SAME-padded layer as the ``LayerSpec`` of its output sizes (``SameSpec.size_spec``)."""
        return [spec.size_spec() if isinstance(spec, SameSpec) else spec
                for spec in (self.conv1, self.maxpool1, self.maxpool2, self.maxpool3, self.maxpool4)]


def deepmind_design(rule: str = "tf") -> InceptionDesign:
    """DeepMind's I3D (``kinetics-i3d/i3d.py``): the paper's kernels and strides, every convolution and max-pool
    padded "SAME" by ``rule`` (``same_padding.py``: ``"tf"``, TensorFlow's and piergiaj's; ``"static"``,
    hassony2's as video_features runs it, whose pools round up), and the original head."""
    if rule not in SAME_PADDING_RULES:
        raise ValueError(f"unknown same_padding {rule!r}; allowed: {', '.join(map(repr, SAME_PADDING_RULES))} "
                         "(TensorFlow's rule from the input size, or from kernel and stride alone)")
    pool = dict(rule=rule, ceil_mode=rule == "static")
    return InceptionDesign(
        name="deepmind",
        summary=(f"DeepMind's I3D: conv1 7×7×7 /2, 1×3×3 /1,2,2 pools before conv2 and Mixed_3, a 3×3×3 /2 pool "
                 f"before Mixed_4 and a 2×2×2 /2 before Mixed_5, every 3×3 convolution and branch pool 3×3×3, all "
                 f"padded \"SAME\" ({'from the input size' if rule == 'tf' else 'from kernel and stride'}); "
                 "head: 2×7×7 average pool at stride 1, averaged"),
        conv1=SameSpec((7, 7, 7), (2, 2, 2), rule=rule),
        maxpool1=SameSpec((1, 3, 3), (1, 2, 2), **pool),
        conv2=SameSpec((1, 1, 1), rule=rule),
        conv3=SameSpec((3, 3, 3), rule=rule),
        maxpool2=SameSpec((1, 3, 3), (1, 2, 2), **pool),
        maxpool3=SameSpec((3, 3, 3), (2, 2, 2), **pool),
        maxpool4=SameSpec((2, 2, 2), (2, 2, 2), **pool),
        branch_1x1=SameSpec((1, 1, 1), rule=rule),
        branch_3x3=SameSpec((3, 3, 3), rule=rule),
        branch_pool=SameSpec((3, 3, 3), **pool),
        head="deepmind",
    )


INCEPTION_DESIGNS = {"i3d": InceptionDesign(), "deepmind": deepmind_design("tf")}

#: the original head's average pool, (t, h, w) at stride 1 (``kinetics-i3d/i3d.py``, ``Logits``)
DEEPMIND_HEAD_POOL = (2, 7, 7)


def deepmind_head_pool(x: torch.Tensor) -> torch.Tensor:
    """The original head's pooling: (N, C, T', H', W') -> (N, C), a 2x7x7 average pool at stride 1 (over the whole
    map where it is smaller), then the mean of its outputs. DeepMind averages the logits over time, the ports
    (video_features' features) the pooled map over time: a 1x1x1 convolution is linear, so these are the same.
    At 224x224 (a 7x7 map) it weighs the first and last frames of the map half as much as the others."""
    kernel = [min(k, n) for k, n in zip(DEEPMIND_HEAD_POOL, x.shape[2:])]
    return F.avg_pool3d(x, kernel, stride=1).mean(dim=(2, 3, 4))


# torch.fx cannot trace the size arithmetic: a traced graph calls it as one function
torch.fx.wrap("deepmind_head_pool")

#: torchvision's Inception blocks: (in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool projection)
_BLOCKS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


def _max_pool(spec: LayerSpec) -> nn.MaxPool3d:
    if isinstance(spec, SameSpec):
        return SameMaxPool3d(spec)
    return nn.MaxPool3d(spec.kernel, spec.stride, spec.padding, ceil_mode=spec.ceil_mode)


class BasicConv3d(nn.Module):
    """torchvision's BasicConv2d in 3D: convolution without bias, BatchNorm (eps 0.001: torchvision's and
    DeepMind's), ReLU; padded "SAME" where the spec is a ``SameSpec``."""

    def __init__(self, in_channels: int, out_channels: int, spec: LayerSpec, *,
                 temporal_padding: str = "zeros", bn_eps: float = 0.001) -> None:
        super().__init__()
        conv = SameConv3d if isinstance(spec, SameSpec) else InflatedConv3d
        self.conv = conv(in_channels, out_channels, spec, temporal_padding=temporal_padding)
        self.bn = nn.BatchNorm3d(out_channels, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(self.bn(self.conv(x)))


class Inception3d(nn.Module):
    """torchvision's Inception block in 3D: four branches (1x1; 1x1 -> 3x3; 1x1 -> "5x5", a 3x3 as
    torchvision's; max-pool -> 1x1), concatenated along channels."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, *, design: InceptionDesign, temporal_padding: str = "zeros",
                 bn_eps: float = 0.001) -> None:
        super().__init__()
        pad = dict(temporal_padding=temporal_padding, bn_eps=bn_eps)
        self.branch1 = BasicConv3d(in_channels, ch1x1, design.branch_1x1, **pad)
        self.branch2 = nn.Sequential(BasicConv3d(in_channels, ch3x3red, design.branch_1x1, **pad),
                                     BasicConv3d(ch3x3red, ch3x3, design.branch_3x3, **pad))
        self.branch3 = nn.Sequential(BasicConv3d(in_channels, ch5x5red, design.branch_1x1, **pad),
                                     BasicConv3d(ch5x5red, ch5x5, design.branch_3x3, **pad))
        self.branch4 = nn.Sequential(_max_pool(design.branch_pool),
                                     BasicConv3d(in_channels, pool_proj, design.branch_1x1, **pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class ImageNetToInceptionInput(nn.Module):
    """torchvision's GoogLeNet ``transform_input``: ImageNet-normalised RGB -> the [-1, 1] scale its weights
    were trained on, per channel (x * std / 0.5 + (mean - 0.5) / 0.5). (N, 3, T, H, W) -> the same shape.

    A module (no parameters), so that timm's ``FeatureListNet``, which runs the children in order, applies it.
    """

    # torchvision's constants (googlenet.py, GoogLeNet._transform_input)
    MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, c:c + 1] * (std / 0.5) + (mean - 0.5) / 0.5
                          for c, (mean, std) in enumerate(zip(self.MEAN, self.STD))], 1)


class I3Inception(I3DNet):
    """Inception-v1 (torchvision's GoogLeNet) inflated to 3D in the I3D paper's design (the family of
    :class:`I3InceptionV1`, the named model with weights). Input (N, C, T, H, W), ImageNet-normalised; output
    (N, num_classes).

    Args:
        transform_input: re-normalise ImageNet-normalised input to the [-1, 1] scale of torchvision's weights
            first, as torchvision's pretrained GoogLeNet does (see the module docstring). Default: True for
            3 input channels, False otherwise (the re-normalisation is defined for RGB only). DeepMind's
            Kinetics tags set False: their input is already in [-1, 1] (mean and std 0.5).
        same_padding: the "SAME" padding rule of the DeepMind design (``temporal="deepmind"`` only): ``"tf"``
            (TensorFlow's, from the input size; the default) or ``"static"`` (hassony2's port as video_features
            runs it); see ``same_padding.py``.
        bn_eps: BatchNorm's eps: 0.001 (torchvision's and DeepMind's); video_features' copy of hassony2's port
            runs PyTorch's default 1e-5, which its tags set.
        Every other (keyword) argument is :class:`i3zoo.models._model.I3DNet`'s.
    """

    temporal = "i3d"
    classifier_name = "fc"
    first_conv_name = "conv1.conv"
    card_template = "i3inception"
    conv_bn_pairs = (("conv", "bn"),)  # every BasicConv3d, stem and branches

    def _build(self, transform_input: Optional[bool] = None, same_padding: Optional[str] = None,
               bn_eps: float = 0.001) -> None:
        self.design = design = self._design(same_padding)
        self.same_padding = same_padding if same_padding is not None or self.temporal != "deepmind" else "tf"
        if isinstance(bn_eps, bool) or not isinstance(bn_eps, (int, float)) or not 0 < bn_eps < 1:
            raise ValueError(f"bn_eps must be a number in (0, 1); got {bn_eps!r}")
        self.bn_eps = float(bn_eps)
        if transform_input is None:
            transform_input = self.in_chans == 3
        if not isinstance(transform_input, bool):
            raise ValueError(f"transform_input must be True, False or None; got {transform_input!r}")
        if transform_input and self.in_chans != 3:
            raise ValueError(f"transform_input=True re-normalises RGB input; with in_chans={self.in_chans} use "
                             "transform_input=False")
        self.transform_input = transform_input
        pad = dict(temporal_padding=self.temporal_padding, bn_eps=self.bn_eps)
        # children in the order of the forward pass: forward_features (I3DNet.backbone_modules) and timm's
        # FeatureListNet run them in this order
        self.input_transform = ImageNetToInceptionInput() if transform_input else nn.Identity()
        self.conv1 = BasicConv3d(self.in_chans, 64, design.conv1, **pad)
        self.maxpool1 = _max_pool(design.maxpool1)
        self.conv2 = BasicConv3d(64, 64, design.conv2, **pad)
        self.conv3 = BasicConv3d(64, 192, design.conv3, **pad)
        self.maxpool2 = _max_pool(design.maxpool2)
        for name in ("inception3a", "inception3b"):
            setattr(self, name, Inception3d(*_BLOCKS[name], design=design, **pad))
        self.maxpool3 = _max_pool(design.maxpool3)
        for name in ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"):
            setattr(self, name, Inception3d(*_BLOCKS[name], design=design, **pad))
        self.maxpool4 = _max_pool(design.maxpool4)
        for name in ("inception5a", "inception5b"):
            setattr(self, name, Inception3d(*_BLOCKS[name], design=design, **pad))
        self.num_features = 1024
        self.fc = nn.Linear(self.num_features, self.num_classes) if self.num_classes else nn.Identity()
        self.feature_info = [
            dict(num_chs=64, reduction=2, module="conv1"),
            dict(num_chs=192, reduction=4, module="conv3"),
            dict(num_chs=480, reduction=8, module="inception3b"),
            dict(num_chs=832, reduction=16, module="inception4e"),
            dict(num_chs=1024, reduction=32, module="inception5b"),
        ]
        self._init_weights()

    def _design(self, same_padding: Optional[str]) -> InceptionDesign:
        if self.temporal != "deepmind":
            if same_padding is not None:
                raise ValueError(f"same_padding is an argument of the DeepMind design (i3inception_v1_dm); "
                                 f"{type(self).__name__} pads as torchvision does")
            return INCEPTION_DESIGNS[self.temporal]
        return deepmind_design("tf" if same_padding is None else same_padding)

    def head_reduction_path(self) -> List[LayerSpec]:
        """What the head does to the clip size after ``forward_features``: DeepMind's pools 2 frames at stride 1
        (``graph_export`` counts it); torchvision's averages everything."""
        return [LayerSpec((DEEPMIND_HEAD_POOL[0], 1, 1))] if self.design.head == "deepmind" else []

    def boring_video_size(self, size: int) -> int:
        """The frame size at most ``size`` (at least 31) where this model pads as torchvision's GoogLeNet, so that a
        boring video gives the 2D network's output: any for the I3D design; 32k - 1 for DeepMind's, whose
        TensorFlow "SAME" padding is torchvision's layer for layer there (an odd size: conv1 pads 3 and 3; every
        pool then halves an even size), and nowhere for the static rule (conv1 pads 2 and 3)."""
        if self.design.name != "deepmind":
            return size
        if self.same_padding != "tf":
            raise ValueError("same_padding='static' pads conv1 2 before and 3 after at every size: no boring video "
                             "gives torchvision's GoogLeNet output (use same_padding='tf' to compare)")
        return max(32 * ((size + 1) // 32) - 1, 31)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """As :meth:`I3DNet.forward_head`; the DeepMind design pools as the original (:func:`deepmind_head_pool`)
        where ``global_pool="avg"``."""
        if self.design.head == "deepmind" and self.global_pool == "avg":
            x = deepmind_head_pool(x)
            if self.drop_rate:
                x = F.dropout(x, p=self.drop_rate, training=self.training)
            return x if pre_logits else self.get_classifier()(x)
        return super().forward_head(x, pre_logits)

    def _init_weights(self) -> None:
        # torchvision's initialisation (init_weights=True)
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def reduction_path(self) -> Sequence[LayerSpec]:
        return self.design.reduction_path()

    def _stages(self) -> List[List[str]]:
        return [["inception3a", "inception3b"],
                ["maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e"],
                ["maxpool4", "inception5a", "inception5b"]]

    def stage_modules(self) -> List[List[nn.Module]]:
        """The stem (conv1, conv2, conv3), then Mixed_3 (3a, 3b), Mixed_4 (4a..4e) and Mixed_5 (5a, 5b)."""
        return [[self.conv1, self.conv2, self.conv3]] + [
            [getattr(self, name) for name in stage if name.startswith("inception")] for stage in self._stages()]

    def group_matcher(self, coarse: bool = False):
        return dict(stem=r"^conv[123]\.", blocks=r"^inception(\d)" if coarse else [
            (rf"^inception(\d){letter}", (index,)) for index, letter in enumerate("abcde")])


# --- the variants: each model declared once (``_declare.declare``) ----------------------------------------------

# torchvision's builder sets these for its ImageNet weights, which take [-1, 1] input (re-normalised by
# transform_input) and hold the auxiliary classifiers, which the 3D model drops (as torchvision does for pretrained
# evaluation, aux_logits=False): every other key must fill the model
_GOOGLENET = Torchvision2D("googlenet", "GoogLeNet (Inception-v1)",
                           builder_args=dict(transform_input=True, aux_logits=True, init_weights=False),
                           ignored_keys=r"^aux[12]\.")

VARIANTS = [
    Variant("i3inception_v1", "I3InceptionV1",
            "Inception-v1 (torchvision's GoogLeNet) inflated to 3D in the I3D paper's design",
            _GOOGLENET, dict(temporal="i3d")),
]
__all__ += declare(I3Inception, VARIANTS, __name__)

#: DeepMind's I3D, a design of I3InceptionV1 (its subclass): the same modules, padded and pooled as the original,
#: with the ports' Kinetics-400 weights (``weights/deepmind_i3d.py``) besides torchvision's ImageNet ones
DEEPMIND_VARIANTS = [
    Variant("i3inception_v1_dm", "I3InceptionV1DM",
            "DeepMind's I3D: Inception-v1 inflated to 3D, padded as TensorFlow pads, with the original head",
            _GOOGLENET, dict(temporal="deepmind"), extra_tags=deepmind_kinetics_tags()),
]
__all__ += declare(I3InceptionV1, DEEPMIND_VARIANTS, __name__)  # noqa: F821 (declared just above)
