"""The fine-tuning recipe: one process or many (``torchrun``), checkpoints, exact resume, evaluation.

Written after torchvision's ``references/video_classification/train.py``: one function (:func:`fit`) that a
reader can follow top to bottom, a sampler per split, a checkpoint that is one dict of every state.

Defaults are MMAction2's I3D-from-ImageNet recipe (``configs/_base_/schedules/sgd_100e.py`` with
``auto_scale_lr.base_batch_size=64``): SGD, momentum 0.9, weight decay 1e-4, lr 0.01 for a global batch of 64
(scaled linearly to the global batch), gradient norm clipped at 40. MMAction2 steps the lr at epochs 40 and 80
of 100; this recipe uses a linear warm-up from a tenth of the lr (MMAction2's ``LinearLR(start_factor=0.1)``
of its SlowOnly ImageNet recipes) and a cosine decay to zero, which needs no milestones for short runs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import sys
import textwrap
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from ..files import write_atomically
from ..registry import create_model, model_class
from ..text import MAX_CLASSES, card_text, printable
from ..video import transforms_for
from ..weights.hub import save_pretrained
from ..weights.verify import seeded_2d_state_dict
from .data import (
    ReportUnreadable,
    SeededSamples,
    Unreadable,
    check_datasets,
    collate_readable,
    label_names_of,
    open_dataset,
)
from .distributed import (
    Processes,
    ResumableSampler,
    all_reduce_sum,
    convert_sync_batchnorm,
    gather_objects,
    start_processes,
)

__all__ = ["TrainConfig", "fit", "evaluate", "lr_factor", "default_lr", "CHECKPOINT_NAME", "METRICS_NAME",
           "TENSORBOARD_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"
TENSORBOARD_NAME = "tensorboard"
METRICS_NAME = "metrics.jsonl"
CHECKPOINT_FORMAT = "i3zoo-train-checkpoint/1"
#: MMAction2's I3D recipe: lr 0.01 for 8 GPUs x 8 clips
BASE_LR = {"sgd": 0.01, "adamw": 1e-3}
BASE_BATCH = 64
WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.05}
OPTIMIZERS = ("sgd", "adamw")


def _option(default: Any = MISSING, help: str = "", **flag: Any) -> Any:
    """A :class:`TrainConfig` field with its one description, ``help`` (the class docstring's and its
    ``i3zoo train`` flag's), and how that flag looks: ``metavar``, ``choices``, ``type`` (where the annotation
    does not say), ``help_no`` (the help of a ``--no-`` flag, which says the opposite); or ``default_factory``."""
    factory = flag.pop("default_factory", MISSING)
    return field(default=default, default_factory=factory, metadata=dict(help=help, flag=flag))


def _document_fields(cls: type) -> type:
    """Append an ``Attributes:`` section written from the fields' ``help``, so that no description is written twice."""
    lines = [textwrap.fill(f"{f.name}: {f.metadata['help']}", 116, initial_indent=" " * 8, subsequent_indent=" " * 12)
             for f in fields(cls)]
    cls.__doc__ = f"{(cls.__doc__ or '').rstrip()}\n\n    Attributes:\n" + "\n".join(lines) + "\n"  # -OO: no doc
    return cls


