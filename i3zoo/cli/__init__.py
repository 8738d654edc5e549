"""``i3zoo`` / ``python -m i3zoo``: the command line, one module per command group.

    i3zoo list                      the model table (params, GFLOPs, reductions, minimum clip, tags)
    i3zoo verify i3resnet50         2D-vs-3D check of one or more models, both inflation modes
    i3zoo verify --all              ... of every model
    i3zoo verify --all --images DIR ... on your own photos instead of synthetic images
    i3zoo export i3resnet50.tv_in1k --out DIR           inflate and save a Hub-ready folder
    i3zoo push i3resnet50.tv_in1k --repo ORG/NAME       ... and upload it (token: HF_TOKEN or a login)
    i3zoo extract videos/ --model i3resnet50 --out feats/  features of sliding windows, one file per video
    i3zoo predict clip.mp4 --model i3resnet50.tv_in1k      top-k labels per video, averaged over clips

A new command is a new module here with an ``add_parser(subparsers)`` function, listed in ``COMMANDS``.
May import every wing; nothing of i3zoo imports ``cli``.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import extract, predict, publish, verify
from . import list as list_command

COMMANDS = (list_command, verify, publish, extract, predict)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="i3zoo", description="I3D-inflated 3D CNNs for video.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
