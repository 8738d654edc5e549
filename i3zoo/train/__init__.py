"""Fine-tuning: the training recipe on torch.distributed (``torchrun`` + DistributedDataParallel).

Empty for now; it will hold the recipe (optimizer, schedule, checkpoints, exact resume) and evaluation.

May import: torch (torch.distributed included), ``i3zoo.registry``, ``i3zoo.video`` and ``i3zoo.weights``;
never ``cli``.
"""
