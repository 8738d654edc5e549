"""``--nproc N``: run a command as N processes on this machine through ``torchrun`` (``train`` and ``extract``).

Not a command: it adds the flag to a command's parser and, when it is given, starts
``python -m torch.distributed.run --standalone --nproc_per_node=N -m i3zoo <the same arguments without --nproc>``,
so the processes run exactly what ``torchrun ... -m i3zoo`` would (one process per GPU, or gloo on CPU).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import List

from ..errors import UsageError


def add_nproc_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nproc", type=int, help="run N processes on this machine through torchrun")


def without_nproc(argv: List[str]) -> List[str]:
    """The arguments less ``--nproc N`` / ``--nproc=N``."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def run_under_torchrun(args: argparse.Namespace) -> int:
    """Start ``args.nproc`` processes of this command on this machine; torchrun's exit status."""
    if args.nproc < 1:
        raise UsageError(f"--nproc must be >= 1; got {args.nproc}")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
               "-m", "i3zoo", *without_nproc(args.argv)]
    return subprocess.call(command)
