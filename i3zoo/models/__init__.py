"""The networks: 3D ResNets and DenseNets that mirror torchvision's 2D definitions module for module.

``_model.py`` is the surface every network shares (timm's ``forward_features`` / ``forward_head`` /
``reset_classifier`` ...), ``layers.py`` the temporal layer specs and the padded 3D convolution,
``i3resnet.py``, ``i3densenet.py``, ``i3inception.py`` one family each (importing them registers the models
with timm), and
``_builder.py`` the construction-time path from a registered name and pretrained cfg to a filled model.

May import: torch, torchvision, timm, ``i3zoo.weights`` (to be filled) and ``i3zoo.registry``. Nothing
else of i3zoo imports into here, except the package root and the top-level tools built on the models.
"""

from .i3densenet import I3DenseNet, I3DenseNet121, I3DenseNet161, I3DenseNet169, I3DenseNet201
from .i3inception import INCEPTION_DESIGNS, I3InceptionV1
from .i3resnet import (
    BASIC_RESNET_DESIGNS,
    RESNET_DESIGNS,
    I3ResNet,
    I3ResNet18,
    I3ResNet18C2D,
    I3ResNet34,
    I3ResNet34C2D,
    I3ResNet50,
    I3ResNet50C2D,
    I3ResNet50I3D,
    I3ResNet50SlowOnly,
    I3ResNet101,
    I3ResNet152,
    I3ResNeXt50_32x4d,
    I3ResNeXt101_32x8d,
    I3ResNeXt101_64x4d,
    I3WideResNet50_2,
    I3WideResNet101_2,
)

__all__ = [
    "I3ResNet", "I3ResNet18", "I3ResNet34", "I3ResNet18C2D", "I3ResNet34C2D",
    "I3ResNet50", "I3ResNet101", "I3ResNet152", "I3ResNet50I3D", "I3ResNet50SlowOnly", "I3ResNet50C2D",
    "I3ResNeXt50_32x4d", "I3ResNeXt101_32x8d", "I3ResNeXt101_64x4d", "I3WideResNet50_2", "I3WideResNet101_2",
    "RESNET_DESIGNS", "BASIC_RESNET_DESIGNS",
    "I3InceptionV1", "INCEPTION_DESIGNS",
    "I3DenseNet", "I3DenseNet121", "I3DenseNet161", "I3DenseNet169", "I3DenseNet201",
]
