"""``optimize_for_inference``: a faster, eval-only copy of a model with the same call signature, and
:func:`choose_inference_path`: which copy a job of a given length should run.

BatchNorm is folded into the convolution it follows (torch's ``fuse_conv_bn_eval``), the weights can live in
the channels-last 3D layout (what oneDNN and cuDNN prefer for Conv3d) and in bfloat16 (AMX units on recent
CPUs, tensor cores on GPUs), and the result can be ``torch.compile``d with Inductor's freezing: the weights
become constants, so Inductor folds them and fuses ReLU and the residual additions into oneDNN's convolution
post-ops (on CPU; CUDA graphs on GPU). Freezing is switched on around each call of our compiled copy only
(:class:`_Frozen`), never left set globally. In bfloat16 on a CPU the first convolution takes an even number of
input channels (:func:`_zero_channel`). A compiled copy keeps one static shape per clip size: a smaller batch
(the last one of a job) is padded to the first call's batch and the padding dropped, which costs less than a
recompile (tens of seconds).
Input and output stay float32 (N, C, T, H, W) -> (N, num_classes); the input check still runs first.
"""

from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .models.layers import check_clip

__all__ = ["optimize_for_inference", "InferenceModel", "conv_bn_pairs", "native_bfloat16", "replace_module",
           "compile_options", "InferencePath", "choose_inference_path", "PRECISIONS", "COMPILE_SECONDS",
           "COMPILED_SHARE"]


def conv_bn_pairs(model: nn.Module) -> List[Tuple[str, str]]:
    """(conv, batchnorm) module names where the BatchNorm directly normalises that convolution's output.

    The pairs are the family's declaration (``conv_bn_pairs``: child names relative to any module), e.g. every
    ResNet block's ``convK``/``bnK`` and ``downsample.0``/``.1``, every Inception-v1 ``BasicConv3d``'s
    ``conv``/``bn``; a DenseNet is pre-activation (BN-ReLU-conv), so it declares only ``conv0``/``norm0`` and each
    dense layer's ``conv1``/``norm2``.
    """
    pairs = []
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        for conv, bn in model.conv_bn_pairs:
            try:
                found = module.get_submodule(conv), module.get_submodule(bn)
            except AttributeError:
                continue
            if isinstance(found[0], nn.Conv3d) and isinstance(found[1], nn.BatchNorm3d):
                pairs.append((prefix + conv, prefix + bn))
    return pairs


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule called ``name`` (dotted) is."""
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent), attr, new)


def _fuse(model: nn.Module) -> nn.Module:
    for conv_name, bn_name in conv_bn_pairs(model):
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        replace_module(model, conv_name, fuse_conv_bn_eval(conv, bn))
        replace_module(model, bn_name, nn.Identity())
    return model


class _Float32AvgPool3d(nn.Module):
    """AvgPool3d computed in float32: PyTorch's CPU kernel has no bfloat16 version (DenseNet transitions)."""

    def __init__(self, pool: nn.AvgPool3d) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x.float()).to(x.dtype)


def _pools_in_float32(model: nn.Module) -> None:
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.AvgPool3d):
            replace_module(model, name, _Float32AvgPool3d(module))


def _zero_channel(conv: nn.Conv3d) -> None:
    """Give the model's first convolution one more input channel, of zero weights, fed zeros: the same sums.

    oneDNN's bfloat16 kernels (AMX, AVX512-BF16) take input channels in pairs: with RGB's three, the stem, a
    ResNet's largest convolution at batch 1, fell to a slower kernel on the AMX Xeon (the README's benchmark
    machine; profiled while this was written: 18 ms against 9 ms for I3ResNet50-i3d's stem at 8x224x224). The
    zero channel is added at the convolution (a pre-hook pads its input), not to the clip: a model's input
    transform (Inception's re-normalisation) reads the clip's channels one by one.
    """
    weight = conv.weight
    layout = (torch.channels_last_3d if weight.is_contiguous(memory_format=torch.channels_last_3d)
              else torch.contiguous_format)
    padded = torch.cat([weight, weight.new_zeros(weight.shape[0], 1, *weight.shape[2:])], 1)
    conv.weight = nn.Parameter(padded.contiguous(memory_format=layout), requires_grad=False)
    conv.in_channels += 1
    conv.register_forward_pre_hook(_feed_zero_channel)


