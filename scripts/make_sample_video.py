"""Write ``samples/shapes.mp4``: 48 frames (2 s at 24 fps) of coloured shapes moving over a gradient, 160x120,
H.264 written with PyAV, for the README's first ``i3zoo extract`` / ``i3zoo predict`` runs with no download.

    python scripts/make_sample_video.py [--out samples/shapes.mp4]

The pictures are computed (no randomness), and x264 runs single-threaded and without its assembly (``asm=0``),
so a rerun with the same PyAV wheel writes the same bytes on every processor. With its assembly, x264 picks
code for the processor it runs on (SSE2, AVX2, AVX-512...), and these paths do not give the same bits: with
PyAV 18.1 on an AVX-512 Xeon the default encoding decodes 1.5 levels away on average from the one an AMD EPYC
(AVX2) writes, and the Xeon writes the EPYC's bytes exactly when told to use only AVX2 (``asm=`` a list of
AVX2-era flags). The C code has no such choice, and 48 small frames encode in well under a second with it.
The file records which PyAV build wrote it (its ``comment`` tag, :func:`encoder_build`), so that a test can
ask for byte identity where the build is the same and compare pictures where it is not.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import av
import numpy as np

FRAMES, FPS, HEIGHT, WIDTH = 48, 24, 120, 160


def frame_pixels(index: int) -> np.ndarray:
    """RGB (HEIGHT, WIDTH, 3) uint8 picture of frame ``index``: a square moving right, a disc bouncing, a bar
    sweeping down, over a slowly shifting gradient."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    picture = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    picture[..., 0] = (cols * 255 // WIDTH + 2 * index) % 256 // 3 + 40
    picture[..., 1] = rows * 200 // HEIGHT // 3 + 60
    picture[..., 2] = 150
    left = (index * 3) % (WIDTH - 30)
    picture[20:50, left:left + 30] = (240, 200, 30)
    centre_row = 80 - abs((index * 4) % 80 - 40) // 2
    disc = (rows - centre_row) ** 2 + (cols - 110) ** 2 <= 15 ** 2
    picture[disc] = (30, 200, 240)
    bar = (index * 2) % HEIGHT
    picture[bar:bar + 6, 10:60] = (230, 40, 90)
    return picture


def encoder_build() -> str:
    """The PyAV wheel here (it carries the FFmpeg and x264 builds), as the sample's ``comment`` tag records it."""
    return f"PyAV {av.__version__} ({sys.platform} {platform.machine()})"


def write_sample(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        container.metadata["comment"] = encoder_build()
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        # asm=0: x264's C code, the same on every processor (see the module docstring)
        stream.options = {"crf": "28", "preset": "medium", "threads": "1", "x264-params": "asm=0"}
        for index in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(frame_pixels(index), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "samples" / "shapes.mp4"))
    path = write_sample(Path(parser.parse_args().out))
    print(f"wrote {path} ({path.stat().st_size} bytes, {FRAMES} frames of {WIDTH}x{HEIGHT} at {FPS} fps)")


if __name__ == "__main__":
    main()
