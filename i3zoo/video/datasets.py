"""``torch.utils.data`` datasets over video files: labelled clips for training and evaluation, windows for
extraction.

* :class:`VideoFolder`: one folder per class (UCF101 / HMDB51 layout), ``(clip, label)`` items.
* :class:`VideoList`: a list file of ``path,label`` lines (Kinetics style), label names from the file or a
  separate list, ``(clip, label)`` items.
* :class:`VideoWindows`: the sliding windows of one or many videos, read in one streaming pass per video
  (an ``IterableDataset``: workers split the videos between them and decode in parallel while the model
  runs).

Each item's clip is decoded when asked for, so they all work with ``DataLoader(num_workers>0)``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from ..text import MAX_CLASSES, check_label_names, printable
from .decode import VideoError, VideoReader
from .sampling import Clips, evenly_spaced_clips, random_clip, sliding_windows

__all__ = ["VIDEO_EXTENSIONS", "find_videos", "VideoFolder", "VideoList", "VideoWindows", "read_label_list"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ogv",
                    ".3gp", ".ts")
PathLike = Union[str, os.PathLike]
Transform = Optional[Callable[[torch.Tensor], torch.Tensor]]


def find_videos(folder: PathLike, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> List[Path]:
    """Video files under ``folder`` (recursively, by extension, case-insensitive), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


class _LabelledClips(Dataset):
    """Shared by the folder and list datasets: (path, label) samples -> (clip, label) items."""

    def __init__(self, samples: List[Tuple[Path, int]], classes: List[str], *, clip_len: int, frame_interval: int,
                 num_clips: int, train: bool, transform: Transform, backend: str, seed: Optional[int],
                 sampler: str = "spread"):
        if train and num_clips != 1:
            raise ValueError(f"training takes one random clip per video; got num_clips={num_clips}")
        self.samples, self.classes = samples, classes
        self.clip_len, self.frame_interval, self.num_clips = clip_len, frame_interval, num_clips
        self.train, self.transform, self.backend, self.seed = train, transform, backend, seed
        self.sampler = sampler  # evaluation's clip sampler (i3zoo.video.evenly_spaced_clips); its name is checked now
        evenly_spaced_clips(1, 1, sampler=sampler)
        self._epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """With a ``seed``, training clips are drawn from (seed, epoch, index): reproducible, new each epoch."""
        self._epoch = epoch

    def clips_for(self, index: int, num_frames: int) -> Clips:
        """The frame indices item ``index`` reads from its video of ``num_frames`` frames."""
        if self.train:
            generator = None
            if self.seed is not None:
                generator = torch.Generator().manual_seed(hash((self.seed, self._epoch, index)) & 0x7FFFFFFF)
            return random_clip(num_frames, self.clip_len, self.frame_interval, generator=generator)
        return evenly_spaced_clips(num_frames, self.clip_len, self.frame_interval, self.num_clips,
                                   sampler=self.sampler)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        """``(clip, label)``: clip (C, T, H, W) after the transform (uint8 (T, C, H, W) without one); with
        ``num_clips > 1`` the clips are stacked first, (num_clips, ...)."""
        path, label = self.samples[index]
        reader = VideoReader(path, backend=self.backend)
        clips = self.clips_for(index, reader.num_frames)
        frames = reader.get_frames(clips.indices.flatten().tolist()).unflatten(0, tuple(clips.indices.shape))
        outputs = [self.transform(f) if self.transform else f for f in frames]
        clip = outputs[0] if self.num_clips == 1 else torch.stack(outputs)
        return clip, label


