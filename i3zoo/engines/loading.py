"""A model with its weights, ready for an engine: :func:`load_model` and what it returns, :class:`LoadedModel`.

Shared by feature extraction, prediction, ONNX export and fine-tuning (``i3zoo extract``, ``predict``,
``export-onnx``, ``train``): a registered name takes its registered weights, a local 2D file
(``file=``, timm's ``pretrained_cfg_overlay=dict(file=...)``) or seeded random 2D weights for a smoke run
(``random_weights=True``); ``hf-hub:`` and ``local-dir:`` names carry their own. What filled the model is kept
as a record (:attr:`LoadedModel.weights`) that every output of an engine carries, so that features made with
random weights can never pass for trained ones.

:func:`choose_path` decides how a job runs the model (an optimized copy, compiled with freezing or not, in
float32 or bfloat16; the plain model when asked: :func:`i3zoo.inference.choose_inference_path`), measuring the
model on this machine; :func:`count_windows` counts a folder's sliding windows only as far as that decision needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from torch import nn

from ..errors import UsageError

if TYPE_CHECKING:
    from ..inference import InferencePath

__all__ = ["RANDOM_SEED", "LoadedModel", "load_model", "weights_overlay", "model_label_names", "describe_weights",
           "is_preinflated", "is_inflated", "choose_path", "seconds_per_clip", "count_windows"]

#: the seed of ``random_weights=True`` (torchvision's 2D model with randomized BatchNorm statistics)
RANDOM_SEED = 0
PREINFLATED = ("hf-hub:", "local-dir:")
INFLATE_PREFIX = "inflate:"


def is_inflated(name: str) -> bool:
    """Whether ``name`` is a 2D network inflated on the fly (``inflate:timm/NAME``, ``inflate:torchvision/NAME``)."""
    return name.startswith(INFLATE_PREFIX)


def is_preinflated(name: str) -> bool:
    """Whether ``name`` is a saved 3D model (``hf-hub:ORG/NAME``, ``local-dir:PATH``) rather than a registered one."""
    return name.startswith(PREINFLATED)


@dataclass
class LoadedModel:
    """A model in eval mode and what filled it.

    Attributes:
        model: the i3zoo model, in eval mode on ``device``; input (N, C, T, H, W).
        name: the name it was loaded by (``i3resnet50.tv_in1k``, ``hf-hub:ORG/NAME``, ``local-dir:PATH``).
        weights: what filled it, as every output records it: ``{"kind": "pretrained" | "file" | "random", ...,
            "model": name, "inflation": mode}``.
        random: seeded random weights (a smoke run); every printed line and every output says so.
        label_names: the names of its classes (see :func:`model_label_names`), or None: class numbers.
        label_source: where the names come from, in words (``"ImageNet-1k"``, ``"the model's label_names"``).
        device: where it runs, as asked (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    """

    model: Any
    name: str
    weights: Dict[str, Any]
    random: bool
    label_names: Optional[List[str]] = None
    label_source: str = ""
    device: str = "cpu"

    @property
    def banner(self) -> str:
        """``"[random weights] "`` in front of every line printed about a smoke run, else nothing."""
        return "[random weights] " if self.random else ""

    def clip_len(self, requested: Optional[int] = None) -> int:
        """Frames per clip: ``requested``, or 16 (the model's minimum if larger); ``UsageError`` below the minimum."""
        minimum = self.model.min_input_size[0]
        clip_len = max(16, minimum) if requested is None else requested
        if clip_len < minimum:
            raise UsageError(f"clip_len {clip_len} is below {self.name}'s minimum of {minimum} frames")
        return clip_len

    def crop_size(self, requested: Optional[int] = None) -> int:
        """Frame size: ``requested``, or the model's input size (224); ``UsageError`` below the minimum."""
        crop_size = self.model.pretrained_cfg["input_size"][-1] if requested is None else requested
        minimum = max(self.model.min_input_size[1:])
        if crop_size < minimum:
            raise UsageError(f"crop_size {crop_size} is below {self.name}'s minimum of {minimum} pixels")
        return crop_size


def weights_overlay(name: str, *, file: Optional[str] = None, random_weights: bool = False
                    ) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]]]:
    """The ``pretrained_cfg_overlay`` that ``file`` / ``random_weights`` ask for, and the record of it
    (``None, None``: the model's own weights).

    Raises:
        UsageError: an unknown model, ``file`` or ``random_weights`` with a pre-inflated model or with each
            other, a ``file`` that does not exist.
    """
    from ..registry import is_model, list_models, model_class
    from ..weights.verify import seeded_2d_state_dict

    if not is_preinflated(name) and not is_inflated(name) and not is_model(name):
        raise UsageError(f"unknown model {name!r}; choose from: {', '.join(list_models())} "
                         "(with an optional .tag), or hf-hub:ORG/NAME, local-dir:PATH, inflate:timm/NAME, "
                         "inflate:torchvision/NAME")
    if is_preinflated(name) and (file or random_weights):
        raise UsageError(f"{name} carries its own weights; file and random_weights (--file, --random-weights) "
                         "apply to registered models only")
    if file and random_weights:
        raise UsageError("file and random_weights exclude each other: give one source of weights")
    if random_weights and is_inflated(name):  # the 2D network's own initialisation, seeded (load_model)
        return None, {"kind": "random", "seed": RANDOM_SEED,
                      "note": "the 2D network's seeded random initialisation, NOT trained weights"}
    if random_weights:  # seeded 2D weights to inflate; a Kinetics tag's own network, seeded (load_model)
        overlay = None if _trained_as_video(name) else \
            dict(state_dict=seeded_2d_state_dict(model_class(name).network_2d, RANDOM_SEED))
        return overlay, {"kind": "random", "seed": RANDOM_SEED,
                         "note": "seeded random weights with randomized BatchNorm statistics, NOT trained weights"}
    if file:
        if not Path(file).is_file():
            raise UsageError(f"file {file}: no such file")
        return dict(file=str(file)), {"kind": "file", "name": Path(file).name}
    return None, None


