"""i3zoo's benchmark: ``python -m benchmarks.run`` (``--tiny`` for a seconds-long smoke run).

Measures, in one process and interleaved with the baselines: forward time per clip (median of repeated runs
after warm-up) for plain fp32 and each ``optimize_for_inference`` setting, against the naive layer-swapped
baseline; GFLOPs (``torch.utils.flop_counter``) and achieved GFLOP/s next to the machine's measured matmul
peak; construction wall time and peak RSS in fresh processes against the naive route; and how time grows
with T and batch. Writes ``results.json``, ``results.md`` and ``scaling.png`` (if matplotlib is installed)
into ``--out`` (default ``benchmarks/results/<device>-<processor>``).

``--peer`` adds PyTorchVideo's ``i3d_r50`` / ``slow_r50`` beside the i3zoo presets with the same weights
(:mod:`benchmarks.peer`). ``--device cuda`` runs the GPU variants instead (fp32, TF32, bf16 with and without
channels-last, ``cudnn.benchmark``, ``torch.compile``) at batches 1, 8 and 32.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch

import i3zoo
from i3zoo.facts import count_gflops
from i3zoo.files import write_atomically
from i3zoo.inference import native_bfloat16
from i3zoo.weights.verify import seeded_2d_state_dict, torchvision_arch_of

from .naive import naive_3d
from .peer import benchmark_peers, render_peers

RESULTS = Path(__file__).resolve().parent / "results"


def _synchronize(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def median_ms(fn: Callable[[], object], repeats: int, warmup: int, device: torch.device) -> float:
    sync = _synchronize(device)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@contextlib.contextmanager
def backend_flags(tf32: bool = False, cudnn_benchmark: bool = False):
    """TF32 and cudnn.benchmark for one timed call (both are process-wide switches; CPUs ignore them)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


Variant = Tuple[torch.nn.Module, Dict[str, bool]]  # the module and its backend_flags


def interleaved(fns: Dict[str, Callable[[], object]], repeats: int, warmup: int,
                device: torch.device) -> Dict[str, float]:
    """Median ms of each callable, timed in alternation so that machine noise hits all alike."""
    sync = _synchronize(device)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    samples: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            samples[key].append((time.perf_counter() - start) * 1e3)
    return {k: statistics.median(v) for k, v in samples.items()}


def matmul_peak(dtype: torch.dtype, max_n: int, repeats: int, device: torch.device) -> float:
    """The best GFLOP/s of an n x n matmul over ``repeats`` runs: the practical peak a model can be held to.

    n doubles from 512 up to ``max_n`` while the next product would take under 4 s (bfloat16 without hardware
    support runs near 1 GFLOP/s, where a 4096 x 4096 product would take minutes).
    """
    sync = _synchronize(device)

    def seconds(a: torch.Tensor, b: torch.Tensor) -> float:
        start = time.perf_counter()
        a @ b
        sync()
        return time.perf_counter() - start

    with backend_flags(tf32=False):
        n = 512
        while True:
            a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
            first = min(seconds(a, b) for _ in range(2))  # the first call also warms up
            if n >= max_n or first * 8 > 4.0:
                break
            n *= 2
        best = min([first] + [seconds(a, b) for _ in range(repeats)])
    return 2 * n ** 3 / best / 1e9


def bf16_conv_slowdown(device: torch.device) -> float:
    """Time of one small Conv3d (32 -> 32 channels, 3x3x3, on 8x16x16) in bfloat16 over float32."""
    x = torch.randn(1, 32, 8, 16, 16, device=device)
    w = torch.randn(32, 32, 3, 3, 3, device=device)
    ms = {dtype: median_ms(lambda dtype=dtype: torch.nn.functional.conv3d(x.to(dtype), w.to(dtype), padding=1), 3, 1,
                         device)
          for dtype in (torch.float32, torch.bfloat16)}
    return ms[torch.bfloat16] / ms[torch.float32]


def processor_name() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}; host CPU {processor_name()})"
    units = "yes" if native_bfloat16(device) else "none"
    return f"{processor_name()} (CPU kernels: {torch.backends.cpu.get_cpu_capability()}; bfloat16 kernels: {units})"


def default_out(device: torch.device) -> Path:
    return results_folder(RESULTS, device)


