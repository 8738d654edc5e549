"""TorchCodec: optional (``pip install "i3zoo[torchcodec]"``), faster, and preferred by ``backend="auto"`` where it
can run. Its wheels do not carry FFmpeg: it needs FFmpeg's shared libraries on the system, so whether it runs here
is found by decoding a one-frame video (:func:`torchcodec_status`).

TorchCodec's "exact" seek mode counts frames in presentation order from its own scan of the packets, as the
stream index does, so an index names the same frame for both decoders.
"""

from __future__ import annotations

import functools
from typing import Dict, List, Optional

import torch

from ._interface import Decoder, VideoError, register_decoder


@functools.lru_cache(maxsize=None)
def torchcodec_status() -> Optional[str]:
    """None if TorchCodec is usable here, else why not (not installed, or its FFmpeg libraries do not load)."""
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as e:  # ImportError, or (older releases) FFmpeg failing to load at import
        return f"torchcodec does not import ({_first_line(e)}); pip install \"i3zoo[torchcodec]\""
    try:
        # a public-API probe that works across releases: decode a one-frame video made with PyAV
        VideoDecoder(_one_frame_video()).get_frame_at(0)
    except Exception as e:  # RuntimeError/OSError from dlopen: no usable FFmpeg libraries
        return f"torchcodec is installed but cannot load FFmpeg ({_first_line(e)})"
    return None


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    # TorchCodec's load error opens with a generic line; the dlopen line says which library is missing
    specific = [line.strip() for line in lines if "cannot open shared object" in line]
    return (specific or lines or [type(error).__name__])[0]


def _one_frame_video() -> bytes:
    import io

    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=1)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            container.mux(packet)
    return buffer.getvalue()


@register_decoder
class TorchCodecDecoder(Decoder):
    """Frames by index through one ``torchcodec.decoders.VideoDecoder``, opened on first use."""

    name = "torchcodec"
    preference = 20
    devices = ("cpu", "cuda")  # cuda: the GPU's hardware decoder (NVDEC), where TorchCodec was built with it

    @classmethod
    def unavailable(cls) -> Optional[str]:
        return torchcodec_status()

    def get_frames(self, wanted: List[int]) -> Dict[int, torch.Tensor]:
        from torchcodec.decoders import VideoDecoder

        try:
            decoder = getattr(self, "_decoder", None)
            if decoder is None:
                decoder = self._decoder = VideoDecoder(str(self.path), seek_mode="exact", dimension_order="NCHW",
                                                       device=self.device)
            batch = decoder.get_frames_at(indices=wanted)
        except (RuntimeError, ValueError) as e:
            raise VideoError(self.path, f"decoding failed (torchcodec): {e}") from None
        return dict(zip(wanted, batch.data))

    def __getstate__(self):  # the decoder travels to DataLoader workers; a TorchCodec VideoDecoder cannot
        state = dict(self.__dict__)
        state.pop("_decoder", None)
        return state
