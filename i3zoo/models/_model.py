"""The surface every i3zoo network shares: timm's model contract in 5D.

timm's (``timm/models/resnet.py`` is the model): ``forward_features`` / ``forward_head(pre_logits=)``,
``reset_classifier`` (``global_pool=''`` leaves the map unpooled, as timm allows only without a classifier),
``head_hidden_size``, ``forward_intermediates`` / ``prune_intermediate_layers`` (timm's feature API, behind
``features_only=True, feature_cls="getter"``), ``set_grad_checkpointing``, ``feature_info``, and a cfg
``pool_size`` that is the size of ``forward_features``' output at the cfg's input, here (T', H', W') at the clip
(``clip_len``, H, W). The backbone is the model's children in registration order (timm's ``FeatureListNet``
rule), split after each ``feature_info`` module, so the list, getter and FX feature paths see the same maps.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..weights.inflate import check_inflation_mode
from ..weights.torchvision_imagenet import Torchvision2D
from ._builder import load_at_init
from .layers import (
    LayerSpec,
    Triple,
    check_clip,
    hold_in_eval,
    min_input_size,
    size_after,
    take_feature_indices,
    temporal_padding_mode,
    total_stride,
)

__all__ = ["I3DNet", "GLOBAL_POOLS", "OUTPUT_FORMATS", "DEFAULT_CLIP_LEN"]

#: ``""``: no pooling, ``forward_head`` keeps the (N, C, T', H', W') map (only without a classifier, as timm)
GLOBAL_POOLS = ("avg", "max", "")
#: ``forward_intermediates``' layouts, both (N, C, T', H', W'): ``"NCTHW"`` names it (i3zoo's input layout);
#: ``"NCHW"`` is timm's name for channels-first maps, which its ``FeatureGetterNet`` passes (timm's ``Format``
#: enum has no 5D member)
OUTPUT_FORMATS = ("NCTHW", "NCHW")
#: the clip a cfg without ``clip_len`` stands for (its ``pool_size``): the zoo's default clip of 16 frames
DEFAULT_CLIP_LEN = 16

# torch.fx cannot trace into the input check (it branches on the shape): record it as one call in the graph,
# which then checks every input as the eager model does
torch.fx.wrap("check_clip")


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}; got {value!r}")
    return value


def _check_global_pool(global_pool: str) -> str:
    if global_pool not in GLOBAL_POOLS:
        raise ValueError(f"unknown global_pool {global_pool!r}; allowed: {', '.join(map(repr, GLOBAL_POOLS))} "
                         "('' for no pooling, with num_classes=0)")
    return global_pool


def _check_head(num_classes: int, global_pool: str) -> None:
    """timm's rule: pooling may be off only when there is no classifier (a linear layer takes pooled features)."""
    if num_classes and not global_pool:
        raise ValueError(f"global_pool='' (no pooling) needs num_classes=0: the classifier takes pooled features; "
                         f"got num_classes={num_classes}. Use global_pool='avg' or 'max' with a classifier")


