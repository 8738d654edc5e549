"""``i3zoo evaluate``: top-1 / top-5 accuracy on a labelled list of videos with the weights' own multi-view
protocol (:func:`i3zoo.engines.evaluation.evaluate`), to check published numbers on your copy of a validation set.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..text import printable
from .model_options import add_model_arguments, load_model_from_args, whole_number


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..engines.evaluation import evaluate

    loaded = load_model_from_args(args)
    result = evaluate(args.list, loaded, label_names=args.label_names, backend=args.backend, clip_len=args.clip_len,
                      frame_interval=args.frame_interval, num_clips=args.num_clips, num_crops=args.crops,
                      crop_size=args.crop_size)
    if args.json:
        print(json.dumps(result.as_dict(), indent=1))
    else:
        from ..engines.evaluation import Protocol

        print(f"{loaded.banner}model {result.model}; {Protocol(**result.protocol).describe()}")
        print(f"{loaded.banner}top-1 {result.top1:.2f}%, top-5 {result.top5:.2f}% on {result.evaluated} of "
              f"{result.videos} videos")
        for path, reason in result.failures:
            print(f"{loaded.banner}FAILED {printable(path)}: {printable(reason)}")
    if result.failures:
        print(f"{loaded.banner}{len(result.failures)} of {result.videos} videos could not be read", file=sys.stderr)
    return 1 if result.failures else 0


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="top-1/top-5 on a 'path,label' list with the weights' multi-view protocol")
    p.add_argument("list", metavar="LIST", help="a 'path,label' list file (labels: class indices or names)")
    add_model_arguments(p)
    p.set_defaults(frame_interval=None)  # the weights' own unless given
    p.add_argument("--label-names", metavar="FILE", help="class names, one a line (default: the model's own)")
    p.add_argument("--num-clips", type=whole_number(), help="clips per video (default: the weights' protocol)")
    p.add_argument("--crops", type=int, choices=(1, 3), help="crops per clip (default: the weights' protocol)")
    p.add_argument("--json", action="store_true", help="print JSON instead of lines")
    p.set_defaults(func=_cmd_evaluate)
