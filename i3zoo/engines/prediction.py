"""Prediction: the top-k classes of each video, averaging the softmax of evenly spaced clips -- the engine
behind ``i3zoo predict``, as a Python API (:func:`predict`, :class:`Predictor`).

Clips are spread over the video by the weights' own test-mode sampler (their cfg's ``clip_sampler``: MMAction2
>= 1.0's ``SampleFrames`` by default, :func:`i3zoo.video.evenly_spaced_clips`), each resized and centre-cropped
by the model's own transform (which follows the cfg's resize protocol). Label names come with the weights
(:func:`i3zoo.engines.model_label_names`): a model's own ``pretrained_cfg["label_names"]`` (fine-tuned
weights, timm's convention), else ImageNet's 1000 categories for a 1000-class head inflated from ImageNet --
such a model names objects seen in the frames, not actions. A video that cannot be read is a result with its
reason; the others go on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from os import PathLike
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from ..errors import UsageError
from .loading import LoadedModel, load_model

__all__ = ["Predictor", "predict", "Predictions"]


@dataclass
class Predictions:
    """The predictions of one run, as ``i3zoo predict --json`` prints them (:meth:`as_dict`).

    Attributes:
        model, weights, labels, random_weights: the model's name, the record of its weights, where its label
            names come from and whether its weights are seeded random ones (see :class:`LoadedModel`).
        clip_len, num_clips: the clips averaged per video.
        inference: the path that ran (:meth:`i3zoo.inference.InferencePath.record`: precision, optimized,
            compiled).
        results: one dict per video, in order: ``{"video", "clips", "padded", "top": [{"class", "label",
            "probability"}, ...]}``, or ``{"video", "error"}`` for a video that cannot be read.
    """

    model: str
    weights: Dict[str, Any]
    labels: str
    random_weights: bool
    clip_len: int
    num_clips: int
    inference: Dict[str, Any]
    results: List[Dict[str, Any]]

    @property
    def failures(self) -> List[Dict[str, Any]]:
        """The results of the videos that could not be read."""
        return [result for result in self.results if "error" in result]

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


class Predictor:
    """Top-k classes per video with one model and one set of settings.

    Args:
        model: what :func:`i3zoo.engines.load_model` returned, or a name loaded with its defaults.
        clip_len: frames per clip (default 16, or the model's minimum if larger).
        frame_interval: distance between a clip's frames.
        num_clips: evenly spaced clips averaged per video.
        crop_size: spatial size (default: the model's input size).
        top_k: classes per video (at most the model's number of classes).
        backend: the video decoder (:class:`i3zoo.video.VideoReader`).
        dtype: ``"float32"`` or ``"bfloat16"`` (an ``optimize_for_inference`` copy computes in it).
        optimize: run an ``optimize_for_inference`` copy (BatchNorm folded); ``compile``: and ``torch.compile`` it
            with freezing (:func:`i3zoo.engines.choose_path` says which a job should take).

    Raises:
        UsageError: ``num_clips`` or ``top_k`` below 1, a clip or crop below the model's minimum, a ``dtype``
            that is not ``float32`` or ``bfloat16``.
    """

    def __init__(self, model: Union[str, LoadedModel], *, clip_len: Optional[int] = None, frame_interval: int = 1,
                 num_clips: int = 3, crop_size: Optional[int] = None, top_k: int = 5, backend: str = "auto",
                 dtype: str = "float32", optimize: bool = False, compile: bool = False):
        from ..inference import optimize_for_inference
        from ..video import transforms_for

        if num_clips < 1 or top_k < 1:
            raise UsageError(f"num_clips and top_k must be >= 1; got {num_clips}, {top_k}")
        if dtype not in ("float32", "bfloat16"):
            raise UsageError(f"dtype {dtype!r}: choose from float32, bfloat16")
        self.loaded = load_model(model) if isinstance(model, str) else model
        optimize = optimize or compile or dtype != "float32"
        self.model = (optimize_for_inference(self.loaded.model, dtype=getattr(torch, dtype), compile=compile)
                      if optimize else self.loaded.model)
        self.inference = dict(precision=dtype, optimized=optimize, compiled=compile)
        self.clip_len = self.loaded.clip_len(clip_len)
        self.transform = transforms_for(self.loaded.model, crop_size=self.loaded.crop_size(crop_size))
        self.frame_interval, self.num_clips, self.backend = frame_interval, num_clips, backend
        self.top_k = min(top_k, self.loaded.model.num_classes)

    def predict_one(self, path: Union[str, PathLike]) -> Dict[str, Any]:
        """One video's result (see :attr:`Predictions.results`)."""
        from ..video import VideoError, VideoReader, evenly_spaced_clips

        try:
            reader = VideoReader(path, backend=self.backend)
            clips = evenly_spaced_clips(reader.num_frames, self.clip_len, self.frame_interval, self.num_clips,
                                        sampler=self.loaded.model.pretrained_cfg.get("clip_sampler") or "spread")
            frames = reader.get_frames(clips.indices.flatten().tolist()).unflatten(0, tuple(clips.indices.shape))
        except VideoError as e:
            return {"video": str(path), "error": e.reason}
        batch = torch.stack([self.transform(f) for f in frames]).to(self.loaded.device)
        with torch.inference_mode():
            probabilities = self.model(batch).float().softmax(dim=1).mean(dim=0).cpu()
        values, indices = probabilities.topk(self.top_k)
        names = self.loaded.label_names
        return {
            "video": str(path), "clips": len(clips), "padded": int(clips.padded.max()) > 0,
            "top": [{"class": int(i), "label": names[i] if names else f"class {int(i)}", "probability": float(v)}
                    for v, i in zip(values, indices)],
        }

    def predict(self, videos: Sequence[Union[str, PathLike]]) -> Predictions:
        """The results of ``videos``, in order; a video that cannot be read gets its reason."""
        loaded = self.loaded
        return Predictions(loaded.name, loaded.weights, loaded.label_source, loaded.random, self.clip_len,
                           self.num_clips, self.inference, [self.predict_one(path) for path in videos])


def predict(videos: Sequence[Union[str, PathLike]], model: Union[str, LoadedModel], **options: Any) -> Predictions:
    """The top-k classes of each video, averaging the softmax of evenly spaced clips.

    Args:
        videos: video files.
        model: what :func:`i3zoo.engines.load_model` returned, or a name loaded with its defaults.
        **options: the :class:`Predictor`'s (``clip_len``, ``num_clips``, ``top_k``, ...).

    Returns:
        One result per video (top-k classes with label names and probabilities, or why it could not be read).
    """
    return Predictor(model, **options).predict(videos)
