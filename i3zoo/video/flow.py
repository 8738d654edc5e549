"""Optical flow for the flow stream of two-stream I3D, as v-iashin/video_features computes it.

video_features (``models/i3d/extract_i3d.py``, ``models/transforms.py``, ``models/raft/raft_src/raft.py``) makes the
flow stream's input from frames resized to a short side of 256:

1. RAFT (the authors' network and ``raft-sintel.pth``; torchvision's ``raft_large`` with those weights computes the
   same numbers, see ``i3zoo.weights.raft``) between consecutive frames, 20 refinement iterations, the last
   estimate; each frame pair padded to a multiple of 8 by repeating edge pixels, split evenly with the odd pixel
   after (``InputPadder``, ``mode="sintel"``), and the flow **kept padded** (the crop that follows is taken from
   the padded flow, as video_features takes it);
2. the centre crop (224), ``(H - 224) // 2`` from the top and left;
3. clamped to [-20, 20], quantised as DeepMind's flow images were (``128 + 255 / 40 * flow``, rounded half to
   even, as ``torch.round``), and scaled to [-1, 1] (``2 * q / 255 - 1``).

RAFT takes frames scaled to [-1, 1] (the authors' code scales 0..255 inside its forward; torchvision's takes them
scaled). Everything here is plain tensor code: the RAFT model is given (``i3zoo.weights.raft.raft_large_model``).

TV-L1, the flow of the I3D paper (DeepMind computed it on grayscale frames, truncated it to [-20, 20] and rescaled
it to [-1, 1]), is :func:`tvl1_between`: OpenCV's ``DualTVL1OpticalFlow`` with its default parameters, from the
optional ``opencv-contrib-python-headless`` (the ``tvl1`` extra: ``pip install -e '.[tvl1]'``); steps 2 and 3
then apply as for RAFT, to the unpadded flow.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RAFT_ITERATIONS", "FLOW_CLAMP", "FLOW_METHODS", "raft_padding", "pad_for_raft", "center_crop",
           "flow_pairs", "flow_between", "tvl1_between", "quantize_flow", "dequantize_flow", "flow_to_i3d_input"]

#: video_features' RAFT iterations (its ``RAFT.forward(..., iters=20, test_mode=True)``)
RAFT_ITERATIONS = 20
#: how the flow stream's flow is computed: RAFT (video_features') or TV-L1 (the I3D paper's, OpenCV's)
FLOW_METHODS = ("raft", "tvl1")
#: the flow's clamp before quantisation, in pixels (DeepMind's kinetics-i3d, issue 61; video_features' ``Clamp``)
FLOW_CLAMP = 20.0


def raft_padding(height: int, width: int) -> Tuple[int, int, int, int]:
    """``F.pad``'s (left, right, top, bottom) that make (height, width) multiples of 8, as RAFT's ``InputPadder``
    in ``"sintel"`` mode: half before, the odd pixel after."""
    pad_h, pad_w = -height % 8, -width % 8
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


def pad_for_raft(frames: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) frames padded to multiples of 8 by repeating edge pixels (``raft_padding``)."""
    shape = frames.shape
    padded = F.pad(frames.reshape(-1, *shape[-3:]), raft_padding(*shape[-2:]), mode="replicate")
    return padded.reshape(*shape[:-2], *padded.shape[-2:])


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """video_features' ``TensorCenterCrop``: (..., H, W) -> (..., size, size) from ``(H - size) // 2``."""
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    if top < 0 or left < 0:
        raise ValueError(f"frames of {x.shape[-2]}x{x.shape[-1]} are smaller than the {size}x{size} crop")
    return x[..., top:top + size, left:left + size]


@torch.no_grad()
def flow_pairs(raft: nn.Module, frames: torch.Tensor, *, iterations: int = RAFT_ITERATIONS,
               batch_size: int = 16) -> torch.Tensor:
    """Flow between consecutive frames, each pair once: (T + 1, 3, H, W) frames in [0, 255] -> (T, 2, H', W') flow
    in pixels (x, y), H' and W' the sizes padded to multiples of 8 (``pad_for_raft``; kept, as video_features).

    Args:
        raft: torchvision's ``raft_large`` (or any RAFT of its interface), in eval mode, on the frames' device.
        frames: RGB frames, float or uint8, 0..255.
        iterations: refinement iterations; the last estimate is returned.
        batch_size: frame pairs per RAFT call.
    """
    if frames.dim() != 4 or frames.shape[1] != 3 or frames.shape[0] < 2:
        raise ValueError(f"flow_pairs takes (T + 1, 3, H, W) RGB frames with T >= 1; got {tuple(frames.shape)}")
    return flow_between(raft, frames[:-1], frames[1:], iterations=iterations, batch_size=batch_size)


