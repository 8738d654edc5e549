"""PyAV: the default decoder. Its wheels carry FFmpeg, so ``pip install`` is the whole setup.

A decoded frame is matched to its index by its timestamp (``frame.pts``, looked up in the stream index), never by
counting, so a seek that lands early or a decoder that drops a frame cannot shift the frames of a clip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import torch

from ._interface import Decoder, StreamIndex, VideoError, register_decoder


def open_container(path: Path):
    """``av.open`` for reading, tolerant of metadata that is not UTF-8 (a Latin-1 title, common in older files):
    frames never need the tags, so a tag that does not decode is read with replacement characters instead of
    failing the file (PyAV's ``metadata_errors``)."""
    import av

    return av.open(str(path), metadata_errors="replace")


@register_decoder
class PyAVDecoder(Decoder):
    """Frames by index with a seek to the key frame before the first one; many clips in one forward pass."""

    name = "pyav"
    preference = 10  # below TorchCodec, which decodes faster where it can run

    def __init__(self, path: Path, index: StreamIndex):
        super().__init__(path, index)
        self._index_of_pts: Dict[int, int] = {pts: i for i, pts in enumerate(index.pts)}

    def get_frames(self, wanted: List[int]) -> Dict[int, torch.Tensor]:
        """Seeks to the key frame before ``wanted[0]`` and decodes forward: a clip costs its own span, not the
        video's length."""
        frames = dict(self._decode(wanted, seek=True))
        if len(frames) < len(wanted):  # a container whose seek lands past the key frame: read from the start
            frames.update(self._decode([i for i in wanted if i not in frames], seek=False))
        return frames

    def iter_frames(self, wanted: List[int]) -> Iterator[Tuple[int, torch.Tensor]]:
        """One pass from the start of the file, yielding the wanted frames as they come."""
        return self._decode(wanted, seek=False)

    def _decode(self, wanted: List[int], *, seek: bool) -> Iterator[Tuple[int, torch.Tensor]]:
        """Yield (index, uint8 (3, H, W)) for each index in sorted ``wanted``, decoding in presentation order."""
        import av

        if not wanted:
            return
        remaining = set(wanted)
        try:
            with open_container(self.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"  # frame/slice threads inside FFmpeg: decoding uses the cores
                if seek and wanted[0] > 0:
                    container.seek(self.index.pts[wanted[0]], stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    index = self._index_of_pts.get(frame.pts)
                    if index is None:
                        continue
                    if index in remaining:
                        remaining.discard(index)
                        yield index, torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
                        if not remaining:
                            return
                    elif index > wanted[-1]:
                        return
        except av.FFmpegError as e:
            raise VideoError(self.path, f"decoding failed: {e}") from None
