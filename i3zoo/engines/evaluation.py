"""Evaluation: top-1 / top-5 accuracy of a model on a labelled list of videos, with the weights' own multi-view
protocol -- the engine behind ``i3zoo evaluate``, so that users can check published numbers on their own copy of
a validation set (:func:`evaluate`).

The protocol comes from the tag's cfg (:func:`protocol_of`): its clip length and interval, its clip sampler
(``clip_sampler``: MMAction2 >= 1.0 / PySlowFast spreading for the Kinetics tags), its views (``test_clips`` x
``test_crops``, e.g. PySlowFast's 10 clips x 3 crops) and its resize; a video's score is the mean softmax of its
views, as MMAction2's ``AvgConsensus`` and PySlowFast's ensemble take it. A video that cannot be read is reported
with its reason and left out of the accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

from ..errors import UsageError
from .loading import LoadedModel, load_model

__all__ = ["Protocol", "protocol_of", "evaluate", "Evaluation"]


@dataclass(frozen=True)
class Protocol:
    """How one video is scored: ``num_clips`` clips of ``clip_len`` frames ``frame_interval`` apart, spread by
    ``sampler``, each seen in ``num_crops`` crops (1: centre, 3: along the long side) of ``crop_size``."""

    clip_len: int
    frame_interval: int
    num_clips: int
    num_crops: int
    sampler: str
    crop_size: int

    def describe(self) -> str:
        crops = "centre crop" if self.num_crops == 1 else f"{self.num_crops} crops"
        return (f"{self.num_clips} clip(s) x {crops} of {self.clip_len} frames every {self.frame_interval} "
                f"({self.sampler} sampler), {self.crop_size} px")


def protocol_of(loaded: LoadedModel, *, clip_len: Optional[int] = None, frame_interval: Optional[int] = None,
                num_clips: Optional[int] = None, num_crops: Optional[int] = None,
                crop_size: Optional[int] = None) -> Protocol:
    """The weights' evaluation protocol (their cfg's ``clip_len``, ``frame_interval``, ``test_clips``,
    ``test_crops``, ``clip_sampler``), each part overridable; one centre-cropped clip of 16 where the cfg is silent.

    Raises:
        UsageError: a value below 1, crops other than 1 or 3, a clip or crop below the model's minimum.
    """
    cfg = loaded.model.pretrained_cfg
    chosen = dict(frame_interval=frame_interval or cfg.get("frame_interval") or 1,
                  num_clips=num_clips or cfg.get("test_clips") or 1, num_crops=num_crops or cfg.get("test_crops") or 1)
    for name, value in (("clip_len", clip_len), ("crop_size", crop_size), *chosen.items()):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be >= 1; got {value}")
    if chosen["num_crops"] not in (1, 3):
        raise UsageError(f"crops must be 1 (centre) or 3 (along the long side); got {chosen['num_crops']}")
    return Protocol(clip_len=loaded.clip_len(clip_len or cfg.get("clip_len")), sampler=cfg.get("clip_sampler")
                    or "spread", crop_size=loaded.crop_size(crop_size), **chosen)


@dataclass
class Evaluation:
    """What :func:`evaluate` measured: ``top1`` / ``top5`` in percent over the ``evaluated`` videos, the
    ``protocol``, and ``failures`` as (video, reason); ``random_weights`` as :class:`LoadedModel` says."""

    model: str
    weights: Dict[str, Any]
    random_weights: bool
    protocol: Dict[str, Any]
    videos: int
    evaluated: int
    top1: float
    top5: float
    failures: List[Tuple[str, str]]

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def evaluate(list_file: Union[str, PathLike], model: Union[str, LoadedModel], *,
             label_names: Union[List[str], str, PathLike, None] = None, backend: str = "auto",
             **overrides: Any) -> Evaluation:
    """Top-1 / top-5 accuracy on the ``path,label`` lines of ``list_file`` (labels are class indices, or names
    of ``label_names``: by default the model's own), with the weights' protocol (:func:`protocol_of`; keyword
    ``overrides``: ``clip_len``, ``frame_interval``, ``num_clips``, ``num_crops``, ``crop_size``).
    """
    from ..video import VideoError, VideoList, transforms_for

    if not Path(list_file).is_file():
        raise UsageError(f"{list_file}: no such list file (give a file of 'path,label' lines)")
    loaded = load_model(model) if isinstance(model, str) else model
    protocol = protocol_of(loaded, **overrides)
    transform = transforms_for(loaded.model, crop_size=protocol.crop_size, three_crop=protocol.num_crops == 3)
    dataset = VideoList(list_file, protocol.clip_len, protocol.frame_interval, num_clips=protocol.num_clips,
                        label_names=label_names if label_names is not None else loaded.label_names,
                        transform=transform, backend=backend, sampler=protocol.sampler)
    classes = loaded.model.num_classes
    outside = sorted({label for _, label in dataset.samples if label >= classes})
    if outside:
        raise UsageError(f"{list_file}: label {outside[0]} is outside the model's {classes} classes")
    hits = torch.zeros(2, dtype=torch.long)
    failures: List[Tuple[str, str]] = []
    for index in range(len(dataset)):
        try:
            views, label = dataset[index]
        except VideoError as e:
            failures.append((e.path, e.reason))
            continue
        views = views.reshape(-1, *views.shape[-4:])  # (clips [x crops], C, T, H, W)
        with torch.inference_mode():
            score = loaded.model(views.to(loaded.device)).float().softmax(dim=1).mean(dim=0).cpu()
        top5 = score.topk(min(5, classes)).indices
        hits += torch.tensor([int(top5[0] == label), int(label in top5)])
    evaluated = len(dataset) - len(failures)
    top1, top5 = (100.0 * hits / max(evaluated, 1)).tolist()
    return Evaluation(loaded.name, loaded.weights, loaded.random, asdict(protocol), len(dataset), evaluated, top1,
                      top5, failures)
