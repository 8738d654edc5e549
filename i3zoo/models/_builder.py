"""From a registered name to a filled 3D model: pretrained cfgs, construction-time inflation, features_only.

timm's registry, ``PretrainedCfg``, ``resolve_pretrained_cfg``, ``adapt_input_conv`` and ``FeatureListNet``
serve 5D models as they are and are used directly. ``build_model_with_cfg``/``load_pretrained`` are not:
they load a state dict *into* the built model (ours must be inflated from a 2D one first, at construction,
so that ``I3ResNet50(pretrained=True)`` works without a factory) and adapt heads and input convolutions in
2D only.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from timm.models import FeatureListNet, PretrainedCfg, adapt_input_conv, get_pretrained_cfg
from timm.models._builder import pretrained_cfg_for_features, resolve_pretrained_cfg
from timm.models._features import FeatureGetterNet
from timm.models._features_fx import FeatureGraphNet
from torch import nn

from ..registry import arch_tags
from ..weights.checkpoints import CheckpointError, check_state_dict, fetch_checkpoint, public_url, read_state_dict
from ..weights.config import MODEL_ARGS
from ..weights.inflate import CheckpointMismatchError, inflate_state_dict
from ..weights.published import PUBLISHED
from ..weights.pytorchvideo import convert_pytorchvideo_state_dict, is_pytorchvideo_state_dict
from .layers import check_clip

__all__ = ["pretrained_cfg_from_torchvision", "resolve_cfg", "load_inflated_pretrained", "create_registered",
           "wrap_features", "CLIP_CONVENTIONS"]

#: ``arch.tag`` -> clip keys (``clip_len``, ``frame_interval``) added to its pretrained cfg dict: timm's
#: ``PretrainedCfg`` has no field for them (it is 2D), so they are kept here and merged in ``resolve_cfg``
CLIP_CONVENTIONS: Dict[str, Dict[str, int]] = {}

_logger = logging.getLogger(__name__)


def pretrained_cfg_from_torchvision(weights, *, classifier: str, first_conv: str) -> Dict[str, Any]:
    """A timm pretrained cfg whose 2D source is a torchvision ``WeightsEnum`` entry (its URL carries the hash)."""
    meta, sizes = weights.meta, weights.transforms.keywords
    return dict(
        url=weights.url,
        num_classes=len(meta["categories"]),
        input_size=(3, 224, 224),
        crop_pct=sizes.get("crop_size", 224) / sizes.get("resize_size", 256),
        interpolation="bilinear",
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        first_conv=first_conv,
        classifier=classifier,
        license="bsd-3-clause",
        origin_url=meta["recipe"],
        notes=(f"2D source: torchvision {weights} (ImageNet-1k top-1 {meta['_metrics']['ImageNet-1K']['acc@1']})",),
    )


def resolve_cfg(arch_name: str, pretrained_cfg=None, pretrained_cfg_overlay=None) -> Dict[str, Any]:
    """The pretrained cfg for ``arch_name`` with an optional tag or cfg and overlay, as a dict.

    An unknown tag gets a ``ValueError`` listing the known ones (timm raises a bare RuntimeError).
    """
    if isinstance(pretrained_cfg, str):
        tags = arch_tags(arch_name)
        if pretrained_cfg not in tags:
            raise ValueError(
                f"unknown pretrained tag {pretrained_cfg!r} for {arch_name}; known tags: {', '.join(tags)}"
            )
    if isinstance(pretrained_cfg, dict):  # e.g. read back from a saved config.json: drop the video-only keys
        pretrained_cfg = {k: v for k, v in pretrained_cfg.items() if k in PretrainedCfg.__dataclass_fields__}
    # timm's cfg dataclass deep-copies every field: an in-memory state dict would be copied twice per model
    state_dict = (pretrained_cfg_overlay or {}).get("state_dict")
    if state_dict is not None:
        pretrained_cfg_overlay = {k: v for k, v in pretrained_cfg_overlay.items() if k != "state_dict"}
    cfg = resolve_pretrained_cfg(arch_name, pretrained_cfg, pretrained_cfg_overlay).to_dict()
    if state_dict is not None:
        cfg["state_dict"] = state_dict
    return dict(cfg, **CLIP_CONVENTIONS.get(f"{cfg.get('architecture')}.{cfg.get('tag')}", {}))


def load_2d_state_dict(pretrained_cfg: Dict[str, Any], *, cache_dir=None) -> Tuple[Dict[str, torch.Tensor], Dict]:
    """Read the 2D weights a cfg points at (an in-memory ``state_dict``, a ``file`` or a ``url``).

    Returns the state dict and a record of its source: ``url`` (without its query string, which may carry
    credentials) or file ``name`` (never a local path, which would leak into exported configs) and the local
    path under the private key ``_path``. Its sha256 is computed only when an export records it, not on every
    construction.
    """
    if pretrained_cfg.get("state_dict") is not None:
        state_dict = check_state_dict(pretrained_cfg["state_dict"], "the state_dict in pretrained_cfg_overlay")
        return state_dict, {"kind": "state_dict"}
    if pretrained_cfg.get("file"):
        path = Path(pretrained_cfg["file"])
        state_dict = read_state_dict(path)
        return state_dict, {"kind": "file", "name": path.name, "_path": str(path)}
    if pretrained_cfg.get("url"):
        path = fetch_checkpoint(pretrained_cfg["url"], cache_dir=cache_dir)
        return read_state_dict(path), {"kind": "url", "url": public_url(pretrained_cfg["url"]), "_path": str(path)}
    raise ValueError(
        f"no 2D weights are known for {pretrained_cfg.get('architecture')!r}: give "
        "pretrained_cfg_overlay=dict(file=PATH) or dict(url=URL)"
    )


def _classes_in(state_dict: Dict[str, torch.Tensor], classifier: str) -> int:
    """How many classes the weights' classifier has (0: they hold none)."""
    weight = state_dict.get(f"{classifier}.weight")
    return int(weight.shape[0]) if weight is not None and weight.dim() >= 1 else 0


