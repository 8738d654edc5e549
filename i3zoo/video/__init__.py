"""Video in: decoding video files, sampling clips as frame indices, transforms, datasets.

``decode`` reads files (:class:`VideoReader`: stream timestamps, frames by index, streaming reads) through a
decoder from ``decoders`` (one module per decoder, each registered by name: PyAV by default, TorchCodec optional;
``backend="auto"`` or a name from :func:`backend_choices`; a new decoder is one new module there),
``sampling`` holds the pure clip samplers (frame indices in, no decoding), ``transforms`` builds a model's
clip transform from its pretrained cfg on ``torchvision.transforms.v2``, ``datasets`` the
``torch.utils.data`` datasets (class folders, list files, extraction windows).

May import: torch, torchvision, av / torchcodec, cv2 (optional, TV-L1 flow), and nothing of i3zoo but
``registry`` (for a model's cfg), ``errors`` and ``text`` (which import nothing);
it never imports ``models``, ``weights``, ``train`` or ``cli``.
"""

from .datasets import VIDEO_EXTENSIONS, VideoFolder, VideoList, VideoWindows, find_videos, read_label_list
from .decode import (
    BACKENDS,
    MAX_ASPECT_RATIO,
    MAX_FRAME_PIXELS,
    VideoError,
    VideoReader,
    frame_limits,
    open_video,
    resolve_backend,
    torchcodec_status,
)
from .decoders import Decoder, backend_choices, decoder_names, decoder_status, register_decoder, unregister_decoder
from .sampling import Clips, evenly_spaced_clips, random_clip, resample_by_time, sliding_windows
from .transforms import ClipLayout, ThreeCrop, transforms_for

__all__ = [
    "BACKENDS", "MAX_FRAME_PIXELS", "MAX_ASPECT_RATIO", "frame_limits",
    "VideoError", "VideoReader", "open_video", "resolve_backend", "torchcodec_status",
    "Decoder", "register_decoder", "unregister_decoder", "decoder_names", "decoder_status", "backend_choices",
    "Clips", "sliding_windows", "evenly_spaced_clips", "random_clip", "resample_by_time",
    "transforms_for", "ClipLayout", "ThreeCrop",
    "VIDEO_EXTENSIONS", "find_videos", "VideoFolder", "VideoList", "VideoWindows", "read_label_list",
]
