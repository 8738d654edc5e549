"""Two-stream I3D features as v-iashin/video_features extracts them: one module, frames in, features out.

video_features' I3D protocol (``configs/i3d.yml``, ``models/i3d/extract_i3d.py``), which
:data:`VIDEO_FEATURES_PRESET` sets:

* frames decoded in RGB, each resized with PIL's bilinear filter so that its short side is 256 and its long side
  ``int(256 * long / short)`` (truncated; ``models/transforms.py``, ``resize``), kept as 0..255 floats;
* stacks of 64 + 1 frames every 64 (a stack is complete only when its 65th frame exists): the RGB stream takes
  the first 64, the flow stream the 64 consecutive pairs (with the step equal to the stack, stacks share one
  frame and no pair; with a smaller step, RAFT still runs once per distinct pair: :meth:`TwoStreamI3D._flow_input`);
* RGB: centre crop 224, ``2 * x / 255 - 1``; flow: ``i3zoo.video.flow`` (RAFT on the uncropped frames, then the
  crop and DeepMind's quantisation);
* each stream's I3D (hassony2's port as video_features runs it: ``i3inception_v1_dm.k400_*_hassony2``) gives
  1024 features per stack: the 2x7x7 pool, averaged over time; the two are concatenated, RGB first.

:class:`TwoStreamI3D` is that module: (N, 3, 65, H, W) frames -> (N, 2048). An :class:`~i3zoo.engines.Extractor`
runs it like any model (it declares ``returns_features``), with :func:`video_features_transform` as its transform.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Sequence, Tuple

import torch
from torch import nn

from ..errors import UsageError
from ..video.flow import (
    FLOW_METHODS,
    RAFT_ITERATIONS,
    center_crop,
    dequantize_flow,
    flow_between,
    quantize_flow,
    tvl1_between,
)
from .loading import LoadedModel

__all__ = ["STREAMS", "VIDEO_FEATURES_PRESET", "TwoStreamI3D", "VideoFeaturesResize", "video_features_transform",
           "load_two_stream"]

STREAMS = ("rgb", "flow")
#: video_features' I3D settings, as Extractor options (clip_len counts the extra frame of the flow pairs)
VIDEO_FEATURES_PRESET: Dict[str, Any] = dict(clip_len=65, step=64, frame_interval=1, crop_size=224)
#: frame pairs per RAFT call (flow_pairs' batch)
PAIRS_PER_CALL = 16
#: the short side video_features resizes frames to
VIDEO_FEATURES_SHORT_SIDE = 256


class TwoStreamI3D(nn.Module):
    """RGB and flow I3D on the same frames: (N, 3, T + 1, H, W) RGB frames, 0..255 floats, uncropped ->
    (N, 1024 * len(streams)), the streams' pooled features concatenated in the order of ``streams``.

    Args:
        rgb, flow: the streams' I3D models (``i3inception_v1_dm.k400_rgb_*`` / ``k400_flow_*``), or None for a
            stream not asked for.
        raft: torchvision's ``raft_large`` (``i3zoo.weights.raft.raft_large_model``) when the flow stream runs RAFT.
        flow_method: ``"raft"`` (video_features') or ``"tvl1"`` (the I3D paper's: OpenCV's TV-L1 on grayscale).
        crop_size: the centre crop both streams take (224).
        iterations: RAFT's refinement iterations (video_features': 20).
    """

    returns_features = True  # the Extractor calls it as it is (its output is already the features)

    def __init__(self, rgb: nn.Module = None, flow: nn.Module = None, raft: nn.Module = None, *,
                 crop_size: int = 224, iterations: int = RAFT_ITERATIONS, flow_method: str = "raft") -> None:
        super().__init__()
        if rgb is None and flow is None:
            raise ValueError("TwoStreamI3D needs an RGB model, a flow model or both")
        if flow_method not in FLOW_METHODS:
            raise ValueError(f"flow_method {flow_method!r}: choose from {', '.join(FLOW_METHODS)}")
        if flow is not None and flow_method == "raft" and raft is None:
            raise ValueError("the flow stream needs a RAFT model (i3zoo.weights.raft.raft_large_model)")
        self.rgb, self.flow, self.raft, self.flow_method = rgb, flow, raft, flow_method
        self.streams = tuple(s for s, m in (("rgb", rgb), ("flow", flow)) if m is not None)
        self._pairs: OrderedDict[Tuple[bytes, bytes], torch.Tensor] = OrderedDict()  # recent pairs' quantised flow
        self.crop_size, self.iterations = crop_size, iterations
        self.num_features = sum(m.num_features for m in (rgb, flow) if m is not None)
        #: what LoadedModel and the Extractor read of a model: the smallest stack (the streams' shortest clip and
        #: one frame more, for the last pair) and the crop
        shortest = max(m.min_input_size[0] for m in (rgb, flow) if m is not None)
        self.min_input_size = (shortest + 1, crop_size, crop_size)
        self.pretrained_cfg = dict(input_size=(3, crop_size, crop_size))
        self.inflation = "center"

    def stream_slices(self) -> Dict[str, Tuple[int, int]]:
        """Where each stream's features are in the output: ``{"rgb": (0, 1024), "flow": (1024, 2048)}``."""
        slices, start = {}, 0
        for stream in self.streams:
            width = getattr(self, stream).num_features
            slices[stream] = (start, start + width)
            start += width
        return slices

    @staticmethod
    def _pooled(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model.forward_head(model.forward_features(x), pre_logits=True)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 5 or frames.shape[1] != 3 or frames.shape[2] < 2:
            raise ValueError(f"TwoStreamI3D takes (N, 3, T + 1, H, W) frames with T >= 1; got {tuple(frames.shape)}")
        outputs = []
        if self.rgb is not None:
            rgb = 2 * center_crop(frames[:, :, :-1], self.crop_size) / 255 - 1  # video_features' ScaleTo1_1
            outputs.append(self._pooled(self.rgb, rgb))
        if self.flow is not None:
            outputs.append(self._pooled(self.flow, self._flow_input(frames)))
        return torch.cat(outputs, dim=1)

    def _flow_input(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, T + 1, H, W) frames -> (N, 2, T, crop, crop) flow-stream input, RAFT run once per distinct frame
        pair: windows that overlap (a step below the stack) share pairs, within this batch and with the batches
        just before (:attr:`_pairs`, the quantised flow of up to twice the last call's pairs, keyed by the two
        frames' bytes), so no pair is computed twice however the windows are laid out."""
        digests = [[_digest(frames[i, :, t]) for t in range(frames.shape[2])] for i in range(frames.shape[0])]
        keys = [[(d[t], d[t + 1]) for t in range(len(d) - 1)] for d in digests]
        todo: Dict[Tuple[bytes, bytes], Tuple[int, int]] = {}
        for i, clip in enumerate(keys):
            for t, key in enumerate(clip):
                if key not in self._pairs and key not in todo:
                    todo[key] = (i, t)
        pending = list(todo.items())
        for start in range(0, len(pending), PAIRS_PER_CALL):  # a few pairs at a time: memory stays small
            chunk = pending[start:start + PAIRS_PER_CALL]
            first = torch.stack([frames[i, :, t] for _, (i, t) in chunk])
            second = torch.stack([frames[i, :, t + 1] for _, (i, t) in chunk])
            if self.flow_method == "raft":
                flows = flow_between(self.raft, first, second, iterations=self.iterations, batch_size=PAIRS_PER_CALL)
            else:
                flows = tvl1_between(first, second)
            self._pairs.update(zip((key for key, _ in chunk), quantize_flow(flows, self.crop_size)))
        found = torch.stack([dequantize_flow(torch.stack([self._pairs[key] for key in clip]).to(frames.device),
                                             frames.dtype) for clip in keys])
        for key in (key for clip in keys for key in clip):  # this call's pairs become the latest
            self._pairs.move_to_end(key)
        limit = 2 * sum(map(len, keys))
        while len(self._pairs) > limit:  # the oldest first: the next windows share pairs with the latest
            self._pairs.popitem(last=False)
        return found


def _digest(frame: torch.Tensor) -> bytes:
    """A frame's identity: the hash of its values (two frames hash alike only if they are equal)."""
    import hashlib

    data = frame.detach().contiguous().cpu().numpy().tobytes()
    return hashlib.blake2b(data, digest_size=16, person=str(tuple(frame.shape)).encode()[:16]).digest()


class VideoFeaturesResize(nn.Module):
    """video_features' frame resize: (T, C, H, W) uint8 -> (C, T, H', W') 0..255 floats, each frame through PIL's
    bilinear filter to a short side of ``short_side`` and a long side of ``int(short_side * long / short)``."""

    def __init__(self, short_side: int = VIDEO_FEATURES_SHORT_SIDE) -> None:
        super().__init__()
        self.short_side = short_side

    def size_of(self, height: int, width: int) -> Tuple[int, int]:
        """(H', W') for a frame of (height, width), video_features' arithmetic."""
        s = self.short_side
        if min(height, width) == s:
            return height, width
        return (int(s * height / width), s) if width < height else (s, int(s * width / height))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        import numpy as np
        from PIL import Image

        height, width = self.size_of(*frames.shape[-2:])
        resized = [torch.from_numpy(np.array(Image.fromarray(f.permute(1, 2, 0).contiguous().numpy()).resize(
            (width, height), Image.BILINEAR))) for f in frames]
        return torch.stack(resized).permute(3, 0, 1, 2).float()


def video_features_transform(short_side: int = VIDEO_FEATURES_SHORT_SIDE) -> nn.Module:
    """The transform of video_features' I3D protocol (resize only: the streams crop, after the flow)."""
    return VideoFeaturesResize(short_side)


def load_two_stream(port: str = "hassony2", streams: Sequence[str] = STREAMS, *, raft_weights: str = "sintel",
                    raft_file: str = None, device: str = "cpu", random_weights: bool = False, crop_size: int = 224,
                    iterations: int = RAFT_ITERATIONS, flow_method: str = "raft") -> LoadedModel:
    """DeepMind's two-stream I3D of ``port`` with its flow (RAFT, or TV-L1), ready for an Extractor.

    Args:
        port: ``"hassony2"`` (video_features' weights and numerics) or ``"piergiaj"``.
        streams: ``("rgb", "flow")``, ``("rgb",)`` or ``("flow",)``.
        raft_weights: ``"sintel"`` (the authors' file video_features runs), ``"torchvision"`` or ``"none"``.
        raft_file: a local ``raft-sintel.pth`` instead of the download.
        random_weights: random I3D and RAFT weights (a smoke run; never trained features).
        crop_size, iterations, flow_method: :class:`TwoStreamI3D`'s (video_features': 224, 20 and ``"raft"``).
    """
    from ..registry import create_model
    from ..weights.raft import raft_large_model

    unknown = sorted(set(streams) - set(STREAMS))
    if unknown or not streams:
        raise UsageError(f"unknown stream {unknown[0] if unknown else None!r}; choose from {', '.join(STREAMS)}")
    if flow_method not in FLOW_METHODS:
        raise UsageError(f"flow method {flow_method!r}: choose from {', '.join(FLOW_METHODS)}")
    names = {s: f"i3inception_v1_dm.k400_{s}_{port}" for s in streams}
    models = {s: create_model(name, pretrained=not random_weights).eval() for s, name in names.items()}
    raft = raft_large_model("none" if random_weights else raft_weights, file=raft_file) \
        if "flow" in streams and flow_method == "raft" else None
    model = TwoStreamI3D(models.get("rgb"), models.get("flow"), raft, crop_size=crop_size, iterations=iterations,
                         flow_method=flow_method).to(device).eval()
    name = "+".join(names.values())
    weights = {"kind": "random" if random_weights else "pretrained", "model": name, "inflation": "center",
               "streams": list(model.streams), "raft": None if raft is None else ("none" if random_weights else
                                                                                   raft_weights)}
    if "flow" in streams and flow_method != "raft":
        weights["flow"] = flow_method  # recorded only where it is not video_features' RAFT: old outputs stay complete
    if random_weights:
        weights.update(seed=0, note="random weights, NOT trained weights")
    return LoadedModel(model, name, weights, random_weights, None, "none (features)", device)
