"""``i3zoo list``: the model table (params, GFLOPs, reductions, minimum clip, tags)."""

from __future__ import annotations

import argparse


def _cmd_list(args: argparse.Namespace) -> int:
    from ..facts import model_table

    print(model_table(args.names or ()))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="table of models: params, GFLOPs, reductions, minimum clip, tags")
    p.add_argument("names", nargs="*", help="models to list (default: all)")
    p.set_defaults(func=_cmd_list)
