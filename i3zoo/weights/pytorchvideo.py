"""PyTorchVideo's Kinetics-400 ResNet-50s: their published checkpoints, and a strict converter to i3zoo's names.

PyTorchVideo 0.1.5 (``pytorchvideo/models/hub/resnet.py``) publishes ``i3d_r50``, ``slow_r50`` and ``c2d_r50``
trained on Kinetics-400 (8 frames, one every 8th, short side 256 and a 224 crop, mean 0.45 / std 0.225). Its
``.pyth`` files hold the state dict under ``"model_state"``, in these module names (``models/resnet.py``,
``models/stem.py``, ``models/head.py``)::

    blocks.0.conv / blocks.0.norm                                   -> conv1 / bn1
    blocks.S.res_blocks.J.branch2.conv_a|b|c / norm_a|b|c           -> layerN.J.conv1|2|3 / bn1|2|3
    blocks.S.res_blocks.J.branch1_conv / branch1_norm               -> layerN.J.downsample.0 / .1
    blocks.H.proj                                                   -> fc

where the blocks S holding ``res_blocks`` are the stages layer1..layer4 in order (I3D and C2D put a
parameter-free temporal max-pool at ``blocks.2``, so S is read from the checkpoint) and H is the head. The
head pools with a fixed kernel (the whole final map at the training clip size), projects and averages; i3zoo's
head averages globally and projects, which is the same number at that clip size and works at any other.

As a weight source (``ptv_k400`` tags, :class:`PytorchvideoKinetics`), a checkpoint is renamed strictly, never
inflated, and its model card says so. Imports nothing from ``i3zoo.models``: it works on state dicts, target shapes
and the attributes of a model it is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .cards import front_matter, inflated_source_line, read_template
from .inflate import CheckpointMismatchError
from .sources import VideoCfg, WeightSource, read_2d_state_dict, register_source

__all__ = [
    "PytorchvideoCheckpoint", "PYTORCHVIDEO_KINETICS400", "KINETICS400_MEAN", "KINETICS400_STD",
    "kinetics400_label_names", "kinetics_tag", "is_pytorchvideo_state_dict", "convert_pytorchvideo_state_dict",
    "to_pytorchvideo_state_dict", "PytorchvideoKinetics",
]

KINETICS400_MEAN: Tuple[float, float, float] = (0.45, 0.45, 0.45)
KINETICS400_STD: Tuple[float, float, float] = (0.225, 0.225, 0.225)
_ROOT = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"


@dataclass(frozen=True)
class PytorchvideoCheckpoint:
    """One published PyTorchVideo Kinetics-400 checkpoint and how its clips were made."""

    builder: str  # the pytorchvideo.models.hub function that builds the network
    url: str  # pytorchvideo.models.hub.resnet.checkpoint_paths[builder]; the name carries no hash
    top1: float  # Kinetics-400 top-1 as published in the builder's docstring
    clip_len: int  # frames per clip ("8x8": 8 frames ...)
    frame_interval: int  # ... sampled one every 8 frames
    head_pool_kernel: Tuple[int, int, int]  # PyTorchVideo's head AvgPool3d: the final map at 8x224x224


#: keyed by i3zoo's temporal design name
PYTORCHVIDEO_KINETICS400: Dict[str, PytorchvideoCheckpoint] = {
    "i3d": PytorchvideoCheckpoint("i3d_r50", f"{_ROOT}/I3D_8x8_R50.pyth", 73.27, 8, 8, (4, 7, 7)),
    "slowonly": PytorchvideoCheckpoint("slow_r50", f"{_ROOT}/SLOW_8x8_R50.pyth", 74.58, 8, 8, (8, 7, 7)),
    "c2d": PytorchvideoCheckpoint("c2d_r50", f"{_ROOT}/C2D_8x8_R50.pyth", 71.46, 8, 8, (4, 7, 7)),
}


def kinetics400_label_names() -> Tuple[str, ...]:
    """The 400 Kinetics class names in class-index order (``labels/kinetics400.txt``, shipped with i3zoo)."""
    text = resources.files(__package__).joinpath("labels", "kinetics400.txt").read_text(encoding="utf-8")
    names = tuple(line for line in text.splitlines() if line and not line.startswith("#"))
    if len(names) != 400 or len(set(names)) != 400:
        raise RuntimeError(f"labels/kinetics400.txt is damaged: {len(names)} names, {len(set(names))} unique")
    return names


def kinetics_tag(temporal: str) -> VideoCfg:
    """The tag cfg (``ptv_k400``) of PyTorchVideo's Kinetics-400 checkpoint for design ``temporal``: its URL, the
    400 class names, PyTorchVideo's normalisation and the clips it was trained on (the declaration adds the model's
    layer names)."""
    checkpoint = PYTORCHVIDEO_KINETICS400[temporal]
    return VideoCfg(
        url=checkpoint.url,
        weights_source=PytorchvideoKinetics.kind,
        clip_len=checkpoint.clip_len,
        frame_interval=checkpoint.frame_interval,
        num_classes=400,
        label_names=kinetics400_label_names(),
        input_size=(3, 224, 224),
        crop_pct=224 / 256,  # PyTorchVideo evaluates on the short side scaled to 256, centre 224
        interpolation="bilinear",
        mean=KINETICS400_MEAN,
        std=KINETICS400_STD,
        pool_size=checkpoint.head_pool_kernel,
        # PyTorchVideo's evaluation (PySlowFast's Kinetics protocol): 10 clips spread from the first frame to the
        # last start, 3 crops; frames divided by 255, then short_side_scale: float bilinear, no antialiasing
        clip_sampler="spread",
        test_clips=10,
        test_crops=3,
        resize_antialias=False,
        resize_float=True,
        license="apache-2.0",
        origin_url="https://github.com/facebookresearch/pytorchvideo/blob/main/docs/source/model_zoo.md",
        notes=(
            f"Kinetics-400 weights of PyTorchVideo's {checkpoint.builder} (top-1 {checkpoint.top1}), not "
            "inflated: converted from PyTorchVideo's module names",
            f"clip_len={checkpoint.clip_len}, frame_interval={checkpoint.frame_interval}: clips of "
            f"{checkpoint.clip_len} frames, one every {checkpoint.frame_interval}",
        ),
    )


def is_pytorchvideo_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """Whether ``state_dict`` is in PyTorchVideo's ResNet layout (``blocks.0.conv``, ``blocks.N.res_blocks``)."""
    return "blocks.0.conv.weight" in state_dict and any(".res_blocks." in key for key in state_dict)


