"""i3zoo: I3D-inflated 3D ResNets and DenseNets for video, filled from 2D ImageNet weights.

Input layout (N, C, T, H, W). Importing i3zoo registers its models with timm.
"""

from .checkpoints import CheckpointError, read_state_dict
from .i3densenet import I3DenseNet, I3DenseNet121, I3DenseNet161, I3DenseNet169, I3DenseNet201
from .i3resnet import I3ResNet, I3ResNet50, I3ResNet101, I3ResNet152
from . import facts
from .hub import push_to_hub, save_pretrained
from .inference import optimize_for_inference
from .inflate import INFLATION_MODES, CheckpointMismatchError, inflate_conv_weight, inflate_state_dict
from .registry import create_model, is_model, list_models, list_tags

__version__ = "0.1.0"

__all__ = [
    "I3ResNet", "I3ResNet50", "I3ResNet101", "I3ResNet152",
    "I3DenseNet", "I3DenseNet121", "I3DenseNet161", "I3DenseNet169", "I3DenseNet201",
    "create_model", "list_models", "is_model", "list_tags",
    "INFLATION_MODES", "inflate_conv_weight", "inflate_state_dict",
    "CheckpointError", "CheckpointMismatchError", "read_state_dict",
    "save_pretrained", "push_to_hub", "optimize_for_inference",
]