def _trained_as_video(name: str) -> bool:
    """Whether registered ``name``'s weights are a video checkpoint (Kinetics), not 2D weights to inflate: its
    source reads that checkpoint's layout only, so random weights are the tag's own network, seeded."""
    from ..weights.sources import source_of_tag

    source = source_of_tag(name)
    return source is not None and not source.inflated


def load_model(name: str, *, file: Optional[str] = None, random_weights: bool = False, inflation: str = "center",
               device: str = "cpu", design: Optional[str] = None) -> LoadedModel:
    """Build ``name`` with its weights, in eval mode on ``device``.

    Args:
        name: ``arch`` or ``arch.tag`` (its registered weights), ``hf-hub:ORG/NAME`` or ``local-dir:PATH``.
        file: a local copy of the 2D weights (``.pth`` or ``.safetensors``), for registered models.
        random_weights: seeded random 2D weights (seed :data:`RANDOM_SEED`), for a smoke run.
        inflation: ``"center"`` or ``"mean"``, for registered models.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        design: the temporal design of an ``inflate:`` name (default ``"i3d"``); other names have their own.

    Returns:
        The model and the record of its weights and class names.

    Raises:
        UsageError: see :func:`weights_overlay`; a device the model cannot be moved to.
        CheckpointError, OSError, ValueError: the weights cannot be had (no cache, offline, a bad file), as
            :func:`i3zoo.create_model` raises them.
    """
    import torch

    from ..registry import create_model
    from ..weights.verify import randomize_batchnorm

    overlay, weights = weights_overlay(name, file=file, random_weights=random_weights)
    if design is not None and not is_inflated(name):
        raise UsageError(f"design (--design) applies to inflate: models; {name} has its own design")
    kwargs = dict(inflation=inflation) if not is_preinflated(name) else {}
    if is_inflated(name):
        kwargs["design"] = design or "i3d"
    own_init = random_weights and overlay is None  # the network's seeded initialisation, not weights read
    if own_init:
        torch.manual_seed(RANDOM_SEED)  # a random-weights run initialises the network alike every time
    model = create_model(name, pretrained=not own_init, pretrained_cfg_overlay=overlay, **kwargs)
    if own_init and not is_inflated(name):
        randomize_batchnorm(model, RANDOM_SEED + 1)
    if weights is None:
        weights = {"kind": "pretrained", **{k: v for k, v in (getattr(model, "source_2d", None) or {}).items()
                                            if not k.startswith("_")}}
    weights["model"] = name
    weights["inflation"] = model.inflation
    labels, label_source = model_label_names(model)
    try:
        model = model.to(device)
    except (RuntimeError, AssertionError) as e:
        raise UsageError(f"device {device}: {e}") from None
    torch.manual_seed(0)
    return LoadedModel(model.eval(), name, weights, random_weights, labels, label_source, device)


