"""Video in: decoding video files, sampling clips as frame indices, transforms, datasets.

``decode`` reads files (PyAV by default, TorchCodec optional: ``backend="auto" | "pyav" | "torchcodec"``),
``sampling`` holds the pure clip samplers (frame indices in, no decoding), ``transforms`` builds a model's
clip transform from its pretrained cfg on ``torchvision.transforms.v2``, ``datasets`` the
``torch.utils.data`` datasets (class folders, list files, extraction windows).

May import: torch, torchvision, av / torchcodec, and nothing of i3zoo but ``registry`` (for a model's cfg);
it never imports ``models``, ``weights``, ``train`` or ``cli``.
"""

from .datasets import VIDEO_EXTENSIONS, VideoFolder, VideoList, VideoWindows, find_videos, read_label_list
from .decode import BACKENDS, VideoError, VideoReader, open_video, resolve_backend, torchcodec_status
from .sampling import Clips, evenly_spaced_clips, random_clip, resample_by_time, sliding_windows
from .transforms import ClipLayout, ThreeCrop, transforms_for

__all__ = [
    "BACKENDS", "VideoError", "VideoReader", "open_video", "resolve_backend", "torchcodec_status",
    "Clips", "sliding_windows", "evenly_spaced_clips", "random_clip", "resample_by_time",
    "transforms_for", "ClipLayout", "ThreeCrop",
    "VIDEO_EXTENSIONS", "find_videos", "VideoFolder", "VideoList", "VideoWindows", "read_label_list",
]