def _feed_zero_channel(conv: nn.Module, args: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, ...]:
    return (nn.functional.pad(args[0], (0, 0, 0, 0, 0, 0, 0, 1)),) + args[1:]  # keeps channels-last


def native_bfloat16(device: torch.device) -> bool:
    """Whether bfloat16 convolutions on ``device`` run on fast kernels.

    GPUs from Ampere on, and CPUs whose oneDNN has bfloat16 kernels (AVX512-BF16, AMX). Elsewhere (AVX2-only
    CPUs) PyTorch falls back to a reference convolution that is far slower than float32
    (the benchmark measures the ratio on the machine it runs on).
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(supported and supported())
    return True  # other backends: no known slow path


def compile_options(device: torch.device) -> Dict[str, Any]:
    """Inductor options of our compile: freezing everywhere, CUDA graphs on a GPU (our shapes are static)."""
    options: Dict[str, Any] = {"freezing": True}
    if device.type == "cuda":
        options["triton.cudagraphs"] = True
    return options


def inductor_cache_dir() -> str:
    """Where Inductor keeps compiled graphs and kernels between runs (``TORCHINDUCTOR_CACHE_DIR`` to move it)."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return cache_dir()


class _Frozen:
    """``torch.compile(model)`` with Inductor's freezing, scoped to this model's calls.

    The option alone is not enough: Dynamo decides while tracing whether parameters become graph constants,
    reading ``torch._inductor.config.freezing`` itself (``is_parameter_freezing``), before Inductor applies the
    compile's options. Without the global set at that moment the weights stay graph inputs and nothing is frozen
    or fused. So the flag is set around each call (a trace or recompile happens inside one) and restored after.
    """

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.options = compile_options(device)
        self.compiled = torch.compile(model, dynamic=False, options=self.options)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=self.options["freezing"]):
            return self.compiled(x)


class InferenceModel(nn.Module):
    """Wraps an optimized copy: float32 (N, C, T, H, W) in, float32 logits out.

    Compiled, it runs one static shape per clip size: a batch smaller than the first call's is padded (with
    copies of its last clip) and the padding dropped; a larger one runs in chunks of the first call's size.
    The first compiled call prints its cost once, to stderr (``announce=False``: silent).
    """

    def __init__(self, model: nn.Module, *, dtype: torch.dtype, channels_last: bool, compiled: bool,
                 announce: bool = True) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
        self.in_chans, self.min_input_size = model.in_chans, model.min_input_size
        self.name = type(model).__name__
        self.compiled, self.announce = compiled, announce
        self.batch_size: Optional[int] = None  # of the compiled graph, fixed by the first call
        #: seconds the first compiled call took (compilation included), once it has run
        self.first_call_seconds: Optional[float] = None
        device = next(model.parameters()).device
        # dynamic=False: a symbolic batch would make oneDNN repack every convolution's weights at each call
        self._forward = _Frozen(model, device) if compiled else model

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_clip(x, model_name=self.name, in_chans=self.in_chans, min_size=self.min_input_size)
        x = x.to(dtype=self.dtype, memory_format=self.memory_format)
        if not self.compiled:
            return self._forward(x).float()
        if self.batch_size is None:
            self.batch_size = len(x)
            started = time.perf_counter()
            output = self._forward(x).float().clone()
            self.first_call_seconds = time.perf_counter() - started
            if self.announce:
                print(f"i3zoo: compiled {self.name} for batches of {len(x)} in {self.first_call_seconds:.1f} s "
                      f"(once per run; Inductor's cache in {inductor_cache_dir()} makes the next run start faster)",
                      file=sys.stderr, flush=True)
            return output
        return torch.cat([self._padded(chunk) for chunk in x.split(self.batch_size)])

    def _padded(self, chunk: torch.Tensor) -> torch.Tensor:
        count = len(chunk)
        if count < self.batch_size:
            filler = chunk[-1:].expand(self.batch_size - count, *chunk.shape[1:])
            chunk = torch.cat([chunk, filler]).contiguous(memory_format=self.memory_format)
        # a copy: CUDA graphs reuse their output buffers at the next call
        return self._forward(chunk)[:count].float().clone()


