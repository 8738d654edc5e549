"""Weight sources: where a tag's weights come from, how their state dict becomes a model's, what the cfg says.

A registered tag (``i3resnet50.tv_in1k``) names its source in its pretrained cfg (``weights_source``, a field of
:class:`VideoCfg`, timm's ``PretrainedCfg`` with the video conventions it lacks); a pre-inflated folder
(``hf-hub:`` / ``local-dir:``, which timm marks with ``source``) is read by the ``preinflated`` source. Each kind
of weights is one module with one :class:`WeightSource` subclass that registers itself here by its ``kind``:

* ``torchvision_imagenet`` -- torchvision's 2D ImageNet weights, inflated;
* ``pytorchvideo`` -- PyTorchVideo's Kinetics-400 checkpoints, renamed (trained 3D weights, not inflated);
* ``preinflated`` -- ``save_pretrained`` folders on the Hub or on disk, and published Hub copies of tags.

Loading dispatches on what the cfg says, never on the keys of a file or on its URL. Whatever the source, the
last step is the same strict fill (:func:`fill_model`): every model key filled once, exact shapes, errors naming
the keys. As in timm's ``build_model_with_cfg``, the builder only resolves the cfg and calls
:func:`load_pretrained`; it does not know the sources.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Type

import torch
from timm.models import PretrainedCfg, adapt_input_conv
from torch import nn

from .checkpoints import check_state_dict, fetch_checkpoint, public_url, read_state_dict
from .inflate import CheckpointMismatchError, inflate_state_dict

__all__ = ["VideoCfg", "WeightSource", "register_source", "source_kinds", "source_named",
           "source_for", "source_of_tag", "load_pretrained", "fill_model", "read_2d_state_dict", "classes_in"]

_logger = logging.getLogger(__name__)


@dataclass
class VideoCfg(PretrainedCfg):
    """timm's ``PretrainedCfg`` with what a video tag adds: which source reads its weights, and the clips they were
    trained with (None for weights that never saw a clip, such as ImageNet's)."""

    weights_source: Optional[str] = None  # the WeightSource kind that reads these weights
    #: constructor arguments these weights are computed with (e.g. a port's padding rule, ``in_chans=2`` for flow):
    #: ``create_model`` passes them unless the caller gives them; the source refuses a model built otherwise
    model_args: Optional[Dict[str, Any]] = None
    clip_len: Optional[int] = None  # frames per clip ...
    frame_interval: Optional[int] = None  # ... one every frame_interval frames
    # the evaluation protocol the weights' published numbers were measured with (i3zoo.video.evenly_spaced_clips,
    # i3zoo.video.transforms_for): the clip sampler, the views (clips x crops) and how frames are resized
    clip_sampler: str = "spread"  # MMAction2 >= 1.0 / PySlowFast; "mmaction2_0x" for MMAction2 0.x's
    test_clips: Optional[int] = None  # clips per video when evaluating (None: one)
    test_crops: Optional[int] = None  # 1 (centre) or 3 (along the long side; the short side scaled to the crop)
    resize_antialias: bool = True  # False: plain bilinear interpolation (torch.nn.functional.interpolate)
    resize_float: bool = False  # True: frames become floats in [0, 1] before the resize; False: resized as uint8


class WeightSource:
    """One kind of weights. Subclasses set ``kind`` and register with :func:`register_source`.

    ``read`` gets the state dict a cfg names and a record of where it came from (what ``model.source_2d`` keeps:
    never a local path in its public keys; ``_source`` names the weights in errors), or None where this source
    cannot serve the cfg now (then the next candidate is asked: a published Hub copy falls back to the tag's own
    source); ``prepare`` turns the state dict into the model's names (still 2D kernels where the source is
    inflated, which :func:`fill_model` does) and makes the checks only this source can make; ``render_card`` writes
    the model card of a tag of this kind.
    """

    kind: ClassVar[str] = ""
    #: whether the weights are inflated from a 2D network (so the boring-video equivalence can be measured)
    inflated: ClassVar[bool] = False

    def read(self, cfg: Dict[str, Any], model: nn.Module, *,
             cache_dir=None) -> Optional[Tuple[Dict[str, torch.Tensor], Dict[str, Any]]]:
        raise NotImplementedError

    def prepare(self, state_dict: Dict[str, torch.Tensor], model: nn.Module, cfg: Dict[str, Any], *,
                source: str) -> Dict[str, torch.Tensor]:
        return state_dict

    def render_card(self, model_id: str, **facts: Any) -> str:
        raise NotImplementedError(f"{type(self).__name__} writes no model card")


_SOURCES: Dict[str, WeightSource] = {}


def register_source(cls: Type[WeightSource]) -> Type[WeightSource]:
    """Class decorator: make ``cls`` the source of cfgs whose ``weights_source`` is ``cls.kind``."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} must set kind")
    _SOURCES[cls.kind] = cls()
    return cls


def source_kinds() -> Tuple[str, ...]:
    """The registered kinds of weights."""
    return tuple(_SOURCES)


def source_named(kind: str) -> WeightSource:
    """The registered source of ``kind``; ``ValueError`` naming the known kinds otherwise."""
    if kind not in _SOURCES:
        raise ValueError(f"unknown weight source {kind!r}; known: {', '.join(_SOURCES)}")
    return _SOURCES[kind]


def source_of_tag(model_id: str) -> Optional[WeightSource]:
    """The source of a registered ``arch[.tag]``'s weights (the default tag's for an ``arch``); None where the
    model has no weights registered."""
    from timm.models import get_pretrained_cfg

    kind = getattr(get_pretrained_cfg(model_id), "weights_source", None)
    return source_named(kind) if kind else None


def source_for(cfg: Dict[str, Any], *, overridden: bool = False) -> List[WeightSource]:
    """The sources that may read the weights ``cfg`` names, in the order they are asked: a pre-inflated folder's;
    else a published Hub copy of a registered tag (unless the caller named other weights: ``overridden``), then the
    tag's own source."""
    if cfg.get("source") in ("hf-hub", "local-dir"):
        return [source_named("preinflated")]
    if not cfg.get("weights_source"):
        raise ValueError(f"no weights are registered for {cfg.get('architecture')!r}: give "
                         "pretrained_cfg_overlay=dict(file=PATH) or dict(url=URL) with a weight tag")
    own = source_named(cfg["weights_source"])
    return [own] if overridden else [source_named("published"), own]


