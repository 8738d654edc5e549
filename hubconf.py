"""torch.hub entry points of i3zoo: I3D-inflated 3D ResNets, ResNeXts, Wide ResNets, DenseNets and Inception-v1
for video.

    model = torch.hub.load("<owner>/i3zoo", "i3resnet50", pretrained=True)

Every entry point takes the keyword arguments of ``i3zoo.create_model``: ``pretrained``, ``inflation``
("center" | "mean"), ``num_classes``, ``in_chans``, ``drop_rate``, ``global_pool``, ``pretrained_cfg``
(a weight tag such as "tv2_in1k"), ``pretrained_cfg_overlay`` (``dict(file=PATH)`` or ``dict(url=URL)``).
"""

dependencies = ["torch", "torchvision", "timm", "huggingface_hub", "safetensors"]

import i3zoo as _i3zoo  # noqa: E402  (torch.hub reads `dependencies` before importing anything else)

_RESNET_INPUT = "Input: float (N, 3, T, H, W) clips, ImageNet-normalized; any T >= 1. Output: (N, num_classes)."
_DENSENET_INPUT = ("Input: float (N, 3, T, H, W) clips, ImageNet-normalized; T >= 8, H, W >= 29. "
                   "Output: (N, num_classes).")


def _create(name, pretrained, kwargs):
    return _i3zoo.create_model(name, pretrained=pretrained, **kwargs)


def i3resnet18(pretrained=False, **kwargs):
    """I3ResNet18: torchvision's ResNet-18 (BasicBlocks) inflated to 3D, 3x3x3 on both convolutions of a block.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1, its only ImageNet weights).
    """
    return _create("i3resnet18", pretrained, kwargs)


def i3resnet34(pretrained=False, **kwargs):
    """I3ResNet34: torchvision's ResNet-34 (BasicBlocks) inflated to 3D, 3x3x3 on both convolutions of a block.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1, its only ImageNet weights).
    """
    return _create("i3resnet34", pretrained, kwargs)


def i3resnet18_c2d(pretrained=False, **kwargs):
    """I3ResNet18 in the C2D design: every kernel one frame deep, a 2x1x1 temporal max-pool after layer1.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1).
    """
    return _create("i3resnet18_c2d", pretrained, kwargs)


def i3resnet34_c2d(pretrained=False, **kwargs):
    """I3ResNet34 in the C2D design: every kernel one frame deep, a 2x1x1 temporal max-pool after layer1.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1).
    """
    return _create("i3resnet34_c2d", pretrained, kwargs)


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


def i3resnext50_32x4d(pretrained=False, **kwargs):
    """I3ResNeXt50_32x4d: torchvision's ResNeXt-50 32x4d (grouped 3x3 convolutions) inflated to 3D.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1, default) or ``tv2_in1k`` (IMAGENET1K_V2).
    """
    return _create("i3resnext50_32x4d", pretrained, kwargs)


def i3resnext101_32x8d(pretrained=False, **kwargs):
    """I3ResNeXt101_32x8d: torchvision's ResNeXt-101 32x8d inflated to 3D.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1, default) or ``tv2_in1k`` (IMAGENET1K_V2).
    """
    return _create("i3resnext101_32x8d", pretrained, kwargs)


def i3resnext101_64x4d(pretrained=False, **kwargs):
    """I3ResNeXt101_64x4d: torchvision's ResNeXt-101 64x4d inflated to 3D.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1, its only ImageNet weights).
    """
    return _create("i3resnext101_64x4d", pretrained, kwargs)


def i3wide_resnet50_2(pretrained=False, **kwargs):
    """I3WideResNet50_2: torchvision's Wide ResNet-50-2 (bottlenecks twice as wide) inflated to 3D.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1, default) or ``tv2_in1k`` (IMAGENET1K_V2).
    """
    return _create("i3wide_resnet50_2", pretrained, kwargs)


def i3wide_resnet101_2(pretrained=False, **kwargs):
    """I3WideResNet101_2: torchvision's Wide ResNet-101-2 inflated to 3D.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1, default) or ``tv2_in1k`` (IMAGENET1K_V2).
    """
    return _create("i3wide_resnet101_2", pretrained, kwargs)


def i3inception_v1(pretrained=False, **kwargs):
    """I3InceptionV1: torchvision's GoogLeNet (Inception-v1 with BatchNorm) inflated to 3D in the I3D paper's
    design (Carreira & Zisserman 2017): 7x7x7 stem, 3x3x3 in every branch, time reduced 8x.

    Weights: ``tv_in1k`` (torchvision IMAGENET1K_V1; its auxiliary classifiers are dropped). Like torchvision's
    pretrained GoogLeNet it re-normalises ImageNet-normalized input itself (``transform_input=True``).
    """
    return _create("i3inception_v1", pretrained, kwargs)


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


for _entry in (i3resnet18, i3resnet34, i3resnet50, i3resnet101, i3resnet152, i3resnet50_slowonly, i3resnext50_32x4d,
               i3resnext101_32x8d, i3resnext101_64x4d, i3wide_resnet50_2, i3wide_resnet101_2):
    _entry.__doc__ += "\n    " + _RESNET_INPUT + "\n"
i3inception_v1.__doc__ += "\n    " + _RESNET_INPUT.replace("any T >= 1", "any T >= 1, H, W >= 15") + "\n"
for _entry in (i3resnet50_i3d, i3resnet50_c2d, i3resnet18_c2d, i3resnet34_c2d):
    _entry.__doc__ += "\n    " + _RESNET_INPUT.replace("any T >= 1", "T >= 2") + "\n"
for _entry in (i3densenet121, i3densenet161, i3densenet169, i3densenet201):
    _entry.__doc__ += "\n    " + _DENSENET_INPUT + "\n"
del _entry
