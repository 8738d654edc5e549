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
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Sequence, Tuple, Union

from ..engines.loading import RANDOM_SEED, LoadedModel
from ..errors import UsageError

INFERENCE_OPTIONS = ("dtype", "optimize", "compile")
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
                   help="arch or arch.tag (e.g. i3resnet50.tv_in1k), hf-hub:ORG/NAME, local-dir:PATH, or any timm "
                        "or torchvision 2D CNN inflated on the fly: inflate:timm/NAME[.TAG], "
                        "inflate:torchvision/NAME")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--file", metavar="2D.pth", help="a local copy of the 2D weights (.pth or .safetensors)")
    weights.add_argument("--random-weights", action="store_true",
                         help=f"seeded random weights (seed {RANDOM_SEED}), for a smoke run; every output says so")
    p.add_argument("--inflation", default="center", choices=("center", "mean"))
    from ..models.designs import DESIGNS

    p.add_argument("--design", choices=tuple(DESIGNS),
                   help="temporal design of an inflate: model (default i3d); registered models have their own")


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
                          device=args.device, design=getattr(args, "design", None))
    except UsageError:
        raise
    except (CheckpointError, OSError, ValueError) as e:
        raise UsageError(f"cannot load weights for {args.model}: {e}. To get weights: {HOW_TO_GET_WEIGHTS}") from None


def engine_options(args: argparse.Namespace, engine: type) -> Dict[str, Any]:
    """The keyword arguments of ``engine`` (an :class:`i3zoo.engines.Extractor`, ``Predictor``) that the command's
    flags set: a flag and its engine option share their name (``--clip-len`` -> ``clip_len``)."""
    names = [name for name, p in inspect.signature(engine).parameters.items() if p.kind is p.KEYWORD_ONLY]
    # the path's options (dtype, optimize, compile) come from build_engine
    return {name: getattr(args, name) for name in names if hasattr(args, name) and name not in INFERENCE_OPTIONS}


def add_inference_arguments(p: argparse.ArgumentParser) -> None:
    """How the model runs (extract, predict): by default the rule of :func:`i3zoo.engines.choose_path`."""
    from ..inference import PRECISIONS

    p.add_argument("--precision", "--dtype", default="auto", choices=PRECISIONS,
                   help="what the model computes in (default auto: bfloat16 for a job long enough to compile, where "
                        "the hardware has fast bfloat16 kernels; float32 otherwise)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile an optimized copy with freezing (default: when the job is long enough to "
                        "repay the compile; --no-compile: never)")
    p.add_argument("--optimize", action=argparse.BooleanOptionalAction, default=None,
                   help="run an optimize_for_inference copy, BatchNorm folded (the default); --no-optimize: the plain "
                        "float32 model as it is")


def build_engine(engine: type, args: argparse.Namespace, loaded: LoadedModel,
                 clips: Union[int, Callable[[int], int]], **fixed: Any) -> Any:
    """``engine`` (an :class:`i3zoo.engines.Extractor`, ``Predictor``) with the command's options and the path
    :func:`i3zoo.engines.choose_path` takes for a job of ``clips`` clips under ``--precision`` / ``--compile``;
    the path and its reason go to stderr. The options are checked first (a plain engine builds nothing), so
    that a mistake is reported before the model is timed. ``fixed``: further engine arguments (rank, world size)."""
    from ..engines.loading import choose_path

    options = dict(engine_options(args, engine), **fixed)
    plain = engine(loaded, **options)
    path = choose_path(loaded, clips=clips, clip_len=loaded.clip_len(args.clip_len),
                       crop_size=loaded.crop_size(args.crop_size), precision=args.precision, compile=args.compile,
                       optimize=args.optimize)
    kind = ("a compiled optimized copy" if path.compiled else "an optimized copy" if path.optimized
            else "the plain model")
    print(f"{loaded.banner}inference: {kind} in {path.precision} ({path.reason})", file=sys.stderr, flush=True)
    if not path.optimized:
        return plain
    return engine(loaded, **options, dtype=path.precision, optimize=True, compile=path.compiled)


def extraction_clips(args: argparse.Namespace, loaded: LoadedModel, videos: Sequence[Tuple[Path, Path]]
                     ) -> Callable[[int], int]:
    """The windows of ``videos`` (as :class:`i3zoo.engines.extraction.Inputs` holds them) under the command's
    clip options, counted only as far as the decision of :func:`build_engine` needs."""
    from ..engines.loading import count_windows

    clip_len = loaded.clip_len(args.clip_len)
    return count_windows([video for video, _ in videos], clip_len=clip_len, step=args.step or
                         clip_len * args.frame_interval, frame_interval=args.frame_interval, fps=args.fps,
                         backend=args.backend)