def optimize_for_inference(
    model: nn.Module,
    *,
    dtype: Optional[torch.dtype] = None,
    channels_last: bool = True,
    fuse_bn: bool = True,
    compile: bool = False,
    announce: bool = True,
) -> InferenceModel:
    """An eval-mode copy of ``model`` for inference; ``model`` itself is left as it is.

    Args:
        model: an i3zoo model (a registered one, or an inflated 2D network: ``i3zoo.inflate``).
        dtype: compute dtype (``torch.bfloat16`` for AMX / tensor cores); default: the model's. bfloat16 where
            the hardware has no bfloat16 kernels (see :func:`native_bfloat16`) is much slower and warns.
        channels_last: keep weights and activations in the channels-last 3D layout.
        fuse_bn: fold each BatchNorm into the convolution before it.
        compile: ``torch.compile`` the result with Inductor's freezing (see :func:`compile_options`; a slow first
            call, cached between runs; needs a C++ compiler on CPU).
        announce: print the first compiled call's cost to stderr.

    Returns:
        A module taking float32 (N, C, T, H, W) clips and returning float32 (N, num_classes) logits.
    """
    from .models._model import I3DNet
    from .models.inflated import InflatedNet

    if not isinstance(model, (I3DNet, InflatedNet)):
        raise TypeError(f"optimize_for_inference takes an i3zoo model (not features_only); got {type(model).__name__}")
    optimized = copy.deepcopy(model).eval()
    # an inflated 2D network keeps its own layers, whose BatchNorm pairs i3zoo does not list: Inductor's freezing
    # (compile=True) folds them there
    hand_written = isinstance(model, I3DNet)
    if fuse_bn and hand_written:
        optimized = _fuse(optimized)
    dtype = dtype or next(model.parameters()).dtype
    device = next(model.parameters()).device
    if dtype == torch.bfloat16 and not native_bfloat16(device):
        lacking = "a GPU before Ampere" if device.type == "cuda" else "no AVX512-BF16 or AMX"
        warnings.warn(
            f"bfloat16 convolutions have no fast kernels on this {device.type} ({lacking}): PyTorch runs them on "
            "a reference path far slower than float32. Leave dtype=None for float32 unless you want bfloat16 "
            "numerics rather than speed.",
            UserWarning, stacklevel=2,
        )
    optimized = optimized.to(dtype=dtype)
    if dtype == torch.bfloat16:
        _pools_in_float32(optimized)
    if channels_last and hand_written:  # an inflated network mixes 4D and 5D weights: its layouts stay as they are
        optimized = optimized.to(memory_format=torch.channels_last_3d)
    if dtype == torch.bfloat16 and device.type == "cpu" and hand_written and optimized.in_chans % 2:
        _zero_channel(optimized.get_submodule(optimized.first_conv_name))
    for p in optimized.parameters():
        p.requires_grad_(False)
    return InferenceModel(optimized, dtype=dtype, channels_last=channels_last, compiled=compile,
                          announce=announce).eval()


# ---------------------------------------------------------------- which path a job takes

PRECISIONS = ("auto", "float32", "bfloat16")
#: the estimated cost (seconds) of a first compile of a ResNet-50-sized model with a cold Inductor cache, per
#: device type: above what benchmarks/compile_cost.py measured (README; a test checks it); a GPU compiles Triton
#: kernels instead of C++
COMPILE_SECONDS = {"cpu": 60.0, "cuda": 60.0}
#: the compiled, frozen copy's time over the plain float32 model's, per precision: at or above every share
#: measured beside PyTorchVideo (README, the AMX Xeon's benchmark block; a test checks it), so that the rule
#: compiles only where compiling surely repays
COMPILED_SHARE = {"float32": 0.65, "bfloat16": 0.3}