def load_pretrained(model: nn.Module, cfg: Dict[str, Any], *, overridden: bool = False, cache_dir=None) -> None:
    """Fill ``model`` with the weights ``cfg`` names, through their source; ``model.source_2d`` records where they
    came from. ``overridden``: the caller named other weights than the tag's (a file, a URL, a state dict)."""
    for source in source_for(cfg, overridden=overridden):
        loaded = source.read(cfg, model, cache_dir=cache_dir)
        if loaded is not None:
            break
    else:
        raise RuntimeError(f"internal error: no source served {cfg.get('architecture')}.{cfg.get('tag')}")
    state_dict, record = loaded
    shown = record.get("_source") or record.get("url") or cfg.get("file") or "the given state dict"
    state_dict = source.prepare(state_dict, model, cfg, source=shown)
    fill_model(model, state_dict, source=shown)
    model.source_2d = record
    _logger.info("filled %s.%s (%s mode) from %s", cfg.get("architecture"), cfg.get("tag"), model.inflation, shown)


def read_2d_state_dict(cfg: Dict[str, Any], *, cache_dir=None) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read the weights a cfg points at (an in-memory ``state_dict``, a ``file`` or a ``url``).

    Returns the state dict and a record of its source: ``url`` (without its query string, which may carry
    credentials) or file ``name`` (never a local path, which would leak into exported configs) and the local path
    under the private key ``_path``. Its sha256 is computed only when an export records it, not on every
    construction.
    """
    if cfg.get("state_dict") is not None:
        state_dict = check_state_dict(cfg["state_dict"], "the state_dict in pretrained_cfg_overlay")
        return state_dict, {"kind": "state_dict", "tag": cfg.get("tag")}
    if cfg.get("file"):
        path = Path(cfg["file"])
        return read_state_dict(path), {"kind": "file", "name": path.name, "_path": str(path), "tag": cfg.get("tag")}
    if cfg.get("url"):
        path = fetch_checkpoint(cfg["url"], cache_dir=cache_dir)
        return read_state_dict(path), {"kind": "url", "url": public_url(cfg["url"]), "_path": str(path),
                                       "tag": cfg.get("tag")}
    raise ValueError(f"no weights are known for {cfg.get('architecture')!r}: give "
                     "pretrained_cfg_overlay=dict(file=PATH) or dict(url=URL)")


def classes_in(state_dict: Dict[str, torch.Tensor], classifier: str) -> int:
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


def _adapt_first_kernel(model: nn.Module, state_dict: Dict[str, torch.Tensor]) -> None:
    """RGB weights (2D, or trained 3D ones such as Kinetics) for other channels: timm's rule acts on the channel axis
    alone, so a 3D kernel is adapted with its (T, H, W) taps flattened into timm's (H, W)."""
    key = f"{model.first_conv_name}.weight"  # the model's own layer names, never a (possibly tampered) config's
    kernel = state_dict.get(key)
    if kernel is not None and kernel.dim() in (4, 5) and kernel.shape[1] == 3 != model.in_chans:
        state_dict[key] = adapt_input_conv(model.in_chans, kernel.flatten(3)).unflatten(3, kernel.shape[3:])


