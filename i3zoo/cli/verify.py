"""``i3zoo verify``: check that each 3D model gives its 2D model's output on boring videos."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..weights.inflate import INFLATION_MODES
from .model_options import positive_number, whole_number


def _cmd_verify(args: argparse.Namespace) -> int:
    import torch

    from ..registry import list_models
    from ..weights.verify import boring_video_check, choose_weights, load_images, state_dict_for, synthetic_images

    names = list_models() if args.all else args.names
    if not names:
        raise UsageError("name one or more models, or give --all. Models: " + ", ".join(list_models()))
    for name in names:
        if name not in list_models():
            raise UsageError(f"unknown model {name!r}; models: {', '.join(list_models())}")
    from ..weights.checkpoints import offline

    choices = {n: choose_weights(n, allow_download=not (args.offline or offline())) for n in names}
    kinds = {c.kind for c in choices.values()}
    if kinds == {"random"}:
        first = next(iter(choices.values()))
        print(f"weights: seeded random 2D weights (seed 0, randomized BatchNorm statistics), not ImageNet: "
              f"{first.reason}")
    elif kinds == {"imagenet"}:
        print("weights: torchvision ImageNet weights (hash-checked), for every model")
    else:
        print("weights: mixed -- ImageNet where cached or downloadable, seeded random otherwise (see each model)")
    if args.images:
        images = load_images(Path(args.images), size=args.size or 224)
        source = f"{len(images)} photos from {args.images}"
    else:
        images = synthetic_images(count=2, size=args.size or 112)
        source = f"{len(images)} synthetic images"
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    print(f"input: {source}, {images.shape[-2]}x{images.shape[-1]}, {args.dtype}; tolerance: relative error "
          f"<= {args.tolerance:g} (max |3D - 2D| / max |2D|)")
    width = max(len("model"), *map(len, names))  # the columns line up for the longest name asked for
    header = (f"{'model':<{width}} {'mode':<7} {'T':>3}  {'weights':<8} {'max abs diff':>12} {'max rel diff':>12}  "
              "result")
    print(header)
    failures = total = 0
    for name in names:
        choice = choices[name]
        if kinds != {"random"} and kinds != {"imagenet"}:
            print(f"# {name}: {choice.reason}")
        state_dict = state_dict_for(name, choice)
        min_frames = _min_frames(name)
        frames = [t for t in args.frames if t >= min_frames] or [min_frames]
        if frames != args.frames:
            print(f"# {name}: clips need T >= {min_frames}; checking T = {', '.join(map(str, frames))}")
        results = boring_video_check(name, state_dict, images, frames=frames, modes=args.modes, dtype=dtype)
        for r in results:
            ok = r.max_rel <= args.tolerance
            failures += not ok
            total += 1
            print(f"{r.name:<{width}} {r.mode:<7} {r.frames:>3}  {choice.kind:<8} {r.max_abs:>12.3e} "
                  f"{r.max_rel:>12.3e}  "
                  f"{'ok' if ok else 'FAIL'}", flush=True)
    if failures:
        print(f"FAILED: {failures} of {total} checks exceed the tolerance {args.tolerance:g}")
        return 1
    print(f"all {total} checks within {args.tolerance:g}")
    return 0


def _min_frames(name: str) -> int:
    from ..registry import meta_model

    return meta_model(name).min_input_size[0]


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="check that each 3D model gives its 2D model's output on boring videos")
    p.add_argument("names", nargs="*", help="models to check")
    p.add_argument("--all", action="store_true", help="check every model")
    p.add_argument("--images", metavar="DIR", help="your own photos (ImageNet normalization, center crop)")
    p.add_argument("--size", type=whole_number(), help="image size (default 112 synthetic, 224 with --images)")
    p.add_argument("--frames", type=whole_number(), nargs="+", default=[8], metavar="T",
                   help="clip lengths (default 8)")
    p.add_argument("--modes", nargs="+", default=list(INFLATION_MODES), choices=INFLATION_MODES)
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p.add_argument("--tolerance", type=positive_number, default=1e-6,
                   help="largest relative error allowed (default 1e-6)")
    p.add_argument("--offline", action="store_true", help="never try to download ImageNet weights")
    p.set_defaults(func=_cmd_verify)
