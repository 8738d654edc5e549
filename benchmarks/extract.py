"""End-to-end extraction benchmark: ``python -m benchmarks.extract`` (``--tiny`` for a smoke run).

Three rates on the same windows of the same generated videos (clips per second, median of ``--repeats``
passes): **decode only** (``VideoWindows`` through a ``DataLoader``: decoding, sampling and transforms, no
model); **model only** (the same clips already decoded and transformed in memory, batched through the model);
**end to end** (both at once: :class:`i3zoo.Extractor`, the engine of ``i3zoo extract``, writing its outputs,
with workers decoding while the model runs). End to end over model only is the share of the model's speed the
pipeline keeps.

Then ``i3zoo extract`` as a command on one process and on ``--nproc 2`` (``--processes``; each process gets
``threads / processes`` threads): videos per minute and clips per second over the pipeline's own seconds, as its
summary reports them (rank 0's, for the whole job; the interpreter's start and the model's loading are left out).
``--optimized`` adds the model-only and end-to-end rates of the path a long ``i3zoo extract`` job takes (the
optimized copy compiled with freezing, bfloat16 where the hardware has fast kernels), each against its own
model-only rate: with a faster model, decoding becomes the bottleneck sooner.

Then the peak RSS of the real ``i3zoo extract`` command (in a fresh process, its DataLoader worker included)
on a short and on a long video: streaming reads should make them equal.

Writes ``extract.json`` and ``extract.md`` into ``--out`` (default ``benchmarks/extract_results/<device>-<cpu>``);
the README's "Video in" block is that ``extract.md`` (``python scripts/update_readme.py`` copies it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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

from i3zoo.engines import Extractor, load_model
from i3zoo.video import VideoWindows, transforms_for

from .run import describe_machine, results_folder

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


SUMMARY = re.compile(r"summary: (\d+) written, .* (\d+) windows in ([\d.]+) s")


def command_rates(command: List[str], processes: int, threads: int) -> Dict[str, float]:
    """Videos per minute and clips per second of ``i3zoo extract`` on ``processes`` processes (``--nproc``), read
    from the summary it prints."""
    import os

    env = dict(os.environ, OMP_NUM_THREADS=str(max(threads // processes, 1)))
    nproc = ["--nproc", str(processes)] if processes > 1 else []
    printed = subprocess.run(command + nproc, capture_output=True, text=True, env=env).stdout
    return summary_rates(printed)


def summary_rates(printed: str) -> Dict[str, float]:
    """The rates in ``i3zoo extract``'s summary line."""
    found = SUMMARY.search(printed)
    if found is None:
        raise RuntimeError(f"no summary in the output of i3zoo extract:\n{printed[-2000:]}")
    videos, windows, seconds = int(found[1]), int(found[2]), float(found[3])
    return dict(videos_per_min=60 * videos / seconds, clips_per_s=windows / seconds)


OPTIMIZED = ", optimized path"


