"""The model as a traced graph: a ``torch.export`` program or an ONNX file, with a dynamic batch and clip length.

Both trace with ``torch.export`` (ONNX through ``torch.onnx.export(..., dynamo=True)``, which needs the
``onnxscript`` package: ``pip install "i3zoo[onnx]"``). The batch N and the clip length T are symbolic; the frame
size (H, W) is fixed at export. The model is traced in eval mode (BatchNorm
on its running statistics, no dropout) and the input check of ``forward`` is kept in the program.

Why T has a floor above the model's minimum clip in a ``torch.export`` program: while tracing, torch decides
memory layouts (contiguity, the convolution's memory format), which differ for a dimension of size 1, so it
specialises every temporal size computed by a strided layer that could be 1 (a guard ``T' != 1``). A dynamic T
therefore needs every time-reduced feature map to keep at least 2 frames: :func:`dynamic_min_frames` (17 for the
seed ResNets, whose time is reduced 16x; 4 for the I3D and C2D designs; 16 for DenseNets; the SlowOnly design
never reduces time and takes its minimum, 1). The program checks it on every call; for shorter clips export with
a fixed T (``dynamic_frames=False``). A pool that rounds its output up (``ceil_mode``, Inception-v1's) makes each
size depend on the parity of its input, which torch.export also specialises: there T steps from the floor in
multiples of the time stride up to the last such pool (:func:`dynamic_frames_step`; 13, 21, 29, ... for
Inception-v1). The ONNX graph carries no such guard: onnxruntime runs the file at any T from
the model's own minimum (``tests/test_export.py`` checks it there).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .files import write_atomically

__all__ = ["dynamic_min_frames", "dynamic_frames_step", "export_program", "export_onnx", "ONNX_INPUT", "ONNX_OUTPUT"]

#: the names of the ONNX graph's input, (N, C, T, H, W), and output, (N, num_classes)
ONNX_INPUT, ONNX_OUTPUT = "clip", "logits"


def _changes_time(spec) -> bool:
    """Whether a layer (``LayerSpec``) can give another number of frames than it takes."""
    return spec.stride[0] != 1 or spec.kernel[0] - 2 * spec.padding[0] != 1


def _time_sizes(path: Iterable, frames: int) -> List[int]:
    """The number of frames after each layer of ``path`` (``LayerSpec``s: kernel, stride, padding as (t, h, w))
    that changes it, and after every layer that follows."""
    sizes, changed = [], False
    for spec in path:
        changed = changed or _changes_time(spec)
        frames = spec.output_size(frames, axis=0)  # the spec's own rule (ceil-mode pools round up)
        if changed:
            sizes.append(frames)
    return sizes


def dynamic_min_frames(model: nn.Module) -> int:
    """The shortest clip a ``torch.export`` program of ``model`` with a dynamic clip length takes.

    The model's minimum T, raised until every temporal size computed from T by a layer that changes it is at
    least 2 (see the module docstring for why).
    """
    # a head that pools time (DeepMind's I3D: 2 frames at stride 1) reduces it once more
    path = [*model.reduction_path(), *getattr(model, "head_reduction_path", lambda: ())()]
    frames = model.min_input_size[0]
    while min(_time_sizes(path, frames), default=2) < 2:
        frames += 1
    return frames


def dynamic_frames_step(model: nn.Module) -> int:
    """The step between the clip lengths a dynamic ``torch.export`` program takes: 1, or, where a ceil-mode pool
    changes time, the product of the temporal strides up to the last such pool (see the module docstring)."""
    step = last_ceil_step = 1
    for spec in model.reduction_path():
        step *= spec.stride[0]
        if spec.ceil_mode and _changes_time(spec):
            last_ceil_step = step
    return last_ceil_step


def _checked_frame_size(model: nn.Module, frame_size: Sequence[int]) -> Tuple[int, int]:
    size = tuple(frame_size)
    _, min_h, min_w = model.min_input_size
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in size) \
            or size[0] < min_h or size[1] < min_w:
        raise ValueError(f"frame_size must be (H, W) with H >= {min_h} and W >= {min_w} for "
                         f"{type(model).__name__}; got {frame_size!r}")
    return size  # type: ignore[return-value]


def _trace_inputs(model: nn.Module, frame_size: Sequence[int], frames: Optional[int], dynamic_frames: bool):
    """The example clip and the ``dynamic_shapes`` of a trace: N >= 1 and T >= the floor symbolic, H and W fixed."""
    if not callable(getattr(model, "reduction_path", None)):
        raise TypeError(f"export takes an i3zoo model (from i3zoo.create_model, with a classifier or num_classes=0); "
                        f"got {type(model).__name__}")
    height, width = _checked_frame_size(model, frame_size)
    floor = dynamic_min_frames(model) if dynamic_frames else model.min_input_size[0]
    step = dynamic_frames_step(model) if dynamic_frames else 1
    if frames is None:
        frames = max(floor, 2) if step == 1 else floor + step  # an example of k = 2 steps: k = 1 is specialised
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < floor or (frames - floor) % step:
        what = "the floor of a dynamic clip length" if dynamic_frames else "the minimum clip length"
        steps = f" and T = {floor} + a multiple of {step}" if step > 1 else ""
        raise ValueError(f"frames must be an integer >= {floor} ({what} of {type(model).__name__}){steps}; "
                         f"got {frames!r}")
    parameter = next(model.parameters())
    # example sizes of 2, never 1: torch specialises a dimension whose example size is 1
    example = torch.zeros(2, model.in_chans, max(frames, 2) if dynamic_frames else frames, height, width,
                          dtype=parameter.dtype, device=parameter.device)
    dims = {0: torch.export.Dim("batch", min=1)}
    if dynamic_frames and step == 1:
        dims[2] = torch.export.Dim("frames", min=floor)
    elif dynamic_frames:  # T = floor + step * (k - 1), k >= 1
        dims[2] = step * torch.export.Dim("frames_steps", min=1) + (floor - step)
    return example, (dims,)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Trace in eval mode and give the model back in the mode it was in."""
    was_training = model.training
    try:
        yield model.eval()
    finally:
        model.train(was_training)