_STEM = re.compile(r"^blocks\.0\.(conv|norm)\.(.+)$")
_BLOCK = re.compile(
    r"^blocks\.(\d+)\.res_blocks\.(\d+)\.(branch2\.(?:conv|norm)_[abc]|branch1_conv|branch1_norm)\.(.+)$")
_HEAD = re.compile(r"^blocks\.(\d+)\.proj\.(weight|bias)$")
_BLOCK_MODULES = {
    "branch2.conv_a": "conv1", "branch2.norm_a": "bn1", "branch2.conv_b": "conv2", "branch2.norm_b": "bn2",
    "branch2.conv_c": "conv3", "branch2.norm_c": "bn3", "branch1_conv": "downsample.0",
    "branch1_norm": "downsample.1",
}


def _rename_all(keys: Sequence[str]) -> Tuple[Dict[str, str], List[str]]:
    """PyTorchVideo key -> i3zoo key for every key that has a place, and the keys that have none."""
    stage_blocks = sorted({int(m.group(1)) for m in map(_BLOCK.match, keys) if m})
    stage_of = {block: index for index, block in enumerate(stage_blocks, start=1)}
    renamed: Dict[str, str] = {}
    unplaced: List[str] = []
    for key in keys:
        stem, block, head = _STEM.match(key), _BLOCK.match(key), _HEAD.match(key)
        if stem:
            renamed[key] = f"{'conv1' if stem.group(1) == 'conv' else 'bn1'}.{stem.group(2)}"
        elif block and stage_of[int(block.group(1))] <= 4:
            stage, index, module, leaf = block.groups()
            renamed[key] = f"layer{stage_of[int(stage)]}.{index}.{_BLOCK_MODULES[module]}.{leaf}"
        elif head and (not stage_blocks or int(head.group(1)) > stage_blocks[-1]):
            renamed[key] = f"fc.{head.group(2)}"
        else:
            unplaced.append(key)
    return renamed, unplaced


