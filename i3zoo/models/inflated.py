"""Any 2D CNN of timm or torchvision as a video model: :func:`inflate` and :class:`InflatedNet`.

The 2D network keeps its own forward code. Time is folded into the batch, ``(N*T, C, H, W)``, so every per-frame
operation runs unchanged; the convolutions a temporal :class:`~i3zoo.models.designs.Design` picks become
:class:`~i3zoo.models.time_layers.TimeConv` (the 2D kernel inflated, ``center`` or ``mean``), the stages it pools
after get a :class:`~i3zoo.models.time_layers.TimePool` hook, and the head runs per frame with its outputs
averaged over time (the classifier is affine, so averaging its inputs or its outputs is the same function). On a
clip of one repeated frame every inflated layer gives the 2D layer's output at every frame, so the video model
gives the 2D network's logits: the equivalence every i3zoo model keeps, for any network whose convolutions this
module knows (``time_layers``' docstring lists them). Attention blocks and other layers without a convolution
run per frame; a ViT's patch embedding becomes a tubelet embedding when the design gives the stem a temporal
kernel.

The 2D network is ``model.net``: its state-dict keys are the 2D ones under ``net.`` (inflated kernels 5D, the
others as they were).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from timm.models import register_model
from torch import nn

from ..weights.config import INFLATED_ARCH
from ..weights.inflate import check_inflation_mode
from .adapters import adapter_for
from .designs import DESIGNS, Design, design_named
from .layers import LayerSpec, check_clip, hold_in_eval, min_input_size, take_feature_indices, total_stride
from .time_layers import ClipState, TimeConv, TimePool, UninflatableError, fold, unfold

__all__ = ["InflatedNet", "InflatedFeatures", "inflate", "plan_design", "UninflatableError"]


def _blocks(stage: nn.Module) -> List[nn.Module]:
    """A stage's blocks: its ``blocks`` container's children, a Sequential's children, or its children that hold a
    convolution (a stage of one block is that block)."""
    container = getattr(stage, "blocks", None)
    if isinstance(container, (nn.Sequential, nn.ModuleList)):
        return list(container)
    if isinstance(stage, (nn.Sequential, nn.ModuleList)):
        return list(stage)
    with_convs = [c for c in stage.children() if any(isinstance(m, nn.Conv2d) for m in c.modules())]
    return with_convs if len(with_convs) > 1 else [stage]


def _picked(block: nn.Module, convs: str) -> List[nn.Module]:
    found = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    if convs == "first":
        return found[:1]
    if convs == "spatial":
        return [m for m in found if max(m.kernel_size) > 1]
    return found


def _stage_module(tap: str, taps: Sequence[str]) -> str:
    """The stage a feature tap stands for: its shortest enclosing module that holds no other tap (a tap inside a
    block, as Xception's ``block2.rep.0``, stands for the block; ``stages.0`` for itself, ``stages`` holding all)."""
    parts = tap.split(".")
    for end in range(1, len(parts) + 1):
        prefix = ".".join(parts[:end])
        if not any(t != tap and (t == prefix or t.startswith(prefix + ".")) for t in taps):
            return prefix
    return tap


def _stage_ranks(info: Sequence[Dict], net: nn.Module) -> List[Tuple[int, List[str]]]:
    """The feature modules grouped by stage rank (reduction 4 -> 0, 8 -> 1, ...), in order; reductions below 4
    belong to the stem. Entries that name no module of ``net`` are passed over (HRNet's name its branches)."""
    ranks: Dict[int, List[str]] = {}
    present = {name for name, _ in net.named_modules()}
    taps = [entry["module"] for entry in info if entry["module"] in present]
    for entry in info:
        if entry["reduction"] >= 4 and entry["module"] in present:
            stage = _stage_module(entry["module"], taps)
            ranks.setdefault(int(round(math.log2(entry["reduction"]))) - 2, []).append(stage)
    return sorted(ranks.items())  # none (feature_info naming no module): only the stem can see time


def plan_design(net: nn.Module, info: Sequence[Dict], design: Design
                ) -> Tuple[Dict[str, Tuple[int, int]], List[Tuple[str, int]]]:
    """Where ``design`` puts time in ``net``: {conv name: (temporal kernel, temporal stride)} and the temporal
    pools [(module name, frames)] in forward order."""
    names = {m: n for n, m in net.named_modules()}
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    plan: Dict[str, Tuple[int, int]] = {}  # a network without convolutions runs per frame
    if convs and (design.stem_kernel > 1 or design.stem_stride > 1):
        plan[convs[0]] = (design.stem_kernel, design.stem_stride)
    pools = []
    for rank, modules in _stage_ranks(info, net):
        rule = design.stage(rank)
        blocks = [b for name in modules for b in _blocks(net.get_submodule(name))]
        for index, block in enumerate(blocks):
            if rule.picks(index):
                for conv in _picked(block, rule.convs):
                    plan.setdefault(names[conv], (rule.time_kernel, 1))
        if rule.pool_after > 1:
            pools.append((modules[-1], rule.pool_after))
    return plan, pools


class InflatedNet(nn.Module):
    """A 2D timm or torchvision classification network with a temporal design: input (N, C, T, H, W).

    The zoo's surface: ``forward_features`` ((N, C, T', H', W') maps; token sequences of attention networks come
    as (N, T', ...)), ``forward_head(pre_logits=)``, ``reset_classifier``, ``forward_intermediates`` and
    ``features_only`` (5D maps), ``min_input_size``, ``temporal_reduction``, ``set_grad_checkpointing`` (where the
    2D network has it), ``frozen_stages`` and ``norm_eval`` (MMAction2's conventions, see ``I3DNet``).

    Args:
        net: the 2D network (changed in place: its picked convolutions are replaced, its pooled stages hooked).
        design: ``"c2d"``, ``"i3d"``, ``"slowonly"`` or a :class:`~i3zoo.models.designs.Design`.
        inflation: ``"center"`` or ``"mean"``.
        source: what the 2D network is (``"timm/convnext_tiny.fb_in1k"``), recorded in the cfg.
        frozen_stages: ``-1`` (nothing), ``0`` (the stem) or ``K`` (the stem and the first K stages).
        norm_eval: every BatchNorm stays in eval mode in training.
    """

    arch_name = "inflate"

    def __init__(self, net: nn.Module, *, design: Union[str, Design] = "i3d", inflation: str = "center",
                 source: str = "", frozen_stages: int = -1, norm_eval: bool = False,
                 in_chans: Optional[int] = None) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.inflation = check_inflation_mode(inflation)
        self.design = design_named(design)
        self.source = source
        self.net = net
        self.adapter = adapter_for(net)
        self.clip = ClipState()
        info = self.adapter.feature_info()
        self.time_layers, self.time_pools = plan_design(net, info, self.design)
        for name, (kernel, stride) in self.time_layers.items():
            net.set_submodule(name, TimeConv(net.get_submodule(name), self.clip, time_kernel=kernel,
                                             time_stride=stride, inflation=self.inflation, name=name))
        for name, size in self.time_pools:
            net.get_submodule(name).register_forward_hook(TimePool(self.clip, size))
        self._facts(info)
        self.pretrained_cfg = self.default_cfg = dict(_video_cfg(net, source, self.design, self.inflation),
                                                      num_classes=self.num_classes)
        if not isinstance(norm_eval, bool):
            raise ValueError(f"norm_eval must be True or False; got {norm_eval!r}")
        self.norm_eval = norm_eval
        self.set_frozen_stages(frozen_stages)

    def _facts(self, info: List[Dict]) -> None:
        cfg = getattr(self.net, "pretrained_cfg", None) or {}
        first = next((m for m in self.net.modules() if isinstance(m, nn.Conv2d | TimeConv)), None)
        # a stem that rearranges pixels first (space-to-depth: TResNet) has a first convolution wider than the input
        self.in_chans = self.in_chans or (first.in_channels if first is not None and first.in_channels <= 4
                                          else cfg.get("input_size", (3,))[0])
        kernel, stride = self.time_layers.get(self._first_conv_name(), (1, 1))
        stem = LayerSpec((kernel, 1, 1), (stride, 1, 1), (kernel // 2, 0, 0))
        pooled = {name: LayerSpec((size, 1, 1), (size, 1, 1)) for name, size in self.time_pools}
        path, time_at = [stem], []
        for entry in info:
            if entry["module"] in pooled:
                path.append(pooled[entry["module"]])
            time_at.append(total_stride(path)[0])
        self.time_path = path
        self.temporal_reduction = total_stride(path)[0]
        self.spatial_reduction = info[-1]["reduction"]
        side = cfg.get("input_size", (3, 224, 224))[1:] if cfg.get("fixed_input_size") else \
            (self.spatial_reduction, self.spatial_reduction)
        self.min_input_size = (min_input_size(path)[0], *side)
        self.feature_info = [dict(entry, module=f"net.{entry['module']}", temporal_reduction=t)
                             for entry, t in zip(info, time_at)]
        self.num_features = self.adapter.num_features()
        self.num_classes = self._classes()

    def _first_conv_name(self) -> str:
        return next((n for n, m in self.net.named_modules() if isinstance(m, nn.Conv2d | TimeConv)), "")

    def _classes(self) -> int:
        head = self.adapter.classifier()
        heads = head if isinstance(head, tuple) else (head,)  # a distillation head beside the classifier (LeViT)
        last = [m for h in heads if h is not None for m in h.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        return int(last[-1].weight.shape[0]) if last else 0

    # --- forward ---------------------------------------------------------------------------------------

    def check_clip(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` if it is a clip this model accepts; ``ValueError`` (``TypeError`` for a non-tensor) otherwise."""
        return check_clip(x, model_name=self.describe(), in_chans=self.in_chans, min_size=self.min_input_size)

    def describe(self) -> str:
        """``"inflate:timm/convnext_tiny (i3d design)"``: what the model is, in errors and logs."""
        return f"inflate:{self.source or type(self.net).__name__} ({self.design.name} design)"

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        self.clip.batch = x.shape[0]
        return fold(x) if x.dim() == 5 else x.flatten(0, 1)

    def _clip(self, y: torch.Tensor) -> torch.Tensor:
        """Per-frame outputs back to clips: maps (N, C, T, H, W), anything else (N, T, ...)."""
        return unfold(y, self.clip.batch) if y.dim() == 4 else y.unflatten(0, (self.clip.batch, -1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) clip -> (N, num_features, T', H', W') features; the clip is checked first."""
        return self._clip(self.adapter.features(self._frames(self.check_clip(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Features -> (N, num_classes) logits, or (N, num_features) with ``pre_logits``: the 2D head on each
        frame, averaged over time."""
        batch = x.shape[0]
        out = self.adapter.head(self._frames(x), pre_logits)
        return out.unflatten(0, (batch, -1)).mean(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._frames(self.check_clip(x))
        batch = self.clip.batch
        return self.adapter.head(self.adapter.features(x), False).unflatten(0, (batch, -1)).mean(1)

    def forward_intermediates(self, x: torch.Tensor, indices: Union[None, int, Sequence[int]] = None,
                              intermediates_only: bool = True, **unused: Any) -> List[torch.Tensor]:
        """The 5D maps of the ``feature_info`` entries ``indices`` (None: all; n: the last n)."""
        indices, _ = take_feature_indices(indices, len(self.feature_info))
        maps = self.adapter.intermediates(self._frames(self.check_clip(x)), sorted(set(indices)))
        by_index = dict(zip(sorted(set(indices)), (self._clip(m) for m in maps)))
        return [by_index[i] for i in indices]

    def reduction_path(self) -> List[LayerSpec]:
        """The layers that change the clip length, in order (the stem's convolution and the temporal pools; space
        is the 2D network's, whose layers are not listed): what ``i3zoo.export_program`` reads."""
        return list(self.time_path)

    def feature_map_size(self, clip: Sequence[int]) -> Tuple[int, ...]:
        """(T', H', W') of ``forward_features``' output for a (T, H, W) clip (one meta-device pass: exact)."""
        with torch.device("meta"):
            probe = torch.empty(1, self.in_chans, *clip)
        try:
            return tuple(self.forward_features(probe).shape[2:])
        except NotImplementedError:  # a layer without a meta kernel: walk the real thing on one small input
            with torch.no_grad():
                return tuple(self.forward_features(torch.zeros(1, self.in_chans, *clip)).shape[2:])

    # --- head ------------------------------------------------------------------------------------------

    def get_classifier(self) -> nn.Module:
        return self.adapter.classifier()

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A fresh classifier of ``num_classes`` outputs (0: none, ``forward`` gives pooled features)."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative integer; got {num_classes!r}")
        if global_pool is not None:
            raise ValueError("an inflated network keeps its 2D network's pooling (global_pool cannot change)")
        self.adapter.reset_classifier(num_classes)
        self.num_classes = num_classes
        if getattr(self, "pretrained_cfg", None) is not None:
            self.pretrained_cfg["num_classes"] = num_classes

    @property
    def head_hidden_size(self) -> int:
        return self.num_features

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if not hasattr(self.net, "set_grad_checkpointing"):
            raise ValueError(f"{type(self.net).__name__} has no gradient checkpointing of its own (timm's models do)")
        self.net.set_grad_checkpointing(enable)

    # --- training conventions --------------------------------------------------------------------------

    def stage_modules(self) -> List[List[nn.Module]]:
        """``[stem modules], [stage 1 modules], ...``: the stem is every module with parameters before the first
        stage; a stage, the feature modules of one reduction."""
        ranks = _stage_ranks(self.adapter.feature_info(), self.net)
        if not ranks:  # no stage found (feature_info names no module): nothing to count stages by
            return [[]]
        first = ranks[0][1][0]
        stem = []
        for name, module in self.net.named_modules():
            if name == first:
                break
            if name and not first.startswith(name + ".") and any(True for _ in module.parameters(recurse=False)):
                stem.append(module)
        return [stem] + [[self.net.get_submodule(n) for n in names] for _, names in ranks]

    def set_frozen_stages(self, frozen_stages: int) -> None:
        groups = self.stage_modules()
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) \
                or not -1 <= frozen_stages < len(groups):
            raise ValueError(f"frozen_stages must be an integer from -1 (nothing frozen) to {len(groups) - 1} (the "
                             f"stem and all {len(groups) - 1} stages); got {frozen_stages!r}")
        self.frozen_stages = frozen_stages
        for group in groups[:frozen_stages + 1]:
            for module in group:
                for parameter in module.parameters():
                    parameter.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> "InflatedNet":
        super().train(mode)
        if mode and hasattr(self, "frozen_stages"):
            hold_in_eval(self, [m for group in self.stage_modules()[:self.frozen_stages + 1] for m in group],
                         self.norm_eval)
        return self

    def named_design(self) -> str:
        """The name of the model's design; ``ValueError`` for a design of the user's own, which a saved config
        cannot name."""
        if DESIGNS.get(self.design.name) != self.design:
            raise ValueError(f"this inflated model has a design of its own ({self.design.name!r}); a saved model "
                             f"names one of i3zoo's designs ({', '.join(DESIGNS)})")
        return self.design.name

    def video_facts(self) -> Dict[str, Any]:
        return {"input_layout": "NCTHW", "min_input_size": list(self.min_input_size),
                "temporal_reduction": self.temporal_reduction, "spatial_reduction": self.spatial_reduction,
                "inflation": self.inflation, "design": self.design.name,
                "time_layers": len(self.time_layers), "time_pools": len(self.time_pools)}


class InflatedFeatures(nn.Module):
    """``features_only``: the 5D maps of ``out_indices`` (timm's ``FeatureGetterNet`` contract) of an
    :class:`InflatedNet`."""

    def __init__(self, model: InflatedNet, out_indices: Union[None, int, Sequence[int]] = None) -> None:
        super().__init__()
        self.model = model
        # None: every feature_info entry (their number is the 2D network's, not always timm's five)
        self.out_indices, _ = take_feature_indices(out_indices, len(model.feature_info), "out_indices")
        self.feature_info = [model.feature_info[i] for i in self.out_indices]
        self.pretrained_cfg = getattr(model, "pretrained_cfg", {})

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.model.forward_intermediates(x, self.out_indices)


def inflate(model_2d: nn.Module, design: Union[str, Design] = "i3d", inflation: str = "center", *,
            source: str = "", frozen_stages: int = -1, norm_eval: bool = False,
            in_chans: Optional[int] = None) -> InflatedNet:
    """A video model from a timm or torchvision 2D classification CNN, exact on clips of one repeated frame.

    Args:
        model_2d: the 2D network (taken, not copied: its convolutions are replaced in place).
        design: ``"i3d"`` (the default), ``"slowonly"``, ``"c2d"`` or a :class:`~i3zoo.models.designs.Design`.
        inflation: ``"center"`` (the 2D kernel on the centre tap) or ``"mean"`` (spread over the taps).
        source: a name for the 2D network in the model's cfg (``create_model("inflate:...")`` sets it).
        frozen_stages, norm_eval: as every i3zoo model's.
        in_chans: the input's channels, where the first convolution does not say (a space-to-depth stem).

    Returns:
        The :class:`InflatedNet`, in the 2D network's train/eval mode.
    """
    model = InflatedNet(model_2d, design=design, inflation=inflation, source=source, frozen_stages=frozen_stages,
                        norm_eval=norm_eval, in_chans=in_chans)
    return model.train(model_2d.training)


# --- from a name: inflate:timm/NAME, inflate:torchvision/NAME ---------------------------------------------

#: the 2D libraries an ``inflate:`` name may take its network from
SOURCES_2D = ("timm", "torchvision")


def split_source(source: str) -> Tuple[str, str]:
    """``"timm/convnext_tiny.fb_in1k"`` -> ``("timm", "convnext_tiny.fb_in1k")``; ``ValueError`` otherwise."""
    library, _, name = str(source).partition("/")
    if library not in SOURCES_2D or not name:
        raise ValueError(f"unknown 2D source {source!r}: an inflated model is named inflate:timm/NAME[.TAG] (a timm "
                         "model) or inflate:torchvision/NAME[.WEIGHTS] (a torchvision classification model)")
    return library, name


def _timm_2d(name: str, pretrained: bool, overlay, cache_dir, **kwargs) -> nn.Module:
    import timm

    arch = name.split(".")[0]
    if not timm.is_model(arch):
        import difflib

        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"unknown timm model {arch!r} in inflate:timm/{name}{hint}")
    return timm.create_model(name, pretrained=pretrained, pretrained_cfg_overlay=overlay, cache_dir=cache_dir,
                             **kwargs)


def _torchvision_2d(name: str, pretrained: bool, overlay, cache_dir, **kwargs) -> nn.Module:
    """torchvision's network; its weights by torchvision's own hash-checked download, or a local file."""
    import torchvision

    from ..weights.checkpoints import read_state_dict

    arch, _, weights_name = name.partition(".")
    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(f"unknown torchvision classification model {arch!r} in inflate:torchvision/{name}")
    unknown = sorted(set(kwargs) - {"num_classes"})
    if unknown:
        raise ValueError(f"inflate:torchvision/ takes num_classes, not {', '.join(unknown)} (timm models take "
                         "timm's arguments)")
    net = torchvision.models.get_model(arch, weights=None)
    if pretrained:
        file = (overlay or {}).get("file")
        if file:
            state_dict = read_state_dict(file)
        else:
            weights = torchvision.models.get_model_weights(arch)[weights_name or "DEFAULT"]
            state_dict = weights.get_state_dict(progress=True, check_hash=True, model_dir=cache_dir)
        net.load_state_dict(state_dict)
        net.source_weights = f"torchvision/{arch}.{weights_name or 'DEFAULT'}"
    return net


def _video_cfg(net: nn.Module, source: str, design: Design, inflation: str) -> Dict[str, Any]:
    """The model's pretrained cfg: the 2D network's preprocessing and classes, with what inflation adds."""
    cfg = dict(getattr(net, "pretrained_cfg", None) or {})
    cfg.setdefault("mean", (0.485, 0.456, 0.406))
    cfg.setdefault("std", (0.229, 0.224, 0.225))
    cfg.setdefault("input_size", (3, 224, 224))
    cfg.setdefault("crop_pct", 0.875)
    cfg.setdefault("interpolation", "bilinear")
    # where the 2D weights came from, and the 2D layer names (a saved config could claim others), stay out
    for field in ("url", "file", "hf_hub_id", "hf_hub_filename", "source", "state_dict", "classifier", "first_conv"):
        cfg.pop(field, None)
    cfg.update(architecture=INFLATED_ARCH, tag=None, source_2d=source or type(net).__name__, design=design.name,
               inflation=inflation, clip_len=None, frame_interval=None)
    return cfg


def create_inflated(source: str, pretrained: bool = False, *, design: Union[str, Design] = "i3d",
                    inflation: str = "center", pretrained_cfg_overlay: Optional[Dict[str, Any]] = None,
                    cache_dir=None, frozen_stages: int = -1, norm_eval: bool = False,
                    features_only: bool = False, out_indices=None, **kwargs: Any) -> nn.Module:
    """The model an ``inflate:LIBRARY/NAME`` name stands for (``create_model`` and timm's ``"inflate"`` entry).

    Args:
        source: ``"timm/NAME[.TAG]"`` or ``"torchvision/NAME[.WEIGHTS]"``.
        pretrained: the 2D network's weights, as its library gets them (timm: the Hub and its cache, hash-checked
            where timm knows a hash; torchvision: its hash-checked download); ``pretrained_cfg_overlay=dict(
            file=PATH)`` reads a local 2D copy instead.
        design, inflation: as :func:`inflate`.
        features_only, out_indices: the 5D feature maps (:class:`InflatedFeatures`; ``out_indices`` None: all).
        **kwargs: the 2D network's own arguments (timm: ``num_classes``, ``in_chans``, ``drop_rate``,
            ``drop_path_rate`` ...; torchvision: ``num_classes``).
    """
    library, name = split_source(source)
    design = design_named(design)
    check_inflation_mode(inflation)
    num_classes = kwargs.pop("num_classes", None)
    build = _timm_2d if library == "timm" else _torchvision_2d
    net = build(name, pretrained, pretrained_cfg_overlay, cache_dir, **kwargs)
    model = inflate(net, design, inflation, source=f"{library}/{name}", frozen_stages=frozen_stages,
                    norm_eval=norm_eval, in_chans=kwargs.get("in_chans"))
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    cfg = model.pretrained_cfg
    if pretrained and model.num_classes == 1000 and not cfg.get("label_names"):
        import torchvision  # ImageNet-1k's categories, in the order every 1000-class ImageNet head of timm and
        # torchvision uses

        cfg["label_names"] = list(torchvision.models.ResNet50_Weights.DEFAULT.meta["categories"])
    model.pretrained_cfg = model.default_cfg = dict(cfg, num_classes=model.num_classes)
    model.source_2d = {"library": library, "name": getattr(net, "source_weights", None) or f"{library}/{name}",
                       "pretrained": bool(pretrained)}
    if features_only:
        return InflatedFeatures(model, out_indices)
    return model


def _from_folder(source: str, pretrained: bool, cfg: Dict[str, Any], cache_dir, **kwargs: Any) -> nn.Module:
    """A saved inflated model (``hf-hub:`` / ``local-dir:``): rebuilt from its config, filled from its folder."""
    from ..weights.preinflated import check_inflation, read_preinflated

    model = create_inflated(source, pretrained=False, **kwargs)
    if pretrained:
        state_dict, info = read_preinflated(cfg, cache_dir=cache_dir)
        check_inflation(info, model)
        held = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        wrong = sorted(set(held) ^ set(state_dict)) + sorted(
            k for k in held if k in state_dict and tuple(state_dict[k].shape) != held[k])
        if wrong:
            raise ValueError(f"{info['source']}: model.safetensors does not fit {model.describe()}: keys missing, "
                             f"unexpected or misshaped: {', '.join(wrong[:10])}")
        model.load_state_dict(state_dict)
        model.source_2d = dict(info.get("source_2d") or {}, folder=info["source"])
    saved = {k: v for k, v in cfg.items() if k in ("label_names", "label_descriptions", "mean", "std", "input_size")}
    model.pretrained_cfg = model.default_cfg = dict(model.pretrained_cfg, **saved)
    return model


def _timm_entry(pretrained: bool = False, *, source: Optional[str] = None, pretrained_cfg=None,
                pretrained_cfg_overlay=None, cache_dir=None, pretrained_model_args=None, **kwargs: Any) -> nn.Module:
    """timm's ``"inflate"`` entry: ``timm.create_model("inflate", source="timm/NAME", design="i3d")``, and the
    architecture of saved inflated models (timm rebuilds them from ``config.json``)."""
    if source is None:
        raise ValueError("the 'inflate' model needs source='timm/NAME[.TAG]' or 'torchvision/NAME[.WEIGHTS]' (the 2D "
                         "network to inflate); i3zoo.create_model takes it as 'inflate:timm/NAME'")
    if isinstance(pretrained_cfg, dict) and pretrained_cfg.get("source") in ("hf-hub", "local-dir"):
        return _from_folder(source, pretrained, pretrained_cfg, cache_dir, **kwargs)
    return create_inflated(source, pretrained, pretrained_cfg_overlay=pretrained_cfg_overlay, cache_dir=cache_dir,
                           **kwargs)


_timm_entry.__name__ = _timm_entry.__qualname__ = INFLATED_ARCH
register_model(_timm_entry)
