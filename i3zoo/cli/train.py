"""``i3zoo train``: fine-tune a model on a class-per-folder directory or a list file (:func:`i3zoo.train.fit`).

One process needs no launcher; ``torchrun --nproc_per_node=N -m i3zoo train ...`` runs N processes with
DistributedDataParallel, and ``i3zoo train --nproc N ...`` calls torchrun for you (one machine). The model and
clip options are those of ``extract`` and ``predict`` (:func:`i3zoo.cli.model_options.add_model_arguments`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import List

from ..engines.loading import weights_overlay
from ..errors import UsageError
from .model_options import add_model_arguments


def _without_nproc(argv: List[str]) -> List[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _cmd_train(args: argparse.Namespace) -> int:
    if args.nproc is not None:
        if args.nproc < 1:
            raise UsageError("--nproc must be >= 1")
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
                   "-m", "i3zoo", *_without_nproc(args.argv)]
        return subprocess.call(command)

    from ..train import TrainConfig, fit

    if args.no_pretrained and (args.file or args.random_weights or args.model.startswith(("hf-hub:", "local-dir:"))):
        raise UsageError("--no-pretrained starts from torchvision's random initialisation; it cannot be "
                         "combined with --file, --random-weights or a pre-inflated model")
    overlay, _ = (weights_overlay(args.model, file=args.file, random_weights=args.random_weights)
                  if not args.no_pretrained else (None, None))
    preinflated = args.model.startswith(("hf-hub:", "local-dir:"))
    config = TrainConfig(
        train=args.train, val=args.val, output=args.output, model=args.model, pretrained=not args.no_pretrained,
        pretrained_cfg_overlay=overlay, inflation=None if preinflated else args.inflation,
        num_classes=args.num_classes, label_names=args.label_names, clip_len=args.clip_len or 16,
        frame_interval=args.frame_interval, crop_size=args.crop_size, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
        grad_clip=args.grad_clip, warmup_epochs=args.warmup_epochs, eval_clips=args.eval_clips,
        sync_bn=args.sync_bn, amp=args.amp, grad_checkpointing=args.grad_checkpointing,
        frozen_stages=args.frozen_stages, norm_eval=args.norm_eval, workers=args.workers, seed=args.seed,
        deterministic=args.deterministic, save_every=args.save_every, resume=args.resume, device=args.device,
        backend=args.backend, progress=not args.no_progress, float64=args.float64, tensorboard=args.tensorboard)
    fit(config)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="fine-tune on videos (one process, or many with torchrun / --nproc)")
    p.add_argument("--train", required=True, metavar="PATH", help="class-per-folder directory or path,label list")
    p.add_argument("--val", metavar="PATH", help="validation set, the same kinds (evaluated each epoch)")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="checkpoint.pt, metrics.jsonl, last/ and best/ (save_pretrained folders)")
    add_model_arguments(p)
    p.add_argument("--no-pretrained", action="store_true",
                   help="start from random initialisation (torchvision's) instead of the model's weights")
    p.set_defaults(device="auto")  # extract's default is cpu; training takes the GPU when there is one
    p.add_argument("--num-classes", type=int, help="default: the number of training classes")
    p.add_argument("--label-names", metavar="FILE", help="class names, one per line (list files with indices)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8, help="clips per process and step (default 8)")
    p.add_argument("--lr", type=float, help="used as given; default: 0.01 (SGD) or 0.001 (AdamW) per 64 clips of "
                                            "global batch, scaled linearly")
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adamw"))
    p.add_argument("--weight-decay", type=float, help="default 1e-4 (SGD) or 0.05 (AdamW)")
    p.add_argument("--grad-clip", type=float, default=40.0, help="max gradient norm (0: none; default 40)")
    p.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up before the cosine decay")
    p.add_argument("--eval-clips", type=int, default=1, help="evenly spaced clips averaged per validation video")
    p.add_argument("--sync-bn", action="store_true", help="BatchNorm statistics over the global batch")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    p.add_argument("--grad-checkpointing", action="store_true", help="less memory, about a third more time")
    p.add_argument("--frozen-stages", type=int, default=-1, help="freeze the stem and the first K stages")
    p.add_argument("--norm-eval", action="store_true", help="every BatchNorm keeps its running statistics")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers per process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (exact resume on GPUs)")
    p.add_argument("--save-every", type=int, default=0, metavar="STEPS",
                   help="also checkpoint every STEPS optimizer steps (default: each epoch only)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt")
    p.add_argument("--nproc", type=int, help="run N processes on this machine through torchrun")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write the metrics as TensorBoard scalars into OUTPUT/tensorboard (extra: tensorboard)")
    p.add_argument("--float64", action="store_true", help="train in float64 (slow; to compare runs exactly)")
    p.set_defaults(func=_cmd_train)