def export_program(model: nn.Module, frame_size: Sequence[int] = (224, 224), *, frames: Optional[int] = None,
                   dynamic_frames: bool = True) -> "torch.export.ExportedProgram":
    """``torch.export.export`` of an i3zoo model with a dynamic batch and (by default) clip length.

    Args:
        model: an i3zoo model (``I3DNet``), traced in eval mode.
        frame_size: the (H, W) every input will have.
        frames: the example clip length; with ``dynamic_frames=False`` the only T the program takes.
        dynamic_frames: T symbolic, from :func:`dynamic_min_frames` up; ``False`` fixes it to ``frames``.

    Returns:
        The exported program; ``program.module()(clip)`` maps an (N, C, T, H, W) clip to (N, num_classes).

    Raises:
        ValueError: a frame size or clip length below what the model (or a dynamic T) takes.
        TypeError: ``model`` is not an i3zoo model (e.g. a ``features_only`` wrapper).
    """
    example, dynamic_shapes = _trace_inputs(model, frame_size, frames, dynamic_frames)
    with _eval_mode(model):
        return torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes)


def export_onnx(model: nn.Module, path: Union[str, os.PathLike], frame_size: Sequence[int] = (224, 224), *,
                frames: Optional[int] = None, dynamic_frames: bool = True) -> Path:
    """Write ``model`` as an ONNX file (input ``clip``: (N, C, T, H, W) float, output ``logits``), atomically.

    Traced as :func:`export_program` traces (the same arguments); the file holds the weights. A file that exists is
    replaced only once the new one is complete.

    Returns:
        The path written.
    """
    example, dynamic_shapes = _trace_inputs(model, frame_size, frames, dynamic_frames)
    with _eval_mode(model):
        program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=dynamic_shapes,
                                    input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT], verbose=False)
    # serialised in memory and written through one atomic writer (ONNXProgram.save wants a path); every model
    # here is far below protobuf's 2 GB, past which the weights would have to go to a separate file
    serialized = program.model_proto.SerializeToString()
    write_atomically(path, lambda handle: handle.write(serialized))
    return Path(path)
