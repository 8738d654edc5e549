"""The model, weight and clip options shared by ``i3zoo extract``, ``predict``, ``export-onnx`` and ``train``,
and the one call that turns them into a model (:func:`load_model_from_args`, over
:func:`i3zoo.engines.load_model`). Not a command: it adds arguments to the commands' parsers.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import os
from typing import Any, Dict

from ..engines.loading import RANDOM_SEED, LoadedModel
from ..errors import UsageError

HOW_TO_GET_WEIGHTS = ("give a local copy of the 2D weights with --file PATH (e.g. torchvision's "
                      "resnet50-0676ba61.pth), put it in torch.hub's checkpoint cache, or run with --random-weights "
                      "for a smoke run")


def whole_number(minimum: int = 1):
    """An argparse ``type``: an integer >= ``minimum`` (``--clip-len 0`` is refused, not taken as the default)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}; got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive_number(text: str) -> float:
    """An argparse ``type``: a finite number > 0 (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0; got {text!r}")
    return value


def add_weight_arguments(p: argparse.ArgumentParser) -> None:
    """The model and its weights, as :func:`load_model_from_args` takes them (extract, predict, export-onnx, train)."""
    p.add_argument("--model", required=True, metavar="NAME",
                   help="arch or arch.tag (e.g. i3resnet50.tv_in1k), hf-hub:ORG/NAME or local-dir:PATH")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--file", metavar="2D.pth", help="a local copy of the 2D weights (.pth or .safetensors)")
    weights.add_argument("--random-weights", action="store_true",
                         help=f"seeded random weights (seed {RANDOM_SEED}), for a smoke run; every output says so")
    p.add_argument("--inflation", default="center", choices=("center", "mean"))


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """:func:`add_weight_arguments`, the clip, the decoder and the device (extract, predict, train)."""
    add_weight_arguments(p)
    p.add_argument("--clip-len", type=whole_number(),
                   help="frames per clip (default 16, or the model's minimum if larger)")
    p.add_argument("--frame-interval", type=whole_number(), default=1,
                   help="distance between a clip's frames (default 1)")
    p.add_argument("--crop-size", type=whole_number(), help="spatial size (default: the model's input size, 224)")
    from ..video import backend_choices  # read when the parser is built: decoders registered later are offered

    p.add_argument("--backend", default="auto", choices=backend_choices(), help="video decoder")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    from ..video import MAX_ASPECT_RATIO, MAX_FRAME_PIXELS

    p.add_argument("--max-frame-pixels", type=whole_number(), metavar="N",
                   help=f"refuse videos whose frames have more pixels (default {MAX_FRAME_PIXELS:,})")
    p.add_argument("--max-aspect-ratio", type=positive_number, metavar="R",
                   help=f"refuse videos whose frames' long side is more than R times the short side "
                        f"(default {MAX_ASPECT_RATIO:g})")


@contextlib.contextmanager
def frame_limits_from(args: argparse.Namespace):
    """``--max-frame-pixels`` / ``--max-aspect-ratio`` as the environment variables every reader checks (so that
    ``DataLoader`` workers and ``torchrun``'s processes see them), undone afterwards."""
    from ..video.decode import MAX_ASPECT_ENV, MAX_PIXELS_ENV

    wanted = {}
    for flag, name in (("max_frame_pixels", MAX_PIXELS_ENV), ("max_aspect_ratio", MAX_ASPECT_ENV)):
        value = getattr(args, flag, None)
        if value is not None:
            if not (math.isfinite(value) and value >= 1):
                raise UsageError(f"--{flag.replace('_', '-')} must be a number >= 1; got {value}")
            wanted[name] = str(value)
    previous = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_model_from_args(args: argparse.Namespace) -> LoadedModel:
    """Build ``args.model`` with its weights, or stop at once (``UsageError``) saying how to get them."""
    from ..engines import load_model
    from ..weights.checkpoints import CheckpointError

    try:
        return load_model(args.model, file=args.file, random_weights=args.random_weights, inflation=args.inflation,
                          device=args.device)
    except UsageError:
        raise
    except (CheckpointError, OSError, ValueError) as e:
        raise UsageError(f"cannot load weights for {args.model}: {e}. To get weights: {HOW_TO_GET_WEIGHTS}") from None


def engine_options(args: argparse.Namespace, engine: type) -> Dict[str, Any]:
    """The keyword arguments of ``engine`` (an :class:`i3zoo.engines.Extractor`, ``Predictor``) that the command's
    flags set: a flag and its engine option share their name (``--clip-len`` -> ``clip_len``)."""
    names = [name for name, p in inspect.signature(engine).parameters.items() if p.kind is p.KEYWORD_ONLY]
    return {name: getattr(args, name) for name in names if hasattr(args, name)}
