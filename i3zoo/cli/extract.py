"""``i3zoo extract``: features of sliding windows, one output file per video, resumable and atomic.

The command parses and prints; the engine is :class:`i3zoo.engines.Extractor` (videos decoded in
``DataLoader`` workers while the model runs, windows batched across videos, outputs written atomically, complete
ones skipped, failures named and the others going on). The model and weight options are shared with
``i3zoo predict`` (:mod:`i3zoo.cli.model_options`).
"""

from __future__ import annotations

import argparse

from ..errors import UsageError
from .model_options import add_model_arguments, engine_options, load_model_from_args


def _two_stream(args: argparse.Namespace):
    """``--streams`` / ``--preset video-features``: DeepMind's two-stream I3D (``engines/two_stream.py``), the port
    named by ``--model``'s tag (``i3inception_v1_dm.k400_rgb_piergiaj``; hassony2's, video_features', otherwise),
    and the Extractor options the preset sets (refusing flags that contradict it)."""
    from ..engines.two_stream import VIDEO_FEATURES_PRESET, load_two_stream, video_features_transform
    from ..weights.deepmind_i3d import PORTS

    arch, _, tag = args.model.partition(".")
    port = tag.rsplit("_", 1)[-1] if tag else "hassony2"
    if arch != "i3inception_v1_dm" or port not in PORTS:
        raise UsageError(f"--streams and --preset take DeepMind's I3D: --model i3inception_v1_dm or a tag "
                         f"i3inception_v1_dm.k400_<stream>_<port> with port {' or '.join(PORTS)}; got {args.model}")
    if args.file:
        raise UsageError("--file names one stream's weights; with --streams the streams' tags name theirs")
    options = {}
    if args.preset == "video-features":
        for key, value in VIDEO_FEATURES_PRESET.items():
            given = getattr(args, key)
            if given is not None and given != value and not (key == "frame_interval" and given == 1):
                raise UsageError(f"--preset video-features sets --{key.replace('_', '-')} {value}; got {given}")
            options[key] = value
    loaded = load_two_stream(port, args.streams or ("rgb", "flow"), raft_file=args.raft_file, device=args.device,
                             random_weights=args.random_weights)
    return loaded, dict(options, transform=video_features_transform())


def _cmd_extract(args: argparse.Namespace) -> int:
    from ..engines import Extractor, describe_weights
    from ..engines.extraction import find_inputs

    inputs = find_inputs(args.paths, args.out, list_file=args.list, format=args.format)
    if args.streams or args.preset:
        loaded, preset = _two_stream(args)
    else:
        loaded, preset = load_model_from_args(args), {}  # stops at once when no weights can be had
    extractor = Extractor(loaded, **dict(engine_options(args, Extractor), **preset))
    plan = extractor.plan(inputs, args.out)
    banner, settings = loaded.banner, extractor.settings
    fps = f", at {settings['fps']:g} fps" if settings["fps"] else ""
    print(f"{banner}i3zoo extract: {len(plan.todo)} videos to do, {plan.skipped} already complete, model "
          f"{loaded.name} ({describe_weights(loaded.weights)}), clips of {settings['clip_len']} frames every "
          f"{settings['step']} (interval {settings['frame_interval']}{fps}), {settings['dtype']} on {loaded.device}",
          flush=True)
    summary = extractor.run(plan)
    print(f"{banner}summary: {summary.written} written, {summary.skipped} skipped (complete), "
          f"{len(summary.failures)} failed; {summary.windows} windows in {summary.seconds:.1f} s -> {summary.out}")
    for path, reason in summary.failures:
        print(f"{banner}FAILED {path}: {reason}")
    return 0 if summary.ok else 1


def add_parser(sub) -> None:
    from ..engines.extraction import DTYPES, FORMATS

    p = sub.add_parser("extract", help="features of sliding windows over videos, one file per video (resumable)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="video files, or folders searched recursively")
    p.add_argument("--list", metavar="FILE", help="a file of video paths, one a line (a ',label' after it is ignored)")
    add_model_arguments(p)
    p.add_argument("--step", type=int, help="frames between window starts (default: clip-len x frame-interval)")
    p.add_argument("--fps", type=float, help="resample every video to this rate first, by its timestamps")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder; mirrors the inputs' relative paths")
    p.add_argument("--format", default="safetensors", choices=FORMATS,
                   help="safetensors (one file) or npy (features .npy + a .json of times and settings)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per model call, across videos (default 8)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers decoding videos (default 1)")
    p.add_argument("--dtype", default="float32", choices=tuple(DTYPES))
    p.add_argument("--optimize", action="store_true", help="run an optimize_for_inference copy (BatchNorm folded)")
    p.add_argument("--compile", action="store_true", help="... and torch.compile it")
    p.add_argument("--streams", nargs="+", choices=("rgb", "flow"),
                   help="DeepMind's two-stream I3D (--model i3inception_v1_dm[.k400_<stream>_<port>]): RGB and/or "
                        "RAFT flow features per window, concatenated (RGB first)")
    p.add_argument("--preset", choices=("video-features",),
                   help="v-iashin/video_features' I3D protocol: short side 256 (PIL bilinear), centre 224, stacks of "
                        "64 frames every 64 (plus one for the flow pairs), RAFT Sintel flow; both streams by default")
    p.add_argument("--raft-file", metavar="PATH", help="a local raft-sintel.pth (the authors' layout)")
    p.set_defaults(func=_cmd_extract)