def model_label_names(model: nn.Module) -> Tuple[Optional[List[str]], str]:
    """The names of the model's classes and where they come from: its own (fine-tuned weights, timm's
    ``pretrained_cfg["label_names"]``), else ImageNet's categories for a 1000-class head inflated from ImageNet,
    else none (class numbers)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    own = cfg.get("label_names")
    if own and len(own) == model.num_classes:
        return list(own), "the model's label_names"
    if own:
        return None, f"none: the model's {len(own)} label_names do not fit its {model.num_classes} classes"
    if model.num_classes == 1000:
        import torchvision

        arch = getattr(model, "torchvision_arch", None)
        if arch:
            return list(torchvision.models.get_model_weights(arch).DEFAULT.meta["categories"]), "ImageNet-1k"
    return None, "none (class numbers)"


def describe_weights(weights: Dict[str, Any]) -> str:
    """The record of :attr:`LoadedModel.weights` in words, for a line a user reads."""
    if weights["kind"] == "random":
        return f"seeded random weights (seed {weights['seed']}), not trained"
    if weights["kind"] == "file":
        return f"2D weights from {weights['name']}, {weights['inflation']} inflation"
    source = weights.get("url") or weights.get("source") or weights.get("name") or weights["model"]
    return f"pretrained weights from {source}, {weights['inflation']} inflation"


def seconds_per_clip(loaded: LoadedModel, clip_len: int, crop_size: int) -> float:
    """The plain model's time for one (1, C, clip_len, crop_size, crop_size) clip here: the better of two calls
    (the first also sets up the kernels)."""
    import time

    import torch

    x = torch.zeros(1, loaded.model.in_chans, clip_len, crop_size, crop_size, device=loaded.device)
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for _ in range(2):
            started = time.perf_counter()
            loaded.model(x)
            sync()
            times.append(time.perf_counter() - started)
    return min(times)


def choose_path(loaded: LoadedModel, *, clips: Union[int, Callable[[int], int]], clip_len: int, crop_size: int,
                precision: str = "auto", compile: Optional[bool] = None, optimize: Optional[bool] = None,
                bfloat16_kernels: Optional[bool] = None) -> "InferencePath":
    """How a job of ``clips`` clips of ``clip_len`` x ``crop_size`` x ``crop_size`` runs ``loaded``'s model: the rule of
    :func:`i3zoo.inference.choose_inference_path`, with the model's time per clip measured here.

    Raises:
        UsageError: a precision that is not ``auto``, ``float32`` or ``bfloat16``; ``optimize=False`` with a
            compile or bfloat16 request.
    """
    import torch

    from ..inference import choose_inference_path

    try:
        return choose_inference_path(
            torch.device(loaded.device), clips=clips, precision=precision, compile=compile, optimize=optimize,
            bfloat16_kernels=bfloat16_kernels, seconds_per_clip=lambda: seconds_per_clip(loaded, clip_len, crop_size))
    except ValueError as e:
        raise UsageError(str(e)) from None


def count_windows(videos: Sequence[Path], *, clip_len: int, step: int, frame_interval: int = 1,
                  fps: Optional[float] = None, backend: str = "auto") -> Callable[[int], int]:
    """A counter of the sliding windows of ``videos`` (as ``i3zoo extract`` takes them) that stops once it
    reaches the bound it is called with, so that a long job is known as such without opening every video;
    a video that cannot be read counts nothing."""
    from ..video import VideoError, VideoReader, VideoWindows

    windows = VideoWindows([], clip_len, step, frame_interval, fps=fps, backend=backend)

    def count(bound: int) -> int:
        total = 0
        for video in videos:
            if total >= bound:
                break
            try:
                total += len(windows.windows_of(VideoReader(video, backend=backend)))
            except VideoError:
                continue
        return total

    return count
