"""Small video files written with PyAV for the video tests: each frame's content says which frame it is.

Frame ``i`` has a grey background of level ``(40 + 23 * i) % 200 + 30`` (far apart for neighbouring frames,
so a decoded frame can be matched to its index despite lossy coding) and a bright square moving right.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import av
import numpy as np


def background_level(index: int) -> int:
    return (40 + 23 * index) % 200 + 30


def frame_pixels(index: int, height: int, width: int) -> np.ndarray:
    """The RGB (H, W, 3) uint8 picture of frame ``index``."""
    pixels = np.full((height, width, 3), background_level(index), np.uint8)
    side = max(min(height, width) // 4, 2)
    left = (index * 3) % max(width - side, 1)
    pixels[height // 3: height // 3 + side, left:left + side] = (250, 60, 60)
    return pixels


def write_video(path: Path, num_frames: int, height: int = 32, width: int = 40, *, fps: int = 25,
                codec: str = "libx264", times_ms: Optional[Sequence[int]] = None, audio: bool = False) -> Path:
    """Write ``num_frames`` frames; ``times_ms`` gives each frame's time in ms (variable frame rate)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        odd = height % 2 or width % 2  # 4:2:0 needs even sizes; x264 codes odd ones in 4:4:4
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv444p" if odd and codec == "libx264" else "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "ultrafast"}
        else:
            stream.bit_rate = 2_000_000
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        audio_stream = container.add_stream("aac", rate=8000) if audio else None
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_pixels(i, height, width), format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = int(times_ms[i]), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _write_tone(container, audio_stream, seconds=num_frames / fps)
    return path


def _write_tone(container, stream, seconds: float) -> None:
    rate = stream.rate
    samples = np.sin(np.arange(int(rate * seconds)) * 2 * np.pi * 440 / rate).astype(np.float32)
    for start in range(0, len(samples), 1024):
        chunk = samples[start:start + 1024]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_audio_only(path: Path, seconds: float = 0.5) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        _write_tone(container, stream, seconds)
    return path


def decode_by_hand(path: Path) -> np.ndarray:
    """Every frame of ``path``'s video stream, decoded with PyAV directly: uint8 (N, H, W, 3) RGB."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
