"""The ``torchvision`` weight source: torchvision's 2D ImageNet weights, inflated into the 3D model.

A model declares the 2D network it mirrors as a :class:`Torchvision2D` (its torchvision name, how its paper writes
it, the builder arguments torchvision sets for its ImageNet weights, the 2D keys the 3D model has no place for);
its tags are then every ImageNet weight torchvision publishes for that network (``tv_in1k`` = ``IMAGENET1K_V1``,
the default, ``tv2_in1k`` = ``IMAGENET1K_V2``), each a :class:`~i3zoo.weights.sources.VideoCfg` whose URL carries
the file's sha256 prefix (checked on download and in the cache). Loading reads the file (or the
``pretrained_cfg_overlay`` file, URL or state dict), drops the declared 2D-only keys and leaves the inflation to the
strict fill.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

import torch
import torchvision
from torch import nn

from .cards import (
    INFLATION_RULES,
    equivalence_text,
    front_matter,
    guarantee_text,
    inflated_source_line,
    is_registered_source,
    read_template,
)
from .checkpoints import CheckpointError
from .pytorchvideo import is_pytorchvideo_state_dict
from .sources import VideoCfg, WeightSource, read_2d_state_dict, register_source

__all__ = ["TORCHVISION_TAGS", "Torchvision2D", "TorchvisionImageNet"]

#: torchvision's weight entries and their timm-style tags
TORCHVISION_TAGS = {"IMAGENET1K_V1": "tv_in1k", "IMAGENET1K_V2": "tv2_in1k"}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Torchvision2D:
    """A torchvision 2D classification network that a 3D model is inflated from.

    Attributes:
        arch: its ``torchvision.models.get_model`` name, e.g. ``"resnet50"``.
        title: its name as its paper writes it, e.g. ``"ResNet-50"`` (model cards).
        builder_args: constructor arguments torchvision's builder sets when it loads the ImageNet weights (and the
            2D model the equivalence is checked against must have), e.g. GoogLeNet's ``transform_input=True``.
        ignored_keys: a regular expression of the 2D checkpoint keys the 3D model deliberately has no place for
            (GoogLeNet's auxiliary classifiers); every other key must fill the model.
        citation: BibTeX of the variant's paper, cited after the family's in its card (ResNeXt, Wide ResNet).
    """

    arch: str
    title: str
    builder_args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    ignored_keys: str = ""
    citation: str = ""

    def tags(self) -> Dict[str, VideoCfg]:
        """Every ImageNet weight torchvision has for ``arch``, as tagged cfgs (``IMAGENET1K_V1`` first: the
        default; the declaration adds the model's layer names)."""
        return {TORCHVISION_TAGS[entry.name]: _cfg(entry) for entry in torchvision.models.get_model_weights(self.arch)}

    def build(self) -> nn.Module:
        """The 2D model, randomly initialised, built as for its ImageNet weights (on the current device)."""
        return torchvision.models.get_model(self.arch, weights=None, **dict(self.builder_args))

    def drop_ignored(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if not self.ignored_keys:
            return state_dict
        pattern = re.compile(self.ignored_keys)
        return {k: v for k, v in state_dict.items() if not pattern.match(k)}


def _cfg(weights) -> VideoCfg:
    """The tag cfg of a torchvision ``WeightsEnum`` entry (its URL carries the file's hash prefix)."""
    meta, sizes = weights.meta, weights.transforms.keywords
    return VideoCfg(
        url=weights.url,
        weights_source=TorchvisionImageNet.kind,
        num_classes=len(meta["categories"]),
        input_size=(3, 224, 224),
        crop_pct=sizes.get("crop_size", 224) / sizes.get("resize_size", 256),
        interpolation="bilinear",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        license="bsd-3-clause",
        origin_url=meta["recipe"],
        notes=(f"2D source: torchvision {weights} (ImageNet-1k top-1 {meta['_metrics']['ImageNet-1K']['acc@1']})",),
    )


@register_source
class TorchvisionImageNet(WeightSource):
    """torchvision's 2D ImageNet weights (or another 2D file of the same network), inflated."""

    kind = "torchvision"
    inflated = True

    def read(self, cfg: Dict[str, Any], model: nn.Module, *, cache_dir=None):
        return read_2d_state_dict(cfg, cache_dir=cache_dir)

    def prepare(self, state_dict: Dict[str, torch.Tensor], model: nn.Module, cfg: Dict[str, Any], *,
                source: str) -> Dict[str, torch.Tensor]:
        if is_pytorchvideo_state_dict(state_dict):  # said plainly instead of a list of every key that does not fit
            kinetics = [t for t in _tags_of(cfg.get("architecture")) if t.endswith("k400")]
            hint = f"use the tag {kinetics[0]!r}" if kinetics else f"{model.arch_name} has no tag for such weights"
            raise CheckpointError(f"{source} holds PyTorchVideo's ResNet layout (blocks.0.conv, res_blocks), not "
                                  f"a torchvision 2D checkpoint, which tag {cfg.get('tag')!r} reads: {hint}")
        return model.network_2d.drop_ignored(state_dict)

    def render_card(self, model_id: str, **facts: Any) -> str:
        return _imagenet_card(model_id, **facts)


def _tags_of(arch: Optional[str]):
    from ..registry import arch_tags

    return arch_tags(arch) if arch else []


def _imagenet_card(model_id: str, *, inflation: str, num_classes: int, equivalence: Dict[str, Any],
                   source_2d: Optional[Dict[str, Any]] = None, bound_only: bool = False) -> str:
    """The card of ``model_id`` = ``arch.tag``, inflated from torchvision's ImageNet weights (or a user's 2D file)."""
    from timm.models import get_pretrained_cfg

    from ..facts import model_facts
    from ..registry import arch_tags, meta_model

    arch, tag = model_id.split(".", 1)
    cfg = get_pretrained_cfg(model_id)
    model = meta_model(arch)
    network, facts = model.network_2d, model_facts(arch)
    source_2d = source_2d or {}
    registered = is_registered_source(source_2d, cfg.url)
    weights_name = (cfg.notes or [""])[0].removeprefix("2D source: torchvision ").split(" (")[0]
    if registered:
        source_description = f"torchvision's ImageNet-1k `{network.arch}` (`{weights_name}`)"
        license, license_text = cfg.license or "other", f"{cfg.license or 'other'} (the 2D source's)"
    else:
        source_description = (f"a 2D `{network.arch}` checkpoint given by the user, not torchvision's ImageNet-1k "
                              f"file (`{weights_name}`)")
        license, license_text = "other", "that of the 2D checkpoint it was inflated from (not known to i3zoo)"
    mt, mh, mw = facts.min_input_size
    design = getattr(model, "design", None)
    return string.Template(read_template(model.card_template)).substitute(
        design=design.summary if design is not None else "",
        block={"basic": "BasicBlock", "bottleneck": "Bottleneck"}.get(getattr(model, "block", ""), ""),
        variant_citation=network.citation,
        front_matter=front_matter(arch, tag, license, registered_source=registered),
        name=model_id, arch=arch, arch_title=network.title, source_description=source_description,
        params=f"{facts.params / 1e6:.1f} M", gflops=f"{facts.gflops:.1f}", min_input=f"{mt} × {mh} × {mw}",
        temporal_reduction=facts.temporal_reduction, spatial_reduction=facts.spatial_reduction,
        num_classes=num_classes, inflation=inflation, inflation_rule=INFLATION_RULES[inflation],
        source_line=inflated_source_line(source_2d, cfg.url), license_text=license_text,
        guarantee=guarantee_text(facts.min_input_size, num_classes == cfg.num_classes, num_classes),
        model_id=model_id, hub_tag_arg=f', pretrained_cfg="{tag}"' if tag != arch_tags(arch)[0] else "",
        equivalence=equivalence_text(equivalence, bound_only=bound_only),
    )
