"""The two pieces torch.distributed lacks for this recipe: a SyncBatchNorm that runs on CPU, and a
DistributedSampler that can start mid-epoch. The process group itself (:func:`start_processes`: NCCL on GPUs,
gloo on CPU, one process without a launcher) is :mod:`i3zoo.distributed`, shared with extraction, and is
re-exported here.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from ..distributed import Processes, all_reduce_sum, gather_objects, start_processes

__all__ = ["Processes", "start_processes", "CpuSyncBatchNorm", "convert_sync_batchnorm", "ResumableSampler",
           "gather_objects", "all_reduce_sum"]


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


