"""End-to-end extraction benchmark: ``python -m benchmarks.extract`` (``--tiny`` for a smoke run).

Three rates on the same windows of the same generated videos (clips per second, median of ``--repeats``
passes): **decode only** (``VideoWindows`` through a ``DataLoader``: decoding, sampling and transforms, no
model); **model only** (the same clips already decoded and transformed in memory, batched through the model);
**end to end** (both at once, the pipeline of ``i3zoo extract``: workers decode while the model runs).
End to end over model only is the share of the model's speed the pipeline keeps. ``--optimized`` adds the
model-only and end-to-end rates of the path a long ``i3zoo extract`` job takes (the optimized copy compiled
with freezing, bfloat16 where the hardware has fast kernels), each against its own model-only rate: with a
faster model, decoding becomes the bottleneck sooner.

Then the peak RSS of the real ``i3zoo extract`` command (in a fresh process, its DataLoader worker included)
on a short and on a long video: streaming reads should make them equal.

Writes ``extract.json`` and ``extract.md`` into ``--out`` (default ``benchmarks/extract_results/<device>-<cpu>``);
the README's "Video in" block is that ``extract.md`` (``python scripts/update_readme.py`` copies it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
from torch.utils.data import DataLoader

import i3zoo
from i3zoo.video import VideoWindows, transforms_for
from i3zoo.weights.verify import seeded_2d_state_dict, torchvision_arch_of

from .run import describe_machine, processor_name

RESULTS = Path(__file__).resolve().parent / "extract_results"
RSS_WRAPPER = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def write_video(path: Path, seconds: float, height: int, width: int, fps: int = 25) -> Path:
    """Moving noise blocks over a gradient (x264 has something to code), ``seconds`` long."""
    import av
    import numpy as np

    generator = np.random.default_rng(0)
    blocks = generator.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    tile = np.kron(blocks, np.ones((height // 8 + 1, width // 8 + 1, 1), np.uint8))[:height, :width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for index in range(int(seconds * fps)):
            picture = np.roll(tile, shift=index * 2, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def median_rate(run: Callable[[], int], repeats: int) -> float:
    """Median clips per second of ``run`` (which returns how many clips it did) over ``repeats`` timed calls."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def peak_rss_mb(command: List[str]) -> float:
    """Peak resident memory (MB) of ``command``'s largest process (it and its workers), in a fresh wrapper."""
    output = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *command], capture_output=True, text=True,
                            check=True).stdout
    return int(output.strip().splitlines()[-1]) / 1024


OPTIMIZED = ", optimized path"


