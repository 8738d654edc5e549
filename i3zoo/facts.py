"""Measured facts about each model -- parameters, GFLOPs, minimum clip -- and the README's model and
temporal-design tables.

Every number here is computed from the code, never typed in: the README table is this module's output and a
test regenerates it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode

from .registry import list_models, list_tags, meta_model

__all__ = ["ModelFacts", "model_facts", "model_table", "REFERENCE_CLIP", "design_table", "DESIGN_CLIP",
           "one_model_per_design", "export_table"]

#: the clip the GFLOPs are quoted for, (T, H, W)
REFERENCE_CLIP: Tuple[int, int, int] = (16, 224, 224)


@dataclass(frozen=True)
class ModelFacts:
    name: str
    params: int
    gflops: float  # floating-point operations (2 per multiply-add) for one REFERENCE_CLIP clip, / 1e9
    temporal_reduction: int
    spatial_reduction: int
    min_input_size: Tuple[int, int, int]
    tags: Tuple[str, ...]


def count_gflops(model: torch.nn.Module, clip: Sequence[int] = REFERENCE_CLIP) -> float:
    """GFLOPs of one forward pass on a (1, C, *clip) input (on the model's device; meta costs nothing)."""
    x = torch.zeros(1, model.in_chans, *clip, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 1e9


@functools.lru_cache(maxsize=None)  # the facts are fixed by the registered definition
def model_facts(name: str) -> ModelFacts:
    """Facts of the registered model ``name``, measured on a copy built on the meta device (no memory, no init)."""
    model = meta_model(name)
    return ModelFacts(
        name=name,
        params=sum(p.numel() for p in model.parameters()),
        gflops=count_gflops(model),
        temporal_reduction=model.temporal_reduction,
        spatial_reduction=model.spatial_reduction,
        min_input_size=tuple(model.min_input_size),
        tags=tuple(list_tags(name)),
    )


def model_table(names: Sequence[str] = ()) -> str:
    """The Markdown model table of the README (and of ``i3zoo list``)."""
    t, h, w = REFERENCE_CLIP
    rows: List[str] = [
        f"| model | params (M) | GFLOPs @ {t}x{h}x{w} | time / space reduction | min clip (T x H x W) "
        "| weights (tags) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name in names or list_models():
        f = model_facts(name)
        mt, mh, mw = f.min_input_size
        tags = ", ".join(f"`{tag}`" + (" (default)" if i == 0 else "") for i, tag in enumerate(f.tags))
        rows.append(
            f"| `{f.name}` | {f.params / 1e6:.1f} | {f.gflops:.1f} | {f.temporal_reduction}x / "
            f"{f.spatial_reduction}x | {mt} x {mh} x {mw} | {tags} |"
        )
    return "\n".join(rows)


#: the clip the temporal-design table quotes GFLOPs for: PyTorchVideo's Kinetics-400 training clip, (T, H, W)
DESIGN_CLIP: Tuple[int, int, int] = (8, 224, 224)


def _kernel(spec) -> str:
    return "x".join(map(str, spec.kernel))


def _stage_kernels(stage) -> str:
    """A stage's block kernels as ``conv1 -> conv2`` time taps, e.g. ``3, 1`` (3x1x1 then 1x3x3); a cycle of
    blocks is joined with ``/`` (I3D's alternation)."""
    return " / ".join(f"{b.conv1.kernel[0]}, {b.conv2.kernel[0]}" for b in stage.blocks)


def design_table() -> str:
    """The Markdown table of the ResNet-50 temporal designs (README "Temporal designs", ``i3zoo list --designs``).

    One row per registered ResNet-50 design: its stem and per-stage temporal kernels, the pool between
    stages, parameters at 400 classes (Kinetics), GFLOPs for one DESIGN_CLIP clip, minimum clip and weights.
    """
    t, h, w = DESIGN_CLIP
    rows: List[str] = [
        "| design | model | stem conv, pool | layer1 | pool after layer1 | layer2 | layer3 | layer4 "
        f"| params @ 400 classes | GFLOPs @ {t}x{h}x{w} | min clip (T x H x W) | weights (tags) |",
        "|---|---|---|---|---|---|---|---|---:|---:|---:|---|",
    ]
    for name in list_models():
        model = meta_model(name)
        design = getattr(model, "design", None)
        if design is None or getattr(model, "torchvision_arch", "") != "resnet50":
            continue
        with torch.device("meta"):
            at_400 = type(model)(num_classes=400)
        stages = [_stage_kernels(stage) for stage in design.stages]
        pool = design.stages[0].pool_after
        mt, mh, mw = model.min_input_size
        tags = ", ".join(f"`{tag}`" for tag in list_tags(name))
        rows.append(
            f"| {design.name} | `{name}` | {_kernel(design.stem_conv)}, {_kernel(design.stem_pool)} | {stages[0]} | "
            f"{_kernel(pool) if pool else '--'} | {stages[1]} | {stages[2]} | {stages[3]} | "
            f"{sum(p.numel() for p in at_400.parameters()):,} | {count_gflops(at_400, DESIGN_CLIP):.1f} | "
            f"{mt} x {mh} x {mw} | {tags} |"
        )
    return "\n".join(rows)


def _family(model: torch.nn.Module) -> type:
    """The family class of a model (``I3ResNet``, ``I3DenseNet``, ...): of the classes in its MRO that define the
    layers (``_build``), the one just above the shared base ``I3DNet`` -- found without importing ``models/``,
    which imports this module's importers."""
    builders = [c for c in type(model).__mro__ if "_build" in vars(c)]
    return builders[-2] if len(builders) > 1 else type(model)


def one_model_per_design() -> List[str]:
    """One registered name per (family, temporal design), the one with the fewest parameters: the models that
    together hold every distinct layer structure the zoo builds (tests sweep them; a new family or design joins by
    being registered)."""
    chosen = {}
    for name in list_models():
        model = meta_model(name)
        key = (_family(model).__name__, getattr(model, "temporal", ""))
        params = sum(p.numel() for p in model.parameters())
        if key not in chosen or params < chosen[key][0]:
            chosen[key] = (params, name)
    return [name for _, name in sorted(chosen.values(), key=lambda item: item[1])]


def export_table() -> str:
    """The Markdown table of the README's "Export" section: per model, the clip lengths an exported model takes."""
    from .graph_export import dynamic_frames_step, dynamic_min_frames

    rows: List[str] = [
        "| model | min clip (T x H x W) | `torch.export` program with a dynamic T: T = |",
        "|---|---:|---:|",
    ]
    for name in list_models():
        model = meta_model(name)
        mt, mh, mw = model.min_input_size
        floor, step = dynamic_min_frames(model), dynamic_frames_step(model)
        takes = f"{floor}, {floor + 1}, ..." if step == 1 else f"{floor}, {floor + step}, {floor + 2 * step}, ..."
        rows.append(f"| `{name}` | {mt} x {mh} x {mw} | {takes} |")
    return "\n".join(rows)


def hub_docstring(name: str) -> str:
    """The help of torch.hub entry point ``name``, written from the declaration and the measured facts."""
    from timm.models import get_pretrained_cfg

    from .registry import model_class

    cls, f = model_class(name), model_facts(name)
    tags = []
    for i, tag in enumerate(f.tags):
        notes = get_pretrained_cfg(f"{name}.{tag}").notes or ("",)
        tags.append(f"``{tag}``{' (default)' if i == 0 else ''}: {notes[0]}")
    mt, mh, mw = f.min_input_size
    t, h, w = REFERENCE_CLIP
    return (
        f"{cls.__name__}: {cls.title}.\n\n"
        f"    Weights (``pretrained=True``; another tag with ``pretrained_cfg=TAG``):\n"
        + "".join(f"    - {line}\n" for line in tags)
        + f"\n    {f.params:,} parameters, {f.gflops:.1f} GFLOPs for one {t}x{h}x{w} clip; time reduced "
        f"{f.temporal_reduction}x, space {f.spatial_reduction}x.\n"
        f"    Input: float (N, 3, T, H, W) clips normalized as ``model.pretrained_cfg`` says, T >= {mt}, "
        f"H >= {mh}, W >= {mw}. Output: (N, num_classes).\n"
        f"    Keyword arguments: those of ``i3zoo.create_model`` (``inflation``, ``num_classes``, ``in_chans``, "
        f"``pretrained_cfg``, ``pretrained_cfg_overlay`` ...).\n"
    )


class HubEntrypoint:
    """A torch.hub entry point: ``entry(pretrained=False, **kwargs)`` is ``i3zoo.create_model(name, ...)``; its help
    (``__doc__``) is written from the facts when asked for, so listing the entry points measures nothing."""

    def __init__(self, name: str) -> None:
        self.__name__ = self.__qualname__ = name

    def __call__(self, pretrained: bool = False, **kwargs):
        from .registry import create_model

        return create_model(self.__name__, pretrained=pretrained, **kwargs)

    @property
    def __doc__(self) -> str:  # type: ignore[override]
        return hub_docstring(self.__name__)

    def __repr__(self) -> str:
        return f"<i3zoo hub entry point {self.__name__}>"


def inflate_entrypoint(source: str, pretrained: bool = False, design: str = "i3d", **kwargs):
    """Any timm or torchvision 2D CNN inflated to a video model: ``torch.hub.load(REPO, "inflate",
    "timm/convnext_tiny.fb_in1k", pretrained=True, design="i3d")``, the same as
    ``i3zoo.create_model("inflate:timm/convnext_tiny.fb_in1k", ...)``.

    Args:
        source: ``"timm/NAME[.TAG]"`` or ``"torchvision/NAME[.WEIGHTS]"``.
        pretrained: the 2D network's weights, as timm or torchvision get them.
        design: ``"i3d"``, ``"slowonly"`` or ``"c2d"``.
        **kwargs: ``inflation``, ``num_classes``, ``features_only``, ``out_indices``, ``frozen_stages``,
            ``norm_eval``, ``pretrained_cfg_overlay=dict(file=PATH)`` and the 2D network's own arguments.
    """
    from .registry import INFLATE_PREFIX, create_model

    return create_model(INFLATE_PREFIX + source, pretrained=pretrained, design=design, **kwargs)


inflate_entrypoint.__name__ = inflate_entrypoint.__qualname__ = "inflate"


def hub_entrypoints() -> Dict[str, Any]:
    """An entry point for every registered model, for ``hubconf.py`` (as timm's: taken from the registry), and
    ``inflate`` for any 2D CNN."""
    return {**{name: HubEntrypoint(name) for name in list_models()}, "inflate": inflate_entrypoint}