@_document_fields
@dataclass
class TrainConfig:
    """Everything a run is made of. Each field is a flag of ``i3zoo train`` (``batch_size`` -> ``--batch-size``;
    a boolean that defaults to True -> ``--no-pretrained``), generated from the field and its ``help``; the model,
    weight and clip fields are the flags ``extract`` and ``predict`` share, ``pretrained_cfg_overlay`` is set by
    ``--file`` / ``--random-weights``, and ``model_kwargs`` is for Python only.
    """

    train: str = _option(help="class-per-folder directory or path,label list", metavar="PATH")
    output: str = _option(help="checkpoint.pt, metrics.jsonl, last/ and best/ (save_pretrained folders)",
                          metavar="DIR")
    model: str = _option("i3resnet50", help="a registered name (i3resnet50, i3resnet50.tv_in1k), hf-hub:ORG/NAME, "
                                            "local-dir:PATH or a 2D CNN to inflate, inflate:timm/NAME")
    val: Optional[str] = _option(None, help="validation set, the same kinds (evaluated each epoch)", metavar="PATH")
    pretrained: bool = _option(True, help="start from the model's weights (inflated ImageNet, or the pre-inflated "
                                          "folder)",
                               help_no="start from random initialisation (torchvision's) instead of the model's "
                                       "weights")
    pretrained_cfg_overlay: Optional[Dict[str, Any]] = _option(
        None, help='the source of the weights, e.g. dict(file="resnet50.pth"), as i3zoo.create_model takes it')
    random_weights: bool = _option(False, help="start from seeded random 2D weights (a smoke run, not a "
                                               "pretrained start); the saved card and config.json say so")
    inflation: Optional[str] = _option(None, help="center or mean, for registered models (None: the model's default)")
    design: Optional[str] = _option(None, help="the temporal design of an inflate:timm/NAME or "
                                               "inflate:torchvision/NAME model (None: i3d)",
                                    choices=("c2d", "i3d", "slowonly"))
    model_kwargs: Dict[str, Any] = _option(
        help="further model arguments, e.g. block_counts=(1, 1, 1, 1) for a shallow ResNet of the same family in "
             "quick experiments. A config.json cannot rebuild such a model, so no last/ or best/ folder is written "
             "for it (checkpoint.pt holds its weights)", default_factory=dict)
    num_classes: Optional[int] = _option(None, help="default: the number of training classes")
    label_names: Union[Sequence[str], str, None] = _option(
        None, help="class names, one per line (list files with indices)", metavar="FILE", type=str)
    clip_len: int = _option(16, help="frames per clip")
    frame_interval: int = _option(1, help="distance between a clip's frames")
    crop_size: Optional[int] = _option(None, help="spatial size (default: the model's input size)")
    epochs: int = _option(1, help="passes over the training set")
    batch_size: int = _option(8, help="clips per process and step (default 8)")
    lr: Optional[float] = _option(None, help="used as given; default: 0.01 (SGD) or 0.001 (AdamW) per 64 clips of "
                                             "global batch, scaled linearly")
    optimizer: str = _option("sgd", help="SGD with momentum, or AdamW", choices=OPTIMIZERS)
    momentum: float = _option(0.9, help="SGD's momentum (default 0.9)")
    weight_decay: Optional[float] = _option(None, help="default 1e-4 (SGD) or 0.05 (AdamW)")
    grad_clip: float = _option(40.0, help="max gradient norm (0: none; default 40)")
    warmup_epochs: float = _option(1.0, help="linear warm-up before the cosine decay")
    eval_clips: int = _option(1, help="evenly spaced clips averaged per validation video")
    sync_bn: bool = _option(False, help="BatchNorm statistics over the global batch")
    amp: bool = _option(False, help="bfloat16 autocast")
    grad_checkpointing: bool = _option(False, help="less memory, about a third more time")
    frozen_stages: int = _option(-1, help="freeze the stem and the first K stages")
    norm_eval: bool = _option(False, help="every BatchNorm keeps its running statistics")
    workers: int = _option(2, help="DataLoader workers per process")
    seed: int = _option(0, help="for the sampler, the augmentations and the classifier's initialisation")
    deterministic: bool = _option(False, help="deterministic algorithms (exact resume on GPUs)")
    save_every: int = _option(0, help="also checkpoint every STEPS optimizer steps (default: each epoch only)",
                              metavar="STEPS")
    resume: bool = _option(False, help="continue from OUTPUT/checkpoint.pt")
    device: str = _option("auto", help="auto, cpu, cuda (each process its local GPU) or cuda:N")
    backend: str = _option("auto", help="video decoder, as i3zoo.video.VideoReader takes it")
    progress: bool = _option(True, help="a tqdm bar on rank 0", help_no="no progress bar")
    # float32 rounding in the gradients of tiny batches grows step by step: float64 is how runs are compared
    float64: bool = _option(False, help="train in float64 (slow; to compare runs exactly)")
    tensorboard: bool = _option(False, help="also write the metrics as TensorBoard scalars into "
                                            "OUTPUT/tensorboard (extra: tensorboard)")

    def check(self) -> None:
        """``ValueError`` for settings that cannot work, before anything is read or built."""
        for name in ("epochs", "batch_size", "clip_len", "frame_interval", "eval_clips"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if self.workers < 0 or self.save_every < 0:
            raise ValueError(f"workers and save_every must be >= 0; got {self.workers}, {self.save_every}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr (--lr) must be a finite number > 0; got {self.lr}")
        for name in ("grad_clip", "warmup_epochs"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be a finite number >= 0; got {value}")
        if self.random_weights and not self.pretrained:
            raise ValueError("random_weights (--random-weights) and pretrained=False (--no-pretrained) exclude each "
                             "other: give one start")
        if self.amp and self.float64:
            raise ValueError("amp (bfloat16 autocast) and float64 exclude each other")
        if self.num_classes is not None and not 1 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(f"num_classes must be from 1 to {MAX_CLASSES:,}; got {self.num_classes}")
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ValueError("tensorboard logs need the tensorboard package: pip install 'i3zoo[tensorboard]'")


def default_lr(optimizer: str, global_batch: int) -> float:
    """The recipe's lr for ``global_batch`` clips: the base lr (per 64 clips) scaled linearly."""
    return BASE_LR[optimizer] * global_batch / BASE_BATCH


def lr_factor(step: int, *, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the lr at optimizer step ``step`` (0-based): linear from 0.1 to 1 over the warm-up, then
    cosine from 1 to 0 at ``total_steps``."""
    if step < warmup_steps:
        return 0.1 + 0.9 * step / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, decay_steps) / decay_steps))


# --- model -------------------------------------------------------------------------------------------------

def build_model(config: TrainConfig, num_classes: int) -> nn.Module:
    kwargs = dict(config.model_kwargs, num_classes=num_classes, frozen_stages=config.frozen_stages,
                  norm_eval=config.norm_eval)
    preinflated = config.model.startswith(("hf-hub:", "local-dir:"))
    if config.inflation is not None and not preinflated:
        kwargs["inflation"] = config.inflation
    if config.design is not None:
        if not config.model.startswith("inflate:"):
            raise ValueError(f"design applies to inflate: models; {config.model} has its own design")
        kwargs["design"] = config.design
    overlay, pretrained = config.pretrained_cfg_overlay, config.pretrained
    inflated = config.model.startswith("inflate:")
    if config.random_weights and overlay is None and not inflated:  # seed 0, as --random-weights everywhere
        overlay = dict(state_dict=seeded_2d_state_dict(model_class(config.model).network_2d))
    pretrained = pretrained and not (config.random_weights and inflated)  # the 2D network's seeded initialisation
    torch.manual_seed(config.seed)  # the fresh classifier's initialisation
    model = create_model(config.model, pretrained=pretrained, pretrained_cfg_overlay=overlay, **kwargs)
    if config.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return model


def _parameter_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def report_unreadable(unreadable: List[Unreadable], what: str) -> None:
    """Name each unreadable video on stderr (every process reports the ones it met)."""
    for item in unreadable:
        print(f"i3zoo train: skipped an unreadable {what} video, {printable(item.path)}: {printable(item.reason)}",
              file=sys.stderr, flush=True)


# --- evaluation --------------------------------------------------------------------------------------------

def evaluate(model: nn.Module, dataset, processes: Processes, *, batch_size: int, workers: int = 0,
             amp: bool = False) -> Dict[str, float]:
    """Top-1 / top-5 accuracy and loss of ``model`` on ``dataset``, every sample counted once.

    Process ``r`` of ``w`` scores samples ``r, r + w, r + 2w, ...`` (a split with no padding, so an uneven
    split repeats no sample), and the sums are reduced across processes. With several clips per sample
    (items of shape (K, C, T, H, W)) the softmax scores of the K clips are averaged before ranking; the loss is
    the negative log of the averaged probability of the true class.

    A video that cannot be read is reported by name and left out (``skipped``); the others are scored.

    Returns:
        ``{"top1", "top5", "loss", "samples", "skipped"}`` (accuracies in percent), the same on every process.
    """
    mine = Subset(ReportUnreadable(dataset), range(processes.rank, len(dataset), processes.world_size))
    loader = DataLoader(mine, batch_size=batch_size, num_workers=workers, collate_fn=collate_readable)
    was_training = model.training
    model.eval()
    sums = torch.zeros(5, dtype=torch.float64)  # loss, top-1 hits, top-5 hits, samples, unreadable
    with torch.inference_mode():
        for clips, labels, unreadable in loader:
            report_unreadable(unreadable, "validation")
            sums[4] += len(unreadable)
            if clips is None:
                continue
            clips = clips.to(processes.device, _parameter_dtype(model), non_blocking=True)
            labels = labels.to(processes.device)
            per_sample = clips.shape[1] if clips.dim() == 6 else 1
            with torch.autocast(processes.device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(clips.flatten(0, 1) if clips.dim() == 6 else clips)
            probabilities = logits.float().softmax(dim=1).unflatten(0, (-1, per_sample)).mean(dim=1)
            top = probabilities.topk(min(5, probabilities.shape[1]), dim=1).indices
            hits = top == labels[:, None]
            true_probability = probabilities.gather(1, labels[:, None]).squeeze(1)
            sums[:4] += torch.stack([-true_probability.clamp_min(1e-12).log().sum(), hits[:, 0].sum(),
                                     hits.any(dim=1).sum(), torch.tensor(len(labels))]).double().cpu()
    model.train(was_training)
    sums = all_reduce_sum(processes, sums.to(processes.device)).cpu()
    samples, skipped = int(sums[3]), int(sums[4])
    if samples + skipped != len(dataset):
        raise RuntimeError(f"evaluation counted {samples} samples and {skipped} unreadable of {len(dataset)}")
    if not samples:
        raise ValueError(f"none of the {len(dataset)} validation videos could be read (see the messages above)")
    return {"top1": 100.0 * float(sums[1]) / samples, "top5": 100.0 * float(sums[2]) / samples,
            "loss": float(sums[0]) / samples, "samples": samples, "skipped": skipped}


# --- checkpoints -------------------------------------------------------------------------------------------

def _rng_state(device: torch.device) -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _identity(config: TrainConfig, processes: Processes, num_classes: int, label_names: List[str],
              steps_per_epoch: int) -> Dict[str, Any]:
    """What a checkpoint must share with the run that resumes it."""
    return {"model": config.model, "model_kwargs": {k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in config.model_kwargs.items()},
            "num_classes": num_classes, "label_names": label_names, "world_size": processes.world_size,
            "batch_size": config.batch_size, "steps_per_epoch": steps_per_epoch, "epochs": config.epochs}


def _check_identity(saved: Dict[str, Any], current: Dict[str, Any], path: Path) -> None:
    for key, what in (("model", "model"), ("model_kwargs", "model arguments"), ("num_classes", "number of classes"),
                      ("label_names", "class names"), ("world_size", "number of processes"),
                      ("batch_size", "batch size per process"), ("steps_per_epoch", "steps per epoch"),
                      ("epochs", "number of epochs")):
        if saved.get(key) != current[key]:
            hint = (" (the sampler's order and the batches depend on it: resume with the same number of "
                    "processes, or start a new run from the saved weights)" if key == "world_size" else "")
            raise ValueError(f"{path} was written for {what} {saved.get(key)!r}; this run has {current[key]!r}"
                             f"{hint}. It was not loaded.")


def _load_checkpoint(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"--resume: there is no {path.name} in {path.parent} to continue from")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"--resume: {path} is not a readable checkpoint: {e}") from e
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"--resume: {path} is not an i3zoo training checkpoint ({CHECKPOINT_FORMAT})")
    missing = [key for key in _CHECKPOINT_KEYS if key not in checkpoint]
    if missing:
        raise ValueError(f"--resume: {path} lacks {', '.join(missing)}: not a complete i3zoo training checkpoint")
    return checkpoint


_CHECKPOINT_KEYS = ("identity", "model", "optimizer", "scheduler", "scaler", "processes", "epoch", "step_in_epoch",
                    "step")


def _check_model_state(saved: Dict[str, Any], model: nn.Module, path: Path) -> None:
    """One line naming every key the saved model state lacks, adds or shapes otherwise (``load_state_dict``'s
    own error is many lines, and says nothing of the file)."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    shapes = {key: tuple(getattr(value, "shape", ())) for key, value in saved.items()}
    problems = [f"missing {key}" for key in expected if key not in saved]
    problems += [f"unexpected {key}" for key in saved if key not in expected]
    problems += [f"{key}: {shapes[key]} where the model has {shape}" for key, shape in expected.items()
                 if key in shapes and shapes[key] != shape]
    if problems:
        raise ValueError(f"--resume: the model state in {path} does not fit the model ({len(problems)} problem(s): "
                         f"{'; '.join(problems[:5])}{' ...' if len(problems) > 5 else ''}). It was not loaded.")


# --- the run -----------------------------------------------------------------------------------------------

@dataclass
class _EpochSums:
    """A process's running sums over the current epoch (kept in mid-epoch checkpoints)."""

    loss: float = 0.0
    correct: int = 0
    samples: int = 0
    seconds: float = 0.0
    skipped: int = 0  # unreadable videos met (reported, left out of their batches)


def _save_model(model: nn.Module, folder: Path, label_names: List[str], config: TrainConfig, line: Dict[str, Any],
                sizes: Tuple[int, Optional[int]]) -> None:
    if config.model_kwargs:  # see TrainConfig.model_kwargs
        return
    file = (config.pretrained_cfg_overlay or {}).get("file")
    if config.random_weights:
        weights = "seeded random 2D weights (--random-weights), NOT pretrained: a smoke run, not a model to use"
    elif not config.pretrained:
        weights = "random initialisation (no pretrained weights)"
    else:
        weights = f"inflated from the 2D file {card_text(Path(file).name)}" if file else "its weights"
    start = f"{card_text(config.model)}, {weights}"
    # folder names only: a card may be published, the trainer's paths are their own; names are made inert
    validation = (f"top-1 {line['val_top1']:.2f}%, top-5 {line['val_top5']:.2f}% on {sizes[1]} videos of "
                  f"{card_text(Path(config.val).name)}, {config.eval_clips} clip(s) each, after epoch "
                  f"{line['epoch']}" if config.val else "none")
    training = dict(start=start, train=f"{sizes[0]} videos of {card_text(Path(config.train).name)}, clips of "
                    f"{config.clip_len} frames every {config.frame_interval}", epochs=line["epoch"],
                    validation=validation, random_weights=config.random_weights)
    save_pretrained(model, folder, measure=False, label_names=label_names, training=training)


def fit(config: TrainConfig) -> Dict[str, Any]:
    """Fine-tune ``config.model`` on ``config.train``; one process, or every process ``torchrun`` started.

    Writes (rank 0 only): ``checkpoint.pt`` (every epoch and every ``save_every`` steps, atomically),
    ``metrics.jsonl`` (a line per epoch), ``last/`` and ``best/`` (``save_pretrained`` folders whose
    ``config.json`` carries the label names).

    Returns:
        ``{"history": [per-epoch metrics], "best": {...} or None, "output": folder}``.

    Raises:
        ValueError: bad settings or data (before any training step), or a checkpoint that does not fit.
    """
    config.check()
    processes = start_processes(config.device)
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        if config.deterministic:
            torch.use_deterministic_algorithms(True)
        return _fit(config, processes)
    finally:
        torch.use_deterministic_algorithms(deterministic)  # a caller's setting is its own
        processes.close()


# The steps of a run, as torchvision's references/video_classification/train.py splits its main(): build the
# data, the model and the optimizer; restore a checkpoint; train one epoch; evaluate; end the epoch (metrics,
# saved models, TensorBoard, the checkpoint). What torchvision keeps in main()'s locals is one _Run here.


@dataclass
class _Run:
    """A run once built: its data, model and optimizer, and where it stands (all of which a checkpoint holds)."""

    config: TrainConfig
    processes: Processes
    train_set: Any
    val_set: Any
    num_classes: int
    label_names: List[str]
    model: nn.Module
    trained: nn.Module  # the model, or its DistributedDataParallel wrapper
    samples: SeededSamples
    sampler: ResumableSampler
    steps_per_epoch: int
    global_batch: int
    lr: float
    parameters: List[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    identity: Dict[str, Any] = field(default_factory=dict)
    history: List[Dict[str, Any]] = field(default_factory=list)
    best: Optional[Dict[str, Any]] = None
    start_epoch: int = 0
    start_step: int = 0
    global_step: int = 0
    sums: _EpochSums = field(default_factory=_EpochSums)

    @property
    def output(self) -> Path:
        return Path(self.config.output)

    @property
    def device(self) -> torch.device:
        return self.processes.device


def _build_data(config: TrainConfig, processes: Processes) -> Tuple[Any, Any, int, List[str]]:
    """The datasets, the number of classes and their names, checked before the model is built."""
    train_set = open_dataset(config.train, train=True, clip_len=config.clip_len,
                             frame_interval=config.frame_interval, backend=config.backend, seed=config.seed,
                             label_names=config.label_names, what="--train")
    val_set = None
    if config.val:
        val_set = open_dataset(config.val, train=False, clip_len=config.clip_len,
                               frame_interval=config.frame_interval, num_clips=config.eval_clips,
                               backend=config.backend, label_names=config.label_names, what="--val")
    num_classes = config.num_classes or len(train_set.classes) or 1 + max(label for _, label in train_set.samples)
    check_datasets(train_set, val_set, num_classes=num_classes, batch_size=config.batch_size,
                   world_size=processes.world_size, backend=config.backend)
    label_names = label_names_of(train_set, num_classes)
    if len(label_names) != num_classes:
        raise ValueError(f"--num-classes {num_classes} does not match the {len(label_names)} training classes "
                         f"({', '.join(label_names[:10])})")
    return train_set, val_set, num_classes, label_names


def _build_trained_model(config: TrainConfig, processes: Processes, num_classes: int, train_set,
                         val_set) -> Tuple[nn.Module, nn.Module]:
    """The model on its device (and the datasets' transforms, which come from its cfg), and what trains it:
    the model itself, or its DistributedDataParallel wrapper."""
    device = processes.device
    model = build_model(config, num_classes)
    train_set.transform = transforms_for(model, train=True, crop_size=config.crop_size)
    if val_set is not None:
        val_set.transform = transforms_for(model, crop_size=config.crop_size)
    minimum = model.min_input_size[0]
    if config.clip_len < minimum:
        raise ValueError(f"clip_len {config.clip_len} is below {config.model}'s minimum of {minimum} frames")
    model.to(device, torch.float64 if config.float64 else None)
    if config.sync_bn and processes.distributed:
        convert_sync_batchnorm(model, device)
    trained = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
        if processes.distributed else model
    return model, trained


def _build(config: TrainConfig, processes: Processes) -> _Run:
    """Data, model, sampler, optimizer and lr schedule: a run at its start."""
    train_set, val_set, num_classes, label_names = _build_data(config, processes)
    model, trained = _build_trained_model(config, processes, num_classes, train_set, val_set)
    samples = SeededSamples(train_set, config.seed)
    sampler = ResumableSampler(samples, processes.world_size, processes.rank, seed=config.seed)
    steps_per_epoch = sampler.num_samples // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    global_batch = config.batch_size * processes.world_size
    lr = config.lr if config.lr is not None else default_lr(config.optimizer, global_batch)
    weight_decay = config.weight_decay if config.weight_decay is not None else WEIGHT_DECAY[config.optimizer]
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(parameters, lr=lr, momentum=config.momentum, weight_decay=weight_decay)
    else:
        optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    warmup_steps = min(round(config.warmup_epochs * steps_per_epoch), total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps=total_steps, warmup_steps=warmup_steps))
    # bfloat16 has float32's range: no loss scaling is needed; the scaler is kept (disabled) so that a
    # checkpoint has one layout whatever the precision
    scaler = torch.amp.GradScaler(processes.device.type, enabled=False)
    identity = _identity(config, processes, num_classes, label_names, steps_per_epoch)
    return _Run(config, processes, train_set, val_set, num_classes, label_names, model, trained, samples, sampler,
                steps_per_epoch, global_batch, lr, parameters, optimizer, scheduler, scaler, identity)


def _restore(run: _Run) -> None:
    """Continue from ``output/checkpoint.pt``: every state, and where the run stood (``--resume``)."""
    path = run.output / CHECKPOINT_NAME
    checkpoint = _load_checkpoint(path)
    _check_identity(checkpoint["identity"], run.identity, path)
    _check_model_state(checkpoint["model"], run.model, path)
    run.model.load_state_dict(checkpoint["model"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    run.scheduler.load_state_dict(checkpoint["scheduler"])
    run.scaler.load_state_dict(checkpoint["scaler"])
    mine = checkpoint["processes"][run.processes.rank]
    _set_rng_state(mine["rng"], run.device)
    run.sums = _EpochSums(**mine["sums"])
    run.start_epoch, run.start_step, run.global_step = (checkpoint["epoch"], checkpoint["step_in_epoch"],
                                                        checkpoint["step"])
    run.history, run.best = list(checkpoint["history"]), checkpoint["best"]


def _save_checkpoint(run: _Run, epoch: int, step_in_epoch: int) -> None:
    """One dict of every state (each process's RNG and sums gathered to rank 0), written atomically."""
    per_process = gather_objects(run.processes, {"rng": _rng_state(run.device), "sums": asdict(run.sums)})
    if not run.processes.is_main:
        return
    state = {"format": CHECKPOINT_FORMAT, "identity": run.identity, "model": run.model.state_dict(),
             "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
             "scaler": run.scaler.state_dict(), "processes": per_process, "epoch": epoch,
             "step_in_epoch": step_in_epoch, "step": run.global_step, "history": run.history, "best": run.best}
    write_atomically(run.output / CHECKPOINT_NAME, lambda handle: torch.save(state, handle))


def _train_step(run: _Run, clips: Optional[torch.Tensor], labels: torch.Tensor,
                unreadable: List[Unreadable]) -> float:
    """One optimizer step on one batch; its loss."""
    config, device = run.config, run.device
    report_unreadable(unreadable, "training")
    run.sums.skipped += len(unreadable)
    if clips is None:  # every process must step together (DDP): no batch, no step anywhere
        names = ", ".join(item.path for item in unreadable)
        raise ValueError(f"no video of a whole training batch could be read ({names}); remove the "
                         "unreadable files, or use a larger --batch-size")
    clips = clips.to(device, _parameter_dtype(run.model), non_blocking=True)
    labels = labels.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp):
        logits = run.trained(clips)
    loss = F.cross_entropy(logits.float(), labels)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.parameters, config.grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    run.global_step += 1
    run.sums.loss += loss.item() * len(labels)
    run.sums.correct += int((logits.argmax(dim=1) == labels).sum())
    run.sums.samples += len(labels)
    return loss.item()


def _train_one_epoch(run: _Run, epoch: int, loader_generator: torch.Generator) -> None:
    """This process's share of the training set for ``epoch``, from where a resumed run stopped; a checkpoint
    every ``save_every`` steps."""
    from tqdm import tqdm

    config = run.config
    run.samples.set_epoch(epoch)
    run.sampler.set_epoch(epoch)
    first_step = run.start_step if epoch == run.start_epoch else 0
    run.sampler.set_start(first_step * config.batch_size)
    if first_step == 0:
        run.sums = _EpochSums()
    loader = DataLoader(run.samples, batch_size=config.batch_size, sampler=run.sampler, num_workers=config.workers,
                        drop_last=True, pin_memory=run.device.type == "cuda", generator=loader_generator,
                        collate_fn=collate_readable)
    run.trained.train()
    bar = tqdm(total=run.steps_per_epoch, initial=first_step, desc=f"epoch {epoch + 1}/{config.epochs}",
               disable=not (run.processes.is_main and config.progress), leave=False)
    started = time.perf_counter()
    step_in_epoch = first_step
    for clips, labels, unreadable in loader:
        if step_in_epoch >= run.steps_per_epoch:
            break
        loss = _train_step(run, clips, labels, unreadable)
        step_in_epoch += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        if config.save_every and run.global_step % config.save_every == 0 and step_in_epoch < run.steps_per_epoch:
            run.sums.seconds += time.perf_counter() - started
            started = time.perf_counter()
            _save_checkpoint(run, epoch, step_in_epoch)
    bar.close()
    run.sums.seconds += time.perf_counter() - started


def _epoch_metrics(run: _Run, epoch: int) -> Dict[str, Any]:
    """The epoch's line of ``metrics.jsonl``: training sums reduced over processes, then the evaluation."""
    sums = run.sums
    reduced = all_reduce_sum(run.processes, torch.tensor([sums.loss, sums.correct, sums.samples, sums.skipped],
                                                         dtype=torch.float64, device=run.device)).cpu()
    seconds = max(s["seconds"] for s in gather_objects(run.processes, {"seconds": sums.seconds}))
    line = {"epoch": epoch + 1, "step": run.global_step, "lr": run.optimizer.param_groups[0]["lr"],
            "train_loss": float(reduced[0] / reduced[2]), "train_top1": 100.0 * float(reduced[1] / reduced[2]),
            "train_clips": int(reduced[2]), "train_skipped": int(reduced[3]),
            "clips_per_s": float(reduced[2]) / max(seconds, 1e-9),
            "seconds": seconds}
    if run.val_set is not None:
        started = time.perf_counter()
        metrics = evaluate(run.model, run.val_set, run.processes, batch_size=run.config.batch_size,
                           workers=run.config.workers, amp=run.config.amp)
        line.update({f"val_{k}": v for k, v in metrics.items()}, val_seconds=time.perf_counter() - started)
    return line


def _end_epoch(run: _Run, epoch: int, line: Dict[str, Any], board) -> None:
    """Keep the line (and the best one), write ``metrics.jsonl``, ``last/``, ``best/`` and the TensorBoard
    scalars (rank 0), print the line, and checkpoint the run at the start of the next epoch."""
    run.history.append(line)
    is_best = run.val_set is not None and (run.best is None or line["val_top1"] > run.best["val_top1"])
    if is_best:
        run.best = dict(line)
    run.sums = _EpochSums()
    if run.processes.is_main:
        output, history = run.output, run.history
        write_atomically(output / METRICS_NAME,
                         lambda handle: handle.write("".join(json.dumps(h) + "\n" for h in history).encode()))
        sizes = (len(run.train_set), len(run.val_set) if run.val_set is not None else None)
        _save_model(run.model, output / "last", run.label_names, run.config, line, sizes)
        if is_best:
            _save_model(run.model, output / "best", run.label_names, run.config, line, sizes)
        if board is not None:
            for key, value in line.items():
                if key != "epoch":
                    board.add_scalar(key, value, line["epoch"])
            board.flush()
        summary = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in line.items())
        print(f"i3zoo train: {summary}", flush=True)
    _save_checkpoint(run, epoch + 1, 0)
    run.processes.barrier()


def _open_board(run: _Run):
    """A TensorBoard writer on rank 0 when asked for, else None."""
    if not (run.config.tensorboard and run.processes.is_main):
        return None
    from torch.utils.tensorboard import SummaryWriter

    # purge_step: a run killed after writing an epoch's scalars but before its checkpoint writes them again
    return SummaryWriter(str(run.output / TENSORBOARD_NAME),
                         purge_step=run.start_epoch + 1 if run.config.resume else None)


def _fit(config: TrainConfig, processes: Processes) -> Dict[str, Any]:
    run = _build(config, processes)
    if config.resume:
        _restore(run)
    if processes.is_main:
        run.output.mkdir(parents=True, exist_ok=True)
        print(f"i3zoo train: {config.model}, {run.num_classes} classes, {len(run.train_set)} training videos"
              f"{f', {len(run.val_set)} validation videos' if run.val_set is not None else ''}; "
              f"{processes.world_size} process(es) on {processes.device.type}, global batch {run.global_batch}, "
              f"lr {run.lr:g}, {run.steps_per_epoch} steps per epoch", flush=True)
    board = _open_board(run)
    try:
        loader_generator = torch.Generator().manual_seed(config.seed)  # worker seeds only; items seed themselves
        for epoch in range(run.start_epoch, config.epochs):
            _train_one_epoch(run, epoch, loader_generator)
            _end_epoch(run, epoch, _epoch_metrics(run, epoch), board)
    finally:
        if board is not None:
            board.close()
    return {"history": run.history, "best": run.best, "output": str(run.output)}
