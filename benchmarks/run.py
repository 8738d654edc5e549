"""i3zoo's benchmark: ``python -m benchmarks.run`` (``--tiny`` for a seconds-long smoke run).

Measures, in one process and interleaved with the baselines: forward time per clip (median of repeated runs
after warm-up) for plain fp32 and each ``optimize_for_inference`` setting, against the naive layer-swapped
baseline; GFLOPs (``torch.utils.flop_counter``) and achieved GFLOP/s next to the machine's measured matmul
peak; construction wall time and peak RSS in fresh processes against the naive route; and how time grows
with T and batch. Writes ``results.json``, ``results.md`` and ``scaling.png`` (if matplotlib is installed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

import i3zoo
from i3zoo.facts import count_gflops
from i3zoo.verify import seeded_2d_state_dict

from .naive import naive_i3resnet


def median_ms(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def interleaved(fns: Dict[str, Callable[[], object]], repeats: int, warmup: int) -> Dict[str, float]:
    """Median ms of each callable, timed in alternation so that machine noise hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[key].append((time.perf_counter() - start) * 1e3)
    return {k: statistics.median(v) for k, v in samples.items()}


def matmul_peak(dtype: torch.dtype, n: int, repeats: int) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    ms = median_ms(lambda: a @ b, repeats, 2)
    return 2 * n ** 3 / (ms / 1e3) / 1e9


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["i3resnet50"])
    parser.add_argument("--tiny", action="store_true", help="tiny clips and one repeat (smoke test)")
    parser.add_argument("--compile", action="store_true", help="also time optimize_for_inference(compile=True)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    t, size = (4, 32) if args.tiny else (16, 224)
    repeats, warmup = (1, 1) if args.tiny else (args.repeats, 2)
    batches = (1, 2) if args.tiny else (1, 8)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    result = dict(
        date=datetime.date.today().isoformat(), torch=torch.__version__, machine=platform.processor() or platform.machine(),
        cpu_threads=torch.get_num_threads(), clip=[t, size, size],
        peak_gflops=dict(float32=matmul_peak(torch.float32, 512 if args.tiny else 4096, repeats),
                         bfloat16=matmul_peak(torch.bfloat16, 512 if args.tiny else 4096, repeats)),
        models={},
    )
    for name in args.models:
        model_cls_arch = i3zoo.create_model(name).torchvision_arch
        state_2d = seeded_2d_state_dict(model_cls_arch)
        with tempfile.NamedTemporaryFile(suffix=".pth", delete=False) as f:
            torch.save(state_2d, f.name)
            path = f.name
        model = i3zoo.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=path)).eval()
        gflops = count_gflops(model, clip=(t, size, size))
        variants = {"plain fp32": model}
        if name.startswith("i3resnet"):
            variants["naive baseline"] = naive_i3resnet(model_cls_arch, state_2d)
        variants["optimized fp32"] = i3zoo.optimize_for_inference(model)
        variants["optimized bf16"] = i3zoo.optimize_for_inference(model, dtype=torch.bfloat16)
        if args.compile:
            variants["optimized bf16 + compile"] = i3zoo.optimize_for_inference(model, dtype=torch.bfloat16,
                                                                                 compile=True)
        rows = {}
        for batch in batches:
            clip = torch.randn(batch, 3, t, size, size)
            with torch.no_grad():
                reference = model(clip)
                errors = {k: ((m(clip) - reference).norm() / reference.norm()).item() for k, m in variants.items()}

                def runner(m):
                    return lambda: m(clip)

                times = interleaved({k: runner(m) for k, m in variants.items()}, repeats, warmup)
            rows[batch] = {k: dict(ms_per_clip=times[k] / batch, clips_per_s=1e3 * batch / times[k],
                                   gflops_per_s=gflops * batch / (times[k] / 1e3),
                                   ratio_to_plain=times[k] / times["plain fp32"],
                                   rel_l2_error=errors[k]) for k in variants}
        scaling = {}
        for frames in ((4, 8) if args.tiny else (8, 16, 32, 64)):
            clip = torch.randn(1, 3, frames, size, size)
            with torch.no_grad():
                scaling[f"T={frames}"] = median_ms(lambda: model(clip), repeats, 1)
        for batch in ((1, 2) if args.tiny else (1, 2, 4, 8)):
            clip = torch.randn(batch, 3, t, size, size)
            with torch.no_grad():
                scaling[f"N={batch}"] = median_ms(lambda: model(clip), repeats, 1) / batch
        result["models"][name] = dict(
            gflops_per_clip=gflops, forward=rows, scaling_ms_per_clip=scaling,
            construction=dict(i3zoo=construction(name, path, "i3zoo"), naive=construction(name, path, "naive")),
        )
        Path(path).unlink()
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
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
    for name, m in result["models"].items():
        lines += [f"**{name}** ({m['gflops_per_clip']:.1f} GFLOPs per clip)", "",
                  "| variant | batch | ms / clip | clips / s | GFLOP/s | vs plain fp32 | rel. L2 error |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for batch, variants in m["forward"].items():
            for variant, r in variants.items():
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
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
