"""``i3zoo train``: fine-tune a model on a class-per-folder directory or a list file (:func:`i3zoo.train.fit`).

One process needs no launcher; ``torchrun --nproc_per_node=N -m i3zoo train ...`` runs N processes with
DistributedDataParallel, and ``i3zoo train --nproc N ...`` calls torchrun for you (one machine).

The flags are generated from :class:`i3zoo.train.TrainConfig`'s fields (``batch_size`` -> ``--batch-size``, the
field's ``help`` as the flag's; a boolean that defaults to True -> ``--no-NAME``), so a field is written once.
The model and clip fields take the flags ``extract`` and ``predict`` share
(:func:`i3zoo.cli.model_options.add_model_arguments`); the fields of :data:`NOT_FLAGS` have no flag of their own.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import typing
from dataclasses import MISSING, fields
from typing import Any, Dict, List, Optional, Set

from ..errors import UsageError
from .model_options import add_model_arguments

#: TrainConfig fields without a flag of their own, and why
NOT_FLAGS = {"model_kwargs": "Python only (architecture arguments a saved config cannot rebuild)",
             "pretrained_cfg_overlay": "set by --file / --random-weights"}


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


def _shared_flags() -> Set[str]:
    """The destinations of the flags ``extract`` and ``predict`` share (``model``, ``clip_len``, ``device`` ...)."""
    probe = argparse.ArgumentParser(add_help=False)
    add_model_arguments(probe)
    return {action.dest for action in probe._actions}


def _flag_type(hint: Any) -> Optional[type]:
    """``int`` for ``int`` or ``Optional[int]`` (likewise float, str, bool); None where the annotation does not say."""
    kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)] or [hint]
    return kinds[0] if len(kinds) == 1 and kinds[0] in (int, float, str, bool) else None


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """A flag per :class:`TrainConfig` field, in the fields' order; the shared model and clip flags where the first
    of their fields comes."""
    from ..train import TrainConfig

    hints, shared = typing.get_type_hints(TrainConfig), _shared_flags()
    for f in fields(TrainConfig):
        if f.name in NOT_FLAGS or f.name in shared:
            if f.name in shared and not any(action.dest == f.name for action in p._actions):
                add_model_arguments(p)
            continue
        flag = dict(f.metadata["flag"])
        help_no = flag.pop("help_no", None)
        kind = flag.pop("type", None) or _flag_type(hints[f.name])
        name = "--" + f.name.replace("_", "-")
        if kind is bool and f.default:
            p.add_argument(f"--no-{name[2:]}", dest=f.name, action="store_false", help=help_no or f.metadata["help"])
        elif kind is bool:
            p.add_argument(name, action="store_true", help=f.metadata["help"])
        else:
            required = f.default is MISSING and f.default_factory is MISSING
            p.add_argument(name, type=kind, required=required, default=None if required else f.default,
                           help=f.metadata["help"], **flag)


def config_from_args(args: argparse.Namespace):
    """The :class:`TrainConfig` the flags ask for; a flag left at None takes its field's default."""
    from ..engines.loading import is_preinflated, weights_overlay
    from ..train import TrainConfig

    preinflated = is_preinflated(args.model)
    if not args.pretrained and (args.file or args.random_weights or preinflated):
        raise UsageError("--no-pretrained starts from torchvision's random initialisation; it cannot be combined "
                         "with --file, --random-weights or a pre-inflated model")
    overlay, _ = (weights_overlay(args.model, file=args.file, random_weights=args.random_weights)
                  if args.pretrained else (None, None))
    values: Dict[str, Any] = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in NOT_FLAGS}
    if preinflated:
        values["inflation"] = None  # a saved model keeps its own
    return TrainConfig(**{k: v for k, v in values.items() if v is not None}, pretrained_cfg_overlay=overlay)


def _cmd_train(args: argparse.Namespace) -> int:
    if args.nproc is not None:
        if args.nproc < 1:
            raise UsageError("--nproc must be >= 1")
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
                   "-m", "i3zoo", *_without_nproc(args.argv)]
        return subprocess.call(command)

    from ..train import fit

    fit(config_from_args(args))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="fine-tune on videos (one process, or many with torchrun / --nproc)")
    add_config_arguments(p)
    p.set_defaults(device="auto")  # extract's default is cpu; training takes the GPU when there is one
    p.add_argument("--nproc", type=int, help="run N processes on this machine through torchrun")
    p.set_defaults(func=_cmd_train)
