"""``i3zoo export`` and ``i3zoo push``: inflate arch.tag models, save them as Hub-ready folders, upload them;
``i3zoo push local-dir:DIR`` uploads a folder already saved (a fine-tuned ``best/``) as it is."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

from ..errors import UsageError
from ..weights.inflate import INFLATION_MODES


def _build_for_export(name: str, args: argparse.Namespace):
    """Inflate ``name`` (``arch.tag``) from its 2D source, as export and push need it."""
    from ..registry import create_model
    from ..weights.checkpoints import CheckpointError

    overlay = dict(file=args.file) if args.file else None
    print(f"[{name}] inflating ({args.inflation} mode) from "
          f"{args.file or 'the registered 2D source (cache or download)'}", flush=True)
    try:
        return create_model(name, pretrained=True, inflation=args.inflation, pretrained_cfg_overlay=overlay)
    except (CheckpointError, OSError, ValueError) as e:
        raise UsageError(f"cannot inflate {name}: {' '.join(str(e).split())} (give a local copy of the 2D "
                         "weights with --file PATH)") from None


def _tagged_names(args: argparse.Namespace) -> List[str]:
    from ..registry import is_model, list_models

    if args.all:
        return list_models(pretrained=True)
    for name in args.names:
        if "." not in name or not is_model(name):
            raise UsageError(f"{name!r} is not a registered arch.tag; choose from: "
                             + ", ".join(list_models(pretrained=True)))
    if not args.names:
        raise UsageError("name one or more arch.tag models, or give --all")
    return args.names


def _cmd_export(args: argparse.Namespace) -> int:
    from ..weights.hub import save_pretrained

    names = _tagged_names(args)
    for name in names:
        out = Path(args.out) / name if len(names) > 1 else Path(args.out)
        model = _build_for_export(name, args)
        print(f"[{name}] measuring the equivalence and writing {out}", flush=True)
        save_pretrained(model, out)
        print(f"[{name}] wrote {', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.')))}")
    return 0


def _push_folder(name: str, args: argparse.Namespace) -> int:
    """Upload a saved folder (``i3zoo train``'s ``best/``, ``i3zoo export``'s output) as it is, once it loads."""
    from ..registry import create_model
    from ..text import printable
    from ..weights.checkpoints import CheckpointError
    from ..weights.hub import saved_files, upload_saved

    if args.all or len(args.names) > 1 or args.file:
        raise UsageError("a local-dir: folder is uploaded alone and as saved; it takes no --all, --file "
                         "or other names")
    folder = Path(name.removeprefix("local-dir:"))
    try:  # the same checks as any user's load: a complete folder whose weights match their sha256
        create_model(name, pretrained=True)
    except (CheckpointError, OSError, ValueError) as e:
        raise UsageError(f"{folder} is not a loadable saved folder: {' '.join(str(e).split())}") from None
    files, left_out = saved_files(folder)
    for entry, why in left_out:
        print(f"[{folder.name}] left out: {printable(entry)} ({why}; only {', '.join(p.name for p in files)} are "
              "uploaded)", flush=True)
    print(f"[{folder.name}] uploading {folder} to {args.repo}{' (private)' if args.private else ''}"
          f"{' on ' + args.revision if args.revision else ''}", flush=True)
    commit = upload_saved(folder, args.repo, private=args.private, revision=args.revision, endpoint=args.endpoint,
                          commit_message=f"Add {folder.name} (i3zoo)")
    print(f"[{folder.name}] pushed: commit {commit.oid}; load it with "
          f"i3zoo.create_model(\"hf-hub:{args.repo}\", pretrained=True)")
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    import json

    from ..weights.hub import CONFIG_NAME, saved_scratch, upload_saved

    folders = [name for name in args.names if name.startswith("local-dir:")]
    if folders:
        return _push_folder(folders[0], args)
    names = _tagged_names(args)
    if args.all and "/" in args.repo:
        raise UsageError("--all: --repo is the namespace (user or org); each tag goes to NAMESPACE/arch.tag")
    for name in names:
        repo_id = f"{args.repo}/{name}" if args.all else args.repo
        model = _build_for_export(name, args)
        print(f"[{name}] measuring the equivalence and saving", flush=True)
        with saved_scratch(model) as folder:
            sha256 = json.loads((Path(folder) / CONFIG_NAME).read_text())["i3zoo"]["weights_sha256"]
            print(f"[{name}] uploading to {repo_id}{' (private)' if args.private else ''}"
                  f"{' on ' + args.revision if args.revision else ''}", flush=True)
            commit = upload_saved(folder, repo_id, private=args.private, revision=args.revision,
                                  endpoint=args.endpoint, commit_message=f"Add {name} ({args.inflation} inflation)")
        print(f"[{name}] pushed: commit {commit.oid}")
        print(f"[{name}] record for i3zoo/weights/published.py: \"{name}\": HubWeights(repo_id=\"{repo_id}\", "
              f"revision=\"{commit.oid}\", sha256=\"{sha256}\", inflation=\"{args.inflation}\"),")
    return 0


def add_parser(sub) -> None:
    for command, func, help_text in (
        ("export", _cmd_export, "inflate arch.tag models and save them as Hub-ready folders (offline)"),
        ("push", _cmd_push, "inflate arch.tag models and upload them to the Hugging Face Hub, or upload a "
                            "saved folder (local-dir:DIR, e.g. i3zoo train's best/) as it is"),
    ):
        p = sub.add_parser(command, help=help_text)
        p.add_argument("names", nargs="*", metavar="NAME.TAG",
                       help="e.g. i3resnet50.tv_in1k" + (", or local-dir:DIR" if command == "push" else ""))
        p.add_argument("--all", action="store_true", help="every registered arch.tag")
        p.add_argument("--inflation", default="center", choices=INFLATION_MODES)
        p.add_argument("--file", metavar="PATH", help="a local copy of the 2D weights (.pth or .safetensors)")
        if command == "export":
            p.add_argument("--out", required=True, metavar="DIR", help="folder (one subfolder per model with --all)")
            p.add_argument("--offline", action="store_true", help="no network attempt (as HF_HUB_OFFLINE=1)")
        else:
            p.add_argument("--repo", required=True, help="ORG/NAME (with --all: ORG, each tag to ORG/arch.tag)")
            p.add_argument("--private", action="store_true")
            p.add_argument("--revision", help="branch to push to (created if needed)")
            p.add_argument("--endpoint", help="Hub URL (default: huggingface_hub's, HF_ENDPOINT)")
        p.set_defaults(func=func)
