"""Reading video files: frame timestamps from the stream, frames by index, and a one-pass streaming read.

Two backends with one interface. PyAV (the default) ships FFmpeg inside its wheels, so ``pip install`` is the
whole setup. TorchCodec is optional (``pip install "i3zoo[torchcodec]"``) and needs FFmpeg's shared libraries
on the system; ``backend="auto"`` uses it only when it imports *and* loads them, and PyAV otherwise.

Frame indices count frames in presentation order. Their times come from the stream's own timestamps
(``pts * time_base``), read from the container's packets without decoding (what TorchCodec's "exact" seek
mode scans too), so variable-frame-rate files get their true times. A decoded frame is matched to its index
by its timestamp, never by counting, so a seek that lands early or a decoder that drops a frame cannot shift
the frames of a clip.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch

__all__ = ["BACKENDS", "VideoError", "VideoReader", "open_video", "resolve_backend", "torchcodec_status"]

BACKENDS = ("auto", "pyav", "torchcodec")
PathLike = Union[str, os.PathLike]


class VideoError(ValueError):
    """A video that cannot be read: the message names the file and the reason."""

    def __init__(self, path: PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@functools.lru_cache(maxsize=None)
def torchcodec_status() -> Optional[str]:
    """None if TorchCodec is usable here, else why not (not installed, or its FFmpeg libraries do not load)."""
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as e:  # ImportError, or (older releases) FFmpeg failing to load at import
        return f"torchcodec does not import ({_first_line(e)}); pip install \"i3zoo[torchcodec]\""
    try:
        # a public-API probe that works across releases: decode a one-frame video made with PyAV
        VideoDecoder(_one_frame_video()).get_frame_at(0)
    except Exception as e:  # RuntimeError/OSError from dlopen: no usable FFmpeg libraries
        return f"torchcodec is installed but cannot load FFmpeg ({_first_line(e)})"
    return None


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    # TorchCodec's load error opens with a generic line; the dlopen line says which library is missing
    specific = [line.strip() for line in lines if "cannot open shared object" in line]
    return (specific or lines or [type(error).__name__])[0]


def _one_frame_video() -> bytes:
    import io

    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=1)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            container.mux(packet)
    return buffer.getvalue()


def resolve_backend(backend: str = "auto") -> str:
    """``"pyav"`` or ``"torchcodec"``: the backend ``backend`` stands for here.

    Raises:
        ValueError: an unknown name, or ``"torchcodec"`` asked for where it cannot run (the reason is given).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "pyav":
        return "pyav"
    problem = torchcodec_status()
    if backend == "torchcodec" and problem:
        raise ValueError(f"video backend 'torchcodec' cannot be used: {problem}; use backend='pyav'")
    return "pyav" if problem else "torchcodec"


@dataclass(frozen=True)
class _StreamIndex:
    pts: List[int]  # presentation timestamps, sorted, in time_base units
    time_base: float
    width: int
    height: int
    codec: str


