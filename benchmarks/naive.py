"""The naive baselines the benchmark compares against (not part of the package).

Forward: torchvision's 2D network, copied, with every layer swapped for its 3D counterpart one by one (the
SPEC's temporal design) and inflated weights copied in -- what one writes without a model zoo.
Construction: build the 2D model, load its weights, build a randomly initialised 3D model, copy inflated
weights in.
"""

from __future__ import annotations

import copy
import types

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import i3zoo
from i3zoo.inference import replace_module
from i3zoo.weights.inflate import inflate_conv_weight


def _resnet_time_kernel(name: str, conv: nn.Conv2d):
    """(temporal taps, temporal stride) of a ResNet convolution: 3-tap stem and 3x3 convs, time strided as space."""
    if name == "conv1":
        return 3, 1
    return (3 if name.endswith("conv2") else 1), conv.stride[0]


def _densenet_time_kernel(name: str, conv: nn.Conv2d):
    """Every DenseNet convolution is one frame deep."""
    return 1, 1


def _conv3d_like(conv: nn.Conv2d, t: int, stride_t: int) -> nn.Conv3d:
    conv3d = nn.Conv3d(conv.in_channels, conv.out_channels, (t, *conv.kernel_size), (stride_t, *conv.stride),
                       (t // 2, *conv.padding), bias=conv.bias is not None)
    with torch.no_grad():
        conv3d.weight.copy_(inflate_conv_weight(conv.weight, t, "center"))
    return conv3d


def _bn3d_like(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    bn3d = nn.BatchNorm3d(bn.num_features)
    bn3d.load_state_dict(bn.state_dict())
    return bn3d


def _densenet_forward_3d(self, x: torch.Tensor) -> torch.Tensor:
    # torchvision's DenseNet.forward pools with F.adaptive_avg_pool2d, which takes no 5D input
    x = F.relu(self.features(x))
    return self.classifier(torch.flatten(F.adaptive_avg_pool3d(x, 1), 1))


def naive_3d(torchvision_arch: str, state_dict_2d=None) -> nn.Module:
    """A torchvision ResNet or DenseNet turned 3D in place, layer by layer (centre inflation)."""
    model = torchvision.models.get_model(torchvision_arch, weights=None)
    if state_dict_2d is not None:
        model.load_state_dict(state_dict_2d)
    model = copy.deepcopy(model)
    densenet = torchvision_arch.startswith("densenet")
    time_kernel = _densenet_time_kernel if densenet else _resnet_time_kernel
    stem_pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)) if densenet else nn.MaxPool3d(3, 2, 1)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Conv2d):
            replace_module(model, name, _conv3d_like(module, *time_kernel(name, module)))
        elif isinstance(module, nn.BatchNorm2d):
            replace_module(model, name, _bn3d_like(module))
        elif isinstance(module, nn.MaxPool2d):
            replace_module(model, name, copy.deepcopy(stem_pool))
        elif isinstance(module, nn.AvgPool2d):  # DenseNet transitions: 2x2x2
            replace_module(model, name, nn.AvgPool3d(2, 2))
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            replace_module(model, name, nn.AdaptiveAvgPool3d(1))
    if densenet:
        model.forward = types.MethodType(_densenet_forward_3d, model)
    return model.eval()


def naive_construct(name: str, path: str) -> nn.Module:
    """2D model + its weights, a randomly initialised 3D model, inflated weights copied in."""
    arch = name.split(".")[0]
    model_3d = i3zoo.create_model(arch)
    model_2d = torchvision.models.get_model(model_3d.torchvision_arch, weights=None)
    model_2d.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    target = {k: v.shape for k, v in model_3d.state_dict().items()}
    model_3d.load_state_dict(i3zoo.inflate_state_dict(model_2d.state_dict(), target, "center"))
    return model_3d
