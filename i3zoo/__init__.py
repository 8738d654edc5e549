"""i3zoo: I3D-inflated 3D ResNets, DenseNets and Inception-v1 for video, filled from 2D ImageNet weights.

Input layout (N, C, T, H, W). Importing i3zoo registers its models with timm.

The package is built in wings: ``models/`` (the networks), ``weights/`` (inflation, checkpoints, the Hub,
model cards), ``video/`` (reading video files), ``engines/`` (feature extraction and prediction on video
files: :func:`extract`, :func:`predict`), ``train/`` (fine-tuning) and ``cli/`` (the ``i3zoo`` command, which
parses and calls them). ``registry``, ``facts``, ``inference`` and ``graph_export`` sit at the top: each serves
users across the wings (a model by name, its measured facts, a fast inference copy, a torch.export program or
ONNX file), and ``errors`` holds :class:`UsageError`, the one error type for a user's mistake in what they asked.
"""

from . import facts
from ._version import __version__
from .engines import Extractor, Predictor, extract, predict
from .errors import UsageError
from .graph_export import export_onnx, export_program
from .inference import optimize_for_inference
from .models import MODEL_CLASSES, Design, InflatedNet, StageRule, inflate
from .registry import create_model, is_model, list_models, list_tags
from .weights import (
    INFLATION_MODES,
    CheckpointError,
    CheckpointMismatchError,
    inflate_conv_weight,
    inflate_state_dict,
    read_state_dict,
)
from .weights.hub import push_to_hub, save_pretrained

globals().update(MODEL_CLASSES)  # the model classes, each declared once in its family's table

__all__ = [
    "__version__", "facts", *MODEL_CLASSES, "inflate", "InflatedNet", "Design", "StageRule",
    "create_model", "list_models", "is_model", "list_tags",
    "INFLATION_MODES", "inflate_conv_weight", "inflate_state_dict",
    "CheckpointError", "CheckpointMismatchError", "read_state_dict",
    "save_pretrained", "push_to_hub", "optimize_for_inference", "export_program", "export_onnx",
    "extract", "Extractor", "predict", "Predictor", "UsageError",
]
