"""Fine-tuning: the training recipe on torch.distributed (``torchrun`` + DistributedDataParallel).

``recipe`` holds :func:`fit` (one process, or each process torchrun starts), :func:`evaluate` and the
recipe's defaults; ``distributed`` the process group, a SyncBatchNorm for CPU and a sampler that resumes
mid-epoch; ``data`` the datasets and the checks run before any training step.

May import: torch (torch.distributed included; torch.utils.tensorboard when asked for), tqdm,
``i3zoo.registry``, ``i3zoo.files``, ``i3zoo.distributed``, ``i3zoo.text``, ``i3zoo.video`` and ``i3zoo.weights``;
never ``models`` directly (models come through the registry) nor ``cli``.
"""

from .recipe import CHECKPOINT_NAME, METRICS_NAME, TENSORBOARD_NAME, TrainConfig, default_lr, evaluate, fit, lr_factor

__all__ = ["TrainConfig", "fit", "evaluate", "default_lr", "lr_factor", "CHECKPOINT_NAME", "METRICS_NAME",
           "TENSORBOARD_NAME"]