def _check_kinds(model: nn.Module, model_state: Dict[str, torch.Tensor], state_dict: Dict[str, torch.Tensor],
                 source: str) -> None:
    """Refuse integer, boolean or complex tensors where the model holds floating point (and the reverse)."""
    wrong = [f"{k}: checkpoint {v.dtype}, model {model_state[k].dtype}" for k, v in state_dict.items()
             if k in model_state and (v.is_complex() or v.is_floating_point() != model_state[k].is_floating_point())]
    if wrong:
        raise CheckpointMismatchError(
            f"{source} cannot fill {type(model).__name__}: tensors of the wrong kind (integer, boolean or complex "
            f"where the model has real floating point, or the reverse) ({len(wrong)}): " + "; ".join(wrong[:10])
        )


def fill_model(model: nn.Module, state_dict: Dict[str, torch.Tensor], pretrained_cfg: Dict[str, Any],
               *, source: str) -> None:
    """Load a 2D state dict (inflated on the way) or a pre-inflated 3D one into ``model``, strictly.

    ``in_chans != 3`` adapts a 2D first kernel as timm does before inflating it; a ``num_classes`` other than
    the classifier's in the weights keeps the model's classifier freshly initialised. ``source`` names the
    weights in errors.
    """
    model_state = model.state_dict()
    if model.ignored_2d_keys is not None:  # named by the model, e.g. GoogLeNet's auxiliary classifiers
        state_dict = {k: v for k, v in state_dict.items() if not model.ignored_2d_keys.match(k)}
    _check_kinds(model, model_state, state_dict, source)
    # inflate in the model's precision: W / t of a float32 kernel is exact to float64's last digit only if the
    # division happens in float64 (a model built under torch.set_default_dtype(torch.float64))
    dtype = next(model.parameters()).dtype
    state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    # the model's own layer names, never a (possibly tampered) config's
    first_conv, classifier = model.first_conv_name, model.classifier_name
    first_kernel = state_dict.get(f"{first_conv}.weight")
    if first_kernel is not None and first_kernel.dim() in (4, 5) and first_kernel.shape[1] == 3 != model.in_chans:
        # RGB weights (2D, or trained 3D ones such as Kinetics) for other channels: timm's rule acts on the
        # channel axis alone, so a 3D kernel is adapted with its (T, H, W) taps flattened into timm's (H, W)
        adapted = adapt_input_conv(model.in_chans, first_kernel.flatten(3))
        state_dict[f"{first_conv}.weight"] = adapted.unflatten(3, first_kernel.shape[3:])
    target = {k: v.shape for k, v in model_state.items()}
    # a classifier is kept when the weights have one of the model's size (a fine-tuned 2D checkpoint keeps its
    # head); the count is read from the weights, not from a cfg that could claim another
    fresh_head = model.num_classes != _classes_in(state_dict, classifier)
    if fresh_head:
        is_head = lambda key: key.startswith(classifier + ".")  # noqa: E731
        state_dict = {k: v for k, v in state_dict.items() if not is_head(k)}
        target = {k: v for k, v in target.items() if not is_head(k)}
    try:
        # for pre-inflated weights every shape already fits: this is then a strict, named copy
        inflated = inflate_state_dict(state_dict, target, model.inflation)
    except CheckpointMismatchError as e:
        raise CheckpointMismatchError(f"{source} cannot fill {type(model).__name__}: {e}") from None
    # tensors copied unchanged may be views into a memory-mapped file, at addresses that are not 64-byte
    # aligned (safetensors); fresh copies are owned and aligned, which also keeps oneDNN's kernel choice,
    # and so the outputs, identical to a model filled any other way
    inflated = {k: v.clone() if v is state_dict.get(k) else v for k, v in inflated.items()}
    on_meta = any(p.is_meta for p in model.parameters())
    # assign=True: a model built on the meta device takes these tensors as its parameters, nothing is copied
    missing, unexpected = model.load_state_dict(inflated, strict=False, assign=on_meta)
    # inflate_state_dict covered every key of `target`, so only a fresh head can be missing
    if unexpected or any(not k.startswith(classifier + ".") for k in missing):
        raise RuntimeError(f"internal error: loading left keys missing {missing} / unexpected {unexpected}")
    if fresh_head:
        model.reset_classifier(model.num_classes)  # a fresh, really initialised classifier (never on meta)