class VideoReader:
    """One video file: its frame times, frames by index, and a streaming read of many clips.

    Args:
        path: the video file.
        backend: ``"auto"`` | ``"pyav"`` | ``"torchcodec"``.

    Raises:
        VideoError: the file cannot be opened, has no video stream, or no frame with a timestamp.
    """

    def __init__(self, path: PathLike, backend: str = "auto"):
        self.path = Path(path)
        self.backend = resolve_backend(backend)
        if not self.path.is_file():
            raise VideoError(path, "no such file")
        self._index = _scan_pyav(self.path)
        if not self._index.pts:
            raise VideoError(path, "no decodable video frame (the video stream holds no timestamped packet)")
        self._index_of_pts: Dict[int, int] = {p: i for i, p in enumerate(self._index.pts)}

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

    def frame_durations(self) -> torch.Tensor:
        """(num_frames,) float64 seconds each frame is shown: the gap to the next one; the last frame gets the
        median gap (or 0 for a one-frame video)."""
        times = self.frame_times
        gaps = times[1:] - times[:-1]
        last = gaps.median().reshape(1) if len(gaps) else torch.zeros(1, dtype=torch.float64)
        return torch.cat([gaps, last])

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """The frames at ``indices`` (any order, repeats allowed), as uint8 (len(indices), 3, H, W) RGB.

        Seeks to the key frame before the first one needed and decodes forward: a clip costs its own span,
        not the video's length.
        """
        indices = [int(i) for i in indices]
        self._check_indices(indices)
        wanted = sorted(set(indices))
        if self.backend == "torchcodec":
            frames = dict(zip(wanted, self._torchcodec_frames(wanted)))
        else:
            frames = dict(self._decode_pyav(wanted, seek=True))
            if len(frames) < len(wanted):  # a container whose seek lands past the key frame: read from the start
                frames.update(self._decode_pyav([i for i in wanted if i not in frames], seek=False))
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
        if self.backend == "torchcodec":
            for number, clip in enumerate(clips):
                wanted = sorted(set(clip))
                frames = dict(zip(wanted, self._torchcodec_frames(wanted)))
                yield number, torch.stack([frames[i] for i in clip])
            return
        last_use: Dict[int, int] = {}  # frame index -> the last clip that needs it
        for number, clip in enumerate(clips):
            for i in clip:
                last_use[i] = number
        held: Dict[int, torch.Tensor] = {}
        next_clip = 0
        for index, frame in self._decode_pyav(sorted(last_use), seek=False):
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

    def _decode_pyav(self, wanted: List[int], *, seek: bool) -> Iterator[Tuple[int, torch.Tensor]]:
        """Yield (index, uint8 (3, H, W)) for each index in sorted ``wanted``, decoding in presentation order."""
        import av

        if not wanted:
            return
        remaining = set(wanted)
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"  # frame/slice threads inside FFmpeg: decoding uses the cores
                if seek and wanted[0] > 0:
                    container.seek(self._index.pts[wanted[0]], stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    index = self._index_of_pts.get(frame.pts)
                    if index is None:
                        continue
                    if index in remaining:
                        remaining.discard(index)
                        array = frame.to_ndarray(format="rgb24")
                        yield index, torch.from_numpy(array).permute(2, 0, 1)
                        if not remaining:
                            return
                    elif index > wanted[-1]:
                        return
        except av.FFmpegError as e:
            raise VideoError(self.path, f"decoding failed: {e}") from None

    def _torchcodec_frames(self, wanted: List[int]) -> List[torch.Tensor]:
        from torchcodec.decoders import VideoDecoder

        try:
            decoder = getattr(self, "_torchcodec_decoder", None)
            if decoder is None:
                decoder = self._torchcodec_decoder = VideoDecoder(str(self.path), seek_mode="exact",
                                                                  dimension_order="NCHW")
            # TorchCodec counts frames in presentation order from its own packet scan, as we do
            batch = decoder.get_frames_at(indices=wanted)
        except (RuntimeError, ValueError) as e:
            raise VideoError(self.path, f"decoding failed (torchcodec): {e}") from None
        return list(batch.data)

    def __getstate__(self):  # a reader can travel to DataLoader workers; a TorchCodec decoder cannot
        state = dict(self.__dict__)
        state.pop("_torchcodec_decoder", None)
        return state


def _scan_pyav(path: Path) -> _StreamIndex:
    """The video stream's packet timestamps (sorted: packets come in decode order) and frame size."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        raise VideoError(path, f"not a readable video file ({e})") from None
    with container:
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
        return _StreamIndex(pts=pts, time_base=float(stream.time_base), width=width, height=height, codec=codec)


def open_video(path: PathLike, backend: str = "auto") -> VideoReader:
    """Open ``path`` for reading (see :class:`VideoReader`)."""
    return VideoReader(path, backend=backend)