def convert_pytorchvideo_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    target_shapes: Mapping[str, Union[torch.Size, Sequence[int]]],
) -> Dict[str, torch.Tensor]:
    """Rename a PyTorchVideo ResNet state dict to i3zoo's module names, strictly.

    Every PyTorchVideo key must have exactly one place in the model and every model key must be filled, with
    exactly the model's shape (no inflation: a 1x1x1 kernel where the model has 3x1x1 means a checkpoint of
    another temporal design). BatchNorm's ``num_batches_tracked`` may be absent (it is then 0, as BatchNorm
    itself does for old checkpoints).

    Args:
        state_dict: PyTorchVideo's ``model_state`` (``blocks.0.conv.weight`` ...).
        target_shapes: the i3zoo model's keys and shapes, ``{k: v.shape for k, v in model.state_dict().items()}``.

    Returns:
        A state dict with exactly the keys of ``target_shapes``.

    Raises:
        CheckpointMismatchError: naming, in PyTorchVideo's names and i3zoo's, every key without a place,
            every model key not filled and every shape that does not fit.
    """
    renamed, unplaced = _rename_all(list(state_dict))
    converted: Dict[str, torch.Tensor] = {}
    misshaped, unexpected = [], list(unplaced)
    for old, new in renamed.items():
        if new not in target_shapes:
            unexpected.append(f"{old} (as {new})")
        elif tuple(state_dict[old].shape) != tuple(target_shapes[new]):
            misshaped.append(f"{old} -> {new}: checkpoint {tuple(state_dict[old].shape)}, "
                             f"model {tuple(target_shapes[new])}")
        else:
            converted[new] = state_dict[old]
    for key in target_shapes:
        if key.endswith(".num_batches_tracked") and key not in converted and key not in renamed.values():
            converted[key] = torch.tensor(0, dtype=torch.long)
    missing = sorted(k for k in target_shapes if k not in converted and k not in renamed.values())
    if missing or unexpected or misshaped:
        parts = [f"{what} ({len(keys)}): {'; '.join(sorted(keys)[:8])}" + (" ..." if len(keys) > 8 else "")
                 for what, keys in (("model keys the checkpoint does not fill", missing),
                                    ("checkpoint keys with no place in the model", unexpected),
                                    ("shapes that do not fit", misshaped)) if keys]
        raise CheckpointMismatchError(
            "the PyTorchVideo checkpoint does not fit this model (a checkpoint of another temporal design, "
            "depth or class count?) -- " + " | ".join(parts))
    return converted


def to_pytorchvideo_state_dict(state_dict: Mapping[str, torch.Tensor], *, stage_pool: bool) -> Dict[str, torch.Tensor]:
    """The reverse: an i3zoo I3ResNet state dict in PyTorchVideo's names (``stage_pool``: I3D and C2D's
    ``blocks.2`` max-pool, which shifts the later stages and the head by one)."""
    stage_block = {1: 1, 2: 2 + stage_pool, 3: 3 + stage_pool, 4: 4 + stage_pool}
    head = 5 + stage_pool
    modules = {v: k for k, v in _BLOCK_MODULES.items()}
    out: Dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if key.startswith(("conv1.", "bn1.")):
            module, leaf = key.split(".", 1)
            out[f"blocks.0.{'conv' if module == 'conv1' else 'norm'}.{leaf}"] = tensor
        elif key.startswith("fc."):
            out[f"blocks.{head}.proj.{key[3:]}"] = tensor
        else:
            match = re.match(r"^layer(\d)\.(\d+)\.(conv\d|bn\d|downsample\.\d)\.(.+)$", key)
            if not match:
                raise ValueError(f"{key!r} is not a key of an I3ResNet state dict")
            stage, index, module, leaf = match.groups()
            out[f"blocks.{stage_block[int(stage)]}.res_blocks.{index}.{modules[module]}.{leaf}"] = tensor
    return out



