"""The networks: 3D ResNets, DenseNets and Inception-v1 that mirror torchvision's 2D definitions module for module.

``_model.py`` is the surface every network shares (timm's ``forward_features`` / ``forward_head`` /
``reset_classifier`` ...), ``layers.py`` the temporal layer specs and the padded 3D convolution, and each family
file (``i3resnet.py``, ``i3densenet.py``, ``i3inception.py``) the network code followed by its table of variants:
importing it declares and registers its models (``_declare.py``: named classes, timm registrations, weight tags,
exports). ``_builder.py`` is the construction-time path from a registered name and pretrained cfg to a filled
model. A new family is a new family file imported here. ``inflated.py`` inflates any timm or torchvision 2D CNN
on the fly (``adapters.py`` reads the 2D network, ``designs.py`` says where time goes, ``time_layers.py`` holds the
layers that see it).

May import: torch, torchvision, timm, ``i3zoo.weights`` (the weight sources that fill the models, and the tag
declarations) and ``i3zoo.registry``. Nothing else of i3zoo imports into here, except the package root and the
top-level tools built on the models.
"""

from . import i3densenet, i3inception, i3resnet  # each declares its models when imported
from ._declare import declared_classes
from .designs import DESIGNS, Design, StageRule
from .i3inception import INCEPTION_DESIGNS
from .i3resnet import BASIC_RESNET_DESIGNS, RESNET_DESIGNS
from .inflated import InflatedNet, inflate  # and timm's "inflate" entry: any timm / torchvision CNN

#: the family classes and every declared named class (``I3ResNet``, ``I3ResNet50`` ...), by name
MODEL_CLASSES = declared_classes()
globals().update(MODEL_CLASSES)

__all__ = [*MODEL_CLASSES, "MODEL_CLASSES", "inflate", "InflatedNet", "Design", "StageRule", "DESIGNS",
           "RESNET_DESIGNS", "BASIC_RESNET_DESIGNS", "INCEPTION_DESIGNS",
           "i3resnet", "i3densenet", "i3inception"]