def _registered_source_overridden(pretrained_cfg: Dict[str, Any]) -> bool:
    registered = get_pretrained_cfg(f"{pretrained_cfg.get('architecture')}.{pretrained_cfg.get('tag')}")
    return bool(pretrained_cfg.get("file") or pretrained_cfg.get("state_dict") is not None
                or registered is None or pretrained_cfg.get("url") != registered.url)


def load_inflated_pretrained(model: nn.Module, pretrained_cfg: Dict[str, Any], *, cache_dir=None) -> None:
    """Fill ``model`` (an ``I3DNet``) with the weights ``pretrained_cfg`` names.

    In order: pre-inflated weights named by the cfg (``hf-hub:`` / ``local-dir:`` models); a published Hub
    copy of a registered tag (if the Hub answers; otherwise, saying so, ...); the 2D source, inflated.
    """
    from ..weights import hub

    if pretrained_cfg.get("source") in ("hf-hub", "local-dir"):
        state_dict, info = hub.read_preinflated(pretrained_cfg, cache_dir=cache_dir)
        hub.check_inflation(info, model)
        held = _classes_in(state_dict, model.classifier_name)
        if info.get("num_classes") is not None and info["num_classes"] != held:
            raise CheckpointError(f"{info['source']}: config.json says {info['num_classes']} classes, but the "
                                  f"classifier in {hub.WEIGHTS_NAME} has {held}")
        fill_model(model, state_dict, pretrained_cfg, source=info["source"])
        model.source_2d = info.get("source_2d") or {}
        return
    name = f"{pretrained_cfg.get('architecture')}.{pretrained_cfg.get('tag')}"
    published = PUBLISHED.get(name)
    if published and published.inflation == model.inflation and not _registered_source_overridden(pretrained_cfg):
        loaded = hub.read_published(name, published, cache_dir=cache_dir)
        if loaded is not None:
            state_dict, info = loaded
            fill_model(model, state_dict, pretrained_cfg, source=info["source"])
            model.source_2d = info.get("source_2d") or {}
            return
    state_dict, source_2d = load_2d_state_dict(pretrained_cfg, cache_dir=cache_dir)
    source = source_2d.get("url") or pretrained_cfg.get("file") or "the given state dict"
    if is_pytorchvideo_state_dict(state_dict):  # trained 3D weights: renamed strictly, never inflated
        state_dict, pretrained_cfg = _from_pytorchvideo(model, state_dict, pretrained_cfg, source)
        # no 2D file to measure the boring-video equivalence against (`_path` names one for save_pretrained)
        source_2d = {k: v for k, v in source_2d.items() if k != "_path"}
    fill_model(model, state_dict, pretrained_cfg, source=source)
    model.source_2d = dict(source_2d, tag=pretrained_cfg.get("tag"))
    _logger.info("inflated %s (%s mode) from %s", name, model.inflation, source)