class VideoFolder(_LabelledClips):
    """Videos in one folder per class: ``root/<class name>/<video>`` (UCF101 / HMDB51 layout).

    Classes are the sorted folder names; label ``i`` is ``classes[i]``.

    Args:
        root: the folder holding one folder per class.
        clip_len: frames per clip.
        frame_interval: distance between a clip's frames.
        num_clips: evenly spaced clips per video for evaluation (stacked); training takes one random clip.
        train: one random clip per item (:func:`random_clip`) instead of evenly spaced ones.
        transform: e.g. :func:`i3zoo.video.transforms_for`; applied to each clip's uint8 (T, C, H, W) frames.
        backend: the decoding backend.
        seed: makes training clips reproducible (see :meth:`set_epoch`); None draws from torch's global RNG.
        sampler: how evaluation clips are spread (:func:`i3zoo.video.evenly_spaced_clips`).
    """

    def __init__(self, root: PathLike, clip_len: int, frame_interval: int = 1, *, num_clips: int = 1,
                 train: bool = False, transform: Transform = None, backend: str = "auto", seed: Optional[int] = None,
                 sampler: str = "spread"):
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"{root} is not a folder")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        samples = [(path, label) for label, name in enumerate(classes) for path in find_videos(root / name)]
        if not samples:
            raise ValueError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in class folders under {root}")
        super().__init__(samples, classes, clip_len=clip_len, frame_interval=frame_interval, num_clips=num_clips,
                         train=train, transform=transform, backend=backend, seed=seed, sampler=sampler)


