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


def i3resnet50_i3d(pretrained=False, **kwargs):
    """I3ResNet50 in PyTorchVideo's I3D design (``i3d_r50``): 5x7x7 stem, 3x1x1 kernels on alternating blocks,
    a temporal max-pool after layer1; 28,043,472 parameters at 400 classes.

    Weights: ``tv_in1k`` (default) / ``tv2_in1k`` inflated from torchvision's ImageNet ResNet-50, or
    ``pretrained_cfg="ptv_k400"``: PyTorchVideo's Kinetics-400 checkpoint (top-1 73.3; 400 classes; clips of 8
    frames one every 8, normalized with mean 0.45 and std 0.225).
    """
    return _create("i3resnet50_i3d", pretrained, kwargs)


def i3resnet50_slowonly(pretrained=False, **kwargs):
    """I3ResNet50 in PyTorchVideo's SlowOnly design (``slow_r50``): 3x1x1 kernels in layer3 and layer4 only,
    time never pooled; 32,454,096 parameters at 400 classes.

    Weights: ``tv_in1k`` (default) / ``tv2_in1k`` inflated from ImageNet, or ``pretrained_cfg="ptv_k400"``:
    PyTorchVideo's Kinetics-400 checkpoint (top-1 74.6; 8 frames one every 8, mean 0.45, std 0.225).
    """
    return _create("i3resnet50_slowonly", pretrained, kwargs)


def i3resnet50_c2d(pretrained=False, **kwargs):
    """I3ResNet50 in PyTorchVideo's C2D design (``c2d_r50``): no temporal kernel, a temporal max-pool after
    layer1; 24,327,632 parameters at 400 classes.

    Weights: ``tv_in1k`` (default) / ``tv2_in1k`` inflated from ImageNet, or ``pretrained_cfg="ptv_k400"``:
    PyTorchVideo's Kinetics-400 checkpoint (top-1 71.5; 8 frames one every 8, mean 0.45, std 0.225).
    """
    return _create("i3resnet50_c2d", pretrained, kwargs)


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


for _entry in (i3resnet50, i3resnet101, i3resnet152, i3resnet50_slowonly):
    _entry.__doc__ += "\n    " + _RESNET_INPUT + "\n"
for _entry in (i3resnet50_i3d, i3resnet50_c2d):
    _entry.__doc__ += "\n    " + _RESNET_INPUT.replace("any T >= 1", "T >= 2") + "\n"
for _entry in (i3densenet121, i3densenet161, i3densenet169, i3densenet201):
    _entry.__doc__ += "\n    " + _DENSENET_INPUT + "\n"
del _entry