def optimized_path(model: torch.nn.Module) -> torch.nn.Module:
    """The model as a long ``i3zoo extract`` job runs it (:func:`i3zoo.inference.choose_inference_path`)."""
    from i3zoo.inference import native_bfloat16

    dtype = torch.bfloat16 if native_bfloat16(torch.device("cpu")) else torch.float32
    return i3zoo.optimize_for_inference(model, dtype=dtype, compile=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="i3resnet50")
    parser.add_argument("--clip-len", type=int, default=16)
    parser.add_argument("--crop-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--videos", type=int, default=2, help="videos of --seconds each (320x240, 25 fps)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--long-seconds", type=float, default=600.0, help="the long video of the memory check")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--optimized", action="store_true",
                        help="also time the path a long `i3zoo extract` job takes: the optimized copy, compiled with "
                             "freezing, in bfloat16 where the hardware has fast bfloat16 kernels")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--out", help="results folder (default: benchmarks/extract_results/cpu-<processor>)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.clip_len, args.crop_size, args.videos, args.seconds, args.long_seconds, args.repeats = 2, 32, 1, 1, 3, 1
    machine = re.sub(r'[^a-z0-9]+', '-', processor_name().lower()).strip('-')
    out = Path(args.out) if args.out else RESULTS / f"cpu-{machine}"
    torch.manual_seed(0)
    state_dict = seeded_2d_state_dict(torchvision_arch_of(args.model))  # speed does not depend on the weights
    model = i3zoo.create_model(args.model, pretrained=True, pretrained_cfg_overlay=dict(state_dict=state_dict)).eval()
    model.reset_classifier(0)
    transform = transforms_for(model, crop_size=args.crop_size)
    with tempfile.TemporaryDirectory(prefix="i3zoo-extract-bench-") as folder:
        folder = Path(folder)
        videos = [write_video(folder / f"v{i}.mp4", args.seconds, 240, 320) for i in range(args.videos)]
        dataset = VideoWindows(videos, clip_len=args.clip_len, transform=transform, backend="pyav")

        def loader():
            return DataLoader(dataset, batch_size=None, num_workers=args.workers)

        def decode_only() -> int:
            return sum(item["kind"] == "window" for item in loader())

        clips = [item["clip"] for item in loader() if item["kind"] == "window"]
        batches = [torch.stack(clips[i:i + args.batch_size]) for i in range(0, len(clips), args.batch_size)]

        def model_only(net) -> int:
            with torch.inference_mode():
                for batch in batches:
                    net(batch)
            return len(clips)

        def end_to_end(net) -> int:
            pending, count = [], 0
            with torch.inference_mode():
                for item in loader():
                    if item["kind"] == "window":
                        pending.append(item["clip"])
                        if len(pending) == args.batch_size:
                            net(torch.stack(pending))
                            count, pending = count + len(pending), []
                if pending:
                    net(torch.stack(pending))
            return count + len(pending)

        rates = {"decode only": median_rate(decode_only, args.repeats)}
        for suffix, net in [("", model)] + ([(OPTIMIZED, optimized_path(model))] if args.optimized else []):
            for _ in range(2):  # warm-up: first-call allocations, oneDNN kernel choice, the compile
                model_only(net)
            rates["model only" + suffix] = median_rate(lambda net=net: model_only(net), args.repeats)
            rates["end to end" + suffix] = median_rate(lambda net=net: end_to_end(net), args.repeats)
        rss = {}
        for label, seconds in (("short", args.seconds), ("long", args.long_seconds)):
            video = write_video(folder / f"{label}.mp4", seconds, 240, 320)
            rss[label] = dict(seconds=seconds, peak_rss_mb=peak_rss_mb([
                sys.executable, "-m", "i3zoo", "extract", str(video), "--model", args.model, "--random-weights",
                "--clip-len", "8", "--step", "64", "--crop-size", "32", "--workers", str(args.workers),
                "--out", str(folder / f"features-{label}")]))
    result = dict(machine=describe_machine(torch.device("cpu")), cpu_threads=torch.get_num_threads(),
                  torch=torch.__version__, date=datetime.date.today().isoformat(), model=args.model,
                  clip=[args.clip_len, args.crop_size, args.crop_size], batch_size=args.batch_size,
                  workers=args.workers, videos=args.videos, seconds=args.seconds, windows=len(clips),
                  repeats=args.repeats, clips_per_s=rates, rss=rss)
    out.mkdir(parents=True, exist_ok=True)
    (out / "extract.json").write_text(json.dumps(result, indent=1) + "\n")
    markdown = render_markdown(result)
    (out / "extract.md").write_text(markdown + "\n")
    print(markdown)
    return 0


def render_markdown(result: Dict) -> str:
    t, h, w = result["clip"]
    rates = result["clips_per_s"]

    def model_only(name: str) -> float:  # each path's rates against its own model-only rate
        return rates["model only" + OPTIMIZED] if name.endswith(OPTIMIZED) else rates["model only"]

    lines = [f"Machine: {result['machine']}, {result['cpu_threads']} threads; torch {result['torch']}; "
             f"{result['date']}. {result['model']}, clips {t}x{h}x{w}, batch {result['batch_size']}, "
             f"{result['workers']} DataLoader worker(s); {result['videos']} video(s) of {result['seconds']:g} s "
             f"at 320x240, 25 fps ({result['windows']} windows); median of {result['repeats']} passes.", "",
             "| pipeline | clips / s | vs model only |", "|---|---:|---:|"]
    lines += [f"| {name} | {rate:.2f} | {rate / model_only(name):.2f} |" for name, rate in rates.items()]
    short, long = result["rss"]["short"], result["rss"]["long"]
    lines += ["", "| `i3zoo extract` on one video (8-frame clips every 64 frames, 32x32) | peak RSS (MB) |",
              "|---|---:|",
              f"| {short['seconds']:g} s | {short['peak_rss_mb']:.0f} |",
              f"| {long['seconds']:g} s | {long['peak_rss_mb']:.0f} |",
              f"| ratio long / short | {long['peak_rss_mb'] / short['peak_rss_mb']:.2f} |"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
