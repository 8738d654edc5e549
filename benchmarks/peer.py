"""i3zoo beside its peer, in one process: PyTorchVideo's ``i3d_r50`` and ``slow_r50`` against
``i3resnet50_i3d`` and ``i3resnet50_slowonly`` holding the same weights (``python -m benchmarks.run --peer``).

PyTorchVideo's network is built by its own hub builder with seeded random weights, saved as a ``.pyth``
checkpoint and loaded into the i3zoo preset the way a user loads PyTorchVideo's Kinetics-400 files
(``pretrained_cfg_overlay=dict(file=...)``), so both compute the same function (the relative error is in
every row). Rows, timed interleaved: PyTorchVideo eager (the reference of every ratio); PyTorchVideo under
``torch.compile(net)`` as a user would call it (and under bfloat16 autocast where the hardware has bfloat16
kernels); i3zoo's plain model; i3zoo's optimized copy (``optimize_for_inference``, compiled with freezing with
``--compile``) in float32 and bfloat16. The row marked "default" is the path ``i3zoo extract`` / ``predict``
take for a long job on this machine (:func:`i3zoo.inference.choose_inference_path`).

The clip is 8 frames, the peers' training clip; PyTorchVideo's head pools a fixed window (4x7x7 at
8x224x224), set to the final map of the clip timed so that smaller clips (``--tiny``) compute the same too.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

import i3zoo
from i3zoo.weights.pytorchvideo import PYTORCHVIDEO_KINETICS400

#: i3zoo's preset for each PyTorchVideo network timed
PEERS = {"i3d": "i3resnet50_i3d", "slowonly": "i3resnet50_slowonly"}


def peer_pair(temporal: str, size: int, device: torch.device, seed: int = 0) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """PyTorchVideo's network for ``temporal`` (seeded random weights) and the i3zoo preset loaded from its
    checkpoint, both in eval mode on ``device``."""
    from pytorchvideo.models.hub import resnet as ptv_hub

    torch.manual_seed(seed)
    net = getattr(ptv_hub, PYTORCHVIDEO_KINETICS400[temporal].builder)(pretrained=False).eval()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{temporal}.pyth"
        torch.save({"model_state": net.state_dict()}, path)  # the layout of PyTorchVideo's .pyth files
        ours = i3zoo.create_model(f"{PEERS[temporal]}.ptv_k400", pretrained=True,
                                  pretrained_cfg_overlay=dict(file=str(path))).eval()
    final = (PYTORCHVIDEO_KINETICS400[temporal].clip_len // ours.temporal_reduction, size // 32, size // 32)
    net.blocks[-1].pool = torch.nn.AvgPool3d(final, stride=1)  # (4, 7, 7) / (8, 7, 7) at 224: the builder's own
    return net.to(device), ours.to(device)


def _autocast(device: torch.device):
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def peer_variants(net: torch.nn.Module, ours: torch.nn.Module, device: torch.device, *, bf16: bool,
                  compile: bool) -> Dict[str, Tuple[Callable[[torch.Tensor], torch.Tensor], Callable]]:
    """What is timed, as (callable, context factory); the first is the reference of ratios and errors."""
    none = contextlib.nullcontext
    fast = i3zoo.optimize_for_inference
    found = {"PyTorchVideo eager fp32": (net, none)}
    if compile:
        found["PyTorchVideo torch.compile fp32"] = (torch.compile(net), none)
    if bf16:
        found["PyTorchVideo eager bf16 autocast"] = (net, _autocast(device))
        if compile:
            found["PyTorchVideo torch.compile bf16 autocast"] = (torch.compile(net), _autocast(device))
    found["i3zoo plain fp32"] = (ours, none)
    kind = "compiled, frozen" if compile else "eager"
    found[f"i3zoo optimized fp32, {kind}"] = (fast(ours, compile=compile, announce=False), none)
    if bf16:
        found[f"i3zoo optimized bf16, {kind}"] = (fast(ours, dtype=torch.bfloat16, compile=compile,
                                                        announce=False), none)
    return found


def default_variant(bf16: bool) -> str:
    """The row of the path a long job takes by default here (bfloat16 where the hardware runs it fast)."""
    return f"i3zoo optimized {'bf16' if bf16 else 'fp32'}, compiled, frozen"


def benchmark_peers(*, size: int, batches: List[int], repeats: int, warmup: int, device: torch.device, bf16: bool,
                    compile: bool, interleaved: Callable, temporals: Sequence[str] = tuple(PEERS)) -> Dict:
    """Rows per peer and batch: ms per clip, ratio to PyTorchVideo eager fp32, relative L2 error to it."""
    result = {}
    for temporal in temporals:
        preset = PEERS[temporal]
        net, ours = peer_pair(temporal, size, device)
        frames = PYTORCHVIDEO_KINETICS400[temporal].clip_len
        rows = {}
        for batch in batches:
            print(f"[peer {temporal}] batch {batch}", flush=True)
            torch._dynamo.reset()  # fresh compiled copies per batch: the compiled ones keep their first batch
            timed = peer_variants(net, ours, device, bf16=bf16, compile=compile)
            clip = torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(batch)).to(device)

            def runner(fn, context, clip=clip):
                def run():
                    with torch.inference_mode(), context():
                        return fn(clip).float()
                return run

            runs = {k: runner(*v) for k, v in timed.items()}
            reference_name = next(iter(timed))
            reference = runs[reference_name]()
            errors = {k: ((call() - reference).norm() / reference.norm()).item() for k, call in runs.items()}
            times = interleaved(runs, repeats, warmup, device)
            rows[batch] = {k: dict(ms_per_clip=times[k] / batch, ratio_to_peer=times[k] / times[reference_name],
                                   rel_l2_error=errors[k], default=k == default_variant(bf16))
                           for k in timed}
        result[f"{PYTORCHVIDEO_KINETICS400[temporal].builder} / {preset}"] = dict(
            clip=[frames, size, size], forward=rows)
    return result


#: issue 22's goals on a CPU, as shares of PyTorchVideo's eager float32 time
GOALS = {"fp32": 0.5, "bf16": 0.15}


def render_goals(peers: Dict) -> List[str]:
    """The goals against the rows: i3zoo's compiled, frozen copy (float32; bfloat16 where the run timed it) at
    most :data:`GOALS` of PyTorchVideo's eager time, and i3zoo's default path no slower than PyTorchVideo
    compiled by hand (its fastest compiled row)."""
    cells = [(pair.split(" / ")[0], batch, rows) for pair, m in peers.items() for batch, rows in m["forward"].items()]

    def over_compiled_peer(rows: Dict) -> Optional[float]:  # None where the run timed no compiled row
        ours = [r["ms_per_clip"] for r in rows.values() if r["default"]]
        theirs = [r["ms_per_clip"] for k, r in rows.items() if k.startswith("PyTorchVideo torch.compile")]
        return ours[0] / min(theirs) if ours and theirs else None

    checks = [(f"i3zoo optimized {precision}, compiled, frozen", f"≤ {goal:g}",
               [rows.get(f"i3zoo optimized {precision}, compiled, frozen", {}).get("ratio_to_peer")
                for _, _, rows in cells], goal) for precision, goal in GOALS.items()]
    checks.append(("i3zoo's default path over PyTorchVideo compiled by hand", "≤ 1",
                   [over_compiled_peer(rows) for _, _, rows in cells], 1.0))
    if all(v is None for _, _, values, _ in checks for v in values):
        return []  # an eager run: nothing to hold against the goals
    lines = ["Against the goals (shares of PyTorchVideo's eager float32 time unless said otherwise):", "",
             "| | goal | " + " | ".join(f"{name}, batch {batch}" for name, batch, _ in cells) + " | met |",
             "|---|---|" + "---:|" * len(cells) + "---:|"]
    for label, goal_text, values, goal in checks:
        if all(v is None for v in values):
            continue
        met = sum(v is not None and v <= goal for v in values)
        lines.append(f"| {label} | {goal_text} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in values)
                     + f" | {met} of {len(values)} |")
    return lines + [""]


def render_peers(peers: Dict) -> List[str]:
    """The Markdown of :func:`benchmark_peers`'s rows, then :func:`render_goals`."""
    lines = []
    for pair, m in peers.items():
        t, h, w = m["clip"]
        lines += [f"**{pair}** (same weights; clip {t}x{h}x{w})", "",
                  "| variant | batch | ms / clip | vs PyTorchVideo eager fp32 | rel. L2 error |",
                  "|---|---:|---:|---:|---:|"]
        for batch, rows in m["forward"].items():
            for variant, r in rows.items():
                name = f"**{variant}** (default)" if r["default"] else variant
                lines.append(f"| {name} | {batch} | {r['ms_per_clip']:.1f} | {r['ratio_to_peer']:.2f} | "
                             f"{r['rel_l2_error']:.1e} |")
        lines.append("")
    return lines + render_goals(peers)
