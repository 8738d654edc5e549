"""The process group, and the two pieces torch.distributed lacks for this recipe: a SyncBatchNorm that runs on
CPU, and a DistributedSampler that can start mid-epoch.

One process needs no launcher; under ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous variables) the process group is NCCL on GPUs and gloo on CPUs, as torchvision's video reference does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

__all__ = ["Processes", "start_processes", "CpuSyncBatchNorm", "convert_sync_batchnorm", "ResumableSampler",
           "gather_objects", "all_reduce_sum"]


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


class _SumOverProcesses(torch.autograd.Function):
    """The sum of a tensor over processes, differentiable: the gradient of a sum is the sum of the gradients.

    (``torch.distributed.nn.functional.all_reduce`` does this but is deprecated, and its suggested successor in
    ``_functional_collectives`` has no autograd for all_reduce.)
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class CpuSyncBatchNorm(nn.BatchNorm3d):
    """BatchNorm3d whose batch statistics are those of the batch of every process (gloo, CPU tensors).

    ``torch.nn.SyncBatchNorm`` refuses CPU tensors ("expected input tensor to be on GPU"), and the recipe's
    CPU runs (and its two-processes-equal-one test) need the same statistics. Sums are reduced by a
    differentiable all-reduce, so the backward pass reduces the gradient terms of the statistics too. Same
    parameters and buffers as BatchNorm3d (same state dict).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0, 2, 3, 4]
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        sums = _SumOverProcesses.apply(torch.cat([x.sum(dim=dims), count]))
        total = sums[-1]
        mean = sums[:-1] / total
        centred = x - mean.view(1, -1, 1, 1, 1)
        # the second pass (sum of squared deviations from the global mean) is as exact as one-process BatchNorm
        variance = _SumOverProcesses.apply(centred.square().sum(dim=dims)) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = variance * total / (total - 1).clamp(min=1)
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased.detach(), alpha=momentum)
        scale = torch.rsqrt(variance + self.eps)
        if self.affine:
            scale = scale * self.weight
        out = centred * scale.view(1, -1, 1, 1, 1)
        return out + self.bias.view(1, -1, 1, 1, 1) if self.affine else out


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm3d synchronised across processes: torch's SyncBatchNorm on GPUs, CpuSyncBatchNorm on CPU.

    Modules are replaced in place (parameters and buffers are kept, so frozen parameters stay frozen).
    """
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in list(model.named_children()):
        if type(child) is nn.BatchNorm3d:
            like = next(iter(child.state_dict().values()))
            synced = CpuSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                      child.track_running_stats, device=like.device,
                                      dtype=child.running_mean.dtype if child.track_running_stats else None)
            synced.load_state_dict(child.state_dict())
            if child.affine:
                synced.weight, synced.bias = child.weight, child.bias
            synced.train(child.training)
            setattr(model, name, synced)
        else:
            convert_sync_batchnorm(child, device)
    return model


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can begin an epoch after the samples already seen (a mid-epoch resume).

    torch's sampler always starts an epoch from its first index; a resumed run skips the ``start`` indices of
    this process's share that the killed run had consumed, so that it sees exactly the batches it had left.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, *, seed: int, shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` indices of this process's share in the current epoch only."""
        self.start = start

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self.start:]
        return iter(indices)

    def __len__(self) -> int:
        return self.num_samples - self.start


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