class VideoFeatureListNet(FeatureListNet):
    """timm's ``FeatureListNet`` over an i3zoo model, checking the clip as the model's ``forward`` does.

    ``flatten_sequential`` defaults to the model's own ``feature_flatten_sequential``; ``kwargs`` are
    ``FeatureListNet``'s.
    """

    def __init__(self, model: nn.Module, out_indices, flatten_sequential: Optional[bool] = None, **kwargs) -> None:
        if flatten_sequential is None:
            flatten_sequential = model.feature_flatten_sequential
        super().__init__(model, out_indices=out_indices, flatten_sequential=flatten_sequential, **kwargs)
        self.clip_check = dict(model_name=type(model).__name__, in_chans=model.in_chans,
                               min_size=tuple(model.min_input_size))

    def forward(self, x: torch.Tensor):
        return super().forward(check_clip(x, **self.clip_check))


#: ``feature_cls`` -> the wrapper of a ``features_only`` model (timm's names and classes). Each path checks the
#: clip: the list in its ``forward``, the getter in the model's ``forward_intermediates``, the FX graph in its
#: traced ``check_clip`` call.
FEATURE_CLASSES = {"list": VideoFeatureListNet, "getter": FeatureGetterNet, "fx": FeatureGraphNet}


def _wrapper_arguments(cls: type) -> List[str]:
    """The keyword arguments a feature wrapper class takes besides the model and ``out_indices``."""
    names = []
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and not klass.__module__.startswith("torch."):  # not ModuleDict's
            names += [n for n, p in inspect.signature(klass.__init__).parameters.items()
                      if n not in ("self", "model", "out_indices", *names)
                      and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names


def _stage_indices(out_indices, stages: int) -> Tuple[int, ...]:
    """``out_indices`` as timm takes them (n: the last n features; a sequence: those), checked."""
    if isinstance(out_indices, int) and not isinstance(out_indices, bool) and 1 <= out_indices <= stages:
        return tuple(range(stages - out_indices, stages))
    if isinstance(out_indices, (tuple, list)) and out_indices and all(
            isinstance(i, int) and not isinstance(i, bool) and -stages <= i < stages for i in out_indices):
        return tuple(out_indices)
    raise ValueError(f"out_indices must be stage indices in range({stages}) (negative: from the end) or a count "
                     f"of last stages from 1 to {stages}; got {out_indices!r}")


def wrap_features(model: nn.Module, feature_cls: Optional[str] = "list", out_indices=(0, 1, 2, 3, 4),
                  **feature_cfg: Any) -> nn.Module:
    """``model`` as a ``features_only`` extractor: timm's ``FeatureListNet`` (``"list"``, the default),
    ``FeatureGetterNet`` (``"getter"``: ``forward_intermediates``, the model pruned after the last feature) or
    ``FeatureGraphNet`` (``"fx"``: a torch.fx graph); each returns one 5D map per ``out_indices`` entry.
    ``feature_cfg``: further keyword arguments of the wrapper class (``output_fmt``, ``return_dict`` ...)."""
    feature_cls = "list" if feature_cls is None else feature_cls
    if feature_cls not in FEATURE_CLASSES:
        raise ValueError(f"unknown feature_cls {feature_cls!r}; allowed: {', '.join(map(repr, FEATURE_CLASSES))}")
    wrapper = FEATURE_CLASSES[feature_cls]
    allowed = _wrapper_arguments(wrapper)
    unknown = sorted(set(feature_cfg) - set(allowed))
    if unknown:
        raise ValueError(f"unknown feature_cfg key {unknown[0]!r} for feature_cls={feature_cls!r}; allowed: "
                         + ", ".join(["feature_cls", "out_indices", *allowed]))
    pretrained_cfg = model.pretrained_cfg
    wrapped = wrapper(model, _stage_indices(out_indices, len(model.feature_info)), **feature_cfg)
    wrapped.pretrained_cfg = wrapped.default_cfg = pretrained_cfg_for_features(pretrained_cfg)
    return wrapped


def _from_pytorchvideo(model: nn.Module, state_dict, pretrained_cfg: Dict[str, Any], source: str):
    """A PyTorchVideo checkpoint in ``model``'s names, and the cfg with the checkpoint's class count (a model
    with another ``num_classes`` keeps the backbone and starts a fresh classifier, as for 2D sources)."""
    if model.temporal_padding != "zeros":
        raise ValueError(f"{source} holds PyTorchVideo weights, trained with zero temporal padding; "
                         f"inflation={model.inflation!r} would pad by repeating frames. Use inflation='center'")
    classifier = model.classifier_name
    target = {k: v.shape for k, v in model.state_dict().items() if not k.startswith(classifier + ".")}
    first = f"{model.first_conv_name}.weight"
    if model.in_chans != 3:  # the checkpoint's stem takes RGB; fill_model adapts it to in_chans afterwards
        target[first] = torch.Size((target[first][0], 3, *target[first][2:]))
    rows = next((v.shape[0] for k, v in state_dict.items() if k.endswith(".proj.bias")), 0)
    target.update({f"{classifier}.weight": (rows, model.num_features), f"{classifier}.bias": (rows,)})
    try:
        state_dict = convert_pytorchvideo_state_dict(state_dict, target)
    except CheckpointMismatchError as e:
        raise CheckpointMismatchError(f"{source} cannot fill {type(model).__name__}: {e}") from None
    return state_dict, dict(pretrained_cfg, num_classes=rows)


def create_registered(model_cls, pretrained: bool = False, **kwargs) -> nn.Module:
    """Entry point behind every registered name: builds ``model_cls``, optionally as a timm feature extractor.

    ``features_only=True`` (with ``out_indices``, ``feature_cls`` and ``feature_cfg`` as timm's
    ``build_model_with_cfg`` takes them) wraps the model with :func:`wrap_features`; its features are 5D,
    (N, C, T', H', W').
    """
    feature_cfg = dict(kwargs.pop("feature_cfg", None) or {})
    features_only = kwargs.pop("features_only", False)
    for key in ("out_indices", "feature_cls"):
        if key in kwargs:
            feature_cfg[key] = kwargs.pop(key)
    saved_args = kwargs.pop("pretrained_model_args", None) or {}  # a hf-hub: / local-dir: config's model_args
    unknown = sorted(set(saved_args) - set(MODEL_ARGS))
    if unknown:  # timm has already merged them into kwargs: refuse before anything is built from them
        raise CheckpointError(f"config.json field 'model_args.{unknown[0]}' is not a constructor argument i3zoo "
                              f"restores; allowed: {', '.join(MODEL_ARGS)}")
    if "num_classes" not in kwargs:  # as timm: the weights' class count unless told otherwise (400 for Kinetics)
        cfg = resolve_cfg(model_cls.arch_name, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay"))
        kwargs["num_classes"] = cfg.get("num_classes") or 1000
    model = model_cls(pretrained=pretrained, **kwargs)
    return wrap_features(model, **feature_cfg) if features_only else model
