"""``i3zoo predict``: the top-k classes of each video, averaging the softmax of evenly spaced clips.

The command parses and prints a table (or JSON); the engine is :class:`i3zoo.engines.Predictor`: MMAction2's
test-mode clips, the model's own transform, label names that come with the weights (ImageNet's categories
for a 1000-class head inflated from ImageNet -- such a model names objects seen in the frames, not actions).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..text import printable
from .model_options import add_inference_arguments, add_model_arguments, build_engine, load_model_from_args


def _print_table(predictions, banner: str) -> None:
    """The table; label names and paths come from files, so their control characters are printed escaped
    (``--json`` is exact: JSON escapes them itself)."""
    print(f"{banner}model {predictions.model}; labels: {predictions.labels}; {predictions.num_clips} clips of "
          f"{predictions.clip_len} frames per video, centre crop")
    if predictions.labels == "ImageNet-1k":
        print(f"{banner}(ImageNet-inflated weights name objects seen in the frames, not actions)")
    print(f"{banner}{'video':<32} {'rank':>4}  {'probability':>11}  label")
    for result in predictions.results:
        video = printable(result["video"])  # names from files and folders: shown, never acted on by the terminal
        if "error" in result:
            print(f"{banner}{video:<32} FAILED: {printable(result['error'])}")
            continue
        for rank, top in enumerate(result["top"], 1):
            print(f"{banner}{video if rank == 1 else '':<32} {rank:>4}  {top['probability']:>11.4f}  "
                  f"{printable(top['label'])}")
        if result["padded"]:
            print(f"{banner}{'':<32} (shorter than one clip: padded by repeating its last frame)")


def _cmd_predict(args: argparse.Namespace) -> int:
    from ..engines import Predictor

    loaded = load_model_from_args(args)
    predictor = build_engine(Predictor, args, loaded, clips=len(args.videos) * args.num_clips)
    predictions = predictor.predict(args.videos)
    if args.json:
        print(json.dumps(predictions.as_dict(), indent=1))
    else:
        _print_table(predictions, loaded.banner)
    failures = len(predictions.failures)
    if failures:
        print(f"{loaded.banner}{failures} of {len(args.videos)} videos could not be read", file=sys.stderr)
    return 1 if failures else 0


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="top-k classes per video, averaged over evenly spaced clips")
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    add_model_arguments(p)
    p.add_argument("--num-clips", type=int, default=3,
                   help="evenly spaced clips averaged per video (default 3)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_inference_arguments(p)
    p.set_defaults(func=_cmd_predict)
