"""The surface every i3zoo network shares (timm's: forward_features / forward_head / reset_classifier ...)."""

from __future__ import annotations

import contextlib
import difflib
import inspect
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..weights.inflate import check_inflation_mode
from ..weights.torchvision_imagenet import Torchvision2D
from ._builder import load_at_init
from .layers import LayerSpec, check_clip, min_input_size, temporal_padding_mode, total_stride

__all__ = ["I3DNet", "GLOBAL_POOLS"]

GLOBAL_POOLS = ("avg", "max")


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}; got {value!r}")
    return value


def _check_global_pool(global_pool: str) -> str:
    if global_pool not in GLOBAL_POOLS:
        raise ValueError(f"unknown global_pool {global_pool!r}; allowed: {', '.join(map(repr, GLOBAL_POOLS))}")
    return global_pool


class I3DNet(nn.Module):
    """Base of the inflated networks: arguments, construction-time inflation, input checks, head.

    Subclasses create their layers in ``_build`` (in torchvision's module names, setting ``num_features``
    and the classifier attribute named by ``classifier_name``) and give ``reduction_path()``: the layers
    that change the clip size, from which the minimum input and the reductions are derived.

    Args:
        pretrained: fill the network from the 2D ImageNet weights (named models such as I3ResNet50 only).
        inflation: ``"center"`` or ``"mean"``; also decides the temporal padding (zeros / replicate).
        num_classes: classifier outputs; other than 1000 keeps the inflated backbone and starts a fresh
            classifier; 0 leaves no classifier (``forward`` returns pooled features).
        in_chans: input channels; other than 3 adapts the first 2D kernel as timm does, then inflates it.
        drop_rate: dropout before the classifier.
        global_pool: ``"avg"`` (the 2D network's, keeps the equivalence) or ``"max"``, over T, H and W.
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
        self.grad_checkpointing = False
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

    def reduction_path(self) -> Sequence[LayerSpec]:
        raise NotImplementedError

    def _load_at_init(self, pretrained: bool, pretrained_cfg, pretrained_cfg_overlay, cache_dir) -> None:
        """Record the pretrained cfg (timm's ``model.pretrained_cfg``) and, if asked, inflate the 2D weights."""
        if not self.arch_name:
            self.pretrained_cfg = self.default_cfg = {}
            return
        self.pretrained_cfg = self.default_cfg = load_at_init(self, pretrained, pretrained_cfg,
                                                              pretrained_cfg_overlay, cache_dir)

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
            for module in self._frozen_modules():
                module.eval()
            if self.norm_eval:
                for module in self.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self

    # --- forward ---------------------------------------------------------------------------------------

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) clip -> (N, num_features, T', H', W') features; the clip is checked first."""
        self.check_clip(x)
        return self._features(x)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone without the input check (each family's)."""
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, num_features, T', H', W') features -> (N, num_classes) logits, or pooled (N, num_features)."""
        x = x.mean(dim=(2, 3, 4)) if self.global_pool == "avg" else x.amax(dim=(2, 3, 4))
        if self.drop_rate:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.get_classifier()(x)

    def check_clip(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` (``TypeError`` for a non-tensor) unless ``x`` is a clip this model accepts."""
        check_clip(x, model_name=type(self).__name__, in_chans=self.in_chans, min_size=self.min_input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) float clip -> (N, num_classes) logits (``forward_features`` checks the clip)."""
        return self.forward_head(self.forward_features(x))

    def _run_stages(self, x: torch.Tensor, stages: Sequence[nn.Module]) -> torch.Tensor:
        for stage in stages:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
        return x

    # --- timm surface ----------------------------------------------------------------------------------

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier by a freshly initialised one (``num_classes=0``: no classifier)."""
        self.num_classes = _check_count("num_classes", num_classes, 0)
        if global_pool is not None:
            self.global_pool = _check_global_pool(global_pool)
        head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        if num_classes and self.zero_classifier_bias:
            nn.init.zeros_(head.bias)
        setattr(self, self.classifier_name, head)

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
