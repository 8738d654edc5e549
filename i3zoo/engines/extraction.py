"""Feature extraction: the features of sliding windows over videos, one output file per video, resumable and
atomic -- the engine behind ``i3zoo extract``, as a Python API (:func:`extract`, :class:`Extractor`).

Videos are read in ``DataLoader`` workers (:class:`i3zoo.video.VideoWindows`: one streaming pass per video)
while the model runs; windows are batched across videos. Each output holds the features (windows x
num_features, float32), each window's start and end in seconds and the settings and weights that made them.
It is written to a temporary name and renamed (:func:`i3zoo.files.write_atomically`), so an output that
exists is complete, even after ``kill -9``; a rerun skips those and refuses one made with other settings. A
video that cannot be read is reported with its reason and the others go on.

A run is three steps, each in one place: :func:`find_inputs` (the videos and where their outputs go, refusing
inputs that would write one output twice), :meth:`Extractor.plan` (which videos are still to do: the one
place that decides what a run does) and :meth:`Extractor.run` (the pipeline; the model is called in
:meth:`Extractor.features` only).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..errors import UsageError
from ..files import write_atomically
from .loading import LoadedModel, load_model

__all__ = ["Extractor", "extract", "ExtractionSummary", "Inputs", "Plan", "find_inputs", "output_paths", "FORMATS",
           "DTYPES"]

FORMATS = ("safetensors", "npy")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
Failure = Tuple[str, str]  # (video, reason)


# ---------------------------------------------------------------- inputs and outputs


@dataclass
class Inputs:
    """The videos of a run: ``videos`` as (file, output stem relative to the output folder), and ``missing``
    as (path as given, reason) for inputs that do not exist."""

    videos: List[Tuple[Path, Path]]
    missing: List[Failure]


def collect_videos(paths: Sequence[Union[str, PathLike]], list_file: Optional[Union[str, PathLike]] = None
                   ) -> Inputs:
    """The videos named by ``paths`` and the lines of ``list_file``.

    A folder's videos keep their path below the folder; a file keeps the path as given when it is relative
    and stays below the working folder, else its name. A list file has one path a line (relative to the
    list's folder; a ``,label`` after it is ignored, ``#`` starts a comment).
    """
    from ..video.datasets import find_videos

    found: List[Tuple[Path, Path]] = []
    missing: List[Failure] = []
    entries = [(str(p), None) for p in paths]
    if list_file:
        listing = Path(list_file)
        if not listing.is_file():
            raise UsageError(f"--list {list_file}: no such file")
        for line in listing.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                path, comma, _label = line.rpartition(",")  # "path,label" (Kinetics style) or a bare path
                entries.append(((path if comma else line).strip(), listing.parent))
    for text, base in entries:
        path = Path(text) if base is None or Path(text).is_absolute() else base / text
        if path.is_dir():
            found.extend((video, video.relative_to(path)) for video in find_videos(path))
        elif path.is_file():
            relative = Path(text)
            keep = not relative.is_absolute() and ".." not in relative.parts
            found.append((path, relative if keep else Path(path.name)))
        else:
            missing.append((text, "no such file or folder"))
    return Inputs(found, missing)


def find_inputs(paths: Sequence[Union[str, PathLike]], out: Union[str, PathLike], *,
                list_file: Optional[Union[str, PathLike]] = None, format: str = "safetensors") -> Inputs:
    """:func:`collect_videos`, refusing (``UsageError``) a run with no input and inputs that would write the
    same output file, before anything runs."""
    inputs = collect_videos(paths, list_file)
    if not inputs.videos and not inputs.missing:
        raise UsageError("no videos given; name video files or folders, or give a list file (--list FILE)")
    by_output: Dict[Path, List[Path]] = {}
    for video, relative in inputs.videos:
        by_output.setdefault(output_paths(Path(out), relative, format)[0], []).append(video)
    clashes = [f"{o}: {', '.join(map(str, v))}" for o, v in by_output.items() if len(v) > 1]
    if clashes:
        raise UsageError("these videos would write the same output; give their folder instead of the files, or "
                         "run them with different output folders (--out): " + "; ".join(clashes))
    return inputs


def output_paths(out: Path, relative: Path, fmt: str) -> List[Path]:
    """The files of one video's output; the last one written marks it complete."""
    if fmt not in FORMATS:
        raise UsageError(f"format {fmt!r}: choose from {', '.join(FORMATS)}")
    stem = out / relative  # the video's own name with its extension: clip.mp4 and clip.avi do not collide
    if fmt == "safetensors":
        return [stem.with_name(stem.name + ".safetensors")]
    return [stem.with_name(stem.name + ".npy"), stem.with_name(stem.name + ".json")]


def read_settings(paths: List[Path], fmt: str) -> Optional[Dict[str, Any]]:
    """The settings a complete output was made with, or None if it is not there."""
    if not all(p.is_file() for p in paths):
        return None
    if fmt == "safetensors":
        from safetensors import safe_open

        with safe_open(str(paths[0]), framework="pt") as f:
            return json.loads(f.metadata()["i3zoo"])["settings"]
    return json.loads(paths[-1].read_text())["settings"]


def write_output(paths: List[Path], fmt: str, features, start, end, padded, record: Dict[str, Any]) -> None:
    """One video's output, each file written atomically (the last one marks it complete)."""
    import numpy as np

    if fmt == "safetensors":
        from safetensors.torch import save

        blob = save({"features": features.contiguous(), "start": start, "end": end, "padded": padded},
                    metadata={"i3zoo": json.dumps(record),
                              "random_weights": str(record["settings"]["weights"]["kind"] == "random").lower()})
        write_atomically(paths[0], lambda handle: handle.write(blob))
        return
    write_atomically(paths[0], lambda handle: np.save(handle, features.numpy()))
    sidecar = dict(record, start=start.tolist(), end=end.tolist(), padded=padded.tolist())
    write_atomically(paths[1], lambda handle: handle.write(json.dumps(sidecar, indent=1).encode()))


# ---------------------------------------------------------------- what a run does and what it did


@dataclass
class Plan:
    """What a run will do: ``todo`` as (video, its output files), ``skipped`` outputs already complete with
    these settings, and ``failures`` (inputs that do not exist, outputs made with other settings)."""

    todo: List[Tuple[Path, List[Path]]]
    skipped: int
    failures: List[Failure]
    out: Path


@dataclass
class ExtractionSummary:
    """What a run did: outputs ``written``, ``skipped`` (complete already), ``failures`` as (video, reason),
    the ``windows`` the model saw and the ``seconds`` the pipeline ran, into ``out``."""

    written: int
    skipped: int
    failures: List[Failure]
    windows: int
    seconds: float
    out: Path

    @property
    def ok(self) -> bool:
        """Every video has its complete output."""
        return not self.failures


class Progress:
    """A tqdm bar on a terminal; plain, flushed lines on stdout otherwise (logs, pipes); nothing when disabled."""

    def __init__(self, total: int, banner: str = "", enabled: bool = True):
        self.total, self.count, self.banner, self.enabled = total, 0, banner, enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="video", desc=f"{banner}extract", dynamic_ncols=True)

    def step(self, line: str, clips_per_second: Optional[float]) -> None:
        """One video is finished (written, or ``FAILED`` in ``line``)."""
        self.count += 1
        if self.bar is not None:
            if clips_per_second is not None:
                self.bar.set_postfix(clips_per_s=f"{clips_per_second:.1f}")
            self.bar.update(1)
            if "FAILED" in line:
                self.bar.write(f"{self.banner}{line}")
        elif self.enabled:
            rate = f" ({clips_per_second:.1f} clips/s)" if clips_per_second is not None else ""
            print(f"{self.banner}[{self.count}/{self.total}] {line}{rate}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------- the engine


class _PooledFeatures(nn.Module):
    """The model's pooled (N, num_features) features: its forward without the classifier, the model untouched."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def _feature_model(model: nn.Module, dtype: str, optimize: bool, compile: bool) -> nn.Module:
    from ..inference import optimize_for_inference

    if not (optimize or compile or dtype != "float32"):
        return _PooledFeatures(model)
    optimized = optimize_for_inference(model, dtype=DTYPES[dtype], compile=compile)
    optimized.model.reset_classifier(0)  # the optimized copy's: forward then gives the pooled features
    return optimized


class Extractor:
    """Features of sliding windows over videos, with one model and one set of settings.

    Example::

        extractor = Extractor(i3zoo.engines.load_model("i3resnet50.tv_in1k", device="cuda"), clip_len=16)
        summary = extractor.extract(["videos/"], "features/")   # one .safetensors per video
        print(summary.written, summary.failures)

    Args:
        model: what :func:`i3zoo.engines.load_model` returned, or a name loaded with its defaults.
        clip_len: frames per window (default 16, or the model's minimum if larger).
        step: frames between window starts (default: ``clip_len * frame_interval``, back to back).
        frame_interval: distance between a window's frames.
        fps: resample every video to this rate first, by its timestamps.
        crop_size: spatial size (default: the model's input size).
        dtype: ``"float32"`` or ``"bfloat16"`` (an ``optimize_for_inference`` copy computes in it).
        batch_size: windows per model call, across videos.
        workers: ``DataLoader`` workers decoding videos.
        backend: the video decoder (:class:`i3zoo.video.VideoReader`).
        format: ``"safetensors"`` (one file) or ``"npy"`` (features ``.npy`` and a ``.json`` of the rest).
        optimize: run an ``optimize_for_inference`` copy (BatchNorm folded); ``compile``: and ``torch.compile`` it.
        transform: the frames' transform instead of the model's (``transforms_for``), e.g. two-stream I3D's.

    Raises:
        UsageError: an option out of range, a clip or crop below the model's minimum.
    """

    def __init__(self, model: Union[str, LoadedModel], *, clip_len: Optional[int] = None, step: Optional[int] = None,
                 frame_interval: int = 1, fps: Optional[float] = None, crop_size: Optional[int] = None,
                 dtype: str = "float32", batch_size: int = 8, workers: int = 1, backend: str = "auto",
                 format: str = "safetensors", optimize: bool = False, compile: bool = False,
                 transform: Optional[nn.Module] = None):
        if batch_size < 1 or workers < 0 or (step is not None and step < 1) or frame_interval < 1:
            raise UsageError(f"batch_size, step and frame_interval must be >= 1, workers >= 0; got {batch_size}, "
                             f"{step}, {frame_interval}, {workers}")
        if dtype not in DTYPES or format not in FORMATS:
            raise UsageError(f"dtype {dtype!r}, format {format!r}: choose dtype from {', '.join(DTYPES)} and format "
                             f"from {', '.join(FORMATS)}")
        self.loaded = load_model(model) if isinstance(model, str) else model
        clip_len = self.loaded.clip_len(clip_len)
        crop_size = self.loaded.crop_size(crop_size)
        self.batch_size, self.workers, self.backend, self.format = batch_size, workers, backend, format
        #: what every output records, and what a complete output must have been made with to be skipped
        self.settings: Dict[str, Any] = dict(
            model=self.loaded.name, weights=self.loaded.weights, clip_len=clip_len,
            step=step or clip_len * frame_interval, frame_interval=frame_interval, fps=fps, crop_size=crop_size,
            dtype=dtype)
        #: a module that returns features itself (``returns_features``: two-stream I3D) runs as it is, with its
        #: own ``transform`` (``engines/two_stream.py``); where the features of each stream are, the outputs record
        self.transform = transform
        if getattr(self.loaded.model, "returns_features", False):
            if optimize or compile or dtype != "float32":
                raise UsageError(f"{self.loaded.name} runs as it is: optimize, compile and dtype {dtype} do not apply")
            self.settings["streams"] = {k: list(v) for k, v in self.loaded.model.stream_slices().items()}
            self._model = self.loaded.model
        else:
            self._model = _feature_model(self.loaded.model, dtype, optimize, compile)

    def plan(self, inputs: Inputs, out: Union[str, PathLike]) -> Plan:
        """The videos still to do: every input whose output is not complete. A complete output made with these
        settings is skipped; one made with other settings, or unreadable, is a failure (never overwritten)."""
        out = Path(out)
        failures: List[Failure] = list(inputs.missing)
        todo: List[Tuple[Path, List[Path]]] = []
        skipped = 0
        settings = json.loads(json.dumps(self.settings))  # as read back from a file
        for video, relative in inputs.videos:
            outputs = output_paths(out, relative, self.format)
            try:
                existing = read_settings(outputs, self.format)
            except Exception as e:  # unreadable metadata: not ours, or damaged by something else
                failures.append((str(video), f"{outputs[0]} exists but cannot be read ({e}); delete it to redo"))
                continue
            if existing is None:
                todo.append((video, outputs))
            elif existing == settings:
                skipped += 1
            else:
                failures.append((str(video), f"{outputs[0]} exists with other settings; delete it or use another "
                                             "--out"))
        return Plan(todo, skipped, failures, out)

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """The model call: (N, C, T, H, W) clips -> (N, num_features) float32 features on the CPU."""
        with torch.inference_mode():
            return self._model(clips.to(self.loaded.device)).float().cpu()

    def run(self, plan: Plan, *, progress: bool = True) -> ExtractionSummary:
        """Extract the features of ``plan.todo``: decoding in workers, windows batched across videos, each
        video's output written as soon as its last window is through. A video that cannot be read or written is
        a failure; the others go on."""
        from torch.utils.data import DataLoader

        from ..video import VideoWindows, transforms_for

        settings = self.settings
        transform = self.transform or transforms_for(self.loaded.model, crop_size=settings["crop_size"])
        dataset = VideoWindows([v for v, _ in plan.todo], clip_len=settings["clip_len"], step=settings["step"],
                               frame_interval=settings["frame_interval"], fps=settings["fps"], transform=transform,
                               backend=self.backend)
        loader = DataLoader(dataset, batch_size=None, num_workers=self.workers)
        job = _Job(self, plan, Progress(len(plan.todo), self.loaded.banner, enabled=progress))
        for item in loader:
            job.take(item)
        return job.finish()

    def extract(self, paths: Sequence[Union[str, PathLike]], out: Union[str, PathLike], *,
                list_file: Optional[Union[str, PathLike]] = None, progress: bool = True) -> ExtractionSummary:
        """:func:`find_inputs`, :meth:`plan` and :meth:`run` in one call."""
        inputs = find_inputs(paths, out, list_file=list_file, format=self.format)
        return self.run(self.plan(inputs, out), progress=progress)


def extract(paths: Sequence[Union[str, PathLike]], model: Union[str, LoadedModel], out: Union[str, PathLike], *,
            list_file: Optional[Union[str, PathLike]] = None, progress: bool = True,
            **options: Any) -> ExtractionSummary:
    """Features of sliding windows over the videos of ``paths`` (files, or folders searched recursively), one
    output file per video in ``out`` (mirroring the paths below each folder); resumable and atomic.

    Args:
        paths: video files or folders.
        model: what :func:`i3zoo.engines.load_model` returned, or a name loaded with its defaults.
        out: the output folder.
        list_file: a file of video paths, one a line (a ``,label`` after it is ignored).
        progress: a tqdm bar on a terminal, a line per video otherwise.
        **options: the :class:`Extractor`'s (``clip_len``, ``step``, ``batch_size``, ``format``, ...).

    Returns:
        What was written, skipped and failed (with reasons), the windows and the seconds.
    """
    return Extractor(model, **options).extract(paths, out, list_file=list_file, progress=progress)


# ---------------------------------------------------------------- one run's pipeline


@dataclass
class _Pending:
    path: Path
    outputs: List[Path]
    features: Dict[int, Any] = field(default_factory=dict)
    times: Dict[int, Tuple[float, float, int]] = field(default_factory=dict)
    done: Optional[Dict[str, Any]] = None


class _Job:
    """One run: windows wait in a batch for the model, features wait for the rest of their video."""

    def __init__(self, extractor: Extractor, plan: Plan, progress: Progress):
        from .._version import __version__

        self.extractor, self.plan, self.progress = extractor, plan, progress
        self.pending = {i: _Pending(path=v, outputs=o) for i, (v, o) in enumerate(plan.todo)}
        self.record_base = dict(settings=extractor.settings, i3zoo_version=__version__)
        self.failures: List[Failure] = list(plan.failures)
        self.batch: List[Dict[str, Any]] = []
        self.written = self.windows = 0
        self.started = time.perf_counter()

    def take(self, item: Dict[str, Any]) -> None:
        """One item of :class:`i3zoo.video.VideoWindows`: a window, a video's end, or a video that failed."""
        kind = item["kind"]
        if kind == "window":
            self.pending[item["video"]].times[item["window"]] = (item["start"], item["end"], item["padded"])
            self.batch.append(item)
            if len(self.batch) == self.extractor.batch_size:
                self.run_batch()
                self.finish_ready()
        elif kind == "done":
            self.pending[item["video"]].done = item
            self.finish_ready()
        else:
            state = self.pending.pop(item["video"])
            self.failures.append((str(state.path), item["reason"]))
            self.progress.step(f"{state.path}: FAILED: {item['reason']}", None)

    def run_batch(self) -> None:
        if not self.batch:
            return
        features = self.extractor.features(torch.stack([item["clip"] for item in self.batch]))
        for item, row in zip(self.batch, features):
            state = self.pending.get(item["video"])
            if state is not None:  # not a video that failed after some of its windows
                state.features[item["window"]] = row
        self.windows += len(self.batch)
        self.batch.clear()

    def finish_ready(self) -> None:
        """Write the output of every video whose windows are all through the model."""
        ready = [i for i, s in self.pending.items() if s.done is not None and len(s.features) == s.done["windows"]]
        for index in ready:
            self._write(self.pending.pop(index))

    def _write(self, state: _Pending) -> None:
        count = state.done["windows"]
        features = torch.stack([state.features[k] for k in range(count)])
        start = torch.tensor([state.times[k][0] for k in range(count)], dtype=torch.float64)
        end = torch.tensor([state.times[k][1] for k in range(count)], dtype=torch.float64)
        padded = torch.tensor([state.times[k][2] for k in range(count)], dtype=torch.int64)
        record = dict(self.record_base, video=str(state.path), num_frames=state.done["num_frames"])
        try:
            write_output(state.outputs, self.extractor.format, features, start, end, padded, record)
        except OSError as e:
            self.failures.append((str(state.path), f"cannot write {state.outputs[0]}: {e}"))
            return
        self.written += 1
        note = ", padded: the video has fewer frames than one clip" if state.done["padded"] else ""
        rate = self.windows / max(time.perf_counter() - self.started, 1e-9)
        self.progress.step(f"{state.path}: {count} windows x {features.shape[1]} -> {state.outputs[0]}{note}", rate)

    def finish(self) -> ExtractionSummary:
        """The last, partial batch, the outputs it completes, and the summary."""
        self.run_batch()
        self.finish_ready()
        self.progress.close()
        return ExtractionSummary(self.written, self.plan.skipped, self.failures, self.windows,
                                 time.perf_counter() - self.started, self.plan.out)
