"""The training and validation sets of the recipe, checked before any training starts.

A PATH is a class-per-folder directory (:class:`i3zoo.video.VideoFolder`) or a ``path,label`` list file
(:class:`i3zoo.video.VideoList`). Every training sample's augmentation (clip position, crop, flip) is drawn
from ``(seed, epoch, index)`` alone (:class:`SeededSamples`), so it does not depend on the number of processes
or workers, nor on where a run was interrupted and resumed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import Dataset, default_collate

from ..video import VideoError, VideoFolder, VideoList, VideoReader

__all__ = ["open_dataset", "SeededSamples", "ReportUnreadable", "Unreadable", "collate_readable", "check_datasets",
           "label_names_of"]

PathLike = Union[str, os.PathLike]


def open_dataset(path: PathLike, *, train: bool, clip_len: int, frame_interval: int, num_clips: int = 1,
                 transform: Optional[Callable] = None, backend: str = "auto", seed: Optional[int] = None,
                 label_names: Union[Sequence[str], PathLike, None] = None, what: str = "--train"):
    """A :class:`VideoFolder` for a directory, a :class:`VideoList` for a list file."""
    path = Path(path)
    common = dict(num_clips=num_clips, train=train, transform=transform, backend=backend, seed=seed)
    if path.is_dir():
        if label_names is not None:
            raise ValueError(f"{what} {path}: label names come from the class folders; label_names applies to "
                             "list files only")
        return VideoFolder(path, clip_len, frame_interval, **common)
    if path.is_file():
        return VideoList(path, clip_len, frame_interval, label_names=label_names, **common)
    raise ValueError(f"{what} {path}: no such folder or list file (give a folder of class folders or a "
                     "'path,label' list file)")


@dataclass(frozen=True)
class Unreadable:
    """In place of a clip whose video could not be read: left out of its batch and reported by the trainer."""

    path: str
    reason: str


def read_or_report(dataset, index: int):
    """``dataset[index]``, or ``(Unreadable, label)`` when its video cannot be read (a long run goes on)."""
    try:
        return dataset[index]
    except VideoError as e:
        return Unreadable(e.path, e.reason), dataset.samples[index][1]


class ReportUnreadable(Dataset):
    """``dataset`` whose unreadable items come as ``(Unreadable, label)`` (see :func:`read_or_report`)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return read_or_report(self.dataset, index)


def collate_readable(items) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor], List[Unreadable]]:
    """``(clips, labels, unreadable)``: the batch of the readable items (None if there is none) and the others."""
    unreadable = [clip for clip, _ in items if isinstance(clip, Unreadable)]
    readable = [item for item in items if not isinstance(item[0], Unreadable)]
    if not readable:
        return None, None, unreadable
    clips, labels = default_collate(readable)
    return clips, labels, unreadable


class SeededSamples(Dataset):
    """Item ``i`` of ``dataset`` with torch's RNG seeded from ``(seed, epoch, i)`` while it is made.

    The video transforms draw crops and flips from torch's global RNG; seeding it per item (inside
    ``fork_rng``, so the caller's RNG is untouched) makes an item the same in one process or many, in the main
    process or a worker, before or after a resume.
    """

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.dataset.set_epoch(epoch)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch * 10_007 + index) & 0x7FFF_FFFF_FFFF)
            return read_or_report(self.dataset, index)


def label_names_of(dataset, num_classes: int) -> List[str]:
    """The dataset's class names, or ``"class K"`` for list files that give indices only."""
    if dataset.classes:
        return list(dataset.classes)
    return [f"class {k}" for k in range(num_classes)]


def _first_readable(paths: List[Path], backend: str) -> Tuple[Optional[Path], Optional[str]]:
    reason = None
    for path in paths:
        try:
            if VideoReader(path, backend=backend).num_frames > 0:
                return path, None
        except VideoError as e:
            reason = f"{path.name}: {e.reason}"
    return None, reason


def check_datasets(train, val, *, num_classes: int, batch_size: int, world_size: int, backend: str) -> None:
    """Every error that would otherwise surface mid-training, raised now (``ValueError`` naming the problem).

    * a class folder with no video file, or in which no video can be opened (each class is probed until one of
      its videos opens: one file per class on a sound dataset);
    * a label outside ``num_classes``;
    * validation classes that are not the training classes;
    * a training set of one class (nothing to tell apart);
    * a global batch (``batch_size`` x ``world_size``) larger than the training set.

    A single unreadable video among readable ones is not caught here (that would mean opening every file before
    the first step): when it is met, it is left out of its batch and reported by name, and the run goes on
    (``train_skipped`` / ``val_skipped`` in the metrics).
    """
    for name, dataset in (("--train", train), ("--val", val)):
        if dataset is None:
            continue
        by_label: Dict[int, List[Path]] = {}
        for path, label in dataset.samples:
            by_label.setdefault(label, []).append(path)
        if isinstance(dataset, VideoFolder):
            empty = [c for k, c in enumerate(dataset.classes) if k not in by_label]
            if empty and dataset is train:
                raise ValueError(f"{name}: class folder(s) with no video file: {', '.join(empty[:10])}; every "
                                 "class needs training videos (remove the folder or add videos)")
        outside = sorted(k for k in by_label if not 0 <= k < num_classes)
        if outside:
            path = by_label[outside[0]][0]
            raise ValueError(f"{name}: label {outside[0]} (of {path}) is outside the model's {num_classes} classes "
                             f"(0..{num_classes - 1}); give --num-classes or fix the labels")
        for label, paths in sorted(by_label.items()):
            readable, reason = _first_readable(paths, backend)
            if readable is None:
                what = (f"class folder {paths[0].parent}" if isinstance(dataset, VideoFolder)
                        else f"label {label}")
                raise ValueError(f"{name}: no readable video for {what} ({len(paths)} file(s); {reason})")
    trained = {label for _, label in train.samples}
    if len(trained) < 2:
        raise ValueError(f"--train: every training video has label {trained.pop()}; a classifier needs videos of at "
                         "least two classes to learn anything (add the other classes' videos)")
    if val is not None and train.classes and val.classes and list(val.classes) != list(train.classes):
        raise ValueError(f"--val classes ({', '.join(val.classes[:10])}) are not the --train classes "
                         f"({', '.join(train.classes[:10])})")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1; got {batch_size}")
    if batch_size * world_size > len(train):
        raise ValueError(f"the global batch ({batch_size} per process x {world_size} process(es) = "
                         f"{batch_size * world_size}) is larger than the training set ({len(train)} videos); "
                         "lower --batch-size")
