"""``i3zoo extract``: features of sliding windows, one output file per video, resumable and atomic, on one process
or many (``torchrun ... -m i3zoo extract``, or ``--nproc N`` on this machine).

The command parses and prints; the engine is :class:`i3zoo.engines.Extractor` (videos claimed, decoded in
``DataLoader`` workers while the model runs, windows batched across videos, outputs written atomically, complete
ones skipped, failures named and the others going on). Under torchrun each process takes its share and its local
GPU (``--device cuda``); rank 0 prints the job's progress and summary, and its exit status is the job's. The model
and weight options are shared with ``i3zoo predict`` (:mod:`i3zoo.cli.model_options`), ``--nproc`` with
``i3zoo train`` (:mod:`i3zoo.cli.launch`).
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from .launch import add_nproc_argument, run_under_torchrun
from .model_options import (
    add_inference_arguments,
    add_model_arguments,
    build_engine,
    engine_options,
    extraction_clips,
    load_model_from_args,
    positive_number,
)


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
    if args.preset == "video-features" and args.flow != "raft":
        raise UsageError(f"--preset video-features computes RAFT flow, as video_features does; got --flow {args.flow}")
    if args.preset == "video-features":
        for key, value in VIDEO_FEATURES_PRESET.items():
            given = getattr(args, key)
            if given is not None and given != value and not (key == "frame_interval" and given == 1):
                raise UsageError(f"--preset video-features sets --{key.replace('_', '-')} {value}; got {given}")
            options[key] = value
    loaded = load_two_stream(port, args.streams or ("rgb", "flow"), raft_file=args.raft_file, device=args.device,
                             random_weights=args.random_weights, flow_method=args.flow)
    return loaded, dict(options, transform=video_features_transform())


def _cmd_extract(args: argparse.Namespace) -> int:
    if args.nproc is not None:
        return run_under_torchrun(args)
    from ..distributed import start_processes
    from ..engines.extraction import find_inputs

    if not (args.streams or args.preset) and (args.flow != "raft" or args.raft_file):
        raise UsageError("--flow and --raft-file are the flow stream's: give --streams (or --preset video-features)")
    inputs = find_inputs(args.paths, args.out, list_file=args.list, format=args.format)
    processes = start_processes(args.device)  # one process, or torchrun's: its rank and its local GPU
    try:
        args.device = str(processes.device)
        if args.streams or args.preset:
            loaded, preset = _two_stream(args)
        else:
            loaded, preset = load_model_from_args(args), {}  # stops at once when no weights can be had
        extractor = _engine(args, loaded, inputs, processes, preset)
        plan = extractor.plan(inputs, args.out)
        if processes.is_main:
            _print_start(extractor, plan, processes.world_size)
        summary = extractor.run(plan, progress=processes.is_main)
        if not processes.is_main:
            return 0  # rank 0 reports this process's failures and exits with the job's status
        _print_summary(loaded.banner, summary)
        return 0 if summary.ok else 1
    finally:
        processes.close()


def _engine(args: argparse.Namespace, loaded, inputs, processes, preset):
    """The extractor of this process. How the model runs is decided once, by rank 0 (it times the model): every
    process then computes the same numbers, whichever share it has. Two-stream I3D (``preset``) runs as it is."""
    from ..distributed import gather_objects
    from ..engines import Extractor

    if preset:
        return Extractor(loaded, **dict(engine_options(args, Extractor), **preset), rank=processes.rank,
                         world_size=processes.world_size)
    _keep_the_folders_precision(args, loaded.banner)

    def build():
        return build_engine(Extractor, args, loaded, extraction_clips(args, loaded, inputs.videos),
                            rank=processes.rank, world_size=processes.world_size)

    if not processes.distributed:
        return build()
    extractor = build() if processes.is_main else None
    choice = gather_objects(processes, extractor.inference if extractor is not None else None)[0]
    if extractor is None:
        args.precision, args.compile, args.optimize = choice["precision"], choice["compiled"], choice["optimized"]
        extractor = build()
    return extractor


def _keep_the_folders_precision(args: argparse.Namespace, banner: str) -> None:
    """``--precision auto`` in a folder that already holds features takes their precision: the rule would pick
    float32 for a short job and bfloat16 for a long one, and a folder holds one settings (a rerun that finishes
    the last few videos, or a first trial on three videos before the whole dataset, would be refused)."""
    from ..engines.extraction import DTYPES
    from ..engines.folder_settings import recorded_settings

    recorded = recorded_settings(args.out) if args.precision == "auto" else None
    if recorded and recorded.get("dtype") in DTYPES:
        args.precision = recorded["dtype"]
        print(f"{banner}inference: {args.out} holds {args.precision} features; --precision auto keeps "
              f"{args.precision}", file=sys.stderr, flush=True)


def _print_start(extractor, plan, world_size: int) -> None:
    from ..engines import describe_weights

    loaded, settings = extractor.loaded, extractor.settings
    fps = f", at {settings['fps']:g} fps" if settings["fps"] else ""
    share = f" (rank 0's share of {world_size} processes)" if world_size > 1 else ""
    print(f"{loaded.banner}i3zoo extract: {len(plan.todo)} videos to do, {plan.skipped} already complete{share}, "
          f"model {loaded.name} ({describe_weights(loaded.weights)}), clips of {settings['clip_len']} frames every "
          f"{settings['step']} (interval {settings['frame_interval']}{fps}), {settings['dtype']} on {loaded.device}",
          flush=True)


def _print_summary(banner: str, summary) -> None:
    processes = f" by {summary.processes} processes" if summary.processes > 1 else ""
    rate = summary.windows / summary.seconds if summary.seconds > 0 else 0.0
    print(f"{banner}summary: {summary.written} written, {summary.skipped} skipped (complete), "
          f"{len(summary.failures)} failed; {summary.windows} windows in {summary.seconds:.1f} s ({rate:.1f} clips/s)"
          f"{processes} -> {summary.out}")
    for path, reason in summary.failures:
        print(f"{banner}FAILED {path}: {reason}")


def add_parser(sub) -> None:
    from ..engines.extraction import DECODE_DEVICES, FORMATS
    from ..video.flow import FLOW_METHODS

    p = sub.add_parser("extract", help="features of sliding windows over videos, one file per video (resumable; "
                                       "torchrun or --nproc for many processes)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="video files, or folders searched recursively")
    p.add_argument("--list", metavar="FILE", help="a file of video paths, one a line (a ',label' after it is ignored)")
    add_model_arguments(p)
    p.add_argument("--step", type=int,
                   help="frames between window starts (default: clip-len x frame-interval)")
    p.add_argument("--fps", type=positive_number, help="resample every video to this rate first, by its timestamps")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder; mirrors the inputs' relative paths")
    p.add_argument("--format", default="safetensors", choices=FORMATS,
                   help="safetensors (one file) or npy (features .npy + a .json of times and settings)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="windows per model call, across videos (default 8)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers decoding videos (default 1)")
    p.add_argument("--decode-device", default="cpu", choices=DECODE_DEVICES,
                   help="cuda: decode with TorchCodec on the GPU (NVDEC); frames stay on the GPU")
    add_inference_arguments(p)
    add_nproc_argument(p)
    p.add_argument("--streams", nargs="+", choices=("rgb", "flow"),
                   help="DeepMind's two-stream I3D (--model i3inception_v1_dm[.k400_<stream>_<port>]): RGB and/or "
                        "RAFT flow features per window, concatenated (RGB first)")
    p.add_argument("--preset", choices=("video-features",),
                   help="v-iashin/video_features' I3D protocol: short side 256 (PIL bilinear), centre 224, stacks of "
                        "64 frames every 64 (plus one for the flow pairs), RAFT Sintel flow; both streams by default")
    p.add_argument("--flow", default="raft", choices=FLOW_METHODS,
                   help="the flow stream's flow: raft (video_features', the default) or tvl1 (the I3D paper's: "
                        "OpenCV's TV-L1 on grayscale frames; pip install -e '.[tvl1]')")
    p.add_argument("--raft-file", metavar="PATH", help="a local raft-sintel.pth (the authors' layout)")
    p.set_defaults(func=_cmd_extract)