class I3DNet(nn.Module):
    """Base of the inflated networks: arguments, construction-time inflation, input checks, head.

    Subclasses create their layers in ``_build`` (in torchvision's module names, setting ``num_features``,
    ``feature_info`` and the classifier attribute named by ``classifier_name``), registering the backbone's
    modules in the order the forward pass runs them (``backbone_modules``: ``forward_features`` runs them so),
    and give ``reduction_path()``: the layers that change the clip size, from which the minimum input, the
    reductions and the cfg's ``pool_size`` are derived.

    Args:
        pretrained: fill the network from the 2D ImageNet weights (named models such as I3ResNet50 only).
        inflation: ``"center"`` or ``"mean"``; also decides the temporal padding (zeros / replicate).
        num_classes: classifier outputs; other than 1000 keeps the inflated backbone and starts a fresh
            classifier; 0 leaves no classifier (``forward`` returns pooled features).
        in_chans: input channels; other than 3 adapts the first 2D kernel as timm does, then inflates it.
        drop_rate: dropout before the classifier.
        global_pool: ``"avg"`` (the 2D network's, keeps the equivalence) or ``"max"``, over T, H and W; ``""``
            (with ``num_classes=0``) keeps the unpooled (N, num_features, T', H', W') map.
        pretrained_cfg: a weight tag (``"tv2_in1k"``) or a timm ``PretrainedCfg`` / dict naming the source.
        pretrained_cfg_overlay: overrides of the source, e.g. ``dict(file="resnet50.pth")`` or
            ``dict(url="https://...")``.
        cache_dir: where downloads go, instead of torch.hub's checkpoint folder.
        frozen_stages: MMAction2's convention: ``-1`` (default) freezes nothing, ``0`` the stem, ``K`` the stem
            and the first K stages (``stage_modules()``): their parameters get no gradient and their layers stay
            in eval mode (BatchNorm statistics do not move), even after ``model.train()``.
        norm_eval: keep every BatchNorm in eval mode in training (running statistics used, never updated), as
            MMAction2's ``norm_eval``; the affine parameters still learn unless frozen.
        **architecture: the family's own hyper-parameters (``block_counts`` / ``growth_rate`` ...).
    """

    classifier_name: str = "fc"
    #: the first convolution (``in_chans`` adapts its 2D kernel); also the cfg's ``first_conv``
    first_conv_name: str = "conv1"
    #: whether timm's FeatureListNet must look inside top-level Sequentials to find feature_info's modules
    feature_flatten_sequential: bool = False
    #: torchvision starts DenseNet classifiers with a zero bias, ResNet ones with nn.Linear's default
    zero_classifier_bias: bool = False
    #: registered name (``i3resnet50``) of a named class; empty for the generic family classes. The named classes
    #: and the attributes below are set from the family's variant table (``_declare.declare``)
    arch_name: str = ""
    #: one line on what a named model is (its variant's title: docstrings, hub help)
    title: str = ""
    #: the torchvision 2D network the weights come from (``network_2d.arch`` is its ``get_model`` name)
    network_2d: Optional[Torchvision2D] = None
    torchvision_arch: str = ""
    #: the model card template of the family (``weights/card_templates/<name>.md``)
    card_template: str = ""
    #: (convolution, BatchNorm) child names, relative to any module, where the BatchNorm normalises that
    #: convolution's output: what ``optimize_for_inference`` folds
    conv_bn_pairs: Tuple[Tuple[str, str], ...] = ()

    def __init__(
        self,
        *,
        pretrained: bool = False,
        inflation: str = "center",
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
        pretrained_cfg=None,
        pretrained_cfg_overlay=None,
        cache_dir=None,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        **architecture: Any,
    ) -> None:
        super().__init__()
        if pretrained and not self.arch_name:
            raise ValueError(f"pretrained=True needs a named model such as I3ResNet50, not {type(self).__name__}")
        self.inflation = check_inflation_mode(inflation)
        self.temporal_padding = temporal_padding_mode(inflation)
        self.num_classes = _check_count("num_classes", num_classes, 0)
        self.in_chans = _check_count("in_chans", in_chans, 1)
        if not 0.0 <= float(drop_rate) < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1); got {drop_rate!r}")
        self.drop_rate = float(drop_rate)
        self.global_pool = _check_global_pool(global_pool)
        _check_head(self.num_classes, self.global_pool)
        self.grad_checkpointing = False
        #: the last feature_info index prune_intermediate_layers kept (None: nothing pruned)
        self.pruned_after: Optional[int] = None
        self._check_architecture_args(architecture)
        # built on the meta device when the weights will be loaded anyway: no wasted random initialisation
        with torch.device("meta") if pretrained else contextlib.nullcontext():
            self._build(**architecture)
        self._finish_init()
        self._load_at_init(pretrained, pretrained_cfg, pretrained_cfg_overlay, cache_dir)
        self.set_frozen_stages(frozen_stages)
        if not isinstance(norm_eval, bool):
            raise ValueError(f"norm_eval must be True or False; got {norm_eval!r}")
        self.norm_eval = norm_eval
        self.train(self.training)

    def _check_architecture_args(self, architecture: Dict[str, Any]) -> None:
        """A misspelt keyword (``num_class=10``) is an error naming the close match, not a deep TypeError."""
        family = [n for n in inspect.signature(self._build).parameters if n != "self"]
        unknown = sorted(set(architecture) - set(family))
        if unknown:
            known = sorted(set(family) | {n for n in inspect.signature(I3DNet.__init__).parameters
                                          if n not in ("self", "architecture")})
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise TypeError(f"unknown argument {unknown[0]!r} for {type(self).__name__}{hint} Arguments: "
                            + ", ".join(known))

    def _build(self, **architecture: Any) -> None:
        """Create the layers (in torchvision's names), ``num_features``, the classifier and ``feature_info``."""
        raise NotImplementedError

    def _finish_init(self) -> None:
        path = self.reduction_path()
        #: smallest accepted clip, (T, H, W)
        self.min_input_size = min_input_size(path)
        #: how much the backbone shrinks time and space, e.g. 16 and 32 for an I3ResNet
        self.temporal_reduction, spatial, _ = total_stride(path)
        self.spatial_reduction = spatial
        self._check_feature_modules()

    def reduction_path(self) -> Sequence[LayerSpec]:
        raise NotImplementedError

    def _load_at_init(self, pretrained: bool, pretrained_cfg, pretrained_cfg_overlay, cache_dir) -> None:
        """Record the pretrained cfg (timm's ``model.pretrained_cfg``) and, if asked, inflate the 2D weights."""
        if not self.arch_name:
            self.pretrained_cfg = self.default_cfg = {}
            return
        self.pretrained_cfg = self.default_cfg = load_at_init(self, pretrained, pretrained_cfg,
                                                              pretrained_cfg_overlay, cache_dir)
        self.pretrained_cfg["pool_size"] = self._pool_size(self.pretrained_cfg)

    def _pool_size(self, cfg: Dict[str, Any]) -> Triple:
        """timm's ``pool_size`` in 5D: (T', H', W') of ``forward_features`` at the cfg's clip, (``clip_len`` or
        ``DEFAULT_CLIP_LEN``, H, W of ``input_size``); derived from the design, the same rule for every tag."""
        clip = (cfg.get("clip_len") or DEFAULT_CLIP_LEN, *cfg["input_size"][1:])
        return self.feature_map_size(clip)

    # --- training conventions (MMAction2's frozen_stages / norm_eval) -----------------------------------

    def stage_modules(self) -> List[List[nn.Module]]:
        """The modules ``frozen_stages`` counts: ``[stem modules], [stage 1 modules], ...`` (each family's)."""
        raise NotImplementedError

    def set_frozen_stages(self, frozen_stages: int) -> None:
        """Freeze the stem and the first ``frozen_stages`` stages (``-1``: nothing); see the class docstring.

        Freezing is one-way: parameters frozen earlier stay frozen (build a new model to unfreeze).
        """
        groups = self.stage_modules()
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) \
                or not -1 <= frozen_stages < len(groups):
            raise ValueError(f"frozen_stages must be an integer from -1 (nothing frozen) to {len(groups) - 1} "
                             f"(the stem and all {len(groups) - 1} stages of {type(self).__name__}); "
                             f"got {frozen_stages!r}")
        self.frozen_stages = frozen_stages
        for module in self._frozen_modules():
            for parameter in module.parameters():
                parameter.requires_grad_(False)
        self.train(self.training)

    def _frozen_modules(self) -> List[nn.Module]:
        return [m for group in self.stage_modules()[:self.frozen_stages + 1] for m in group]

    def train(self, mode: bool = True) -> "I3DNet":
        """``nn.Module.train``, then frozen stages (and, with ``norm_eval``, every BatchNorm) back to eval."""
        super().train(mode)
        if mode and hasattr(self, "norm_eval"):
            hold_in_eval(self, self._frozen_modules(), self.norm_eval)
        return self

    # --- forward ---------------------------------------------------------------------------------------

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) clip -> (N, num_features, T', H', W') features; the clip is checked first."""
        return self._features(self.check_clip(x))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone without the input check."""
        return self._run_backbone(x)[0]

    def _features_end(self, x: torch.Tensor) -> torch.Tensor:
        """What the backbone does after its last module (a family's; DenseNet's final ReLU)."""
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, num_features, T', H', W') features -> (N, num_classes) logits, or pooled (N, num_features);
        with ``global_pool=''`` (and no classifier) the map itself."""
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3, 4))
        elif self.global_pool == "max":
            x = x.amax(dim=(2, 3, 4))
        if self.drop_rate:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.get_classifier()(x)

    def check_clip(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` if it is a clip this model accepts; ``ValueError`` (``TypeError`` for a non-tensor) otherwise."""
        return check_clip(x, model_name=type(self).__name__, in_chans=self.in_chans, min_size=self.min_input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) float clip -> (N, num_classes) logits (``forward_features`` checks the clip)."""
        return self.forward_head(self.forward_features(x))

    def feature_map_size(self, clip: Sequence[int]) -> Triple:
        """(T', H', W') of ``forward_features``' output for a (T, H, W) clip, from the design's reduction path."""
        size = size_after(self.reduction_path(), clip)
        if min(size) < 1:
            minimum = "x".join(map(str, self.min_input_size))
            raise ValueError(f"{type(self).__name__} gives no features for a {'x'.join(map(str, clip))} clip "
                             f"(T x H x W); its minimum clip is {minimum}")
        return size

    # --- the backbone as feature stages ----------------------------------------------------------------

    def backbone_modules(self) -> List[str]:
        """Qualified names of the backbone's modules in the order ``forward_features`` runs them.

        timm's ``FeatureListNet`` rule, which the families keep (layers registered in the order of the forward
        pass): the children but the classifier, a top-level ``nn.Sequential`` opened when
        ``feature_flatten_sequential`` (DenseNet's ``features``).
        """
        names = []
        for name, module in self.named_children():
            if name == self.classifier_name:
                continue
            if self.feature_flatten_sequential and isinstance(module, nn.Sequential):
                names += [f"{name}.{child}" for child in module._modules]
            else:
                names.append(name)
        return names

    def feature_stages(self) -> List[List[str]]:
        """``backbone_modules()`` cut after each ``feature_info`` module: stage i ends with feature i's module,
        and a last stage holds what follows the last feature (usually nothing)."""
        names, stages, start = self.backbone_modules(), [], 0
        for info in self.feature_info:
            end = names.index(info["module"]) + 1
            stages.append(names[start:end])
            start = end
        return stages + [names[start:]]

    def _check_feature_modules(self) -> None:
        names = self.backbone_modules()
        modules = [info["module"] for info in self.feature_info]
        if not all(m in names for m in modules) or sorted(modules, key=names.index) != modules:
            raise RuntimeError(f"{type(self).__name__}.feature_info modules {modules} are not backbone modules in "
                               f"forward order: {names}")

    def _run_backbone(self, x: torch.Tensor, take: Collection[int] = (), last: Optional[int] = None
                      ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Run the backbone, keeping the maps of the ``feature_info`` indices in ``take``; stop after feature
        ``last`` (None: run everything, then ``_features_end``). The stem (stage 0) is never checkpointed."""
        intermediates = []
        for index, stage in enumerate(self.feature_stages()):
            for name in stage:
                module = self.get_submodule(name)
                if index and self.grad_checkpointing and torch.is_grad_enabled():
                    x = checkpoint(module, x, use_reentrant=False)
                else:
                    x = module(x)
            if index in take:
                intermediates.append(x)
            if index == last:
                return x, intermediates
        return (x if self.pruned_after is not None else self._features_end(x)), intermediates

    # --- timm surface ----------------------------------------------------------------------------------

    @property
    def head_hidden_size(self) -> int:
        """Width of ``forward_head(pre_logits=True)``: ``num_features`` (the heads have no hidden layer)."""
        return self.num_features

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier by a freshly initialised one (``num_classes=0``: no classifier) on the device and
        in the dtype of the backbone, as timm's; ``global_pool`` (kept if None) may be ``''`` only without one."""
        num_classes = _check_count("num_classes", num_classes, 0)
        global_pool = self.global_pool if global_pool is None else _check_global_pool(global_pool)
        _check_head(num_classes, global_pool)
        self.num_classes, self.global_pool = num_classes, global_pool
        like = self.get_submodule(self.first_conv_name).weight
        head = nn.Linear(self.num_features, num_classes, device=like.device, dtype=like.dtype) if num_classes \
            else nn.Identity()
        if num_classes and self.zero_classifier_bias:
            nn.init.zeros_(head.bias)
        setattr(self, self.classifier_name, head)

    def _take_indices(self, indices: Union[None, int, Sequence[int]]) -> Tuple[List[int], int]:
        """timm's ``feature_take_indices`` (None: all, n: the last n, a sequence: those, negative from the end),
        with a ``ValueError`` naming what is allowed instead of an assertion."""
        return take_feature_indices(indices, len(self.feature_info))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Union[None, int, Sequence[int]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCTHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """timm's feature API: ``forward_features`` and the maps of the ``feature_info`` entries ``indices``.

        Args:
            x: (N, C, T, H, W) clip, checked as ``forward`` checks it.
            indices: None (every ``feature_info`` entry), n (the last n) or a sequence of indices.
            norm: timm's "apply the final norm to the intermediates"; these networks have no norm outside the
                features (DenseNet's ``norm5`` is its last feature), so it changes nothing.
            stop_early: stop after the last map asked for (the final output is then that map).
            output_fmt: ``"NCTHW"`` or timm's ``"NCHW"``: both give channels-first (N, C_i, T_i, H_i, W_i) maps.
            intermediates_only: return the maps only (the backbone then stops after the last one).

        Returns:
            ``(features, maps)``, or ``maps`` with ``intermediates_only``.
        """
        if output_fmt not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output_fmt {output_fmt!r}; allowed: {', '.join(map(repr, OUTPUT_FORMATS))} "
                             "(both channels-first, (N, C, T, H, W))")
        take, last = self._take_indices(indices)
        x, intermediates = self._run_backbone(self.check_clip(x), take,
                                              last if stop_early or intermediates_only else None)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(self, indices: Union[None, int, Sequence[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop what ``forward_intermediates(indices=indices)`` does not need (timm's API): the modules after the
        last feature asked for become ``nn.Identity`` and, if that is not the last feature, ``num_features``
        becomes its width and the classifier and pooling go; ``prune_head`` drops them anyway. ``prune_norm`` has
        nothing to drop here (no norm outside the features). ``min_input_size`` is kept (a pruned network may
        take smaller clips). Returns the absolute indices kept."""
        take, last = self._take_indices(indices)
        if last < len(self.feature_info) - 1:
            for stage in self.feature_stages()[last + 1:]:
                for name in stage:
                    self.set_submodule(name, nn.Identity())
            self.pruned_after = last
            self.num_features = self.feature_info[last]["num_chs"]
        if prune_head or self.pruned_after is not None:
            self.reset_classifier(0, "")
        return take

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def video_facts(self) -> Dict[str, Any]:
        """What a user of a video model needs to know: layout, minimum clip, reductions, inflation mode."""
        return {
            "input_layout": "NCTHW",
            "min_input_size": list(self.min_input_size),
            "temporal_reduction": self.temporal_reduction,
            "spatial_reduction": self.spatial_reduction,
            "inflation": self.inflation,
            "temporal_padding": self.temporal_padding,
        }
