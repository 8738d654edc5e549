"""The processes of a job: this process's rank, world size and device, under ``torchrun`` or alone -- shared by
training (:mod:`i3zoo.train`) and extraction (:mod:`i3zoo.engines.extraction`), so both wings start processes the
same way.

One process needs no launcher; under ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous variables) the process group is NCCL on GPUs and gloo on CPUs, as torchvision's video reference does,
and each process takes the GPU of its local rank.

Imports nothing of i3zoo, so every wing may use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Processes", "start_processes", "gather_objects", "all_reduce_sum", "group_store"]


@dataclass
class Processes:
    """Where this process stands: ``rank`` of ``world_size``, its ``device``, and whether it started the group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    started_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.started_group and dist.is_initialized():
            dist.destroy_process_group()


def _pick_device(device: str, local_rank: int) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":  # one GPU per process, as torchrun's local ranks
        device = f"cuda:{local_rank}"
    try:
        chosen = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device {device!r}: {e}; use cpu, cuda, cuda:N or auto") from e
    if chosen.type == "cuda" and not (torch.cuda.is_available() and (chosen.index or 0) < torch.cuda.device_count()):
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} usable GPU(s); use cpu "
                         "or auto")
    return chosen


def start_processes(device: str = "auto") -> Processes:
    """Join the process group ``torchrun`` set up (NCCL on GPUs, gloo on CPU), or run as the only process.

    Args:
        device: ``"auto"`` (a GPU if there is one), ``"cpu"``, ``"cuda"`` (this process's local GPU) or
            ``"cuda:N"``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = _pick_device(device, local_rank)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world_size == 1:
        return Processes(0, 1, 0, chosen)
    if dist.is_initialized():  # the caller set the group up itself
        return Processes(dist.get_rank(), dist.get_world_size(), local_rank, chosen)
    dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo", device_id=chosen
                            if chosen.type == "cuda" else None)
    return Processes(dist.get_rank(), dist.get_world_size(), local_rank, chosen, started_group=True)


def gather_objects(processes: Processes, value) -> list:
    """``value`` of every process, in rank order (one process: ``[value]``)."""
    if not processes.distributed:
        return [value]
    gathered: list = [None] * processes.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def all_reduce_sum(processes: Processes, tensor: torch.Tensor) -> torch.Tensor:
    """The sum over processes of ``tensor`` (float64 counts and sums, so exact for any realistic size)."""
    if processes.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def group_store():
    """The key-value store of the default process group (torchrun's, or the one ``init_process_group`` made), or
    None without a group.

    Counters and messages in it (``store.add``, ``store.set`` / ``store.check``) need no collective call, so
    processes that finish at different times -- hours apart on a large extraction -- never wait on each other
    in a collective with a timeout.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return None
    # the default group's store has no public getter; torch.distributed's own elastic code uses this one
    return dist.distributed_c10d._get_default_store()