def results_folder(results: Path, device: torch.device) -> Path:
    """Where a benchmark keeps one machine's run: ``results/<device type>-<GPU or CPU name>``, e.g.
    ``cpu-intel-r-xeon-r-processor``."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else processor_name()
    return results / f"{device.type}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}"


def construction(name: str, path: str, route: str) -> Dict[str, float]:
    """Wall time and peak RSS growth (both after imports) of one construction, in a fresh process."""
    code = f"""
import json, time, torch, i3zoo
from benchmarks.naive import naive_construct
def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024
rss_before = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
start = time.perf_counter()
if {route!r} == "i3zoo":
    model = i3zoo.create_model({name!r}, pretrained=True, pretrained_cfg_overlay=dict(file={path!r}))
else:
    model = naive_construct({name!r}, {path!r})
seconds = time.perf_counter() - start
print(json.dumps(dict(seconds=seconds, peak_rss_mb=status("VmHWM:") - rss_before)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def variants(model: torch.nn.Module, naive: torch.nn.Module, device: torch.device, *, bf16: bool,
             compile: bool) -> Dict[str, Variant]:
    """What is timed. The first variant is the reference that errors and ratios are measured against."""
    fast = i3zoo.optimize_for_inference
    if device.type == "cuda":
        bf16_cl = fast(model, dtype=torch.bfloat16)
        found = {
            "plain fp32": (model, {}),
            "naive baseline": (naive, {}),
            "plain TF32": (model, dict(tf32=True)),
            "optimized bf16, contiguous": (fast(model, dtype=torch.bfloat16, channels_last=False), {}),
            "optimized bf16": (bf16_cl, {}),
            "optimized bf16 + cudnn.benchmark": (bf16_cl, dict(cudnn_benchmark=True)),
        }
        if compile:
            found["optimized bf16 + cudnn.benchmark + compile"] = (
                fast(model, dtype=torch.bfloat16, compile=True), dict(cudnn_benchmark=True))
        return found
    found = {"plain fp32": (model, {}), "naive baseline": (naive, {}), "optimized fp32": (fast(model), {})}
    if compile:
        found["optimized fp32 + compile"] = (fast(model, compile=True), {})
    if bf16:
        found["optimized bf16"] = (fast(model, dtype=torch.bfloat16), {})
        if compile:
            found["optimized bf16 + compile"] = (fast(model, dtype=torch.bfloat16, compile=True), {})
    return found


def benchmark_model(name: str, args: argparse.Namespace, device: torch.device, *, bf16: bool) -> Dict:
    t, size = args.clip
    repeats = args.repeats
    arch_2d = torchvision_arch_of(name)
    state_2d = seeded_2d_state_dict(arch_2d)
    with tempfile.NamedTemporaryFile(suffix=".pth", delete=False) as f:
        torch.save(state_2d, f.name)
        path = f.name
    model = i3zoo.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=path)).eval().to(device)
    # Every model shares one forward code object; without a reset, dynamo's recompile limit (8) is reached a few
    # models in and the remaining "compiled" variants silently run eager.
    torch._dynamo.reset()
    gflops = count_gflops(model, clip=(t, size, size))
    timed = variants(model, naive_3d(arch_2d, state_2d).to(device), device, bf16=bf16, compile=args.compile)
    reference_name = next(iter(timed))
    rows = {}
    for batch in args.batches:
        print(f"[{name}] batch {batch}", flush=True)
        clip = torch.randn(batch, 3, t, size, size, device=device)

        def runner(module, flags, clip=clip):
            def run():
                with backend_flags(**flags):
                    return module(clip)
            return run

        with torch.no_grad():
            reference = runner(*timed[reference_name])()
            errors = {k: ((runner(*v)() - reference).norm() / reference.norm()).item() for k, v in timed.items()}
            times = interleaved({k: runner(*v) for k, v in timed.items()}, repeats, args.warmup, device)
        rows[batch] = {k: dict(ms_per_clip=times[k] / batch, clips_per_s=1e3 * batch / times[k],
                               gflops_per_s=gflops * batch / (times[k] / 1e3),
                               ratio_to_plain=times[k] / times[reference_name],
                               rel_l2_error=errors[k]) for k in timed}
    scaling = {}
    with torch.no_grad():
        for frames in args.scaling_frames:
            clip = torch.randn(1, 3, frames, size, size, device=device)
            scaling[f"T={frames}"] = median_ms(lambda clip=clip: model(clip), repeats, 1, device)
        for batch in args.scaling_batches:
            clip = torch.randn(batch, 3, t, size, size, device=device)
            scaling[f"N={batch}"] = median_ms(lambda clip=clip: model(clip), repeats, 1, device) / batch
    print(f"[{name}] construction", flush=True)
    result = dict(gflops_per_clip=gflops, forward=rows, scaling_ms_per_clip=scaling,
                  construction=dict(i3zoo=construction(name, path, "i3zoo"), naive=construction(name, path, "naive")))
    Path(path).unlink()
    return result


