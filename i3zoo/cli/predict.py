"""``i3zoo predict``: the top-k classes of each video, averaging the softmax of evenly spaced clips.

Clips are MMAction2's test-mode ``SampleFrames`` (:func:`i3zoo.video.evenly_spaced_clips`), each resized and
centre-cropped by the model's own transform. Label names come with the weights: a model's own
``pretrained_cfg["label_names"]`` (fine-tuned weights, timm's convention), else ImageNet's 1000 categories
for a 1000-class head inflated from ImageNet -- such a model names objects seen in the frames, not actions.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List

from .extract import add_model_arguments, clip_len_for, crop_size_for, load_model, weights_banner


def _cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from ..video import VideoError, VideoReader, evenly_spaced_clips, transforms_for

    if args.num_clips < 1 or args.top_k < 1:
        raise SystemExit("i3zoo predict: --num-clips and --top-k must be >= 1")
    loaded = load_model(args)
    model, banner = loaded.model, weights_banner(loaded)
    clip_len = clip_len_for(args, model)
    transform = transforms_for(model, crop_size=crop_size_for(args, model))
    top_k = min(args.top_k, model.num_classes)
    results: List[Dict[str, Any]] = []
    failures = 0
    for path in args.videos:
        try:
            reader = VideoReader(path, backend=args.backend)
            clips = evenly_spaced_clips(reader.num_frames, clip_len, args.frame_interval, args.num_clips)
            frames = reader.get_frames(clips.indices.flatten().tolist()).unflatten(0, tuple(clips.indices.shape))
        except VideoError as e:
            failures += 1
            results.append({"video": str(path), "error": e.reason})
            continue
        batch = torch.stack([transform(f) for f in frames]).to(args.device)
        with torch.inference_mode():
            probabilities = model(batch).float().softmax(dim=1).mean(dim=0).cpu()
        values, indices = probabilities.topk(top_k)
        names = loaded.label_names
        results.append({
            "video": str(path), "clips": len(clips), "padded": int(clips.padded.max()) > 0,
            "top": [{"class": int(i), "label": names[i] if names else f"class {int(i)}", "probability": float(v)}
                    for v, i in zip(values, indices)],
        })
    if args.json:
        print(json.dumps({"model": loaded.name, "weights": loaded.weights, "labels": loaded.label_source,
                          "random_weights": loaded.random, "clip_len": clip_len, "num_clips": args.num_clips,
                          "results": results}, indent=1))
    else:
        print(f"{banner}model {loaded.name}; labels: {loaded.label_source}; {args.num_clips} clips of {clip_len} "
              f"frames per video, centre crop")
        if loaded.label_source == "ImageNet-1k":
            print(f"{banner}(ImageNet-inflated weights name objects seen in the frames, not actions)")
        print(f"{banner}{'video':<32} {'rank':>4}  {'probability':>11}  label")
        for result in results:
            if "error" in result:
                print(f"{banner}{result['video']:<32} FAILED: {result['error']}")
                continue
            for rank, top in enumerate(result["top"], 1):
                print(f"{banner}{result['video'] if rank == 1 else '':<32} {rank:>4}  {top['probability']:>11.4f}  "
                      f"{top['label']}")
            if result["padded"]:
                print(f"{banner}{'':<32} (shorter than one clip: padded by repeating its last frame)")
    if failures:
        print(f"{banner}{failures} of {len(args.videos)} videos could not be read", file=sys.stderr)
    return 1 if failures else 0


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="top-k classes per video, averaged over evenly spaced clips")
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    add_model_arguments(p)
    p.add_argument("--num-clips", type=int, default=3, help="evenly spaced clips averaged per video (default 3)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_predict)
