"""Two-stream I3D extraction, end to end: ``python -m benchmarks.two_stream`` (``--tiny`` for a smoke run).

Videos per minute of ``i3zoo extract --preset video-features`` (short side 256, stacks of 64 + 1 frames every 64,
RAFT with 20 iterations) with both streams, with the RGB stream alone and with the flow stream alone, on the same
generated videos (``--seconds`` long at 25 fps, 256 x 340), through the Extractor as the command runs it. Weights
are random (speed does not depend on them, and nothing is downloaded). Writes ``two_stream.json`` and
``two_stream.md`` into ``--out`` (default ``benchmarks/two_stream_results/<device>-<cpu>``).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Dict

import torch

from i3zoo.engines import Extractor
from i3zoo.engines.two_stream import VIDEO_FEATURES_PRESET, load_two_stream, video_features_transform

from .extract import write_video
from .run import describe_machine, results_folder

RESULTS = Path(__file__).resolve().parent / "two_stream_results"
CONFIGURATIONS = {"RGB + flow": ("rgb", "flow"), "RGB only": ("rgb",), "flow only": ("flow",)}


def run_one(streams, videos: Path, out: Path, *, device: str, tiny: bool, batch_size: int, workers: int) -> Dict:
    options, short_side, model_options = dict(VIDEO_FEATURES_PRESET), 256, {}
    if tiny:  # RAFT's smallest frames, 2-frame stacks, one RAFT iteration
        short_side, model_options = 128, dict(crop_size=128, iterations=1)
        options.update(clip_len=3, step=2, crop_size=128)
    loaded = load_two_stream("hassony2", streams, device=device, random_weights=True, **model_options)
    extractor = Extractor(loaded, **options, transform=video_features_transform(short_side), batch_size=batch_size,
                          workers=workers)
    start = time.perf_counter()
    summary = extractor.extract([videos], out, progress=False)
    seconds = time.perf_counter() - start
    if summary.failures:
        raise RuntimeError(f"extraction failed: {summary.failures}")
    return dict(videos=summary.written, windows=summary.windows, seconds=seconds,
                videos_per_minute=60 * summary.written / seconds)


def render_markdown(data: Dict) -> str:
    rows = "\n".join(f"| {name} | {r['videos_per_minute']:.2f} | {r['windows']} | {r['seconds']:.1f} |"
                     for name, r in data["rows"].items())
    return (f"Two-stream I3D extraction, `--preset video-features`, {data['videos']} videos of {data['seconds']} s "
            f"at 25 fps, {data['size']}, on {data['machine']}:\n\n"
            "| streams | videos / minute | windows | seconds |\n|---|---|---|---|\n" + rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="a smoke run: 2 tiny videos, RAFT's smallest frames")
    p.add_argument("--videos", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10.4, help="video length (10.4 s at 25 fps: 4 stacks of 65)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    height, width = (128, 160) if args.tiny else (256, 340)
    seconds = 0.2 if args.tiny else args.seconds
    torch.set_grad_enabled(False)
    data = dict(videos=args.videos, seconds=seconds, size=f"{width} x {height}",
                machine=describe_machine(torch.device(args.device)), rows={})
    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "videos"
        videos.mkdir()
        for index in range(args.videos):
            write_video(videos / f"v{index}.mp4", seconds, height, width)
        for name, streams in CONFIGURATIONS.items():
            data["rows"][name] = run_one(streams, videos, Path(tmp) / re.sub(r"\W+", "_", name), device=args.device,
                                         tiny=args.tiny, batch_size=args.batch_size, workers=args.workers)
            print(name, data["rows"][name], flush=True)
    out = args.out or results_folder(RESULTS, torch.device(args.device))
    out.mkdir(parents=True, exist_ok=True)
    (out / "two_stream.json").write_text(json.dumps(data, indent=1))
    (out / "two_stream.md").write_text(render_markdown(data) + "\n")
    print(render_markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