def run_settings(result: Dict, *, repeats: int, compile: bool, bf16: bool, peer: bool = False) -> Dict:
    """What must match for an interrupted run to be resumed: the same machine, torch, clip and variants."""
    settings = dict(machine=result["machine"], torch=result["torch"], cpu_threads=result["cpu_threads"],
                    clip=result["clip"], repeats=repeats, compile=compile, bf16=bf16)
    return dict(settings, peer=True) if peer else settings  # runs without peers resume as before


def write_json(path: Path, data: Dict) -> None:
    write_atomically(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None,
                        help="default: every model on the CPU, i3resnet50 and i3densenet121 on a GPU, i3resnet50 with "
                             "--tiny")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--tiny", action="store_true", help="tiny clips and one repeat (smoke test)")
    parser.add_argument("--compile", action="store_true", help="also time optimize_for_inference(compile=True)")
    parser.add_argument("--bf16", choices=("auto", "yes", "no"), default="auto",
                        help="time bfloat16 variants (auto: only where the hardware has bfloat16 kernels)")
    parser.add_argument("--peer", action="store_true",
                        help="also time PyTorchVideo's i3d_r50 / slow_r50 beside i3zoo's presets (same weights)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", help="results folder (default: benchmarks/results/<device>-<processor>)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the models an interrupted run of the same settings finished (partial.json)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    args.models = args.models or (["i3resnet50"] if args.tiny else
                                  ["i3resnet50", "i3densenet121"] if device.type == "cuda" else i3zoo.list_models())
    args.clip = (8, 32) if args.tiny else (16, 224)  # (T, H = W); 8x32x32 is above every model's minimum
    args.repeats, args.warmup = (1, 1) if args.tiny else (args.repeats, 2)
    args.batches = (1, 2) if args.tiny else ((1, 8, 32) if device.type == "cuda" else (1, 8))
    args.scaling_frames = (8, 16) if args.tiny else (8, 16, 32, 64)
    args.scaling_batches = (1, 2) if args.tiny else (1, 2, 4, 8)
    out = Path(args.out) if args.out else default_out(device)
    out.mkdir(parents=True, exist_ok=True)

    bf16 = {"yes": True, "no": False, "auto": native_bfloat16(device)}[args.bf16]
    result = dict(date=datetime.date.today().isoformat(), torch=torch.__version__, machine=describe_machine(device),
                  cpu_threads=torch.get_num_threads(), clip=[args.clip[0], args.clip[1], args.clip[1]])
    # After each model the run so far goes to partial.json, so that an interrupted run can be resumed.
    partial = out / "partial.json"
    settings = run_settings(result, repeats=args.repeats, compile=args.compile, bf16=bf16, peer=args.peer)
    if args.resume and partial.exists():
        previous = json.loads(partial.read_text())
        if previous["settings"] != settings:
            raise SystemExit(f"--resume: {partial} was made with other settings ({previous['settings']}); "
                             f"this run has {settings}. Delete it or run without --resume.")
        result = previous["result"]  # its peak and notes too: they belong with the models already measured
        print(f"resuming: {', '.join(result['models'])} already done", flush=True)
    else:
        notes = []
        if device.type == "cpu":
            slowdown = bf16_conv_slowdown(device)
            if not bf16:
                notes.append(f"bfloat16 variants not timed: this CPU has no bfloat16 kernels; a small Conv3d (32 "
                             f"channels, 3x3x3 on 8x16x16) took {slowdown:.0f}x longer in bfloat16 than in float32.")
        peak_n = 512 if args.tiny else (8192 if device.type == "cuda" else 4096)  # the largest matmul for the peak
        result.update(peak_gflops=dict(float32=matmul_peak(torch.float32, peak_n, max(args.repeats, 3), device),
                                       bfloat16=matmul_peak(torch.bfloat16, peak_n, max(args.repeats, 3), device)),
                      notes=notes, models={})
    for name in args.models:
        if name not in result["models"]:
            result["models"][name] = benchmark_model(name, args, device, bf16=bf16)
            write_json(partial, dict(settings=settings, result=result))
    result["models"] = {name: result["models"][name] for name in args.models}
    if args.peer and "peer" not in result:
        result["peer"] = benchmark_peers(size=args.clip[1], batches=list(args.batches), repeats=args.repeats,
                                         warmup=args.warmup, device=device, bf16=bf16, compile=args.compile,
                                         interleaved=interleaved)
    write_json(out / "results.json", result)
    partial.unlink()
    markdown = render_markdown(result)
    (out / "results.md").write_text(markdown)
    print(markdown)
    plot(result, out / "scaling.png")
    return 0