@register_source
class PytorchvideoKinetics(WeightSource):
    """PyTorchVideo's Kinetics-400 checkpoints (``.pyth``, ``model_state`` in PyTorchVideo's names): trained 3D
    weights, renamed strictly."""

    kind = "pytorchvideo"

    def read(self, cfg: Dict[str, Any], model: nn.Module, *, cache_dir=None):
        state_dict, record = read_2d_state_dict(cfg, cache_dir=cache_dir)
        # there is no 2D file to measure the boring-video equivalence against (`_path` names one for save_pretrained)
        return state_dict, {k: v for k, v in record.items() if k != "_path"}

    def prepare(self, state_dict: Dict[str, torch.Tensor], model: nn.Module, cfg: Dict[str, Any], *,
                source: str) -> Dict[str, torch.Tensor]:
        """The checkpoint in ``model``'s names; the classifier keeps the checkpoint's class count (a model with
        another ``num_classes`` keeps the backbone and starts a fresh classifier, as for 2D sources)."""
        if model.temporal_padding != "zeros":
            raise ValueError(f"{source} holds PyTorchVideo weights, trained with zero temporal padding; "
                             f"inflation={model.inflation!r} would pad by repeating frames. Use inflation='center'")
        classifier = model.classifier_name
        target = {k: v.shape for k, v in model.state_dict().items() if not k.startswith(classifier + ".")}
        first = f"{model.first_conv_name}.weight"
        if model.in_chans != 3:  # the checkpoint's stem takes RGB; the fill adapts it to in_chans afterwards
            target[first] = torch.Size((target[first][0], 3, *target[first][2:]))
        rows = next((v.shape[0] for k, v in state_dict.items() if k.endswith(".proj.bias")), 0)
        target.update({f"{classifier}.weight": (rows, model.num_features), f"{classifier}.bias": (rows,)})
        try:
            return convert_pytorchvideo_state_dict(state_dict, target)
        except CheckpointMismatchError as e:
            raise CheckpointMismatchError(f"{source} cannot fill {type(model).__name__}: {e}") from None

    def render_card(self, model_id: str, *, num_classes: int, source_2d: Optional[Dict[str, Any]] = None,
                    **_: Any) -> str:
        return _kinetics_card(model_id, num_classes=num_classes, source_2d=source_2d or {})


def _kinetics_card(model_id: str, *, num_classes: int, source_2d: Dict[str, Any]) -> str:
    """The card of PyTorchVideo's Kinetics-400 weights: trained 3D weights, converted, not inflated."""
    import string

    from timm.models import get_pretrained_cfg

    from ..facts import DESIGN_CLIP, count_gflops
    from ..registry import meta_model

    arch, tag = model_id.split(".", 1)
    cfg = get_pretrained_cfg(model_id)
    model = meta_model(model_id)
    published = PYTORCHVIDEO_KINETICS400[model.temporal]
    mt, mh, mw = model.min_input_size
    t, h, w = DESIGN_CLIP
    source_line = inflated_source_line(source_2d, cfg.url).replace(
        " (sha256 prefix in the file name, checked on load)",
        " (no hash in the name: its sha256 is recorded at the first download)")
    return string.Template(read_template("i3resnet_k400")).substitute(
        front_matter=front_matter(arch, tag, cfg.license, registered_source=False, datasets=["kinetics-400"],
                                  tags=["video-classification", "kinetics-400", "pytorchvideo", "timm", "resnet",
                                        "pytorch"]),
        name=model_id, arch=arch, tag=tag, model_id=model_id, arch_title=model.network_2d.title,
        design_title=f"PyTorchVideo's {model.temporal} design", design=model.design.summary,
        builder=published.builder, top1=published.top1,
        params=f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M (with the 400-way Kinetics classifier)",
        clip=f"{t}×{h}×{w}", gflops=f"{count_gflops(model, DESIGN_CLIP):.1f}",
        clip_len=published.clip_len, frame_interval=published.frame_interval,
        min_input=f"{mt} × {mh} × {mw}", temporal_reduction=model.temporal_reduction,
        spatial_reduction=model.spatial_reduction, num_classes=num_classes,
        classes="400: Kinetics-400, names in `model.pretrained_cfg[\"label_names\"]`" if num_classes == 400 else
                f"{num_classes} (a new classifier on the Kinetics-400 backbone)",
        source_line=source_line, license=cfg.license,
        equivalence=(
            f"`tests/test_presets.py` builds PyTorchVideo's own `{published.builder}` (pytorchvideo 0.1.5) with "
            "seeded random weights and randomized BatchNorm statistics, saves it as a `.pyth` checkpoint, loads "
            f"that into `{arch}` through i3zoo's converter and compares the outputs on the same clip: relative "
            "error ≤ 1e-5 in float32 (at 8×224×224) and ≤ 1e-10 in float64."),
    )
