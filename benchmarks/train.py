"""Training-step benchmark: ``python -m benchmarks.train`` (``--tiny`` for a smoke run).

Clips per second of one training step of the recipe (forward, loss, backward, gradient clipping, SGD step;
DistributedDataParallel with more than one process) for I3ResNet50 at 8x112x112 and 16x224x224, in float32
and in bfloat16 autocast, with and without gradient checkpointing, in one process and in two (``torchrun``).
Clips are random tensors already in memory: this measures the model's training speed, not decoding (see
``benchmarks.extract`` for that). Each configuration runs in a fresh process (its own ``torchrun`` for two),
so that its peak memory is its own: peak allocated GPU memory, or the peak RSS of rank 0's process on CPU.
A configuration that fails (e.g. out of memory) is recorded with its error; the others go on.

Writes ``train.json`` and ``train.md`` into ``--out`` (default ``benchmarks/train_results/<device>-<name>``).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch

RESULTS = Path(__file__).resolve().parent / "train_results"
SIZES = ((8, 112), (16, 224))
TINY_SIZES = ((4, 32),)


def _worker(args: argparse.Namespace) -> None:
    """One configuration, in this process (and its torchrun siblings); rank 0 writes ``args.result``."""
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    import i3zoo
    from i3zoo.files import write_atomically
    from i3zoo.train.distributed import start_processes

    processes = start_processes(args.device)
    device = processes.device
    try:
        torch.manual_seed(processes.rank)
        kwargs = dict(block_counts=(1, 1, 1, 1)) if args.tiny else {}
        model = i3zoo.create_model(args.model, num_classes=400, **kwargs).to(device)
        model.set_grad_checkpointing(args.grad_checkpointing)
        trained = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
            if processes.distributed else model
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
        clips = torch.randn(args.batch_size, 3, args.frames, args.size, args.size, device=device)
        labels = torch.randint(0, 400, (args.batch_size,), device=device)

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                logits = trained(clips)
            loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 40.0)
            optimizer.step()

        def synchronize() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        for _ in range(args.warmup):
            step()
        synchronize()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            step()
            synchronize()
            seconds.append(time.perf_counter() - started)
        if device.type == "cuda":
            peak_mb = torch.cuda.max_memory_allocated(device) / 2 ** 20
        else:
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
        if processes.is_main:
            median = statistics.median(seconds)
            result = dict(step_s=median, clips_per_s=args.batch_size * processes.world_size / median,
                          peak_memory_mb=peak_mb, steps=args.repeats)
            write_atomically(args.result, lambda handle: handle.write(json.dumps(result).encode()))
    finally:
        processes.close()


def _run_configuration(args: argparse.Namespace, frames: int, size: int, bf16: bool, checkpointing: bool,
                       nproc: int, scratch: Path) -> Dict:
    result = scratch / f"{frames}x{size}-{bf16}-{checkpointing}-{nproc}.json"
    worker = ["-m", "benchmarks.train", "--worker", "--result", str(result), "--model", args.model,
              "--frames", str(frames), "--size", str(size), "--batch-size", str(args.batch_size),
              "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--device", args.device]
    worker += ["--bf16"] * bf16 + ["--grad-checkpointing"] * checkpointing + ["--tiny"] * args.tiny
    launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    f"--nproc_per_node={nproc}"]
    row = dict(clip=f"{frames}x{size}x{size}", precision="bf16 autocast" if bf16 else "fp32",
               grad_checkpointing=checkpointing, processes=nproc, batch_per_process=args.batch_size)
    done = subprocess.run(launcher + worker, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0 or not result.exists():
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        row["error"] = lines[-1][:300] if lines else f"exit code {done.returncode}"
        return row
    row.update(json.loads(result.read_text()))
    return row


def render_markdown(result: Dict) -> str:
    lines = [f"Training steps of {result['model']} on {result['machine']}; torch {result['torch']}; "
             f"{result['batch_per_process']} clips per process, median of {result['repeats']} steps after "
             f"{result['warmup']} ({result['date']}). Peak memory: the peak RSS of rank 0's process on the CPU (the "
             f"Python runtime included), the peak allocated memory on a GPU.", *result["notes"], "",
             "| clip | precision | grad checkpointing | processes | clips/s | peak memory (MB) |",
             "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        speed = f"{row['clips_per_s']:.2f}" if "clips_per_s" in row else f"failed: {row['error']}"
        memory = f"{row['peak_memory_mb']:.0f}" if "peak_memory_mb" in row else "-"
        lines.append(f"| {row['clip']} | {row['precision']} | {'yes' if row['grad_checkpointing'] else 'no'} | "
                     f"{row['processes']} | {speed} | {memory} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="i3resnet50")
    parser.add_argument("--batch-size", type=int, default=4, help="clips per process and step")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (two processes: a GPU each)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"),
                        help="default: fp32, and bf16 where the hardware has bfloat16 kernels")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run (1 block per stage, 4x32x32)")
    parser.add_argument("--out", help="results folder (default: benchmarks/train_results/<device>-<name>)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--grad-checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0

    from i3zoo.files import write_atomically

    from .run import bf16_conv_slowdown, describe_machine, native_bfloat16, results_folder

    if args.tiny:
        args.batch_size, args.warmup, args.repeats = 2, 1, 2
    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    notes = []
    if args.precisions is None:
        args.precisions = ["fp32", "bf16"] if native_bfloat16(device) else ["fp32"]
        if "bf16" not in args.precisions:
            notes.append(f"bfloat16 autocast not timed: this CPU has no bfloat16 kernels; a small Conv3d (32 channels, "
                         f"3x3x3 on 8x16x16) took {bf16_conv_slowdown(device):.0f}x longer in bfloat16 than in "
                         "float32.")
    if device.type == "cpu" and "OMP_NUM_THREADS" in os.environ:
        notes.append(f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} for every process.")
    elif device.type == "cpu" and any(n > 1 for n in args.processes):
        notes.append(f"On the CPU one process uses {torch.get_num_threads()} threads; torchrun gives each of several "
                     f"processes one thread (OMP_NUM_THREADS=1).")
    sizes = TINY_SIZES if args.tiny else SIZES
    rows: List[Dict] = []
    with tempfile.TemporaryDirectory(prefix="i3zoo-train-bench-") as scratch:
        for (frames, size), bf16, checkpointing, nproc in itertools.product(
                sizes, [p == "bf16" for p in args.precisions], (False, True), args.processes):
            row = _run_configuration(args, frames, size, bf16, checkpointing, nproc, Path(scratch))
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(args.out) if args.out else results_folder(RESULTS, device)
    result = dict(model=args.model + (" (1 block per stage)" if args.tiny else ""), machine=describe_machine(device),
                  torch=torch.__version__, notes=notes,
                  batch_per_process=args.batch_size, warmup=args.warmup, repeats=args.repeats,
                  date=datetime.date.today().isoformat(), rows=rows)
    markdown = render_markdown(result)
    write_atomically(out / "train.json", lambda handle: handle.write((json.dumps(result, indent=1) + "\n").encode()))
    write_atomically(out / "train.md", lambda handle: handle.write((markdown + "\n").encode()))
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