def render_markdown(result: Dict) -> str:
    t, h, w = result["clip"]
    lines = [f"Machine: {result['machine']}, {result['cpu_threads']} threads; torch {result['torch']}; "
             f"{result['date']}. Clip {t}x{h}x{w}. Measured matmul peak: "
             f"{result['peak_gflops']['float32']:.0f} GFLOP/s fp32, {result['peak_gflops']['bfloat16']:.0f} "
             "GFLOP/s bf16.", ""]
    lines += [f"{note}\n" for note in result.get("notes", [])]
    for name, m in result["models"].items():
        lines += [f"**{name}** ({m['gflops_per_clip']:.1f} GFLOPs per clip)", "",
                  "| variant | batch | ms / clip | clips / s | GFLOP/s | vs plain fp32 | rel. L2 error |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for batch, rows in m["forward"].items():
            for variant, r in rows.items():
                lines.append(f"| {variant} | {batch} | {r['ms_per_clip']:.1f} | {r['clips_per_s']:.2f} | "
                             f"{r['gflops_per_s']:.0f} | {r['ratio_to_plain']:.2f} | {r['rel_l2_error']:.1e} |")
        c = m["construction"]
        lines += ["", "| construction (pretrained, local file) | seconds | peak RSS growth (MB) |", "|---|---:|---:|",
                  f"| i3zoo | {c['i3zoo']['seconds']:.2f} | {c['i3zoo']['peak_rss_mb']:.0f} |",
                  f"| naive | {c['naive']['seconds']:.2f} | {c['naive']['peak_rss_mb']:.0f} |",
                  f"| ratio | {c['i3zoo']['seconds'] / c['naive']['seconds']:.2f} | "
                  f"{c['i3zoo']['peak_rss_mb'] / c['naive']['peak_rss_mb']:.2f} |", "",
                  "| scaling (plain fp32) | " + " | ".join(m["scaling_ms_per_clip"]) + " |",
                  "|---|" + "---:|" * len(m["scaling_ms_per_clip"]),
                  "| ms / clip | " + " | ".join(f"{v:.1f}" for v in m["scaling_ms_per_clip"].values()) + " |", ""]
    if "peer" in result:
        lines += ["Beside PyTorchVideo, in the same process:", ""] + render_peers(result["peer"])
    return "\n".join(lines)


def plot(result: Dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no {path.name}")
        return
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for name, m in result["models"].items():
        s = m["scaling_ms_per_clip"]
        ts = [(int(k[2:]), v) for k, v in s.items() if k.startswith("T=")]
        ns = [(int(k[2:]), v) for k, v in s.items() if k.startswith("N=")]
        axes[0].plot(*zip(*ts), marker="o", label=name)
        axes[1].plot(*zip(*ns), marker="o", label=name)
    axes[0].set(xlabel="clip length T", ylabel="ms per clip", title="time vs T")
    axes[1].set(xlabel="batch size", ylabel="ms per clip", title="time vs batch")
    axes[0].legend(fontsize="small")
    fig.suptitle(result["machine"], fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
