"""``i3zoo list``: the model table (params, GFLOPs, reductions, minimum clip, tags); ``--designs`` the
ResNet-50 temporal designs (kernels per stage, params, GFLOPs, minimum clip, tags)."""

from __future__ import annotations

import argparse

from ..errors import UsageError


def _cmd_list(args: argparse.Namespace) -> int:
    from ..facts import design_table, model_table

    if args.designs and args.names:
        raise UsageError("--designs lists every ResNet-50 design; give no model names with it")
    print(design_table() if args.designs else model_table(args.names or ()))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="table of models: params, GFLOPs, reductions, minimum clip, tags")
    p.add_argument("names", nargs="*", help="models to list (default: all)")
    p.add_argument("--designs", action="store_true",
                   help="the temporal designs instead (seed, i3d, slowonly, c2d): kernels per stage, weights")
    p.set_defaults(func=_cmd_list)
