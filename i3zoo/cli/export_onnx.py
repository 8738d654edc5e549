"""``i3zoo export-onnx``: a model with its weights as one ONNX file, dynamic in batch and clip length.

Named ``export-onnx`` because ``i3zoo export`` (``publish.py``) already writes Hub-ready ``save_pretrained``
folders. The model and weight options are those of ``i3zoo extract`` / ``predict`` (``--model``, ``--file``,
``--random-weights``, ``--inflation``: :func:`i3zoo.engines.load_model`); the trace is
:func:`i3zoo.graph_export.export_onnx`.
"""

from __future__ import annotations

import argparse
import importlib.util

from ..errors import UsageError
from .model_options import add_weight_arguments, load_model_from_args, whole_number


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    from ..engines import describe_weights
    from ..graph_export import ONNX_INPUT, ONNX_OUTPUT, export_onnx

    if importlib.util.find_spec("onnxscript") is None:  # torch.onnx's dynamo exporter is built on it
        raise UsageError('needs the onnxscript package: pip install "i3zoo[onnx]"')
    if not args.out.endswith(".onnx"):
        raise UsageError(f"--out {args.out}: give a file name ending in .onnx")
    if args.frames is not None and args.frames < 1:
        raise UsageError(f"--frames must be a positive clip length; got {args.frames}")
    loaded = load_model_from_args(args)
    model = loaded.model
    height, width = args.frame_size or model.pretrained_cfg["input_size"][1:]
    print(f"[{loaded.name}] tracing with {describe_weights(loaded.weights)}", flush=True)
    path = export_onnx(model, args.out, (height, width), frames=args.frames, dynamic_frames=args.frames is None)
    frames = f"T = {args.frames}" if args.frames else f"T >= {model.min_input_size[0]} (dynamic)"
    print(f"[{loaded.name}] wrote {path}: input {ONNX_INPUT!r} (N, {model.in_chans}, T, {height}, {width}) float, "
          f"N >= 1 (dynamic), {frames}; output {ONNX_OUTPUT!r} (N, {model.num_classes})")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("export-onnx", help="write a model and its weights as an ONNX file (dynamic batch and T)")
    add_weight_arguments(p)
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="the file to write (replaced atomically)")
    p.add_argument("--frame-size", type=whole_number(), nargs=2, metavar=("H", "W"),
                   help="the frame size the file takes (default: the model's input size, 224 224)")
    p.add_argument("--frames", type=whole_number(), metavar="T", help="fix the clip length to T (default: dynamic)")
    p.set_defaults(func=_cmd_export_onnx, device="cpu")