@dataclass(frozen=True)
class InferencePath:
    """The way a job runs its model, and why.

    Attributes:
        precision: ``"float32"`` or ``"bfloat16"`` (what the model computes in; outputs are float32).
        optimized: an :func:`optimize_for_inference` copy (BatchNorm folded, channels-last) rather than the model.
        compiled: that copy ``torch.compile``d with freezing.
        reason: the decision in words, for the line a command prints.
    """

    precision: str
    optimized: bool
    compiled: bool
    reason: str = ""

    def record(self) -> Dict[str, Any]:
        """What ran, as outputs record it (the reason left out)."""
        return {k: v for k, v in asdict(self).items() if k != "reason"}


def choose_inference_path(device: torch.device, *, clips: Union[int, Callable[[int], int]],
                          seconds_per_clip: Callable[[], float], precision: str = "auto",
                          compile: Optional[bool] = None, optimize: Optional[bool] = None,
                          bfloat16_kernels: Optional[bool] = None,
                          compile_seconds: Optional[float] = None) -> InferencePath:
    """The path of a job of ``clips`` clips: compiled where the job is long enough to repay the compile.

    The rule: compiling pays from ``cost / (seconds_per_clip() x (1 - share))`` clips on, where ``cost`` is the
    compile's estimated cost (:data:`COMPILE_SECONDS`), ``seconds_per_clip()`` the plain float32 model's time
    per clip measured on this machine and ``share`` the compiled copy's share of it (:data:`COMPILED_SHARE`,
    in the precision it would run in). A job that long runs the optimized, compiled copy in bfloat16 where
    the device has fast bfloat16 kernels (:func:`native_bfloat16`), else in float32; a shorter job runs the
    optimized copy in float32, eagerly (BatchNorm folded, channels-last: no compile to repay, and faster than
    the plain model on every machine benchmarked). ``precision`` and ``compile``, when given, override their
    half of the rule; ``optimize=False`` runs the plain float32 model as it is.

    Args:
        device: where the model runs.
        clips: the job's number of clips, or a function that counts them up to a bound it is given (it may stop
            counting there: a folder of videos need not be opened whole to know it is long).
        seconds_per_clip: measures the plain float32 model's time per clip (called only when the rule needs it).
        precision: ``"auto"``, ``"float32"`` or ``"bfloat16"``.
        compile: ``True`` / ``False`` to force; ``None``: by the rule.
        optimize: ``False``: the plain model (float32, not compiled); ``None`` / ``True``: an optimized copy.
        bfloat16_kernels: whether the device has fast bfloat16 kernels (default: :func:`native_bfloat16`).
        compile_seconds: the estimated compile cost (default: :data:`COMPILE_SECONDS` of the device type).

    Raises:
        ValueError: a precision not in :data:`PRECISIONS`; ``optimize=False`` with ``compile=True`` or bfloat16.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    if optimize is False:
        if compile or precision == "bfloat16":
            raise ValueError("optimize=False (--no-optimize) runs the plain float32 model, which is never compiled or "
                             "run in bfloat16; drop one of the two requests")
        return InferencePath("float32", optimized=False, compiled=False, reason="as asked")
    fast_bf16 = native_bfloat16(device) if bfloat16_kernels is None else bfloat16_kernels
    would_run = precision if precision != "auto" else ("bfloat16" if fast_bf16 else "float32")
    reason, repays = "", False
    if compile is None or precision == "auto":
        cost = COMPILE_SECONDS.get(device.type, 60.0) if compile_seconds is None else compile_seconds
        count = clips(1) if callable(clips) else clips
        # no clip at all: nothing to time
        saved_per_clip = max(seconds_per_clip() * (1 - COMPILED_SHARE[would_run]), 1e-9) if count else 1e-9
        needed = math.floor(cost / saved_per_clip) + 1
        count = clips(needed) if callable(clips) and count else count
        repays = count >= needed
        reason = (f"{count}{'+' if callable(clips) and repays else ''} clips, compiling pays from ~{needed} on: "
                  f"{'compiled' if repays else 'not compiled'}")
    compiled = repays if compile is None else compile
    if precision == "auto":
        precision = would_run if compiled else "float32"
        reason += f", {precision}" + ("" if fast_bf16 or not compiled else " (no fast bfloat16 kernels here)")
    return InferencePath(precision, True, compiled, reason or "as asked")
