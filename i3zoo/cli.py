"""``i3zoo`` / ``python -m i3zoo``: list the models, and verify the boring-video equivalence.

    i3zoo list                      the model table (params, GFLOPs, reductions, minimum clip, tags)
    i3zoo verify i3resnet50         2D-vs-3D check of one or more models, both inflation modes
    i3zoo verify --all              ... of every model
    i3zoo verify --all --images DIR ... on your own photos instead of synthetic images
    i3zoo export i3resnet50.tv_in1k --out DIR           inflate and save a Hub-ready folder
    i3zoo push i3resnet50.tv_in1k --repo ORG/NAME       ... and upload it (token: HF_TOKEN or a login)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from .inflate import INFLATION_MODES


def _cmd_list(args: argparse.Namespace) -> int:
    from .facts import model_table

    print(model_table(args.names or ()))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    import torch

    from .registry import list_models
    from .verify import boring_video_check, choose_weights, load_images, state_dict_for, synthetic_images

    names = list_models() if args.all else args.names
    if not names:
        print("i3zoo verify: name one or more models, or give --all. Models: " + ", ".join(list_models()),
              file=sys.stderr)
        return 2
    for name in names:
        if name not in list_models():
            print(f"i3zoo verify: unknown model {name!r}; models: {', '.join(list_models())}", file=sys.stderr)
            return 2
    choices = {n: choose_weights(n, allow_download=not args.offline) for n in names}
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
    header = f"{'model':<15} {'mode':<7} {'T':>3}  {'weights':<8} {'max abs diff':>12} {'max rel diff':>12}  result"
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
            print(f"{r.name:<15} {r.mode:<7} {r.frames:>3}  {choice.kind:<8} {r.max_abs:>12.3e} {r.max_rel:>12.3e}  "
                  f"{'ok' if ok else 'FAIL'}", flush=True)
    if failures:
        print(f"FAILED: {failures} of {total} checks exceed the tolerance {args.tolerance:g}")
        return 1
    print(f"all {total} checks within {args.tolerance:g}")
    return 0


def _build_for_export(name: str, args: argparse.Namespace):
    """Inflate ``name`` (``arch.tag``) from its 2D source, as export and push need it."""
    from .checkpoints import CheckpointError
    from .registry import create_model

    overlay = dict(file=args.file) if args.file else None
    print(f"[{name}] inflating ({args.inflation} mode) from "
          f"{args.file or 'the registered 2D source (cache or download)'}", flush=True)
    try:
        return create_model(name, pretrained=True, inflation=args.inflation, pretrained_cfg_overlay=overlay)
    except (CheckpointError, OSError, ValueError) as e:
        raise SystemExit(f"i3zoo: cannot inflate {name}: {e}\n(give a local copy of the 2D weights with --file PATH)")


def _tagged_names(args: argparse.Namespace) -> List[str]:
    from .registry import is_model, list_models

    if args.all:
        return list_models(pretrained=True)
    for name in args.names:
        if "." not in name or not is_model(name):
            raise SystemExit(f"i3zoo: {name!r} is not a registered arch.tag; choose from: "
                             + ", ".join(list_models(pretrained=True)))
    if not args.names:
        raise SystemExit("i3zoo: name one or more arch.tag models, or give --all")
    return args.names


def _cmd_export(args: argparse.Namespace) -> int:
    from .hub import save_pretrained

    names = _tagged_names(args)
    for name in names:
        out = Path(args.out) / name if len(names) > 1 else Path(args.out)
        model = _build_for_export(name, args)
        print(f"[{name}] measuring the equivalence and writing {out}", flush=True)
        save_pretrained(model, out)
        print(f"[{name}] wrote {', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.')))}")
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from .hub import CONFIG_NAME, save_pretrained, upload_saved

    names = _tagged_names(args)
    if args.all and "/" in args.repo:
        raise SystemExit("i3zoo push --all: --repo is the namespace (user or org); each tag goes to NAMESPACE/arch.tag")
    for name in names:
        repo_id = f"{args.repo}/{name}" if args.all else args.repo
        model = _build_for_export(name, args)
        with tempfile.TemporaryDirectory(prefix="i3zoo-push-") as folder:
            print(f"[{name}] measuring the equivalence and saving", flush=True)
            save_pretrained(model, folder)
            sha256 = json.loads((Path(folder) / CONFIG_NAME).read_text())["i3zoo"]["weights_sha256"]
            print(f"[{name}] uploading to {repo_id}{' (private)' if args.private else ''}"
                  f"{' on ' + args.revision if args.revision else ''}", flush=True)
            commit = upload_saved(folder, repo_id, private=args.private, revision=args.revision,
                                  endpoint=args.endpoint, commit_message=f"Add {name} ({args.inflation} inflation)")
        print(f"[{name}] pushed: commit {commit.oid}")
        print(f"[{name}] record for i3zoo/published.py: \"{name}\": HubWeights(repo_id=\"{repo_id}\", "
              f"revision=\"{commit.oid}\", sha256=\"{sha256}\", inflation=\"{args.inflation}\"),")
    return 0


def _min_frames(name: str) -> int:
    from .registry import meta_model

    return meta_model(name).min_input_size[0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="i3zoo", description="I3D-inflated 3D CNNs for video.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="table of models: params, GFLOPs, reductions, minimum clip, tags")
    p.add_argument("names", nargs="*", help="models to list (default: all)")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("verify", help="check that each 3D model gives its 2D model's output on boring videos")
    p.add_argument("names", nargs="*", help="models to check")
    p.add_argument("--all", action="store_true", help="check every model")
    p.add_argument("--images", metavar="DIR", help="your own photos (ImageNet normalization, center crop)")
    p.add_argument("--size", type=int, help="image size (default 112 synthetic, 224 with --images)")
    p.add_argument("--frames", type=int, nargs="+", default=[8], metavar="T", help="clip lengths (default 8)")
    p.add_argument("--modes", nargs="+", default=list(INFLATION_MODES), choices=INFLATION_MODES)
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p.add_argument("--tolerance", type=float, default=1e-6, help="largest relative error allowed (default 1e-6)")
    p.add_argument("--offline", action="store_true", help="never try to download ImageNet weights")
    p.set_defaults(func=_cmd_verify)

    for command, func, help_text in (
        ("export", _cmd_export, "inflate arch.tag models and save them as Hub-ready folders (offline)"),
        ("push", _cmd_push, "inflate arch.tag models and upload them to the Hugging Face Hub"),
    ):
        p = sub.add_parser(command, help=help_text)
        p.add_argument("names", nargs="*", metavar="NAME.TAG", help="e.g. i3resnet50.tv_in1k")
        p.add_argument("--all", action="store_true", help="every registered arch.tag")
        p.add_argument("--inflation", default="center", choices=INFLATION_MODES)
        p.add_argument("--file", metavar="PATH", help="a local copy of the 2D weights (.pth or .safetensors)")
        if command == "export":
            p.add_argument("--out", required=True, metavar="DIR", help="folder (one subfolder per model with --all)")
        else:
            p.add_argument("--repo", required=True, help="ORG/NAME (with --all: ORG, each tag to ORG/arch.tag)")
            p.add_argument("--private", action="store_true")
            p.add_argument("--revision", help="branch to push to (created if needed)")
            p.add_argument("--endpoint", help="Hub URL (default: huggingface_hub's, HF_ENDPOINT)")
        p.set_defaults(func=func)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