def optimized_extractor(loaded, **options) -> Extractor:
    """The engine as a long ``i3zoo extract`` job runs it (:func:`i3zoo.inference.choose_inference_path`)."""
    from i3zoo.inference import native_bfloat16

    dtype = "bfloat16" if native_bfloat16(torch.device("cpu")) else "float32"
    return Extractor(loaded, **options, dtype=dtype, optimize=True, compile=True)


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
    parser.add_argument("--processes", help="process counts of the `i3zoo extract` rows, e.g. 1,2 (default 1,2; "
                                            "none with --tiny)")
    parser.add_argument("--optimized", action="store_true",
                        help="also time the path a long `i3zoo extract` job takes: the optimized copy, compiled with "
                             "freezing, in bfloat16 where the hardware has fast bfloat16 kernels")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--out", help="results folder (default: benchmarks/extract_results/cpu-<processor>)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.clip_len, args.crop_size, args.videos, args.seconds, args.long_seconds, args.repeats = 2, 32, 1, 1, 3, 1
    counts = [int(n) for n in (args.processes if args.processes is not None else "" if args.tiny else "1,2").split(",")
              if n]
    out = Path(args.out) if args.out else results_folder(RESULTS, torch.device("cpu"))
    torch.manual_seed(0)
    loaded = load_model(args.model, random_weights=True)  # speed does not depend on the weights
    model = loaded.model
    transform = transforms_for(model, crop_size=args.crop_size)
    options = dict(clip_len=args.clip_len, crop_size=args.crop_size, batch_size=args.batch_size, workers=args.workers,
                   backend="pyav")
    extractor = Extractor(loaded, **options)
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
                    net.features(batch)  # the features extracted, by the engine's own model
            return len(clips)

        def end_to_end(net) -> int:
            features = Path(tempfile.mkdtemp(prefix="features-", dir=folder))  # a fresh folder: nothing to skip
            return net.extract(videos, features, progress=False).windows

        rates = {"decode only": median_rate(decode_only, args.repeats)}
        for suffix, net in [("", extractor)] + ([(OPTIMIZED, optimized_extractor(loaded, **options))]
                                                 if args.optimized else []):
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
        processes = {str(n): command_rates([
            sys.executable, "-m", "i3zoo", "extract", *map(str, videos), "--model", args.model, "--random-weights",
            "--clip-len", str(args.clip_len), "--crop-size", str(args.crop_size), "--batch-size", str(args.batch_size),
            "--workers", str(args.workers), "--backend", "pyav", "--out", str(folder / f"features-{n}-processes")],
            n, torch.get_num_threads()) for n in counts}
    result = dict(machine=describe_machine(torch.device("cpu")), cpu_threads=torch.get_num_threads(),
                  cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                  torch=torch.__version__, date=datetime.date.today().isoformat(), model=args.model,
                  clip=[args.clip_len, args.crop_size, args.crop_size], batch_size=args.batch_size,
                  workers=args.workers, videos=args.videos, seconds=args.seconds, windows=len(clips),
                  repeats=args.repeats, clips_per_s=rates, rss=rss)
    if processes:
        result["processes"] = processes
    out.mkdir(parents=True, exist_ok=True)
    (out / "extract.json").write_text(json.dumps(result, indent=1) + "\n")
    markdown = render_markdown(result)
    (out / "extract.md").write_text(markdown + "\n")
    print(markdown)
    return 0


def cpu_time_ceiling(rates: Dict[str, float], cores: int, threads: int, path: str = "") -> float:
    """The best end-to-end rate, as a share of model only, when decoding and the model share ``cores`` CPU cores:
    a clip costs the model ``threads / model rate`` core-seconds and decoding ``1 / decode rate`` (one worker's
    core), so at most ``cores / (threads + model rate / decode rate)``, however well the two overlap. ``path``:
    ``""`` for the plain model's rates, :data:`OPTIMIZED` for the optimized path's."""
    return min(1.0, cores / (threads + rates["model only" + path] / rates["decode only"]))


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
    cores, threads = result.get("cores", result["cpu_threads"]), result["cpu_threads"]
    lines += ["", f"The end-to-end ceiling on these {cores} cores, where decoding takes CPU time the model's "
                  f"{threads} threads would use: {cpu_time_ceiling(rates, cores, threads):.2f} of model only "
                  f"({cores} / ({threads} + model rate / decode rate))"
                  + (f"; {cpu_time_ceiling(rates, cores, threads, OPTIMIZED):.2f} for the optimized path."
                     if "model only" + OPTIMIZED in rates else ".")]
    short, long = result["rss"]["short"], result["rss"]["long"]
    lines += ["", "| `i3zoo extract` on one video (8-frame clips every 64 frames, 32x32) | peak RSS (MB) |",
              "|---|---:|",
              f"| {short['seconds']:g} s | {short['peak_rss_mb']:.0f} |",
              f"| {long['seconds']:g} s | {long['peak_rss_mb']:.0f} |",
              f"| ratio long / short | {long['peak_rss_mb'] / short['peak_rss_mb']:.2f} |"]
    if result.get("processes"):
        lines += ["", "| `i3zoo extract` (the same videos and clips) | videos / min | clips / s |", "|---|---:|---:|"]
        lines += [f"| {n} process{'es' if int(n) > 1 else ''} | {rates['videos_per_min']:.1f} | "
                  f"{rates['clips_per_s']:.2f} |" for n, rates in result["processes"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
