"""A synthetic task that only time can solve: a texture sliding up or down, written as small videos with PyAV.

Any single frame is a random texture; only the order of the frames tells the class.
Up and down (not left and right) so that the training transform's horizontal flip keeps the label true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import av
import numpy as np

CLASSES = ("down", "up")


def motion_frames(direction: str, num_frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(T, size, size, 3) uint8 RGB: horizontal bands of random colours sliding 2 or 3 px per frame, so that any
    crop the training transform takes still shows the motion."""
    speed = int(rng.integers(2, 4))
    travel = speed * (num_frames - 1)
    band = 6  # wider than a clip's step between frames, so that the direction is not ambiguous
    bands = rng.integers(0, 256, size=((size + travel) // band + 1, 1, 3), dtype=np.uint8)
    texture = bands.repeat(band, axis=0).repeat(size, axis=1)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for t in range(num_frames):
        top = speed * t if direction == "up" else travel - speed * t  # content moves the other way
        frames[t] = texture[top:top + size]
    return frames


def write_motion_video(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv444p"  # no chroma subsampling: the small blocks keep their colours
        stream.options = {"crf": "10", "preset": "ultrafast"}
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_motion_dataset(root: Path, per_class: int, *, num_frames: int = 10, size: int = 32,
                         seed: int = 0) -> Dict[str, Path]:
    """``root/<class>/<k>.mp4`` for each class of :data:`CLASSES`; returns the class folders."""
    rng = np.random.default_rng(seed)
    folders = {}
    for name in CLASSES:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            write_motion_video(folder / f"{k:03d}.mp4", motion_frames(name, num_frames, size, rng))
        folders[name] = folder
    return folders
