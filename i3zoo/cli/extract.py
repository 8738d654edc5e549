"""``i3zoo extract``: features of sliding windows, one output file per video, resumable and atomic.

Videos are read in ``DataLoader`` workers (:class:`i3zoo.video.VideoWindows`: one streaming pass per video)
while the model runs; windows are batched across videos. Each output holds the features (windows x
num_features, float32), each window's start and end in seconds and the settings and weights that made them.
It is written to a temporary name and renamed, so an output that exists is complete, even after ``kill -9``;
a rerun skips those. A video that cannot be read is reported with its reason and the others go on.

The model and weight options are shared with ``i3zoo predict`` (:func:`add_model_arguments`,
:func:`load_model`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..files import write_atomically

RANDOM_SEED = 0
FORMATS = ("safetensors", "npy")


# ---------------------------------------------------------------- the model and its weights (extract, predict)


def add_weight_arguments(p: argparse.ArgumentParser) -> None:
    """The model and its weights, as :func:`load_model` takes them (extract, predict, export-onnx)."""
    p.add_argument("--model", required=True, metavar="NAME",
                   help="arch or arch.tag (e.g. i3resnet50.tv_in1k), hf-hub:ORG/NAME or local-dir:PATH")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--file", metavar="2D.pth", help="a local copy of the 2D weights (.pth or .safetensors)")
    weights.add_argument("--random-weights", action="store_true",
                         help=f"seeded random weights (seed {RANDOM_SEED}), for a smoke run; every output says so")
    p.add_argument("--inflation", default="center", choices=("center", "mean"))


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    add_weight_arguments(p)
    p.add_argument("--clip-len", type=int, help="frames per clip (default 16, or the model's minimum if larger)")
    p.add_argument("--frame-interval", type=int, default=1, help="distance between a clip's frames (default 1)")
    p.add_argument("--crop-size", type=int, help="spatial size (default: the model's input size, 224)")
    from ..video import backend_choices  # read when the parser is built: decoders registered later are offered

    p.add_argument("--backend", default="auto", choices=backend_choices(), help="video decoder")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")


@dataclass
class LoadedModel:
    model: Any
    name: str
    weights: Dict[str, Any]  # what filled the model, as recorded in every output
    random: bool
    label_names: Optional[List[str]] = None
    label_source: str = ""


def weights_overlay(args: argparse.Namespace) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]]]:
    """The ``pretrained_cfg_overlay`` that ``--file`` / ``--random-weights`` ask for, and the record of it
    (``None, None``: the model's own weights); stops (``SystemExit``) on an unknown model or a conflict."""
    from ..registry import is_model, list_models
    from ..weights.verify import seeded_2d_state_dict, torchvision_arch_of

    name = args.model
    preinflated = name.startswith(("hf-hub:", "local-dir:"))
    if not preinflated and not is_model(name):
        raise SystemExit(f"i3zoo: unknown model {name!r}; choose from: {', '.join(list_models())} "
                         "(with an optional .tag), or hf-hub:ORG/NAME, local-dir:PATH")
    if preinflated and (args.file or args.random_weights):
        raise SystemExit(f"i3zoo: {name} carries its own weights; --file and --random-weights apply to registered "
                         "models only")
    if args.random_weights:
        overlay = dict(state_dict=seeded_2d_state_dict(torchvision_arch_of(name.split(".")[0]), RANDOM_SEED))
        return overlay, {"kind": "random", "seed": RANDOM_SEED,
                         "note": "seeded random weights with randomized BatchNorm statistics, NOT trained weights"}
    if args.file:
        if not Path(args.file).is_file():
            raise SystemExit(f"i3zoo: --file {args.file}: no such file")
        return dict(file=args.file), {"kind": "file", "name": Path(args.file).name}
    return None, None


def load_model(args: argparse.Namespace) -> LoadedModel:
    """Build ``args.model`` with its weights, or stop at once (``SystemExit``) saying how to get them."""
    import torch

    from ..registry import create_model
    from ..weights.checkpoints import CheckpointError

    name = args.model
    preinflated = name.startswith(("hf-hub:", "local-dir:"))
    overlay, weights = weights_overlay(args)
    kwargs = dict(inflation=args.inflation) if not preinflated else {}
    try:
        model = create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except (CheckpointError, OSError, ValueError) as e:
        how = ("give a local copy of the 2D weights with --file PATH (e.g. torchvision's resnet50-0676ba61.pth), "
               "put it in torch.hub's checkpoint cache, or run with --random-weights for a smoke run")
        raise SystemExit(f"i3zoo: cannot load weights for {name}: {e}. To get weights: {how}") from None
    if weights is None:
        weights = {"kind": "pretrained", **{k: v for k, v in (getattr(model, "source_2d", None) or {}).items()
                                            if not k.startswith("_")}}
    weights["model"] = name
    weights["inflation"] = model.inflation
    labels, label_source = _label_names(model)
    try:
        model = model.to(args.device)
    except (RuntimeError, AssertionError) as e:
        raise SystemExit(f"i3zoo: --device {args.device}: {e}") from None
    torch.manual_seed(0)
    return LoadedModel(model.eval(), name, weights, args.random_weights, labels, label_source)


def _label_names(model) -> Tuple[Optional[List[str]], str]:
    """The names of the model's classes: its own (fine-tuned weights, timm's ``pretrained_cfg["label_names"]``),
    else ImageNet's categories for a 1000-class head inflated from ImageNet, else none."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    own = cfg.get("label_names")
    if own and len(own) == model.num_classes:
        return list(own), "the model's label_names"
    if own:
        return None, f"none: the model's {len(own)} label_names do not fit its {model.num_classes} classes"
    if model.num_classes == 1000:
        import torchvision

        arch = getattr(model, "torchvision_arch", None)
        if arch:
            return list(torchvision.models.get_model_weights(arch).DEFAULT.meta["categories"]), "ImageNet-1k"
    return None, "none (class numbers)"


def clip_len_for(args: argparse.Namespace, model) -> int:
    minimum = model.min_input_size[0]
    clip_len = args.clip_len or max(16, minimum)
    if clip_len < minimum:
        raise SystemExit(f"i3zoo: --clip-len {clip_len} is below {args.model}'s minimum of {minimum} frames")
    return clip_len


def crop_size_for(args: argparse.Namespace, model) -> int:
    crop_size = args.crop_size or model.pretrained_cfg["input_size"][-1]
    minimum = max(model.min_input_size[1:])
    if crop_size < minimum:
        raise SystemExit(f"i3zoo: --crop-size {crop_size} is below {args.model}'s minimum of {minimum} pixels")
    return crop_size


def weights_banner(loaded: LoadedModel) -> str:
    return "[random weights] " if loaded.random else ""


# ---------------------------------------------------------------- inputs and outputs


def collect_videos(paths: List[str], list_file: Optional[str]) -> Tuple[List[Tuple[Path, Path]], List[Tuple[str, str]]]:
    """(video, relative output stem) pairs and (path, reason) for inputs that do not exist.

    A folder's videos keep their path below the folder; a file keeps the path as given when it is relative
    and stays below the working folder, else its name.
    """
    from ..video.datasets import find_videos

    found: List[Tuple[Path, Path]] = []
    missing: List[Tuple[str, str]] = []
    entries = [(p, None) for p in paths]
    if list_file:
        listing = Path(list_file)
        if not listing.is_file():
            raise SystemExit(f"i3zoo: --list {list_file}: no such file")
        for line in listing.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                path, comma, _label = line.rpartition(",")  # "path,label" (Kinetics style) or a bare path
                entries.append(((path if comma else line).strip(), listing.parent))
    for text, base in entries:
        path = Path(text) if base is None or Path(text).is_absolute() else base / text
        if path.is_dir():
            found.extend((video, video.relative_to(path)) for video in find_videos(path))
        elif path.is_file():
            relative = Path(text)
            keep = not relative.is_absolute() and ".." not in relative.parts
            found.append((path, relative if keep else Path(path.name)))
        else:
            missing.append((text, "no such file or folder"))
    return found, missing


def output_paths(out: Path, relative: Path, fmt: str) -> List[Path]:
    """The files of one video's output; the last one written marks it complete."""
    stem = out / relative  # the video's own name with its extension: clip.mp4 and clip.avi do not collide
    if fmt == "safetensors":
        return [stem.with_name(stem.name + ".safetensors")]
    return [stem.with_name(stem.name + ".npy"), stem.with_name(stem.name + ".json")]


def read_settings(paths: List[Path], fmt: str) -> Optional[Dict[str, Any]]:
    """The settings a complete output was made with, or None if it is not there."""
    if not all(p.is_file() for p in paths):
        return None
    if fmt == "safetensors":
        from safetensors import safe_open

        with safe_open(str(paths[0]), framework="pt") as f:
            return json.loads(f.metadata()["i3zoo"])["settings"]
    return json.loads(paths[-1].read_text())["settings"]


def write_output(paths: List[Path], fmt: str, features, start, end, padded, record: Dict[str, Any]) -> None:
    import numpy as np

    if fmt == "safetensors":
        from safetensors.torch import save

        blob = save({"features": features.contiguous(), "start": start, "end": end, "padded": padded},
                    metadata={"i3zoo": json.dumps(record),
                              "random_weights": str(record["settings"]["weights"]["kind"] == "random").lower()})
        write_atomically(paths[0], lambda handle: handle.write(blob))
        return
    write_atomically(paths[0], lambda handle: np.save(handle, features.numpy()))
    sidecar = dict(record, start=start.tolist(), end=end.tolist(), padded=padded.tolist())
    write_atomically(paths[1], lambda handle: handle.write(json.dumps(sidecar, indent=1).encode()))


# ---------------------------------------------------------------- the job


@dataclass
class _Pending:
    path: Path
    outputs: List[Path]
    features: Dict[int, Any] = field(default_factory=dict)
    times: Dict[int, Tuple[float, float, int]] = field(default_factory=dict)
    done: Optional[Dict[str, Any]] = None


def _cmd_extract(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from .._version import __version__
    from ..inference import optimize_for_inference
    from ..video import VideoWindows, transforms_for

    if args.batch_size < 1 or args.workers < 0 or (args.step is not None and args.step < 1):
        raise SystemExit("i3zoo extract: --batch-size and --step must be >= 1, --workers >= 0")
    found, missing = collect_videos(args.paths, args.list)
    if not found and not missing:
        raise SystemExit("i3zoo extract: no videos given; name video files or folders, or give --list FILE")
    out = Path(args.out)
    by_output: Dict[Path, List[Path]] = {}
    for video, relative in found:
        by_output.setdefault(output_paths(out, relative, args.format)[0], []).append(video)
    clashes = {o: v for o, v in by_output.items() if len(v) > 1}
    if clashes:
        lines = [f"  {o}: {', '.join(map(str, v))}" for o, v in clashes.items()]
        raise SystemExit("i3zoo extract: these videos would write the same output; give their folder instead "
                         "of the files, or run them with different --out:\n" + "\n".join(lines))
    loaded = load_model(args)  # stops at once when no weights can be had
    banner = weights_banner(loaded)
    model = loaded.model
    clip_len = clip_len_for(args, model)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    model.reset_classifier(0)  # forward then gives the pooled (N, num_features) features
    if args.compile or args.optimize or dtype != torch.float32:
        model = optimize_for_inference(model, dtype=dtype, compile=args.compile)
    crop_size = crop_size_for(args, loaded.model)
    settings = dict(model=loaded.name, weights=loaded.weights, clip_len=clip_len,
                    step=args.step or clip_len * args.frame_interval, frame_interval=args.frame_interval, fps=args.fps,
                    crop_size=crop_size, dtype=args.dtype)
    failures: List[Tuple[str, str]] = list(missing)
    todo: List[Tuple[Path, List[Path]]] = []
    skipped = 0
    for video, relative in found:
        outputs = output_paths(out, relative, args.format)
        try:
            existing = read_settings(outputs, args.format)
        except Exception as e:  # unreadable metadata: not ours, or damaged by something else
            failures.append((str(video), f"{outputs[0]} exists but cannot be read ({e}); delete it to redo"))
            continue
        if existing is None:
            todo.append((video, outputs))
        elif existing == json.loads(json.dumps(settings)):
            skipped += 1
        else:
            failures.append((str(video), f"{outputs[0]} exists with other settings; delete it or use another --out"))
    print(f"{banner}i3zoo extract: {len(todo)} videos to do, {skipped} already complete, model {loaded.name} "
          f"({describe_weights(loaded.weights)}), clips of {clip_len} frames every {settings['step']} "
          f"(interval {args.frame_interval}{f', at {args.fps:g} fps' if args.fps else ''}), {args.dtype} on "
          f"{args.device}", flush=True)
    transform = transforms_for(loaded.model, crop_size=crop_size)
    dataset = VideoWindows([v for v, _ in todo], clip_len=clip_len, step=settings["step"],
                           frame_interval=args.frame_interval, fps=args.fps, transform=transform, backend=args.backend)
    loader = DataLoader(dataset, batch_size=None, num_workers=args.workers)
    pending = {i: _Pending(path=v, outputs=o) for i, (v, o) in enumerate(todo)}
    record_base = dict(settings=settings, i3zoo_version=__version__)
    written = windows_done = 0
    started = time.perf_counter()
    progress = _progress(len(todo), banner)
    batch: List[Dict[str, Any]] = []

    def run_batch() -> None:
        nonlocal windows_done
        if not batch:
            return
        clips = torch.stack([item["clip"] for item in batch]).to(args.device)
        with torch.inference_mode():
            features = model(clips).float().cpu()
        for item, row in zip(batch, features):
            state = pending.get(item["video"])
            if state is not None:
                state.features[item["window"]] = row
        windows_done += len(batch)
        batch.clear()

    def finish_ready() -> None:
        nonlocal written
        for index in [i for i, s in pending.items() if s.done is not None and len(s.features) == s.done["windows"]]:
            state = pending.pop(index)
            count = state.done["windows"]
            features = torch.stack([state.features[k] for k in range(count)])
            start = torch.tensor([state.times[k][0] for k in range(count)], dtype=torch.float64)
            end = torch.tensor([state.times[k][1] for k in range(count)], dtype=torch.float64)
            padded = torch.tensor([state.times[k][2] for k in range(count)], dtype=torch.int64)
            record = dict(record_base, video=str(state.path), num_frames=state.done["num_frames"])
            try:
                write_output(state.outputs, args.format, features, start, end, padded, record)
            except OSError as e:
                failures.append((str(state.path), f"cannot write {state.outputs[0]}: {e}"))
                continue
            written += 1
            note = ", padded: the video has fewer frames than one clip" if state.done["padded"] else ""
            rate = windows_done / max(time.perf_counter() - started, 1e-9)
            progress.step(f"{state.path}: {count} windows x {features.shape[1]} -> {state.outputs[0]}{note}",
                          rate)

    for item in loader:
        kind = item["kind"]
        if kind == "window":
            pending[item["video"]].times[item["window"]] = (item["start"], item["end"], item["padded"])
            batch.append(item)
            if len(batch) == args.batch_size:
                run_batch()
                finish_ready()
        elif kind == "done":
            pending[item["video"]].done = item
            finish_ready()
        else:
            state = pending.pop(item["video"])
            failures.append((str(state.path), item["reason"]))
            progress.step(f"{state.path}: FAILED: {item['reason']}", None)
    run_batch()
    finish_ready()
    progress.close()
    elapsed = time.perf_counter() - started
    print(f"{banner}summary: {written} written, {skipped} skipped (complete), {len(failures)} failed; "
          f"{windows_done} windows in {elapsed:.1f} s -> {out}")
    for path, reason in failures:
        print(f"{banner}FAILED {path}: {reason}")
    return 1 if failures else 0


def describe_weights(weights: Dict[str, Any]) -> str:
    if weights["kind"] == "random":
        return f"seeded random weights (seed {weights['seed']}), not trained"
    if weights["kind"] == "file":
        return f"2D weights from {weights['name']}, {weights['inflation']} inflation"
    source = weights.get("url") or weights.get("source") or weights.get("name") or weights["model"]
    return f"pretrained weights from {source}, {weights['inflation']} inflation"


class _progress:
    """A tqdm bar on a terminal; plain, flushed lines otherwise (logs, pipes)."""

    def __init__(self, total: int, banner: str):
        self.total, self.count, self.banner = total, 0, banner
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="video", desc=f"{banner}extract", dynamic_ncols=True)

    def step(self, line: str, clips_per_second: Optional[float]) -> None:
        self.count += 1
        if self.bar is not None:
            if clips_per_second is not None:
                self.bar.set_postfix(clips_per_s=f"{clips_per_second:.1f}")
            self.bar.update(1)
            if "FAILED" in line:
                self.bar.write(f"{self.banner}{line}")
        else:
            rate = f" ({clips_per_second:.1f} clips/s)" if clips_per_second is not None else ""
            print(f"{self.banner}[{self.count}/{self.total}] {line}{rate}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def add_parser(sub) -> None:
    p = sub.add_parser("extract", help="features of sliding windows over videos, one file per video (resumable)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="video files, or folders searched recursively")
    p.add_argument("--list", metavar="FILE", help="a file of video paths, one a line (a ',label' after it is ignored)")
    add_model_arguments(p)
    p.add_argument("--step", type=int, help="frames between window starts (default: clip-len x frame-interval)")
    p.add_argument("--fps", type=float, help="resample every video to this rate first, by its timestamps")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder; mirrors the inputs' relative paths")
    p.add_argument("--format", default="safetensors", choices=FORMATS,
                   help="safetensors (one file) or npy (features .npy + a .json of times and settings)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per model call, across videos (default 8)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers decoding videos (default 1)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--optimize", action="store_true", help="run an optimize_for_inference copy (BatchNorm folded)")
    p.add_argument("--compile", action="store_true", help="... and torch.compile it")
    p.set_defaults(func=_cmd_extract)
