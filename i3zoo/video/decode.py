"""Reading video files: frame timestamps from the stream, frames by index, and a one-pass streaming read.

:class:`VideoReader` is the one interface; the decoding behind it is a plug-in (:mod:`i3zoo.video.decoders`).
PyAV (the default) ships FFmpeg inside its wheels, so ``pip install`` is the whole setup. TorchCodec is optional
(``pip install "i3zoo[torchcodec]"``) and needs FFmpeg's shared libraries on the system; ``backend="auto"`` takes
the most preferred decoder that can run here (TorchCodec where it imports *and* loads them, PyAV otherwise), and
:func:`i3zoo.video.decoder_status` says why any other was passed over.

Frame indices count frames in presentation order. Their times come from the stream's own timestamps
(``pts * time_base``), read from the container's packets without decoding (what TorchCodec's "exact" seek
mode scans too), so variable-frame-rate files get their true times. Every decoder is given this one index and
matches a decoded frame to its index by its timestamp, never by counting, so a seek that lands early or a
decoder that drops a frame cannot shift the frames of a clip.

What a file declares is checked before a frame is decoded (:func:`frame_limits`): frames beyond
:data:`MAX_FRAME_PIXELS` pixels or with a long side more than :data:`MAX_ASPECT_RATIO` times the short side are
that file's failure, as Pillow refuses images beyond its ``MAX_IMAGE_PIXELS``; so a few kilobytes cannot become
gigabytes of frames (a 4000x1 video is 4000 x 256 pixels once its short side is resized to 256). The limits are
raised with the environment variables :data:`MAX_PIXELS_ENV` / :data:`MAX_ASPECT_ENV` (what every command's
``--max-frame-pixels`` / ``--max-aspect-ratio`` set, so that ``DataLoader`` workers and ``torchrun``'s processes
see them too).
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import torch

from .decoders import StreamIndex, VideoError, backend_choices, decoder_class, resolve_backend
from .decoders._interface import PathLike
from .decoders.pyav import open_container
from .decoders.torchcodec import torchcodec_status

__all__ = ["BACKENDS", "VideoError", "VideoReader", "open_video", "resolve_backend", "torchcodec_status",
           "MAX_FRAME_PIXELS", "MAX_ASPECT_RATIO", "MAX_PIXELS_ENV", "MAX_ASPECT_ENV", "frame_limits"]

BACKENDS = backend_choices()  # the built-in ones; backend_choices() also lists decoders registered later
#: the default largest frame, in pixels: 8K UHD (7680 x 4320 = 33.2 million) and a little more
MAX_FRAME_PIXELS = 40_000_000
#: the default largest ratio of a frame's long side to its short side (ultra-wide 32:9 is 3.6, 360-degree video 2)
MAX_ASPECT_RATIO = 8.0
MAX_PIXELS_ENV, MAX_ASPECT_ENV = "I3ZOO_MAX_FRAME_PIXELS", "I3ZOO_MAX_ASPECT_RATIO"


def frame_limits() -> Tuple[int, float]:
    """(largest frame in pixels, largest long-to-short side ratio) a file may declare: the defaults
    (:data:`MAX_FRAME_PIXELS`, :data:`MAX_ASPECT_RATIO`) or the environment's :data:`MAX_PIXELS_ENV` and
    :data:`MAX_ASPECT_ENV`.

    Raises:
        ValueError: an environment variable that is not a number >= 1.
    """
    limits = []
    for name, default, kind in ((MAX_PIXELS_ENV, MAX_FRAME_PIXELS, int), (MAX_ASPECT_ENV, MAX_ASPECT_RATIO, float)):
        text = os.environ.get(name)
        try:
            value = default if text is None else kind(text)
        except ValueError:
            value = 0
        if not (math.isfinite(value) and value >= 1):
            raise ValueError(f"{name}={text!r}: must be a number >= 1 (default {default:g})")
        limits.append(value)
    return limits[0], limits[1]


def _check_frame_size(path: Path, index: StreamIndex) -> None:
    """Refuse, before decoding, frames whose size alone would take more memory than a video should."""
    width, height = index.width, index.height
    if width < 1 or height < 1:
        raise VideoError(path, f"the video stream declares frames of {width}x{height} pixels")
    max_pixels, max_aspect = frame_limits()
    if width * height > max_pixels:
        raise VideoError(path, f"frames of {width}x{height} = {width * height:,} pixels are beyond the limit of "
                               f"{max_pixels:,} (raise it with --max-frame-pixels or {MAX_PIXELS_ENV})")
    aspect = max(width, height) / min(width, height)
    if aspect > max_aspect:
        raise VideoError(path, f"frames of {width}x{height} have an aspect ratio of {aspect:.4g}, beyond the limit of "
                               f"{max_aspect:g} (raise it with --max-aspect-ratio or {MAX_ASPECT_ENV})")


class VideoReader:
    """One video file: its frame times, frames by index, and a streaming read of many clips.

    Args:
        path: the video file.
        backend: ``"auto"`` (the most preferred decoder that can run here) or a registered decoder's name
            (:func:`i3zoo.video.backend_choices`: ``"pyav"``, ``"torchcodec"``, and any registered later).
        device: where frames are decoded and returned: ``"cpu"``, or ``"cuda[:N]"`` with a decoder whose
            ``devices`` have it (TorchCodec on the GPU's NVDEC).

    Raises:
        VideoError: the file cannot be opened, has no video stream, or no frame with a timestamp.
    """

    def __init__(self, path: PathLike, backend: str = "auto", device: str = "cpu"):
        self.path = Path(path)
        decoder = decoder_class(backend)
        self.backend = decoder.name
        if torch.device(device).type not in decoder.devices:
            raise ValueError(f"the {decoder.name} decoder decodes on {', '.join(decoder.devices)}, not on {device}")
        self._rotation = None
        if not self.path.is_file():
            raise VideoError(path, "no such file")
        self._index = _scan_pyav(self.path)
        if not self._index.pts:
            raise VideoError(path, "no decodable video frame (the video stream holds no timestamped packet)")
        _check_frame_size(self.path, self._index)
        with self._decoding():
            self._decoder = decoder(self.path, self._index)
            self._decoder.device = device

    @property
    def num_frames(self) -> int:
        """Frames in the video stream, counted from its packets."""
        return len(self._index.pts)

    @property
    def frame_times(self) -> torch.Tensor:
        """(num_frames,) float64: each frame's presentation time in seconds (``pts * time_base``)."""
        return torch.tensor(self._index.pts, dtype=torch.float64) * self._index.time_base

    @property
    def size(self) -> Tuple[int, int]:
        """(height, width) of the frames."""
        return self._index.height, self._index.width

    @property
    def codec(self) -> str:
        return self._index.codec

    @property
    def rotation(self) -> int:
        """Degrees by which the stream's display matrix rotates its frames counterclockwise (PyAV's
        ``VideoFrame.rotation``; 0 without one), as phones record portrait video. Frames are returned as stored,
        not rotated: the models were trained on frames as stored, and every decoder agrees on them. Read from
        the first frame, decoded once, on first use."""
        if self._rotation is None:
            with self._decoding(), open_container(self.path) as container:
                frame = next(container.decode(container.streams.video[0]), None)
                self._rotation = int(frame.rotation) if frame is not None else 0
        return self._rotation

    def frame_durations(self) -> torch.Tensor:
        """(num_frames,) float64 seconds each frame is shown: the gap to the next one; the last frame gets the
        median gap (or 0 for a one-frame video)."""
        times = self.frame_times
        gaps = times[1:] - times[:-1]
        last = gaps.median().reshape(1) if len(gaps) else torch.zeros(1, dtype=torch.float64)
        return torch.cat([gaps, last])

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """The frames at ``indices`` (any order, repeats allowed), as uint8 (len(indices), 3, H, W) RGB.

        A clip costs its own span, not the video's length (PyAV seeks to the key frame before the first frame
        needed and decodes forward; TorchCodec seeks to each frame).
        """
        indices = [int(i) for i in indices]
        self._check_indices(indices)
        wanted = sorted(set(indices))
        with self._decoding():
            frames = self._decoder.get_frames(wanted)
        self._check_complete(wanted, frames)
        return torch.stack([frames[i] for i in indices])

    def iter_clips(self, clips: Sequence[Sequence[int]]) -> Iterator[Tuple[int, torch.Tensor]]:
        """Read many clips in one pass from the start: yields ``(clip number, uint8 (T, 3, H, W))`` in order.

        Only frames that a clip still to come needs are held, so memory is bounded by the clips' span and
        overlap, not by the video's length. ``clips`` must be sorted by their first index (as samplers return
        them).
        """
        clips = [[int(i) for i in clip] for clip in clips]
        for clip in clips:
            self._check_indices(clip)
        last_use: Dict[int, int] = {}  # frame index -> the last clip that needs it
        for number, clip in enumerate(clips):
            for i in clip:
                last_use[i] = number
        held: Dict[int, torch.Tensor] = {}
        next_clip = 0
        for index, frame in self._guarded(self._decoder.iter_frames(sorted(last_use))):
            held[index] = frame
            # a clip is complete when all its frames are held; clips complete in order of their last frame,
            # which for sorted sliding windows is their order
            while next_clip < len(clips) and all(i in held for i in clips[next_clip]):
                yield next_clip, torch.stack([held[i] for i in clips[next_clip]])
                for i in set(clips[next_clip]):
                    if last_use[i] == next_clip:
                        del held[i]
                next_clip += 1
        if next_clip < len(clips):
            missing = sorted(i for i in set(clips[next_clip]) if i not in held)
            self._check_complete(missing, {})

    @contextlib.contextmanager
    def _decoding(self) -> Iterator[None]:
        """Any exception a decoder raises while reading this file (FFmpeg's, a codec library's, a bad tag's
        ``UnicodeDecodeError``, a plug-in's own) is this file's failure: a :class:`VideoError` that names it."""
        try:
            yield
        except VideoError:
            raise
        except Exception as e:  # KeyboardInterrupt and SystemExit are not Exceptions: they still stop the run
            raise VideoError(self.path, f"decoding failed ({self.backend}: {type(e).__name__}: {e})") from None

    def _guarded(self, frames: Iterator[Tuple[int, torch.Tensor]]) -> Iterator[Tuple[int, torch.Tensor]]:
        """:meth:`_decoding` around each step of a decoder's streaming read."""
        while True:
            with self._decoding():
                item = next(frames, None)
            if item is None:
                return
            yield item

    def _check_indices(self, indices: Sequence[int]) -> None:
        bad = [i for i in indices if not 0 <= i < self.num_frames]
        if bad:
            raise ValueError(f"frame indices {bad[:5]} out of range for {self.path} ({self.num_frames} frames)")

    def _check_complete(self, wanted: Sequence[int], frames: Dict[int, torch.Tensor]) -> None:
        missing = [i for i in wanted if i not in frames]
        if missing:
            times = self.frame_times
            raise VideoError(self.path, f"frame {missing[0]} (at {float(times[missing[0]]):.3f} s) of "
                                        f"{self.num_frames} could not be decoded: the file is truncated or corrupt"
                                        f" ({len(missing)} wanted frame(s) missing)")


def _scan_pyav(path: Path) -> StreamIndex:
    """The video stream's packet timestamps (sorted: packets come in decode order) and frame size."""
    try:
        container = open_container(path)
    except Exception as e:  # FFmpeg's errors, OSError, and whatever else a hostile file provokes
        raise VideoError(path, f"not a readable video file ({type(e).__name__}: {e})") from None
    try:
        return _index_of(path, container)
    except VideoError:
        raise
    except Exception as e:
        raise VideoError(path, f"its video stream cannot be read ({type(e).__name__}: {e})") from None
    finally:
        container.close()


def _index_of(path: Path, container) -> StreamIndex:
    import av

    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoError(path, f"no video stream (streams: {', '.join(kinds)})")
    stream = container.streams.video[0]
    if stream.time_base is None:
        raise VideoError(path, "the video stream has no time base, so its frames have no times")
    pts: List[int] = []
    try:
        for packet in container.demux(stream):
            # the flushing packet at the end has no data; a packet without pts (raw streams) has no time; a
            # packet an MP4 edit list cuts off is marked discard and never becomes a frame
            if packet.size and packet.pts is not None and not packet.is_discard:
                pts.append(packet.pts)
    except av.FFmpegError:
        pass  # a truncated file: the packets read so far are indexed; decoding says which really decode
    codec = stream.codec_context.name
    width, height = stream.codec_context.width, stream.codec_context.height
    pts.sort()
    return StreamIndex(pts=pts, time_base=float(stream.time_base), width=width, height=height, codec=codec)


def open_video(path: PathLike, backend: str = "auto") -> VideoReader:
    """Open ``path`` for reading (see :class:`VideoReader`)."""
    return VideoReader(path, backend=backend)

