"""Clip samplers: pure functions from a video's frame count (and frame times) to the frame indices to read.

They decide *what* to read and leave reading to the decoder, as PyTorchVideo's clip samplers do, so that each
can be checked index by index. A clip is ``clip_len`` indices ``frame_interval`` apart. A video too short
for one clip gets one clip whose missing tail repeats the clip's last frame (MMAction2's ``repeat_last``);
:class:`Clips` counts those padded positions so that callers can say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

__all__ = ["MAX_FPS", "MAX_HOLD_SECONDS", "SAMPLERS", "Clips",
           "sliding_windows", "evenly_spaced_clips", "random_clip", "resample_by_time"]


@dataclass(frozen=True)
class Clips:
    """Frame indices of clips, and their times.

    Attributes:
        indices: int64 (num_clips, clip_len), indices into the video's frames (presentation order).
        padded: int64 (num_clips,), how many trailing positions of each clip repeat the last frame because
            the video ended.
        start: float64 (num_clips,) seconds: when each clip's first frame is shown (``None`` without times).
        end: float64 (num_clips,) seconds: when each clip's last frame stops being shown.
    """

    indices: torch.Tensor
    padded: torch.Tensor
    start: Optional[torch.Tensor] = None
    end: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return self.indices.shape[0]

    def tolist(self) -> List[List[int]]:
        return self.indices.tolist()


def _check(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")


def _check_frames(num_frames: int) -> None:
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"a video needs at least one frame to sample from; got num_frames={num_frames!r}")


def _repeat_last(offsets: torch.Tensor, clip_len: int, frame_interval: int, num_frames: int) -> Clips:
    """Clips starting at ``offsets``; positions past the video's end repeat the clip's last frame inside it
    (MMAction2's ``out_of_bound_opt="repeat_last"``)."""
    indices = offsets.long()[:, None] + torch.arange(clip_len)[None, :] * frame_interval
    inside = indices < num_frames
    last_inside = (indices * inside).amax(dim=1, keepdim=True)
    return Clips(indices=torch.where(inside, indices, last_inside), padded=(~inside).sum(dim=1))


#: the highest --fps: resampling above it repeats every frame of any real video many times over
MAX_FPS = 1000.0
#: a frame is held on screen at most this long when resampling by time: a longer gap between two timestamps is a
#: gap in the video, skipped, not a still frame to repeat (three frames spanning 1e7 s are three frames)
MAX_HOLD_SECONDS = 10.0


def _resample(frame_times: Sequence[float], fps: float, durations: Optional[Sequence[float]] = None
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(indices, instants in seconds) of :func:`resample_by_time`."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or not 0 < fps <= MAX_FPS:
        raise ValueError(f"fps must be a positive number, at most {MAX_FPS:g}; got {fps!r}")
    times = torch.as_tensor(frame_times, dtype=torch.float64)
    _check_frames(len(times))
    if not bool(torch.isfinite(times).all()):
        raise ValueError("frame times must be finite")
    gaps = times[1:] - times[:-1]
    if durations is None:
        last = gaps.median().reshape(1) if len(gaps) else torch.full((1,), 1.0 / fps, dtype=torch.float64)
        durations = torch.cat([gaps, last])
    held = torch.as_tensor(durations, dtype=torch.float64).clamp(min=0, max=max(MAX_HOLD_SECONDS, 1.0 / fps))
    # instant k is t0 + k / fps; frame i is on screen for the instants in [t_i, t_i + held_i), and the next
    # frame's time starts the next run of instants: a gap longer than the hold holds no instant
    start = times[0]
    first = torch.ceil((times - start) * fps - 1e-9).long()
    stop = torch.ceil((times + held - start) * fps - 1e-9).long()
    stop = torch.minimum(stop, torch.cat([first[1:], stop[-1:]]))
    counts = (stop - first).clamp(min=0)
    if int(counts.sum()) == 0:
        counts[0] = 1
        stop[0] = first[0] + 1
    indices = torch.repeat_interleave(torch.arange(len(times)), counts)
    offsets = torch.arange(len(indices)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    instants = start + (torch.repeat_interleave(first, counts) + offsets).double() / fps
    return indices, instants


def resample_by_time(frame_times: Sequence[float], fps: float, durations: Optional[Sequence[float]] = None
                     ) -> torch.Tensor:
    """Indices of the frames on screen at ``fps`` evenly spaced instants, from the first frame's time.

    Instant k is ``t0 + k / fps``; the frame on screen then is the last one whose time is <= it. The video
    ends when its last frame stops being shown (its time plus its duration, the median frame gap by default).
    A frame is held at most :data:`MAX_HOLD_SECONDS` (or one instant, at rates below 0.1 fps): a longer gap between
    timestamps is skipped, so the number of instants is bounded by the frames there are, whatever the
    timestamps say.

    Args:
        frame_times: (num_frames,) seconds, sorted.
        fps: the target rate, in (0, :data:`MAX_FPS`].
        durations: (num_frames,) seconds each frame is shown, or None for the gaps between times.

    Returns:
        int64 (num_instants,) indices into ``frame_times`` (frames repeat when ``fps`` is above the video's
        rate and are skipped when below).
    """
    return _resample(frame_times, fps, durations)[0]


def sliding_windows(
    num_frames: int,
    clip_len: int,
    frame_interval: int = 1,
    step: Optional[int] = None,
    *,
    frame_times: Optional[Sequence[float]] = None,
    fps: Optional[float] = None,
) -> Clips:
    """Windows for feature extraction: one every ``step`` frames, each ``clip_len`` frames ``frame_interval``
    apart.

    Every window lies wholly inside the video (frames after the last full window are not covered, as in
    other extractors); a video shorter than one window gets a single window from frame 0, padded with its
    last frame. With ``fps``, the frames are first resampled to that rate by their times
    (:func:`resample_by_time`) and ``clip_len``, ``frame_interval`` and ``step`` count resampled frames.

    Args:
        num_frames: frames in the video.
        clip_len: frames per window.
        frame_interval: distance between a window's frames (dilation).
        step: distance between window starts (default ``clip_len * frame_interval``: back to back).
        frame_times: (num_frames,) seconds; needed for ``fps`` and to give windows times.
        fps: resample to this rate first.

    Returns:
        :class:`Clips`; ``start``/``end`` are set when ``frame_times`` is given.
    """
    _check_frames(num_frames)
    _check("clip_len", clip_len)
    _check("frame_interval", frame_interval)
    step = clip_len * frame_interval if step is None else step
    _check("step", step)
    times = None if frame_times is None else torch.as_tensor(frame_times, dtype=torch.float64)
    if times is not None and len(times) != num_frames:
        raise ValueError(f"frame_times has {len(times)} entries for {num_frames} frames")
    if fps is not None:
        if times is None:
            raise ValueError("fps needs frame_times: frames are resampled by their timestamps")
        timeline, instants = _resample(times, fps)
    else:
        timeline = torch.arange(num_frames)
    span = (clip_len - 1) * frame_interval + 1
    starts = torch.arange(0, max(len(timeline) - span, 0) + 1, step)
    positions = _repeat_last(starts, clip_len, frame_interval, len(timeline))
    indices = timeline[positions.indices]
    if times is None:
        return Clips(indices=indices, padded=positions.padded)
    if fps is not None:
        start = instants[starts]
        last_position = starts + (clip_len - 1 - positions.padded) * frame_interval
        end = instants[last_position] + 1 / fps
    else:
        gaps = times[1:] - times[:-1]
        durations = torch.cat([gaps, gaps.median().reshape(1) if len(gaps) else torch.zeros(1, dtype=torch.float64)])
        start = times[indices[:, 0]]
        end = times[indices[:, -1]] + durations[indices[:, -1]]
    return Clips(indices=indices, padded=positions.padded, start=start, end=end)


#: the test-mode clip samplers :func:`evenly_spaced_clips` offers, by name
SAMPLERS = ("spread", "mmaction2_0x")


def evenly_spaced_clips(num_frames: int, clip_len: int, frame_interval: int = 1, num_clips: int = 1, *,
                        sampler: str = "spread") -> Clips:
    """``num_clips`` clips spread evenly over the video, for prediction and evaluation.

    Two published protocols (``sampler``):

    * ``"spread"`` (the default): MMAction2's ``SampleFrames`` in test mode since 1.0
      (``mmaction/datasets/transforms/loading.py``), as PySlowFast and PyTorchVideo's
      ``ConstantClipsPerVideoSampler`` evaluate Kinetics: the first clip starts at frame 0, the last at the last
      start that fits (``num_frames - span``), the others rounded (half to even) in between; one clip sits in
      the middle.
    * ``"mmaction2_0x"``: MMAction2 0.x's test mode: the video minus one clip's extent (``clip_len *
      frame_interval``) is cut into ``num_clips`` equal parts and a clip starts in the middle of each.

    A video too short starts every clip at 0. Indices past the end repeat the last frame.

    Returns:
        :class:`Clips` with indices (num_clips, clip_len).
    """
    _check_frames(num_frames)
    _check("clip_len", clip_len)
    _check("frame_interval", frame_interval)
    _check("num_clips", num_clips)
    if sampler == "spread":
        latest = max(num_frames - ((clip_len - 1) * frame_interval + 1), 0)
        if num_clips > 1:
            offsets = torch.round(torch.arange(num_clips, dtype=torch.float64) * (latest / (num_clips - 1)))
        else:
            offsets = torch.full((1,), latest // 2, dtype=torch.float64)
    elif sampler == "mmaction2_0x":
        extent = clip_len * frame_interval
        average_gap = (num_frames - extent + 1) / num_clips
        if num_frames > extent - 1:
            offsets = (torch.arange(num_clips, dtype=torch.float64) * average_gap + average_gap / 2).floor()
        else:
            offsets = torch.zeros(num_clips)
    else:
        raise ValueError(f"unknown clip sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    return _repeat_last(offsets, clip_len, frame_interval, num_frames)


def random_clip(num_frames: int, clip_len: int, frame_interval: int = 1,
                generator: Optional[torch.Generator] = None) -> Clips:
    """One clip at a uniformly random start, for training (padded from 0 if the video is too short).

    Returns:
        :class:`Clips` with indices (1, clip_len).
    """
    _check_frames(num_frames)
    _check("clip_len", clip_len)
    _check("frame_interval", frame_interval)
    span = (clip_len - 1) * frame_interval + 1
    latest = max(num_frames - span, 0)
    start = torch.randint(0, latest + 1, (1,), generator=generator)
    return _repeat_last(start, clip_len, frame_interval, num_frames)