def fill_model(model: nn.Module, state_dict: Dict[str, torch.Tensor], *, source: str) -> None:
    """Load a state dict in the model's names (2D kernels are inflated on the way) into ``model``, strictly.

    ``in_chans != 3`` adapts an RGB first kernel as timm does; a ``num_classes`` other than the classifier's in the
    weights keeps the model's classifier freshly initialised. ``source`` names the weights in errors.
    """
    model_state = model.state_dict()
    _check_kinds(model, model_state, state_dict, source)
    # inflate in the model's precision: W / t of a float32 kernel is exact to float64's last digit only if the
    # division happens in float64 (a model built under torch.set_default_dtype(torch.float64))
    dtype = next(model.parameters()).dtype
    state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    _adapt_first_kernel(model, state_dict)
    classifier = model.classifier_name
    target = {k: v.shape for k, v in model_state.items()}
    # a classifier is kept when the weights have one of the model's size (a fine-tuned checkpoint keeps its head);
    # the count is read from the weights, not from a cfg that could claim another
    fresh_head = model.num_classes != classes_in(state_dict, classifier)
    if fresh_head:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(classifier + ".")}
        target = {k: v for k, v in target.items() if not k.startswith(classifier + ".")}
    try:
        # for 3D weights every shape already fits: this is then a strict, named copy
        inflated = inflate_state_dict(state_dict, target, model.inflation)
    except CheckpointMismatchError as e:
        raise CheckpointMismatchError(f"{source} cannot fill {type(model).__name__}: {e}") from None
    # tensors copied unchanged may be views into a memory-mapped file, at addresses that are not 64-byte aligned
    # (safetensors); fresh copies are owned and aligned, which also keeps oneDNN's kernel choice, and so the
    # outputs, identical to a model filled any other way
    inflated = {k: v.clone() if v is state_dict.get(k) else v for k, v in inflated.items()}
    on_meta = any(p.is_meta for p in model.parameters())
    # assign=True: a model built on the meta device takes these tensors as its parameters, nothing is copied
    missing, unexpected = model.load_state_dict(inflated, strict=False, assign=on_meta)
    # inflate_state_dict covered every key of `target`, so only a fresh head can be missing
    if unexpected or any(not k.startswith(classifier + ".") for k in missing):
        raise RuntimeError(f"internal error: loading left keys missing {missing} / unexpected {unexpected}")
    if fresh_head:
        model.reset_classifier(model.num_classes)  # a fresh, really initialised classifier (never on meta)