def read_label_list(path: PathLike) -> List[str]:
    """Label names, one per line (blank lines skipped; a UTF-8 byte order mark ignored); line ``i`` names label
    ``i``. At most :data:`i3zoo.text.MAX_CLASSES` names of :data:`i3zoo.text.MAX_LABEL_CHARS` characters."""
    names = [line.strip() for line in Path(path).read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    check_label_names(names, str(path))
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: label names repeat")
    return names


_INDEX = re.compile(r"[0-9]+")  # a class index: ASCII digits (str.isdigit also takes "²", which int() refuses)
_NUMBER = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")


def _list_rows(list_file: Path, root: Path) -> List[Tuple[int, Path, str]]:
    """``(line number, path, label)`` of each ``path,label`` line, its label checked as far as the line alone
    can say: an index is a whole number below :data:`i3zoo.text.MAX_CLASSES`, a name is not a number and not
    longer than :data:`i3zoo.text.MAX_LABEL_CHARS`. A UTF-8 byte order mark is ignored."""
    rows = []
    for number, line in enumerate(list_file.read_text(encoding="utf-8-sig").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path, sep, label = line.rpartition(",")
        label = label.strip()
        if not sep or not path.strip() or not label:
            raise ValueError(f"{list_file}:{number}: expected 'path,label'; got '{printable(line)}'")
        if _NUMBER.fullmatch(label) and not _INDEX.fullmatch(label):
            raise ValueError(f"{list_file}:{number}: label {label!r} is not a class index; indices are whole "
                             f"numbers from 0 to {MAX_CLASSES - 1:,}")
        if _INDEX.fullmatch(label) and int(label) >= MAX_CLASSES:
            raise ValueError(f"{list_file}:{number}: label {label} is beyond the largest class index allowed, "
                             f"{MAX_CLASSES - 1:,}")
        check_label_names([label], f"{list_file}:{number}")
        rows.append((number, root / path.strip(), label))
    if not rows:
        raise ValueError(f"{list_file} lists no videos")
    return rows


class VideoList(_LabelledClips):
    """Videos listed in a text file, one ``path,label`` line each (Kinetics style).

    A label is a class index (``0``..) or a class name. With ``label_names`` (a list, or a file with one name
    per line) names and indices refer to it; without it, names found in the file are sorted to make the
    classes, and indices are taken as they are. Relative paths are under ``root`` (default: the list file's
    folder). Blank lines and ``#`` comments are skipped.

    Args:
        list_file: the list file.
        label_names: the class names, or a file of them.
        root: folder the listed paths are relative to.
        (others as :class:`VideoFolder`)
    """

    def __init__(self, list_file: PathLike, clip_len: int, frame_interval: int = 1, *,
                 label_names: Union[Sequence[str], PathLike, None] = None, root: Optional[PathLike] = None,
                 num_clips: int = 1, train: bool = False, transform: Transform = None, backend: str = "auto",
                 seed: Optional[int] = None, sampler: str = "spread"):
        list_file = Path(list_file)
        root = Path(root) if root is not None else list_file.parent
        if isinstance(label_names, (str, os.PathLike)):
            label_names = read_label_list(label_names)
        rows = _list_rows(list_file, root)
        classes = list(label_names) if label_names is not None else sorted(
            {label for _, _, label in rows if not _INDEX.fullmatch(label)})
        samples = []
        for number, path, label in rows:
            if _INDEX.fullmatch(label):
                index = int(label)
                if label_names is not None and index >= len(classes):
                    raise ValueError(f"{list_file}:{number}: label {index} is out of range for "
                                     f"{len(classes)} label names")
            elif label in classes:
                index = classes.index(label)
            else:
                raise ValueError(f"{list_file}:{number}: unknown label '{printable(label)}'; known: "
                                 f"{printable(', '.join(classes[:20]))}")
            samples.append((path, index))
        if label_names is None and any(_INDEX.fullmatch(label) for _, _, label in rows) and classes:
            raise ValueError(f"{list_file} mixes label names and indices; give label_names to say which is which")
        super().__init__(samples, classes, clip_len=clip_len, frame_interval=frame_interval, num_clips=num_clips,
                         train=train, transform=transform, backend=backend, seed=seed, sampler=sampler)


class VideoWindows(IterableDataset):
    """The sliding windows of many videos, each video read in one streaming pass (for feature extraction).

    Items are dicts (use ``DataLoader(dataset, batch_size=None)``; ``i3zoo extract`` batches windows across
    videos itself):

    * ``{"kind": "window", "video": v, "window": k, "clip": (C, T, H, W), "start": s, "end": e, "padded": p}``
      for each window of video ``v`` in order (start/end in seconds; ``padded`` positions repeat the last frame);
    * ``{"kind": "done", "video": v, "windows": n, "num_frames": f, "padded": p}`` after a video's last window;
    * ``{"kind": "error", "video": v, "path": str, "reason": str}`` for a video that cannot be read; the
      others go on.

    With workers, video ``v`` is read by worker ``v % num_workers``: each video's items stay in order.

    Args:
        paths: the videos.
        clip_len, frame_interval, step, fps: as :func:`sliding_windows`.
        transform: applied to each window's uint8 (T, C, H, W) frames.
        backend: the decoding backend.
        device: where frames are decoded (``"cuda"``: a decoder that can, e.g. TorchCodec on NVDEC; no workers).
    """

    def __init__(self, paths: Sequence[PathLike], clip_len: int, step: Optional[int] = None, frame_interval: int = 1,
                 *, fps: Optional[float] = None, transform: Transform = None, backend: str = "auto",
                 device: str = "cpu"):
        self.paths = [Path(p) for p in paths]
        self.device = device
        self.clip_len, self.step, self.frame_interval, self.fps = clip_len, step, frame_interval, fps
        self.transform, self.backend = transform, backend
        # arguments are checked now, not in a worker
        sliding_windows(1, clip_len, frame_interval, step, frame_times=[0.0], fps=fps)

    def windows_of(self, reader: VideoReader) -> Clips:
        return sliding_windows(reader.num_frames, self.clip_len, self.frame_interval, self.step,
                               frame_times=reader.frame_times, fps=self.fps)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        worker = get_worker_info()
        mine = range(len(self.paths)) if worker is None else range(worker.id, len(self.paths), worker.num_workers)
        for video in mine:
            yield from self._read_one(video)

    def _read_one(self, video: int) -> Iterator[Dict[str, Any]]:
        return self.read(video, self.paths[video])

    def read(self, video: int, path: PathLike) -> Iterator[Dict[str, Any]]:
        """The items of one video, numbered ``video`` in them, in one streaming pass (a caller that hands out
        videos itself, as ``i3zoo extract`` does after claiming each, reads them with this)."""
        count = 0
        try:
            reader = VideoReader(path, backend=self.backend, device=self.device)
            windows = self.windows_of(reader)
            for k, frames in reader.iter_clips(windows.tolist()):
                clip = self.transform(frames) if self.transform else frames
                yield {"kind": "window", "video": video, "window": k, "clip": clip, "start": float(windows.start[k]),
                       "end": float(windows.end[k]), "padded": int(windows.padded[k])}
                count += 1
        except VideoError as e:
            yield {"kind": "error", "video": video, "path": str(path), "reason": e.reason, "after_windows": count}
            return
        yield {"kind": "done", "video": video, "windows": len(windows), "num_frames": reader.num_frames,
               "padded": int(windows.padded.max())}
