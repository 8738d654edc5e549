"""``i3zoo`` / ``python -m i3zoo``: the command line, one module per command group.

    i3zoo list                      the model table (params, GFLOPs, reductions, minimum clip, tags)
    i3zoo verify i3resnet50         2D-vs-3D check of one or more models, both inflation modes
    i3zoo verify --all              ... of every model
    i3zoo verify --all --images DIR ... on your own photos instead of synthetic images
    i3zoo export i3resnet50.tv_in1k --out DIR           inflate and save a Hub-ready folder
    i3zoo push i3resnet50.tv_in1k --repo ORG/NAME       ... and upload it (token: HF_TOKEN or a login)
    i3zoo push local-dir:run/best --repo ORG/NAME       upload a saved (e.g. fine-tuned) folder as it is
    i3zoo extract videos/ --model i3resnet50 --out feats/  features of sliding windows, one file per video
    i3zoo predict clip.mp4 --model i3resnet50.tv_in1k      top-k labels per video, averaged over clips
    i3zoo evaluate val.csv --model i3resnet50_i3d.ptv_k400  top-1/top-5 with the weights' multi-view protocol
    i3zoo export-onnx --model i3resnet50.tv_in1k --out m.onnx  one ONNX file, dynamic batch and clip length
    i3zoo train --train DIR --val DIR --model i3resnet50 --output run/   fine-tune (torchrun for many processes)

A new command is a new module here with an ``add_parser(subparsers)`` function, listed in ``COMMANDS``; the
work itself is library code (``i3zoo.engines``, ``i3zoo.train``, ...): a command parses, calls it and prints.
``model_options`` holds the model, weight and clip flags that several commands share.

Exit status: 0 done; 1 some videos failed (``extract``, ``predict``) or a check failed (``verify``); 2 a usage
mistake (:class:`i3zoo.UsageError`) or bad input (a bad flag, a bad file), printed as one line
``i3zoo <command>: error: <message>``; 130 interrupted.
May import every wing; nothing of i3zoo imports ``cli``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import List, Optional

from . import evaluate, export_onnx, extract, predict, publish, train, verify
from . import list as list_command
from .model_options import frame_limits_from

COMMANDS = (list_command, verify, publish, extract, predict, evaluate, train, export_onnx)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (argparse prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="i3zoo", description="I3D-inflated 3D CNNs for video.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


@contextlib.contextmanager
def offline_mode(enabled: bool):
    """``--offline``: no network attempt anywhere, as with ``HF_HUB_OFFLINE=1`` (which i3zoo honours too).

    Undone afterwards, so that ``main`` called in-process leaves the caller's settings as they were.
    """
    from huggingface_hub import constants

    if not enabled:
        yield
        return
    previous = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True  # huggingface_hub read the variable when it was imported
    try:
        yield
    finally:
        if previous[0] is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous[0]
        constants.HF_HUB_OFFLINE = previous[1]


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command; a usage mistake, a bad argument or a bad file is one line on stderr and exit code 2, not a
    traceback."""
    from ..errors import UsageError
    from ..text import printable
    from ..weights.checkpoints import CheckpointError

    args = build_parser().parse_args(argv)
    # (`list` here is the list command module); `train --nproc N` hands them on to torchrun
    args.argv = [*(sys.argv[1:] if argv is None else argv)]
    try:
        with offline_mode(getattr(args, "offline", False)), frame_limits_from(args):
            return args.func(args)
    except (UsageError, CheckpointError, ValueError, TypeError, OSError) as e:
        message = printable(" ".join(str(e).split())) or type(e).__name__  # it may quote a file's text
        print(f"i3zoo {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"i3zoo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
