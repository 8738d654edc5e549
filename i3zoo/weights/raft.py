"""RAFT optical flow weights: torchvision's, and the original authors' ``raft-sintel.pth`` in torchvision's layout.

RAFT (Teed & Deng, *RAFT: Recurrent All-Pairs Field Transforms for Optical Flow*, ECCV 2020). torchvision's
``raft_large`` (``torchvision/models/optical_flow/raft.py``) is the same network as the authors' code
(``princeton-vl/RAFT``, ``core/raft.py``; v-iashin/video_features copies it as ``models/raft/raft_src``), under other
module names. The authors' Sintel checkpoint ``raft-sintel.pth`` (the file video_features runs; saved from
``nn.DataParallel``, so its keys may carry a ``module.`` prefix) maps onto torchvision's names key by key:

    fnet / cnet                                  -> feature_encoder / context_encoder
      conv1, norm1, conv2                        ->   convnormrelu.0, convnormrelu.1, conv
      layerN.M.conv1|norm1|conv2|norm2           ->   layerN.M.convnormrelu1.0|1, convnormrelu2.0|1
      layerN.M.downsample.0|1                    ->   the same
    update_block.encoder.convc1|convc2|convf1|convf2|conv -> update_block.motion_encoder.convcorr1|convcorr2|
                                                             convflow1|convflow2|conv (each ``.0``)
    update_block.gru.convz1|convr1|convq1 (and 2) -> update_block.recurrent_block.convgru1 (2).convz|convr|convq
    update_block.flow_head.*                     -> the same
    update_block.mask.0 / mask.2                 -> mask_predictor.convrelu.0 / mask_predictor.conv

The authors' residual blocks register their third norm twice (``norm3``, also ``downsample.1``) and keep it in
stride-1 blocks that never run it: ``norm3`` keys are the only ones dropped. torchvision publishes this Sintel
checkpoint ported (``Raft_Large_Weights.C_T_SKHT_V1``); the file itself is checked against its published sha256.
Imports nothing from ``i3zoo.models``.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Optional

import torch
from torch import nn

from .checkpoints import CheckpointError, fetch_checkpoint, read_state_dict, sha256_of
from .inflate import CheckpointMismatchError

__all__ = ["RAFT_SINTEL_URL", "RAFT_SINTEL_SHA256", "convert_raft_state_dict", "to_original_raft_state_dict",
           "raft_large_model", "RAFT_WEIGHTS"]

#: the authors' Sintel checkpoint as video_features ships it (raw file of its repository at a fixed commit)
RAFT_SINTEL_URL = ("https://raw.githubusercontent.com/v-iashin/video_features/"
                   "a2f61b7a4cf0ca6a2d91dcc2182f57e7cfd12664/models/raft/checkpoints/raft-sintel.pth")
#: the published sha256 of raft-sintel.pth
RAFT_SINTEL_SHA256 = "90630d2e7d488a0d3ccb5e8194524850c4c05c732ea4ff99799822c7fa5c5cbf"
#: ``weights=`` of :func:`raft_large_model`: the original Sintel file (video_features'), torchvision's own weights
RAFT_WEIGHTS = ("sintel", "torchvision", "none")

_RULES = [
    (r"^(fnet|cnet)\.", lambda m: {"fnet": "feature_encoder.", "cnet": "context_encoder."}[m.group(1)]),
    (r"_encoder\.conv1\.", "_encoder.convnormrelu.0."),
    (r"_encoder\.norm1\.", "_encoder.convnormrelu.1."),
    (r"_encoder\.conv2\.", "_encoder.conv."),
    (r"(layer\d\.\d)\.conv([12])\.", r"\1.convnormrelu\2.0."),
    (r"(layer\d\.\d)\.norm([12])\.", r"\1.convnormrelu\2.1."),
    (r"update_block\.encoder\.conv([cf])([12])\.",
     lambda m: f"update_block.motion_encoder.conv{'corr' if m.group(1) == 'c' else 'flow'}{m.group(2)}.0."),
    (r"update_block\.encoder\.conv\.", "update_block.motion_encoder.conv.0."),
    (r"update_block\.gru\.conv([zrq])([12])\.", r"update_block.recurrent_block.convgru\2.conv\1."),
    (r"update_block\.mask\.0\.", "mask_predictor.convrelu.0."),
    (r"update_block\.mask\.2\.", "mask_predictor.conv."),
]
_DROPPED = re.compile(r"\.layer\d\.\d\.norm3\.")


def _torchvision_name(key: str) -> str:
    for pattern, replacement in _RULES:
        key = re.sub(pattern, replacement, key)
    return key


def convert_raft_state_dict(state_dict: Mapping[str, torch.Tensor],
                            target: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The authors' RAFT state dict (with or without ``module.``) in torchvision's names, strictly.

    Args:
        state_dict: ``raft-sintel.pth``'s tensors.
        target: torchvision ``raft_large``'s state dict (names and shapes).

    Raises:
        CheckpointMismatchError: naming every key without a place, every torchvision key not filled and every
            shape that does not fit.
    """
    converted, unexpected, misshaped = {}, [], []
    for key, tensor in state_dict.items():
        plain = key[len("module."):] if key.startswith("module.") else key
        if _DROPPED.search(plain):
            continue
        ours = _torchvision_name(plain)
        if ours not in target:
            unexpected.append(key)
        elif tuple(tensor.shape) != tuple(target[ours].shape):
            misshaped.append(f"{key} -> {ours}: checkpoint {tuple(tensor.shape)}, model {tuple(target[ours].shape)}")
        else:
            converted[ours] = tensor
    missing = [k for k in target if k not in converted and not any(m.split(" -> ")[1].startswith(k + ":")
                                                                     for m in misshaped)]
    if missing or unexpected or misshaped:
        parts = [f"{what} ({len(keys)}): {'; '.join(sorted(keys)[:8])}" + (" ..." if len(keys) > 8 else "")
                 for what, keys in (("torchvision keys the checkpoint does not fill", missing),
                                    ("checkpoint keys with no place in raft_large", unexpected),
                                    ("shapes that do not fit", misshaped)) if keys]
        raise CheckpointMismatchError("the RAFT checkpoint is not the authors' RAFT (large) -- " + " | ".join(parts))
    return converted