@torch.no_grad()
def flow_between(raft: nn.Module, first: torch.Tensor, second: torch.Tensor, *,
                 iterations: int = RAFT_ITERATIONS, batch_size: int = 16) -> torch.Tensor:
    """Flow from each of ``first`` to the same position of ``second``: (P, 3, H, W) frames each, 0..255 ->
    (P, 2, H', W'), as :func:`flow_pairs` (which is this on consecutive frames)."""
    _check_pairs("flow_between", first, second)
    # the authors' RAFT.forward, operation for operation
    first, second = (2 * (pad_for_raft(f.float()) / 255.0) - 1.0 for f in (first, second))
    flows: List[torch.Tensor] = []
    for start in range(0, first.shape[0], batch_size):
        end = start + batch_size
        flows.append(raft(first[start:end], second[start:end], num_flow_updates=iterations)[-1])
    return torch.cat(flows)


def tvl1_between(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """TV-L1 flow from each of ``first`` to the same position of ``second``: (P, 3, H, W) RGB frames, 0..255 ->
    (P, 2, H, W) flow in pixels (x, y) on the frames' device, computed by OpenCV's ``DualTVL1OpticalFlow`` (default
    parameters) on the frames in grayscale (``cv2.COLOR_RGB2GRAY`` of the frames as 8-bit images).

    Raises:
        UsageError: OpenCV's contrib build (``cv2.optflow``) is not installed.
    """
    _check_pairs("tvl1_between", first, second)
    cv2 = _opencv_contrib()
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()

    def gray(frame: torch.Tensor):
        image = frame.detach().round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)

    flows = [torch.from_numpy(tvl1.calc(gray(a), gray(b), None)).permute(2, 0, 1) for a, b in zip(first, second)]
    return torch.stack(flows).to(first.device)


def _check_pairs(caller: str, first: torch.Tensor, second: torch.Tensor) -> None:
    """``ValueError`` unless ``first`` and ``second`` are two (P, 3, H, W) stacks of RGB frames of one shape."""
    if first.shape != second.shape or first.dim() != 4 or first.shape[1] != 3:
        raise ValueError(f"{caller} takes two (P, 3, H, W) stacks of RGB frames; got {tuple(first.shape)} and "
                         f"{tuple(second.shape)}")


def _opencv_contrib():
    """``cv2`` with its contrib modules, or a ``UsageError`` saying what to install."""
    from ..errors import UsageError

    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is None or not hasattr(cv2, "optflow"):
        raise UsageError("TV-L1 flow needs OpenCV's contrib build (cv2.optflow): pip install -e '.[tvl1]' "
                         "(opencv-contrib-python-headless)" + ("" if cv2 is None else
                                                               f"; the installed OpenCV {cv2.__version__} lacks it"))
    return cv2


def quantize_flow(flow: torch.Tensor, crop_size: int = 224) -> torch.Tensor:
    """Step 2 and the first half of step 3: (T, 2, H, W) flow in pixels -> (T, 2, crop, crop) ``int16`` levels
    0..256 (centre crop, clamp to ±20, ``round(128 + 255 / 40 * flow)``; 256 where the flow is +20 exactly)."""
    cropped = center_crop(flow, crop_size).clamp(-FLOW_CLAMP, FLOW_CLAMP)
    return (128 + 255 / (2 * FLOW_CLAMP) * cropped).round().to(torch.int16)


def dequantize_flow(levels: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The rest of step 3: (T, 2, crop, crop) levels -> (2, T, crop, crop) I3D input in [-1, 1], ``2 * q / 255 - 1``."""
    return (2 * levels.to(dtype) / 255 - 1).permute(1, 0, 2, 3)


def flow_to_i3d_input(flow: torch.Tensor, crop_size: int = 224) -> torch.Tensor:
    """video_features' flow transform: (T, 2, H, W) flow in pixels -> (2, T, crop, crop) in [-1, 1] (steps 2 and 3
    of the module docstring): centre crop, clamp to ±20, ``round(128 + 255 / 40 * flow)``, ``2 * q / 255 - 1``."""
    return dequantize_flow(quantize_flow(flow, crop_size), flow.dtype)
