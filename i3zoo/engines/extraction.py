"""Feature extraction: the features of sliding windows over videos, one output file per video, resumable and
atomic, on one process or many -- the engine behind ``i3zoo extract``, as a Python API (:func:`extract`,
:class:`Extractor`).

Videos are read in ``DataLoader`` workers (:class:`i3zoo.video.VideoWindows`: one streaming pass per video)
while the model runs; windows are batched across videos. Each output holds the features (windows x
num_features, float32), each window's start and end in seconds and the settings and weights that made them.
It is written to a temporary name and renamed (:func:`i3zoo.files.write_atomically`), so an output that
exists is complete, even after ``kill -9``; a rerun skips those and refuses one made with other settings. A
video that cannot be read is reported with its reason and the others go on.

Many processes (``torchrun``, ``i3zoo extract --nproc N``, or a user's own launcher giving ``rank`` and
``world_size``) each take a disjoint share of the sorted list, balanced by file size (:func:`split_by_size`).
Before a video is decoded its output is claimed (:func:`i3zoo.files.claim`: a ``flock`` on a claim file beside
the output, which dies with its process), so independent jobs on one folder compute each video once, and a
killed process's successor takes its videos over. Under a process group, rank 0 shows the whole job's progress
and summary; the processes meet through the group's store only (no collective call that could time out while
one process still works).

A run is three steps, each in one place: :func:`find_inputs` (the videos and where their outputs go, refusing
inputs that would write one output twice), :meth:`Extractor.plan` (this process's share and which of its videos
are still to do: the one place that decides what a run does) and :meth:`Extractor.run` (the pipeline; the model
is called in :meth:`Extractor.features` only).
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..distributed import group_store
from ..errors import UsageError
from ..files import Claim, claim, write_atomically
from ..inference import InferenceModel
from .folder_settings import claim_folder
from .loading import LoadedModel, load_model

__all__ = ["Extractor", "extract", "ExtractionSummary", "Inputs", "Plan", "find_inputs", "output_paths", "FORMATS",
           "DTYPES", "DECODE_DEVICES", "split_by_size"]

FORMATS = ("safetensors", "npy")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DECODE_DEVICES = ("cpu", "cuda")
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
    entries: List[Tuple[str, Optional[str]]] = [(str(p), None) for p in paths]
    if list_file:
        listing = Path(list_file)
        if not listing.is_file():
            raise UsageError(f"--list {list_file}: no such file")
        folder = str(listing.parent)
        for line in listing.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                path, comma, _label = line.rpartition(",")  # "path,label" (Kinetics style) or a bare path
                entries.append(((path if comma else line).strip(), folder))
    for text, base in entries:
        # one stat an entry and no Path until it is found: a list of 100,000 paths is read in a fraction of a second
        full = text if base is None or os.path.isabs(text) else os.path.join(base, text)
        try:
            mode = os.stat(full).st_mode
        except (OSError, ValueError):
            mode = 0
        if stat.S_ISDIR(mode):
            path = Path(full)
            found.extend((video, video.relative_to(path)) for video in find_videos(path))
        elif stat.S_ISREG(mode):
            path, relative = Path(full), Path(text)
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


def output_paths(out: Path, relative: Path, fmt: str, streams: Sequence[str] = ()) -> List[Path]:
    """The files of one video's output; the last one written marks it complete. ``streams`` (a two-stream run's):
    in ``npy`` format each stream's features get a file of their own too (``clip.mp4.rgb.npy``), as
    video_features writes them; ``safetensors`` holds them as tensors in the one file."""
    if fmt not in FORMATS:
        raise UsageError(f"format {fmt!r}: choose from {', '.join(FORMATS)}")
    stem = out / relative  # the video's own name with its extension: clip.mp4 and clip.avi do not collide
    if fmt == "safetensors":
        return [stem.with_name(stem.name + ".safetensors")]
    return [stem.with_name(stem.name + ".npy"), *(stem.with_name(f"{stem.name}.{s}.npy") for s in streams),
            stem.with_name(stem.name + ".json")]


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
    """One video's output, each file written atomically (the last one marks it complete). A two-stream run's
    (``settings["streams"]``: each stream's columns) holds each stream's features too: tensors ``rgb`` and
    ``flow`` beside ``features`` (their concatenation), or files of their own in ``npy`` format."""
    import numpy as np

    streams = {name: features[:, a:b].clone()  # a copy: safetensors refuses tensors that share memory
               for name, (a, b) in record["settings"].get("streams", {}).items()}
    if fmt == "safetensors":
        from safetensors.torch import save

        blob = save({"features": features.contiguous(), **streams, "start": start, "end": end, "padded": padded},
                    metadata={"i3zoo": json.dumps(record),
                              "random_weights": str(record["settings"]["weights"]["kind"] == "random").lower()})
        write_atomically(paths[0], lambda handle: handle.write(blob))
        return
    for path, array in zip(paths[:-1], (features, *streams.values())):
        write_atomically(path, lambda handle, array=array: np.save(handle, array.numpy()))
    sidecar = dict(record, start=start.tolist(), end=end.tolist(), padded=padded.tolist())
    write_atomically(paths[-1], lambda handle: handle.write(json.dumps(sidecar, indent=1).encode()))


# ---------------------------------------------------------------- shares, and what a run does and what it did


def split_by_size(sizes: Sequence[int], world_size: int) -> List[range]:
    """Each process's share of a sorted list of videos of these ``sizes`` (bytes): contiguous runs of the list,
    balanced by size.

    The rule: lay the videos end to end in list order and cut the total into ``world_size`` equal lengths;
    a video belongs to the process whose length holds its middle. So a share never exceeds an equal part of
    the total by more than one video (half of its first and half of its last), the shares are disjoint and
    cover the list, and every process computes them alike from the list alone. A size below one byte counts
    as one (empty or unreadable files are shared by count).
    """
    if world_size < 1:
        raise UsageError(f"world_size must be >= 1; got {world_size}")
    weights = [max(int(size), 1) for size in sizes]
    total, before, owners = sum(weights), 0, []
    for weight in weights:
        owners.append(min((2 * before + weight) * world_size // (2 * total), world_size - 1))
        before += weight
    starts = [next((i for i, owner in enumerate(owners) if owner >= rank), len(owners)) for rank in range(world_size)]
    return [range(starts[rank], starts[rank + 1] if rank + 1 < world_size else len(owners))
            for rank in range(world_size)]


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # gone since it was found: it fails when it is read, and is shared by count meanwhile
        return 0


@dataclass
class Plan:
    """What a run will do: ``todo`` as (video, its output files), ``skipped`` outputs already complete with
    these settings, and ``failures`` (inputs that do not exist, outputs made with other settings), for the
    share of process ``rank`` of ``world_size``."""

    todo: List[Tuple[Path, List[Path]]]
    skipped: int
    failures: List[Failure]
    out: Path
    rank: int = 0
    world_size: int = 1


@dataclass
class ExtractionSummary:
    """What a run did: outputs ``written``, ``skipped`` (complete already, or completed by another job while this
    one ran), ``failures`` as (video, reason), the ``windows`` the model saw and the ``seconds`` the pipeline ran,
    into ``out``, over ``processes`` processes (all of a job's on its rank 0 under a process group)."""

    written: int
    skipped: int
    failures: List[Failure]
    windows: int
    seconds: float
    out: Path
    processes: int = 1

    @property
    def ok(self) -> bool:
        """Every video has its complete output."""
        return not self.failures

    @classmethod
    def merged(cls, parts: Sequence["ExtractionSummary"]) -> "ExtractionSummary":
        """One summary of a job's processes (in rank order): counts summed, failures in rank order, the seconds
        of the slowest."""
        return cls(sum(p.written for p in parts), sum(p.skipped for p in parts),
                   [failure for p in parts for failure in p.failures], sum(p.windows for p in parts),
                   max(p.seconds for p in parts), parts[0].out, sum(p.processes for p in parts))


class Progress:
    """A tqdm bar on a terminal; plain, flushed lines on stdout otherwise (logs, pipes); nothing when disabled.
    ``done`` given to :meth:`step` is the whole job's count (rank 0 of many processes)."""

    def __init__(self, total: int, banner: str = "", enabled: bool = True):
        self.total, self.count, self.banner, self.enabled = total, 0, banner, enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="video", desc=f"{banner}extract", dynamic_ncols=True)

    def step(self, line: str, clips_per_second: Optional[float], done: Optional[int] = None) -> None:
        """One video is finished (written, or ``FAILED`` in ``line``)."""
        self.count = self.count + 1 if done is None else done
        if self.bar is not None:
            if clips_per_second is not None:
                self.bar.set_postfix(clips_per_s=f"{clips_per_second:.1f}")
            self.bar.update(self.count - self.bar.n)
            if "FAILED" in line:
                self.bar.write(f"{self.banner}{line}")
        elif self.enabled:
            rate = f" ({clips_per_second:.1f} clips/s)" if clips_per_second is not None else ""
            print(f"{self.banner}[{self.count}/{self.total}] {line}{rate}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Meeting:
    """How the processes of one job meet: counters and summaries in the process group's store
    (:func:`i3zoo.distributed.group_store`), which need no collective call; alone, it counts for itself."""

    #: runs this process has started: every process of a job runs the same sequence of runs, so the n-th run of
    #: each meets under the same keys, and a later run in the same process group never reads an earlier one's
    runs = itertools.count()

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size = rank, world_size
        self.store = group_store() if world_size > 1 else None
        self.prefix = f"i3zoo-extract/{next(self.runs)}/"
        self.done = 0

    def total(self, todo: int) -> int:
        """The whole job's videos to do, on rank 0 (it waits for every process's plan); elsewhere ``todo``."""
        if self.store is None:
            return todo
        self.store.add(self.prefix + "todo", todo)
        self.store.add(self.prefix + "planned", 1)
        while self.rank == 0 and self.store.add(self.prefix + "planned", 0) < self.world_size:
            time.sleep(0.05)
        return self.store.add(self.prefix + "todo", 0) if self.rank == 0 else todo

    def finished_one(self) -> int:
        """Count one finished video; the job's count so far."""
        self.done += 1
        return self.store.add(self.prefix + "done", 1) if self.store is not None else self.done

    def job_summary(self, mine: ExtractionSummary, progress: Progress, total: int) -> ExtractionSummary:
        """Rank 0: the whole job's summary, once every process has left its own (the progress going on meanwhile);
        other ranks leave theirs and return it."""
        if self.store is None:
            return mine
        record = dict(asdict(mine), out=str(mine.out))
        self.store.set(f"{self.prefix}summary/{self.rank}", json.dumps(record))
        if self.rank != 0:
            return mine
        keys = [f"{self.prefix}summary/{rank}" for rank in range(self.world_size)]
        while not self.store.check(keys):
            done = self.store.add(self.prefix + "done", 0)
            if done != progress.count:
                progress.step(f"{done} of {total} videos finished by all processes", None, done=done)
            time.sleep(0.2)
        parts = []
        for key in keys:
            record = json.loads(self.store.get(key))
            parts.append(ExtractionSummary(**dict(record, out=Path(record["out"]),
                                                  failures=[tuple(f) for f in record["failures"]])))
        return ExtractionSummary.merged(parts)


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
    """Features of sliding windows over videos, with one model and one set of settings, for one process's share.

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
        decode_device: ``"cpu"``, or ``"cuda"``: TorchCodec on this process's GPU decoder (NVDEC), in this
            process (``workers`` does not apply); frames stay on the GPU through the transforms.
        rank, world_size: this process's place among the job's processes (``torchrun`` sets them; the
            command takes them from :func:`i3zoo.distributed.start_processes`). Settings do not depend on them.
        transform: the frames' transform instead of the model's (``transforms_for``), e.g. two-stream I3D's.

    Raises:
        UsageError: an option out of range, a clip or crop below the model's minimum, GPU decoding where it
            cannot run.
    """

    def __init__(self, model: Union[str, LoadedModel], *, clip_len: Optional[int] = None, step: Optional[int] = None,
                 frame_interval: int = 1, fps: Optional[float] = None, crop_size: Optional[int] = None,
                 dtype: str = "float32", batch_size: int = 8, workers: int = 1, backend: str = "auto",
                 format: str = "safetensors", optimize: bool = False, compile: bool = False,
                 decode_device: str = "cpu", rank: int = 0, world_size: int = 1,
                 transform: Optional[nn.Module] = None):
        if batch_size < 1 or workers < 0 or (step is not None and step < 1) or frame_interval < 1:
            raise UsageError(f"batch_size, step and frame_interval must be >= 1, workers >= 0; got {batch_size}, "
                             f"{step}, {frame_interval}, {workers}")
        if dtype not in DTYPES or format not in FORMATS:
            raise UsageError(f"dtype {dtype!r}, format {format!r}: choose dtype from {', '.join(DTYPES)} and format "
                             f"from {', '.join(FORMATS)}")
        if not 0 <= rank < world_size:
            raise UsageError(f"rank {rank} of world_size {world_size}: need 0 <= rank < world_size")
        self.decode_device = _check_decode_device(decode_device, backend)
        if self.decode_device == "cuda":  # TorchCodec on this process's GPU, in this process: CUDA is not for
            backend, workers = "torchcodec", 0  # forked DataLoader workers, and NVDEC decodes beside the model
        self.loaded = load_model(model) if isinstance(model, str) else model
        clip_len = self.loaded.clip_len(clip_len)
        crop_size = self.loaded.crop_size(crop_size)
        self.batch_size, self.workers, self.backend, self.format = batch_size, workers, backend, format
        self.rank, self.world_size = rank, world_size
        #: what every output records, and what a complete output must have been made with to be skipped
        self.settings: Dict[str, Any] = dict(
            model=self.loaded.name, weights=self.loaded.weights, clip_len=clip_len,
            step=step or clip_len * frame_interval, frame_interval=frame_interval, fps=fps, crop_size=crop_size,
            dtype=dtype)
        #: a module that returns features itself (``returns_features``: two-stream I3D) runs as it is, with its
        #: own ``transform`` (``engines/two_stream.py``); where the features of each stream are, the outputs record
        if getattr(self.loaded.model, "returns_features", False):
            if optimize or compile or dtype != "float32":
                raise UsageError(f"{self.loaded.name} runs as it is: optimize, compile and dtype {dtype} do not apply")
            if transform is None:
                raise UsageError(f"{self.loaded.name} returns its own features: give its frame transform "
                                 "(transform=, e.g. i3zoo.engines.two_stream.video_features_transform())")
            self.settings["streams"] = {k: list(v) for k, v in self.loaded.model.stream_slices().items()}
            self._model = self.loaded.model
        else:
            if transform is None:
                from ..video import transforms_for

                transform = transforms_for(self.loaded.model, crop_size=crop_size)  # UsageError: not RGB
            self._model = _feature_model(self.loaded.model, dtype, optimize, compile)
        self.transform = transform
        #: the path that ran (:meth:`i3zoo.inference.InferencePath.record`), in every output beside the settings
        self.inference = dict(precision=dtype, optimized=isinstance(self._model, InferenceModel), compiled=compile)

    def plan(self, inputs: Inputs, out: Union[str, PathLike]) -> Plan:
        """This process's share of the videos and which of them are still to do.

        The videos are sorted by their output's path and split by size (:func:`split_by_size`), so every process
        finds its share alone; inputs that do not exist are reported by rank 0. In the share, a complete output
        made with these settings is skipped; one made with other settings, or unreadable, is a failure (never
        overwritten). Only the share's outputs are looked at, and no video is opened: a list of 100,000 paths
        costs a ``stat`` each.
        """
        out = Path(out)
        videos = sorted(inputs.videos, key=lambda video: video[1].as_posix())
        share = split_by_size([_file_size(video) for video, _ in videos], self.world_size)[self.rank]
        failures: List[Failure] = list(inputs.missing) if self.rank == 0 else []
        todo: List[Tuple[Path, List[Path]]] = []
        skipped = 0
        for video, relative in videos[share.start:share.stop]:
            outputs = output_paths(out, relative, self.format, self.settings.get("streams", ()))
            state = self._output_state(outputs)
            if state == "missing":
                todo.append((video, outputs))
            elif state == "complete":
                skipped += 1
            else:
                failures.append((str(video), state))
        return Plan(todo, skipped, failures, out, self.rank, self.world_size)

    def _output_state(self, outputs: List[Path]) -> str:
        """``"missing"``, ``"complete"`` (made with these settings), or why it can be neither redone nor kept."""
        try:
            existing = read_settings(outputs, self.format)
        except Exception as e:  # unreadable metadata: not ours, or damaged by something else
            return f"{outputs[0]} exists but cannot be read ({e}); delete it to redo"
        if existing is None:
            return "missing"
        if existing == json.loads(json.dumps(self.settings)):  # as read back from a file
            return "complete"
        return f"{outputs[0]} exists with other settings; delete it or use another --out"

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """The model call: (N, C, T, H, W) clips -> (N, num_features) float32 features on the CPU."""
        device = torch.device(self.loaded.device)
        if device.type == "cuda" and clips.device.type == "cpu":
            clips = clips.pin_memory()  # page-locked: the copy to the GPU is one DMA, without a staging copy
        with torch.inference_mode():
            return self._model(clips.to(device, non_blocking=True)).float().cpu()

    def run(self, plan: Plan, *, progress: bool = True) -> ExtractionSummary:
        """Extract the features of ``plan.todo``: each video claimed, then decoded in workers, windows batched
        across videos, each video's output written as soon as its last window is through. A video that cannot be
        read or written is a failure; the others go on. Videos another process has claimed are done last: once
        it lets go, a complete output is skipped and an abandoned one (its process died) is computed here.

        Returns:
            This process's summary; on rank 0 under a process group, the whole job's.
        """
        from torch.utils.data import DataLoader

        claim_folder(plan.out, dict(self.settings, format=self.format))  # settings checked, before any write
        meeting = _Meeting(plan.rank, plan.world_size)
        total = meeting.total(len(plan.todo))
        job = _Job(self, plan, Progress(total, self.loaded.banner, enabled=progress), meeting)
        loader = DataLoader(_ClaimedWindows(self._windows(), job.queue), batch_size=None, num_workers=self.workers,
                            **_prefetch(self.batch_size, self.workers), **_unordered())
        job.feed()
        for item in loader:
            job.take(item)
        return meeting.job_summary(job.finish(), job.progress, total)

    def _windows(self):
        from ..video import VideoWindows

        settings = self.settings
        device = f"cuda:{torch.cuda.current_device()}" if self.decode_device == "cuda" else "cpu"
        return VideoWindows([], clip_len=settings["clip_len"], step=settings["step"],
                            frame_interval=settings["frame_interval"], fps=settings["fps"], transform=self.transform,
                            backend=self.backend, device=device)

    def extract(self, paths: Sequence[Union[str, PathLike]], out: Union[str, PathLike], *,
                list_file: Optional[Union[str, PathLike]] = None, progress: bool = True) -> ExtractionSummary:
        """:func:`find_inputs`, :meth:`plan` and :meth:`run` in one call."""
        inputs = find_inputs(paths, out, list_file=list_file, format=self.format)
        return self.run(self.plan(inputs, out), progress=progress)


def _check_decode_device(decode_device: str, backend: str) -> str:
    """``decode_device``, if it can decode here; else a one-line ``UsageError`` saying why and what to use."""
    if decode_device not in DECODE_DEVICES:
        raise UsageError(f"decode_device {decode_device!r}: choose from {', '.join(DECODE_DEVICES)}")
    if decode_device == "cuda":
        if backend not in ("auto", "torchcodec"):
            raise UsageError(f"--decode-device cuda decodes with TorchCodec; --backend {backend} cannot decode on "
                             "the GPU (leave --backend at auto, or use --decode-device cpu)")
        from ..video.decoders.torchcodec import torchcodec_status

        if not torch.cuda.is_available():
            raise UsageError("--decode-device cuda decodes on the GPU (TorchCodec with NVDEC), but torch sees no CUDA "
                             "GPU here; use --decode-device cpu")
        status = torchcodec_status()
        if status is not None:
            raise UsageError(f"--decode-device cuda decodes with TorchCodec on the GPU, which cannot run here: "
                             f"{status}; use --decode-device cpu")
    return decode_device


def _prefetch(batch_size: int, workers: int) -> Dict[str, Any]:
    """Two batches of windows decoded ahead, across the workers: while the model runs one batch the workers fill the
    next (the DataLoader's default, two windows a worker, left the model waiting for most of each batch). Memory
    stays bounded by the batch size, whatever the videos' length."""
    return {"prefetch_factor": max(2, -(-2 * batch_size // workers))} if workers else {}


def _unordered() -> Dict[str, Any]:
    """``in_order=False`` where the DataLoader has it (torch 2.6+): a worker on a long video does not hold back
    the others' windows (each video's items still come in order, from its one worker)."""
    import inspect

    from torch.utils.data import DataLoader

    return {"in_order": False} if "in_order" in inspect.signature(DataLoader).parameters else {}


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


class _ClaimedWindows(torch.utils.data.IterableDataset):
    """The windows of the videos the main process hands out through ``queue`` as (number, path) after claiming
    each (a decoder starts no video that is not this process's to compute); None ends a decoder."""

    def __init__(self, windows, queue):
        self.windows, self.queue = windows, queue

    def __iter__(self):
        while True:
            handed = self.queue.get()
            if handed is None:
                return
            yield from self.windows.read(*handed)


@dataclass
class _Pending:
    path: Path
    outputs: List[Path]
    claim: Claim
    features: Dict[int, Any] = field(default_factory=dict)
    times: Dict[int, Tuple[float, float, int]] = field(default_factory=dict)
    done: Optional[Dict[str, Any]] = None


class _Job:
    """One run: videos are claimed and handed to the decoders a few at a time, windows wait in a batch for the
    model, features wait for the rest of their video."""

    #: seconds between tries at videos that other processes hold, when nothing else is left
    POLL = 0.5

    def __init__(self, extractor: Extractor, plan: Plan, progress: Progress, meeting: _Meeting):
        from .._version import __version__

        self.extractor, self.plan, self.progress, self.meeting = extractor, plan, progress, meeting
        self.queue = _handover_queue(extractor.workers)
        # two videos a decoder: one decoding, one waiting, so a decoder never idles while the main process writes
        self.depth = 2 * max(extractor.workers, 1)
        self.unclaimed = deque(range(len(plan.todo)))
        self.held_elsewhere: deque = deque()
        self.in_flight = 0
        self.stopped = False
        self.pending: Dict[int, _Pending] = {}
        self.record_base = dict(settings=extractor.settings, i3zoo_version=__version__, inference=extractor.inference)
        self.failures: List[Failure] = list(plan.failures)
        self.batch: List[Dict[str, Any]] = []
        self.written = self.windows = 0
        self.skipped = plan.skipped
        self.started = time.perf_counter()

    def feed(self) -> None:
        """Claim and hand out videos until ``depth`` are with the decoders; once every video is handed out or
        finished elsewhere, end the decoders. Videos held by another process are tried again after the others,
        and waited for when nothing else is left."""
        while self.in_flight < self.depth and not self.stopped:
            if self._hand_out_one():
                continue
            if self.held_elsewhere and self.in_flight == 0:
                # only videos other processes hold are left: finish ours (a partial batch would keep our claims,
                # and a job waiting on them could be holding the ones we wait for), then wait for them to let go
                self.run_batch()
                self.finish_ready()
                time.sleep(self.POLL)
                continue
            if not self.held_elsewhere and not self.unclaimed:
                for _ in range(max(self.extractor.workers, 1)):
                    self.queue.put(None)
                self.stopped = True
            return

    def _hand_out_one(self) -> bool:
        """Claim the next video this process may compute and hand it to the decoders; False if there is none now.
        Videos held elsewhere are tried again (one pass) only once the unclaimed ones are all handed out."""
        tries = len(self.held_elsewhere) if not self.unclaimed else 0
        while self.unclaimed or tries:
            if self.unclaimed:
                index = self.unclaimed.popleft()
            else:
                index, tries = self.held_elsewhere.popleft(), tries - 1
            video, outputs = self.plan.todo[index]
            taken = claim(outputs[-1])
            if taken is None:
                self.held_elsewhere.append(index)
                continue
            state = self.extractor._output_state(outputs)  # another job may have finished it since the plan
            if state == "missing":
                self.pending[index] = _Pending(path=video, outputs=outputs, claim=taken)
                self.queue.put((index, str(video)))
                self.in_flight += 1
                return True
            taken.release()
            if state == "complete":
                self.skipped += 1
                self._step(f"{video}: complete (written by another job)", None)
            else:
                self.failures.append((str(video), state))
                self._step(f"{video}: FAILED: {state}", None)
        return False

    def _step(self, line: str, rate: Optional[float]) -> None:
        self.progress.step(line, rate, done=self.meeting.finished_one())

    def take(self, item: Dict[str, Any]) -> None:
        """One item of :class:`i3zoo.video.VideoWindows`: a window, a video's end, or a video that failed."""
        kind = item["kind"]
        if kind == "window":
            self.pending[item["video"]].times[item["window"]] = (item["start"], item["end"], item["padded"])
            self.batch.append(item)
            if len(self.batch) == self.extractor.batch_size:
                self.run_batch()
                self.finish_ready()
            return
        self.in_flight -= 1
        if kind == "done":
            self.pending[item["video"]].done = item
            self.finish_ready()
        else:
            state = self.pending.pop(item["video"])
            state.claim.release()
            self.failures.append((str(state.path), item["reason"]))
            self._step(f"{state.path}: FAILED: {item['reason']}", None)
        self.feed()

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
            state = self.pending.pop(index)
            try:
                self._write(state)
            finally:
                state.claim.release()  # after the output is complete: a waiting process then finds it so

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
            self._step(f"{state.path}: FAILED: cannot write {state.outputs[0]}: {e}", None)
            return
        self.written += 1
        note = ", padded: the video has fewer frames than one clip" if state.done["padded"] else ""
        rate = self.windows / max(time.perf_counter() - self.started, 1e-9)
        self._step(f"{state.path}: {count} windows x {features.shape[1]} -> {state.outputs[0]}{note}", rate)

    def finish(self) -> ExtractionSummary:
        """The last, partial batch, the outputs it completes, and this process's summary."""
        self.run_batch()
        self.finish_ready()
        self.progress.close()
        return ExtractionSummary(self.written, self.skipped, self.failures, self.windows,
                                 time.perf_counter() - self.started, self.plan.out)


def _handover_queue(workers: int):
    """Where the main process hands claimed videos to the decoders: a process queue for DataLoader workers."""
    if workers == 0:
        import queue

        return queue.SimpleQueue()
    import multiprocessing

    return multiprocessing.get_context().Queue()