def to_original_raft_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The reverse, for tests and tools: torchvision's ``raft_large`` names -> the authors' (without ``norm3``)."""
    with torch.device("meta"):
        from torchvision.models.optical_flow import raft_large

        names = list(raft_large().state_dict())
    inverse = {}
    for key in names:
        original = key
        for pattern, plain in ((r"^feature_encoder\.", "fnet."), (r"^context_encoder\.", "cnet."),
                               (r"\.convnormrelu\.0\.", ".conv1."), (r"\.convnormrelu\.1\.", ".norm1."),
                               (r"(layer\d\.\d)\.convnormrelu([12])\.0\.", r"\1.conv\2."),
                               (r"(layer\d\.\d)\.convnormrelu([12])\.1\.", r"\1.norm\2."),
                               (r"^(fnet|cnet)\.conv\.", r"\1.conv2."),
                               (r"motion_encoder\.convcorr([12])\.0\.", r"encoder.convc\1."),
                               (r"motion_encoder\.convflow([12])\.0\.", r"encoder.convf\1."),
                               (r"motion_encoder\.conv\.0\.", "encoder.conv."),
                               (r"recurrent_block\.convgru([12])\.conv([zrq])\.", r"gru.conv\2\1."),
                               (r"^mask_predictor\.convrelu\.0\.", "update_block.mask.0."),
                               (r"^mask_predictor\.conv\.", "update_block.mask.2.")):
            original = re.sub(pattern, plain, original)
        inverse[key] = original
    return {inverse[k]: v for k, v in state_dict.items()}


def _fetch_sintel(cache_dir) -> str:
    path = fetch_checkpoint(RAFT_SINTEL_URL, cache_dir=cache_dir)
    actual = sha256_of(path)
    if actual != RAFT_SINTEL_SHA256:  # the published hash, beyond the record of the first download
        raise CheckpointError(f"{path} is not the authors' raft-sintel.pth: sha256 {actual}, published "
                              f"{RAFT_SINTEL_SHA256}. Delete it and run again, or pass file=PATH")
    return str(path)


def raft_large_model(weights: str = "sintel", *, file: Optional[str] = None, cache_dir=None) -> nn.Module:
    """torchvision's ``raft_large`` in eval mode with ``weights``: ``"sintel"`` (the authors' ``raft-sintel.pth``,
    video_features' flow; ``file`` replaces the download, in the authors' layout), ``"torchvision"``
    (``Raft_Large_Weights.DEFAULT``) or ``"none"`` (random, for tests)."""
    from torchvision.models.optical_flow import Raft_Large_Weights, raft_large

    if weights not in RAFT_WEIGHTS:
        raise ValueError(f"unknown RAFT weights {weights!r}; allowed: {', '.join(map(repr, RAFT_WEIGHTS))}")
    if weights == "torchvision":
        return raft_large(weights=Raft_Large_Weights.DEFAULT, progress=False).eval()
    model = raft_large().eval()
    if weights == "sintel":
        path = file or _fetch_sintel(cache_dir)
        model.load_state_dict(convert_raft_state_dict(read_state_dict(path), model.state_dict()))
    return model
