"""How i3zoo reads a 2D network it inflates: its stages, its features, its head, its classifier.

timm's classification models say all of it themselves (``feature_info``, ``forward_features``, ``forward_head``,
``forward_intermediates``, ``reset_classifier``): :class:`TimmAdapter` only calls them. torchvision's do not, so
:class:`TorchvisionAdapter` holds, per architecture class, the modules its ``forward`` runs before the head and
the head itself (read from ``torchvision/models/*.py``); its stages are found by one small probe forward, each the
last module of a spatial reduction, as timm chooses them. Architectures outside that table are refused with
their timm counterpart named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

__all__ = ["Adapter", "TimmAdapter", "TorchvisionAdapter", "adapter_for", "TORCHVISION_HEADS"]


class Adapter:
    """The 2D network's own code, called on folded (N*T, C, H, W) frames."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net

    def feature_info(self) -> List[Dict]:
        """timm's feature_info entries: ``module`` (a name in the 2D network), ``num_chs``, ``reduction``."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def head(self, x: torch.Tensor, pre_logits: bool) -> torch.Tensor:
        raise NotImplementedError

    def intermediates(self, x: torch.Tensor, indices: Sequence[int]) -> List[torch.Tensor]:
        raise NotImplementedError

    def classifier(self) -> nn.Module:
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        raise NotImplementedError

    def num_features(self) -> int:
        raise NotImplementedError


class TimmAdapter(Adapter):
    """A timm model: everything is its own API."""

    def feature_info(self) -> List[Dict]:
        return [dict(module=f["module"], num_chs=f["num_chs"], reduction=f["reduction"])
                for f in self.net.feature_info]

    def features(self, x):
        return self.net.forward_features(x)

    def head(self, x, pre_logits):
        return self.net.forward_head(x, pre_logits=pre_logits)

    def intermediates(self, x, indices):
        if not hasattr(self.net, "forward_intermediates"):
            raise NotImplementedError(f"timm's {type(self.net).__name__} has no forward_intermediates, which "
                                      "features_only on its inflated model needs")
        return self.net.forward_intermediates(x, indices=list(indices), intermediates_only=True)

    def classifier(self):
        return self.net.get_classifier()

    def reset_classifier(self, num_classes):
        self.net.reset_classifier(num_classes)

    def num_features(self):
        return int(getattr(self.net, "head_hidden_size", None) or self.net.num_features)


def _pool_flatten(net, x, pool: str = "avgpool", flatten: bool = True):
    x = getattr(net, pool)(x) if pool else x.mean((2, 3))
    return torch.flatten(x, 1) if flatten and x.dim() > 2 else x


@dataclass(frozen=True)
class TorchvisionHead:
    """A torchvision architecture as i3zoo reads it: the modules before the head, what the head does before its
    classifier (``pool``: ``"avgpool"``, or ``""`` for a mean over H and W as DenseNet, MobileNetV2, ShuffleNet
    and MNASNet take it), the
    classifier attribute, and whether features end with a ReLU outside any module (DenseNet)."""

    body: Tuple[str, ...]
    classifier: str
    pool: str = "avgpool"
    flatten: bool = True
    final_relu: bool = False


_OPENED = ("features", "trunk_output", "layers")
#: torchvision's classification CNNs, by class name (read from torchvision/models/<family>.py ``forward``)
TORCHVISION_HEADS: Dict[str, TorchvisionHead] = {
    "ResNet": TorchvisionHead(("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"), "fc"),
    "RegNet": TorchvisionHead(("stem", "trunk_output"), "fc"),
    "DenseNet": TorchvisionHead(("features",), "classifier", pool="", final_relu=True),
    "EfficientNet": TorchvisionHead(("features",), "classifier"),
    "MobileNetV2": TorchvisionHead(("features",), "classifier", pool=""),
    "MobileNetV3": TorchvisionHead(("features",), "classifier"),
    "ConvNeXt": TorchvisionHead(("features",), "classifier", flatten=False),  # its classifier flattens
    "VGG": TorchvisionHead(("features",), "classifier"),
    "AlexNet": TorchvisionHead(("features",), "classifier"),
    "ShuffleNetV2": TorchvisionHead(("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"), "fc", pool=""),
    "MNASNet": TorchvisionHead(("layers",), "classifier", pool=""),
}


class TorchvisionAdapter(Adapter):
    """A torchvision classification CNN of :data:`TORCHVISION_HEADS`."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__(net)
        self.spec = TORCHVISION_HEADS[type(net).__name__]
        self.sequence = self._sequence()
        self._info = self._probe()

    def _sequence(self) -> List[str]:
        """The modules ``features`` runs, in order: the body's, Sequentials opened one level."""
        names = []
        for name in self.spec.body:
            module = self.net.get_submodule(name)
            opened = isinstance(module, nn.Sequential) and name in _OPENED
            names += [f"{name}.{c}" for c in module._modules] if opened else [name]
        return names

    def _probe(self) -> List[Dict]:
        """Run the sequence on one 64x64 frame: a stage ends where the next module reduces space further."""
        first = next(m for m in self.net.modules() if isinstance(m, nn.Conv2d))
        x = torch.zeros(1, first.in_channels, 64, 64, dtype=first.weight.dtype, device=first.weight.device)
        sizes = []
        with torch.no_grad():
            was_training = self.net.training
            self.net.eval()
            for name in self.sequence:
                x = self.net.get_submodule(name)(x)
                sizes.append((64 // x.shape[-1], x.shape[1]))
            self.net.train(was_training)
        info = []
        for i, (name, (reduction, channels)) in enumerate(zip(self.sequence, sizes)):
            if i + 1 == len(sizes) or sizes[i + 1][0] != reduction:
                info.append(dict(module=name, num_chs=channels, reduction=reduction))
        return info

    def feature_info(self):
        return self._info

    def features(self, x):
        for name in self.sequence:
            x = self.net.get_submodule(name)(x)
        return torch.relu(x) if self.spec.final_relu else x

    def head(self, x, pre_logits):
        x = _pool_flatten(self.net, x, self.spec.pool, self.spec.flatten)
        return x if pre_logits else self.classifier()(x)

    def intermediates(self, x, indices):
        wanted = {self._info[i]["module"] for i in indices}
        out = []
        for name in self.sequence:
            x = self.net.get_submodule(name)(x)
            if name in wanted:
                out.append(x)
            if len(out) == len(wanted):
                break
        return out

    def classifier(self):
        return self.net.get_submodule(self.spec.classifier)

    def _last_linear(self) -> Tuple[str, nn.Linear]:
        head = self.classifier()
        if isinstance(head, nn.Linear):
            return self.spec.classifier, head
        name, linear = [(n, m) for n, m in head.named_modules() if isinstance(m, nn.Linear)][-1]
        return f"{self.spec.classifier}.{name}", linear

    def reset_classifier(self, num_classes):
        name, linear = self._last_linear()
        new = nn.Linear(linear.in_features, num_classes, device=linear.weight.device, dtype=linear.weight.dtype) \
            if num_classes else nn.Identity()
        self.net.set_submodule(name, new)

    def num_features(self):
        return self._info[-1]["num_chs"]


def adapter_for(net: nn.Module) -> Adapter:
    """The adapter of a timm or torchvision classification network; ``ValueError`` naming what is allowed."""
    kind = type(net).__module__
    if kind.startswith("timm.") and hasattr(net, "feature_info") and hasattr(net, "forward_head"):
        return TimmAdapter(net)
    if kind.startswith("torchvision.models") and type(net).__name__ in TORCHVISION_HEADS:
        return TorchvisionAdapter(net)
    if kind.startswith("torchvision.models"):
        raise ValueError(f"torchvision's {type(net).__name__} is not one of the architectures i3zoo can inflate "
                         f"from torchvision ({', '.join(TORCHVISION_HEADS)}); inflate its timm counterpart "
                         "(inflate:timm/NAME) instead")
    raise ValueError(f"i3zoo inflates timm and torchvision classification networks; got a {kind}."
                     f"{type(net).__name__}")

