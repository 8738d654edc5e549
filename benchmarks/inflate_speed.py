"""``inflate:torchvision/resnet50`` in the ``i3d`` design against the hand-written ``i3resnet50_i3d``: the same
network, the same weights, the same clip and threads, timed in one process (median of repeated forwards, the two
alternating so that drift in the machine's speed falls on both).

    python -m benchmarks.inflate_speed [--clip 16 160 160] [--repeats 7]

Writes ``benchmarks/inflate_speed_results/cpu-<processor>/speed.json`` and ``speed.md``
(``scripts/update_readme.py`` copies the table into README.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Dict

import torch
import torchvision

import i3zoo
from benchmarks.run import describe_machine, results_folder

RESULTS = Path(__file__).resolve().parent / "inflate_speed_results"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=int, nargs=3, default=(16, 160, 160), metavar=("T", "H", "W"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    preset = i3zoo.create_model("i3resnet50_i3d").eval()
    inflated = i3zoo.inflate(torchvision.models.resnet50(), "i3d").eval()
    target = inflated.state_dict()
    inflated.load_state_dict({f"net.{k}": v.reshape(target[f"net.{k}"].shape) for k, v in preset.state_dict().items()})
    clip = torch.randn(1, 3, *args.clip)
    times = {"i3resnet50_i3d": [], "inflate:torchvision/resnet50 (i3d)": []}
    with torch.inference_mode():
        for model in (preset, inflated):
            model(clip)  # warm-up: oneDNN's kernel choice
        for _ in range(args.repeats):
            for name, model in zip(times, (preset, inflated)):
                start = time.perf_counter()
                model(clip)
                times[name].append(time.perf_counter() - start)
    data = dict(machine=describe_machine(torch.device("cpu")), cpu_threads=torch.get_num_threads(),
                torch=torch.__version__, clip=list(args.clip), repeats=args.repeats,
                seconds={name: statistics.median(values) for name, values in times.items()})
    out = results_folder(RESULTS, torch.device("cpu"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "speed.md").write_text(render_markdown(data) + "\n")
    print(render_markdown(data))
    return 0


def render_markdown(data: Dict) -> str:
    """The README block of one run (``speed.json``)."""
    base = data["seconds"]["i3resnet50_i3d"]
    lines = [f"Machine: {data['machine']}, {data['cpu_threads']} threads; torch {data['torch']}; clip "
             f"1x3x{'x'.join(map(str, data['clip']))}; median of {data['repeats']}.", "",
             "| model | seconds | vs i3resnet50_i3d |", "|---|---:|---:|"]
    lines += [f"| {name} | {seconds:.3f} | {seconds / base:.2f} |" for name, seconds in data["seconds"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
