"""Temporal designs for any 2D network: which convolutions get a temporal kernel, and where time is pooled.

A :class:`Design` speaks of a network's stages by their spatial reduction (the stage at reduction 4 is a ResNet's
``layer1``, 8 its ``layer2``, ...), which timm's ``feature_info`` gives for every timm model and i3zoo finds for
torchvision's (:mod:`i3zoo.models.inflated`); whatever sits before the first stage at reduction 4 is the stem.
A stage's blocks are its ``blocks`` container's children, or its own children: a ResNet's bottlenecks, a ConvNeXt
stage's blocks, an EfficientNet stage's inverted residuals. The named designs carry the hand-written ResNet
presets' rules (``i3zoo.models.i3resnet``) to any network:

* ``c2d`` -- no temporal kernel and no temporal pool: the 2D network run per frame, then a temporal mean (exact
  per frame on any video; unlike PyTorchVideo's ``c2d_r50``, time is not pooled after the first stage).
* ``i3d`` -- PyTorchVideo's ``i3d_r50`` rule: a 5-frame stem, 3-frame kernels on the first convolution of every
  block of the first stage and of alternating blocks of the later ones (the last stage from its second block), a
  2-frame temporal max-pool after the first stage.
* ``slowonly`` -- PyTorchVideo's ``slow_r50`` rule: 3-frame kernels on the first convolution of every block of
  the stages at reductions 16 and 32, time never pooled.

On torchvision's ResNet-50, ``i3d`` and ``slowonly`` give ``i3resnet50_i3d`` and ``i3resnet50_slowonly`` layer
for layer (a test holds it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple, Union

__all__ = ["StageRule", "Design", "DESIGNS", "design_named", "CONV_CHOICES"]

#: which convolutions of a chosen block a stage rule gives its temporal kernel
CONV_CHOICES = ("first", "spatial", "all")


def _odd(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f"{name} must be an odd positive integer (a temporal kernel keeps the clip length with "
                         f"k // 2 frames of padding on each side); got {value!r}")
    return value


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return value


@dataclass(frozen=True)
class StageRule:
    """What a design does to one stage.

    Attributes:
        time_kernel: the temporal kernel given to the convolutions the rule picks (1: none, odd).
        convs: which convolutions of a chosen block: ``"first"`` (its first convolution, whatever its spatial
            kernel: I3D's rule), ``"spatial"`` (every convolution with a spatial kernel larger than 1x1), or
            ``"all"`` (every convolution, 1x1 ones included).
        blocks: which of the stage's blocks are chosen, in turn (``(True, False)``: every other block, from the
            first).
        pool_after: a temporal max-pool of this many frames, at that stride, after the stage (1: none).
    """

    time_kernel: int = 1
    convs: str = "first"
    blocks: Tuple[bool, ...] = (True,)
    pool_after: int = 1

    def __post_init__(self) -> None:
        _odd("time_kernel", self.time_kernel)
        _positive("pool_after", self.pool_after)
        if self.convs not in CONV_CHOICES:
            raise ValueError(f"unknown convs {self.convs!r}; allowed: {', '.join(map(repr, CONV_CHOICES))}")
        if not self.blocks or not all(isinstance(b, bool) for b in self.blocks):
            raise ValueError(f"blocks must be a non-empty tuple of True/False; got {self.blocks!r}")

    def picks(self, block_index: int) -> bool:
        """Whether block ``block_index`` of the stage gets the temporal kernel."""
        return self.time_kernel > 1 and self.blocks[block_index % len(self.blocks)]


@dataclass(frozen=True)
class Design:
    """A temporal design: the stem's first convolution, then a rule per stage (by reduction 4, 8, 16, 32, ...;
    a network with more stages than rules repeats the last rule).

    Attributes:
        name: what the design is called (in configs and cards).
        summary: one line for model cards.
        stem_kernel: temporal kernel of the network's first convolution (odd).
        stem_stride: temporal stride of that convolution.
        stages: the stage rules.
    """

    name: str
    summary: str = ""
    stem_kernel: int = 1
    stem_stride: int = 1
    stages: Tuple[StageRule, ...] = field(default_factory=lambda: (StageRule(),))

    def __post_init__(self) -> None:
        _odd("stem_kernel", self.stem_kernel)
        _positive("stem_stride", self.stem_stride)
        if not self.stages or not all(isinstance(s, StageRule) for s in self.stages):
            raise ValueError("stages must be a non-empty tuple of StageRule")

    def stage(self, rank: int) -> StageRule:
        """The rule of the stage at reduction ``4 * 2 ** rank``."""
        return self.stages[min(rank, len(self.stages) - 1)]

    @property
    def mixes_time(self) -> bool:
        """Whether any layer of the design sees more than one frame (else it is exact per frame on any video)."""
        return self.stem_kernel > 1 or any(s.time_kernel > 1 or s.pool_after > 1 for s in self.stages)


_NONE, _T3 = StageRule(), StageRule(3)
DESIGNS: Dict[str, Design] = {
    d.name: d for d in (
        Design("c2d", "no temporal kernel and no temporal pool: the 2D network per frame, then a temporal mean"),
        Design("i3d", "PyTorchVideo's I3D rule (`i3d_r50`): 5-frame stem, 3-frame kernels on the first convolution of "
                      "every block of the first stage and of alternating blocks of the later ones, a 2-frame "
                      "temporal max-pool after the first stage",
               stem_kernel=5, stages=(StageRule(3, pool_after=2), StageRule(3, blocks=(True, False)),
                                      StageRule(3, blocks=(True, False)), StageRule(3, blocks=(False, True)))),
        Design("slowonly", "PyTorchVideo's SlowOnly rule (`slow_r50`): 3-frame kernels on the first convolution of "
                           "every block of the stages at reductions 16 and 32, time never pooled",
               stages=(_NONE, _NONE, _T3, _T3)),
    )
}


def design_named(design: Union[str, Design]) -> Design:
    """``design`` itself, or the named design; ``ValueError`` naming the known ones otherwise."""
    if isinstance(design, Design):
        return design
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}; allowed: {', '.join(map(repr, DESIGNS))} or an "
                         "i3zoo.models.designs.Design")
    return DESIGNS[design]
