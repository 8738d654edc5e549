"""The decoder interface, the stream index every decoder is given, and the registry ``backend=`` names look up.

The shape is PyTorchVideo's (``pytorchvideo/data/encoded_video.py``): one class per decoder behind an abstract
``Video``, chosen by name with ``select_video_class(name)``. Its if/elif over a fixed enum becomes a registry that a
decoder joins with :func:`register_decoder` (as timm's ``@register_model``), so a decoder is declared in one place.

A decoder does not find frame times itself: :class:`i3zoo.video.VideoReader` scans the stream's packets once and
gives every decoder the same :class:`StreamIndex`, so an index names the same frame whichever decoder reads it.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Dict, Iterator, List, Optional, Tuple, Type, TypeVar, Union

import torch

PathLike = Union[str, os.PathLike]


class VideoError(ValueError):
    """A video that cannot be read: the message names the file and the reason."""

    def __init__(self, path: PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class StreamIndex:
    """What the packets of a video stream say, before any decoding."""

    pts: List[int]  # presentation timestamps, sorted, in time_base units: frame i is shown at pts[i] * time_base
    time_base: float
    width: int
    height: int
    codec: str


class Decoder(abc.ABC):
    """Decodes frames of one video file by index. Subclass it, set ``name``, and decorate with
    :func:`register_decoder`.

    Class attributes:
        name: what ``backend=`` (and ``--backend``) calls it.
        preference: ``backend="auto"`` takes the usable decoder with the highest preference.
        batch_frames: frames per :meth:`get_frames` call in the default :meth:`iter_frames`.
        devices: the device types it can decode on (frames come back on ``self.device``, which the reader sets).

    A decoder travels to ``DataLoader`` workers with its reader, so it must pickle: make native handles lazily
    and leave them out of ``__getstate__``.

    Args:
        path: the video file (it exists, and its stream has at least one timestamped packet).
        index: the stream's timestamps and frame size; a frame is matched to its index by its timestamp.
    """

    name: ClassVar[str]
    preference: ClassVar[int] = 0
    batch_frames: ClassVar[int] = 16
    devices: ClassVar[Tuple[str, ...]] = ("cpu",)
    device: str = "cpu"

    def __init__(self, path: Path, index: StreamIndex):
        self.path = path
        self.index = index

    @classmethod
    def unavailable(cls) -> Optional[str]:
        """None where this decoder can run here, else why not (it is asked often: cache what is slow to find)."""
        return None

    @abc.abstractmethod
    def get_frames(self, wanted: List[int]) -> Dict[int, torch.Tensor]:
        """The frames at ``wanted`` (sorted, distinct indices): index -> uint8 (3, H, W) RGB.

        A frame that does not decode (a truncated file) is left out, and the reader names it.

        Raises:
            VideoError: the decoder cannot read the file.
        """

    def iter_frames(self, wanted: List[int]) -> Iterator[Tuple[int, torch.Tensor]]:
        """``(index, uint8 (3, H, W))`` for the sorted ``wanted`` indices, in order: the streaming read behind
        :meth:`i3zoo.video.VideoReader.iter_clips`. Stops at the first frame that does not decode.

        This default asks :meth:`get_frames` for ``batch_frames`` at a time; a decoder that reads forward more
        cheaply in one pass overrides it.
        """
        for start in range(0, len(wanted), self.batch_frames):
            batch = wanted[start:start + self.batch_frames]
            frames = self.get_frames(batch)
            for index in batch:
                if index not in frames:
                    return
                yield index, frames[index]


_DECODERS: Dict[str, Type[Decoder]] = {}
DecoderClass = TypeVar("DecoderClass", bound=Type[Decoder])


def register_decoder(cls: DecoderClass) -> DecoderClass:
    """Class decorator: make ``cls`` a backend, under ``cls.name``.

    Raises:
        TypeError: ``cls`` is not a :class:`Decoder` subclass.
        ValueError: ``cls.name`` is missing, ``"auto"``, or taken by another decoder.
    """
    if not (isinstance(cls, type) and issubclass(cls, Decoder)):
        raise TypeError(f"register_decoder takes a subclass of i3zoo.video.Decoder, not {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or name == "auto":
        raise ValueError(f"{cls.__qualname__}.name must be a non-empty string other than 'auto', not {name!r}")
    taken = _DECODERS.get(name)
    if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"video backend name {name!r} is taken by {taken.__module__}.{taken.__qualname__}")
    _DECODERS[name] = cls
    return cls


def unregister_decoder(name: str) -> Type[Decoder]:
    """Remove the decoder registered as ``name`` and return it.

    Raises:
        ValueError: no decoder has that name.
    """
    if name not in _DECODERS:
        raise ValueError(f"no video decoder is registered as {name!r}; registered: {', '.join(decoder_names())}")
    return _DECODERS.pop(name)


def decoder_names() -> Tuple[str, ...]:
    """The registered decoders' names, sorted."""
    return tuple(sorted(_DECODERS))


def backend_choices() -> Tuple[str, ...]:
    """What ``backend=`` and ``--backend`` accept: ``"auto"``, then every registered decoder's name."""
    return ("auto", *decoder_names())


def decoder_status() -> Dict[str, Optional[str]]:
    """Every registered decoder, in the order ``backend="auto"`` tries them (highest preference first): None
    where it can run here, else the reason it is passed over."""
    ordered = sorted(_DECODERS.values(), key=lambda cls: (-cls.preference, cls.name))
    return {cls.name: cls.unavailable() for cls in ordered}


def resolve_backend(backend: str = "auto") -> str:
    """The registered decoder's name that ``backend`` stands for here (``"auto"``: the most preferred usable one).

    Raises:
        ValueError: an unknown name, a decoder asked for by name that cannot run here (the reason is given), or
            (``"auto"``) no usable decoder at all.
    """
    choices = backend_choices()
    if backend not in choices:
        raise ValueError(f"unknown video backend {backend!r}; choose from {', '.join(choices)}")
    if backend != "auto":
        problem = _DECODERS[backend].unavailable()
        if problem is None:
            return backend  # a decoder asked for by name is the only one asked whether it can run
    status = decoder_status()
    usable = [name for name, reason in status.items() if reason is None]
    if backend != "auto":
        instead = f"use backend={usable[0]!r}" if usable else "no other decoder can run here either"
        raise ValueError(f"video backend {backend!r} cannot be used: {problem}; {instead}")
    if not usable:
        raise ValueError("no video decoder can run here: " + "; ".join(f"{n}: {r}" for n, r in status.items()))
    return usable[0]


def decoder_class(backend: str = "auto") -> Type[Decoder]:
    """The decoder class ``backend`` stands for here (PyTorchVideo's ``select_video_class``); see
    :func:`resolve_backend` for the errors."""
    return _DECODERS[resolve_backend(backend)]
