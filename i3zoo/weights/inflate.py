"""Inflation of 2D ImageNet weights into 3D video networks (I3D).

The rule comes from Carreira & Zisserman, *Quo Vadis, Action Recognition?* (CVPR 2017): a 2D kernel W of
shape (O, I, h, w) becomes a 3D kernel of shape (O, I, t, h, w). Two modes are offered:

* ``center`` -- slice t//2 is W, every other slice is zero (Girdhar et al., *Detect-and-Track*, 2018).
* ``mean``   -- every slice is W / t ("replicate and rescale", the I3D paper). The t taps sum to W, so a video
  of one repeated frame gives the 2D answer provided the temporal padding replicates the edge frames.

Everything that is not a convolution kernel (BatchNorm parameters and statistics, biases, the classifier)
is copied unchanged. The 3D models keep torchvision's module names, so a 2D key maps to its 3D key by
identity; the loader below is therefore a strict one-to-one check of names and shapes.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Sequence, Tuple, Union

import torch

__all__ = [
    "INFLATION_MODES",
    "CheckpointMismatchError",
    "check_inflation_mode",
    "inflate_conv_weight",
    "inflate_state_dict",
    "remap_legacy_densenet_keys",
]

INFLATION_MODES: Tuple[str, ...] = ("center", "mean")

# torchvision's first DenseNet checkpoints name dense-layer modules 'norm.1', 'conv.2', ...; torchvision maps
# them with this very pattern when it loads them (torchvision/models/densenet.py, _load_state_dict).
_LEGACY_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


class CheckpointMismatchError(ValueError):
    """A 2D checkpoint does not fit the 3D model: keys are missing, unexpected, or of the wrong shape."""


def check_inflation_mode(mode: str) -> str:
    """Return ``mode`` if it is a known inflation mode, else raise ``ValueError`` naming the allowed ones."""
    if mode not in INFLATION_MODES:
        allowed = ", ".join(repr(m) for m in INFLATION_MODES)
        raise ValueError(f"unknown inflation mode {mode!r}; allowed: {allowed}")
    return mode


def inflate_conv_weight(weight_2d: torch.Tensor, time_size: int, mode: str = "center") -> torch.Tensor:
    """Inflate a 2D convolution kernel along a new time axis.

    Args:
        weight_2d: kernel of shape (O, I, h, w).
        time_size: number of temporal taps t (>= 1).
        mode: ``"center"`` or ``"mean"`` (see the module docstring).

    Returns:
        Kernel of shape (O, I, t, h, w), same dtype as ``weight_2d``.
    """
    check_inflation_mode(mode)
    if weight_2d.dim() != 4:
        raise ValueError(f"a 2D kernel has shape (O, I, h, w); got shape {tuple(weight_2d.shape)}")
    if time_size < 1:
        raise ValueError(f"time_size must be >= 1; got {time_size}")
    if mode == "mean":
        # divided before it is repeated: t times fewer divisions, the same values
        return weight_2d.div(time_size).unsqueeze(2).expand(-1, -1, time_size, -1, -1).contiguous()
    weight_3d = weight_2d.new_zeros(weight_2d.shape[:2] + (time_size,) + weight_2d.shape[2:])
    weight_3d[:, :, time_size // 2] = weight_2d
    return weight_3d


def remap_legacy_densenet_keys(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename old torchvision DenseNet keys (``denselayer1.norm.1.weight`` -> ``denselayer1.norm1.weight``)."""
    remapped: Dict[str, torch.Tensor] = {}
    original: Dict[str, str] = {}
    for key, value in state_dict.items():
        match = _LEGACY_DENSENET_KEY.match(key)
        new_key = match.group(1) + match.group(2) if match else key
        if new_key in remapped:  # both the old and the new name of one tensor: which one is meant is unknown
            raise CheckpointMismatchError(
                f"the checkpoint holds one tensor under two names, {original[new_key]!r} and {key!r} (the old and the "
                "new DenseNet key names); keep one of them"
            )
        remapped[new_key], original[new_key] = value, key
    return remapped


def _first(keys: Sequence[str], count: int = 10) -> str:
    shown = "; ".join(keys[:count])
    return shown + (f"; ... and {len(keys) - count} more" if len(keys) > count else "")


ShapeLike = Union[torch.Size, Sequence[int]]


def inflate_state_dict(
    state_dict_2d: Mapping[str, torch.Tensor],
    target_shapes: Mapping[str, ShapeLike],
    mode: str = "center",
) -> Dict[str, torch.Tensor]:
    """Turn a 2D state dict into the state dict of a 3D model with the same module names.

    Total and strict: every key of ``target_shapes`` must come from exactly one 2D tensor with a fitting
    shape, and every 2D key must be used. 4D kernels are inflated to the 5D target shape; every other
    tensor must already have the target shape and is copied.

    Args:
        state_dict_2d: the 2D model's state dict (old DenseNet key names are accepted).
        target_shapes: the 3D model's keys and their shapes, e.g. ``{k: v.shape for k, v in sd3d.items()}``.
        mode: ``"center"`` or ``"mean"``.

    Returns:
        A state dict with exactly the keys of ``target_shapes``.

    Raises:
        CheckpointMismatchError: naming every missing, unexpected and mis-shaped key.
        ValueError: for an unknown ``mode``.
    """
    check_inflation_mode(mode)
    source = remap_legacy_densenet_keys(state_dict_2d)
    # torchvision checkpoints from before BatchNorm counted its batches carry no 'num_batches_tracked';
    # BatchNorm itself fills the counter with 0 for such checkpoints, and so do we (eval never reads it).
    for key, shape in target_shapes.items():
        if key.endswith(".num_batches_tracked") and key not in source and tuple(shape) == ():
            source[key] = torch.tensor(0, dtype=torch.long)

    missing = sorted(k for k in target_shapes if k not in source)
    unexpected = sorted(k for k in source if k not in target_shapes)
    misshaped = []
    inflated: Dict[str, torch.Tensor] = {}
    for key, shape in target_shapes.items():
        if key not in source:
            continue
        tensor, shape = source[key], tuple(shape)
        src_shape = tuple(tensor.shape)
        if src_shape == shape:
            inflated[key] = tensor
        elif len(src_shape) == 4 and len(shape) == 5 and shape[:2] + shape[3:] == src_shape:
            inflated[key] = inflate_conv_weight(tensor, shape[2], mode)
        else:
            misshaped.append(f"{key}: checkpoint {src_shape}, model {shape}")

    if missing or unexpected or misshaped:
        parts = [
            f"{what} ({len(keys)}): {_first(keys)}"
            for what, keys in (("missing from the checkpoint", missing), ("unexpected in the checkpoint", unexpected),
                               ("shapes that do not fit", misshaped))
            if keys
        ]
        raise CheckpointMismatchError("the 2D checkpoint does not fit the 3D model -- " + " | ".join(parts))
    return inflated
