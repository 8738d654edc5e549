"""What the first compiled call of ``optimize_for_inference(compile=True)`` costs, with Inductor's cache empty and
with it warm: ``python -m benchmarks.compile_cost`` (``--tiny`` for a smoke run).

Each measurement is a fresh interpreter (as each ``i3zoo extract`` run is) with ``TORCHINDUCTOR_CACHE_DIR`` pointing
at a folder of its own: the first run of a precision starts from an empty cache (Inductor also builds its C++
headers then), the second from what the first left. The figure is the one the product prints on its first
compiled call (``i3zoo: compiled ... in N s``), read from the child's stderr. Writes ``compile_cost.json`` and
``compile_cost.md`` under ``benchmarks/compile_cost_results/cpu-<processor>/`` (``scripts/update_readme.py``
copies the table into README.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import torch

from .run import describe_machine, results_folder

RESULTS = Path(__file__).resolve().parent / "compile_cost_results"
#: the line ``InferenceModel`` prints on its first compiled call
ANNOUNCED = re.compile(r"i3zoo: compiled \S+ for batches of \d+ in ([0-9.]+) s")

CHILD = """
import sys, torch, i3zoo
model_name, precision, batch, t, size = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
torch.manual_seed(0)
model = i3zoo.create_model(model_name).eval()
fast = i3zoo.optimize_for_inference(model, dtype=getattr(torch, precision), compile=True)
fast(torch.randn(batch, 3, t, size, size))
"""


def first_call_seconds(model: str, precision: str, batch: int, clip: List[int], cache: Path) -> float:
    """The first compiled call's cost as a fresh interpreter with Inductor's cache in ``cache`` prints it."""
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache))
    done = subprocess.run([sys.executable, "-c", CHILD, model, precision, str(batch), *map(str, clip)], env=env,
                          capture_output=True, text=True, timeout=1800)
    found = ANNOUNCED.search(done.stderr)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"the compiled run of {model} in {precision} failed:\n{done.stderr[-2000:]}")
    return float(found.group(1))


def render_markdown(data: Dict) -> str:
    t, h, w = data["clip"]
    rows = "\n".join(f"| {precision} | {r['empty cache']:.1f} | {r['warm cache']:.1f} |"
                     for precision, r in data["seconds"].items())
    return (f"Machine: {data['machine']}, {data['cpu_threads']} threads; torch {data['torch']}; {data['date']}. "
            f"{data['model']}, batches of {data['batch']} clips of {t}x{h}x{w}; the first compiled call as i3zoo "
            "prints it, in a fresh interpreter.\n\n"
            "| precision | seconds, empty Inductor cache | seconds, warm cache |\n|---|---:|---:|\n" + rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="i3resnet50")
    parser.add_argument("--batch", type=int, default=8, help="clips per call (i3zoo extract's default batch)")
    parser.add_argument("--clip", type=int, nargs=2, default=(16, 224), metavar=("T", "SIZE"))
    parser.add_argument("--precisions", nargs="+", default=None,
                        help="default: float32, and bfloat16 where the hardware has bfloat16 kernels")
    parser.add_argument("--tiny", action="store_true", help="a smoke run: i3resnet18, one 4x32x32 clip, float32")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from i3zoo.inference import native_bfloat16

    if args.tiny:
        args.model, args.batch, args.clip, args.precisions = "i3resnet18", 1, (4, 32), ["float32"]
    precisions = args.precisions or ["float32"] + (["bfloat16"] if native_bfloat16(torch.device("cpu")) else [])
    clip = [args.clip[0], args.clip[1], args.clip[1]]
    data = dict(machine=describe_machine(torch.device("cpu")), cpu_threads=torch.get_num_threads(),
                torch=torch.__version__, date=datetime.date.today().isoformat(), model=args.model, batch=args.batch,
                clip=clip, seconds={})
    for precision in precisions:
        with tempfile.TemporaryDirectory(prefix="i3zoo-inductor-cache-") as cache:
            empty = first_call_seconds(args.model, precision, args.batch, clip, Path(cache))
            warm = first_call_seconds(args.model, precision, args.batch, clip, Path(cache))
        data["seconds"][precision] = {"empty cache": empty, "warm cache": warm}
        print(precision, data["seconds"][precision], flush=True)
    out = args.out or results_folder(RESULTS, torch.device("cpu"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "compile_cost.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "compile_cost.md").write_text(render_markdown(data) + "\n")
    print(render_markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
