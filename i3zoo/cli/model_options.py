"""The model, weight and clip options shared by ``i3zoo extract``, ``predict``, ``export-onnx`` and ``train``,
and the one call that turns them into a model (:func:`load_model_from_args`, over
:func:`i3zoo.engines.load_model`). Not a command: it adds arguments to the commands' parsers.
"""

from __future__ import annotations

import argparse
import inspect
from typing import Any, Dict

from ..engines.loading import RANDOM_SEED, LoadedModel
from ..errors import UsageError

HOW_TO_GET_WEIGHTS = ("give a local copy of the 2D weights with --file PATH (e.g. torchvision's "
                      "resnet50-0676ba61.pth), put it in torch.hub's checkpoint cache, or run with --random-weights "
                      "for a smoke run")


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
    p.add_argument("--clip-len", type=int, help="frames per clip (default 16, or the model's minimum if larger)")
    p.add_argument("--frame-interval", type=int, default=1, help="distance between a clip's frames (default 1)")
    p.add_argument("--crop-size", type=int, help="spatial size (default: the model's input size, 224)")
    from ..video import backend_choices  # read when the parser is built: decoders registered later are offered

    p.add_argument("--backend", default="auto", choices=backend_choices(), help="video decoder")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")


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
    return {name: getattr(args, name) for name in names if hasattr(args, name)}
