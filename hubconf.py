"""torch.hub entry points of i3zoo: I3D-inflated 3D ResNets and DenseNets for video.

    model = torch.hub.load("<owner>/i3zoo", "i3resnet50", pretrained=True)

Every entry point takes the keyword arguments of ``i3zoo.create_model``: ``pretrained``, ``inflation``
("center" | "mean"), ``num_classes``, ``in_chans``, ``drop_rate``, ``global_pool``, ``pretrained_cfg``
(a weight tag such as "tv2_in1k"), ``pretrained_cfg_overlay`` (``dict(file=PATH)`` or ``dict(url=URL)``).
"""

dependencies = ["torch", "torchvision", "timm", "huggingface_hub", "safetensors"]

import i3zoo as _i3zoo  # noqa: E402  (torch.hub reads `dependencies` before importing anything else)

_RESNET_INPUT = "Input: float (N, 3, T, H, W) clips, ImageNet-normalized; any T >= 1. Output: (N, num_classes)."
_DENSENET_INPUT = "Input: float (N, 3, T, H, W) clips, ImageNet-normalized; T >= 8, H, W >= 29. Output: (N, num_classes)."


def _create(name, pretrained, kwargs):
    return _i3zoo.create_model(name, pretrained=pretrained, **kwargs)


def i3resnet50(pretrained=False, **kwargs):
    """I3ResNet50: torchvision's ResNet-50 inflated to 3D (I3D, Carreira & Zisserman 2017).

    Weights (``pretrained=True``): inflated from torchvision's ImageNet-1k ResNet-50, tag ``tv_in1k``
    (IMAGENET1K_V1, default) or ``tv2_in1k`` (IMAGENET1K_V2, via ``pretrained_cfg="tv2_in1k"``).
    """
    return _create("i3resnet50", pretrained, kwargs)


def i3resnet101(pretrained=False, **kwargs):
    """I3ResNet101: torchvision's ResNet-101 inflated to 3D.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1, default) or ``tv2_in1k`` (IMAGENET1K_V2).
    """
    return _create("i3resnet101", pretrained, kwargs)


def i3resnet152(pretrained=False, **kwargs):
    """I3ResNet152: torchvision's ResNet-152 inflated to 3D.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1, default) or ``tv2_in1k`` (IMAGENET1K_V2).
    """
    return _create("i3resnet152", pretrained, kwargs)


def i3densenet121(pretrained=False, **kwargs):
    """I3DenseNet121: torchvision's DenseNet-121 inflated to 3D.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1).
    """
    return _create("i3densenet121", pretrained, kwargs)


def i3densenet161(pretrained=False, **kwargs):
    """I3DenseNet161: torchvision's DenseNet-161 inflated to 3D.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1).
    """
    return _create("i3densenet161", pretrained, kwargs)


def i3densenet169(pretrained=False, **kwargs):
    """I3DenseNet169: torchvision's DenseNet-169 inflated to 3D.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1).
    """
    return _create("i3densenet169", pretrained, kwargs)


def i3densenet201(pretrained=False, **kwargs):
    """I3DenseNet201: torchvision's DenseNet-201 inflated to 3D.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1).
    """
    return _create("i3densenet201", pretrained, kwargs)


for _entry in (i3resnet50, i3resnet101, i3resnet152):
    _entry.__doc__ += "\n    " + _RESNET_INPUT + "\n"
for _entry in (i3densenet121, i3densenet161, i3densenet169, i3densenet201):
    _entry.__doc__ += "\n    " + _DENSENET_INPUT + "\n"
del _entry
