"""The boring-video check: a 3D model inflated from a 2D one must give the 2D output on repeated frames.

Used by ``i3zoo verify``. The error is reported as max |y3d - y2d| (absolute) and that divided by max |y2d|
(relative), in float64 unless asked otherwise.
"""

from __future__ import annotations

import contextlib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torchvision

from ..registry import create_model, list_models, model_class
from .checkpoints import CheckpointError, cached_path, fetch_checkpoint, read_state_dict
from .inflate import INFLATION_MODES, remap_legacy_densenet_keys

__all__ = ["CheckResult", "WeightChoice", "choose_weights", "seeded_2d_state_dict", "randomize_batchnorm",
           "boring_video_check", "synthetic_images", "load_images"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """Build models in ``dtype``: the inflation then runs in it (W / t in float64 is exact to round-off)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@dataclass(frozen=True)
class WeightChoice:
    """Which 2D weights a check uses, and why."""

    kind: str  # "imagenet" or "random"
    reason: str
    path: Optional[Path] = None


@dataclass(frozen=True)
class CheckResult:
    name: str
    mode: str
    frames: int
    input_shape: Tuple[int, ...]
    max_abs: float
    max_rel: float


def _network_error(url: str, timeout: float = 5.0) -> Optional[str]:
    """None if ``url``'s host answers, else a short reason."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
        return None
    except Exception as e:  # no network, DNS failure, proxy refusal ...: all mean "cannot download"
        return f"{type(e).__name__}: {getattr(e, 'reason', e)}"


def choose_weights(name: str, *, allow_download: bool = True) -> WeightChoice:
    """ImageNet weights if the default tag's 2D checkpoint is cached (hash-checked) or downloadable, else random."""
    url = _default_url(name)
    path = cached_path(url)
    if path.is_file():
        try:
            return WeightChoice("imagenet", f"ImageNet weights from the cache ({path})", fetch_checkpoint(url))
        except CheckpointError as e:
            return WeightChoice("random", f"the cached ImageNet file was refused: {e}")
    if not allow_download:
        return WeightChoice("random", f"no ImageNet checkpoint cached at {path} and downloads are off")
    problem = _network_error(url)
    if problem:
        return WeightChoice("random", f"no ImageNet checkpoint cached at {path} and {url} cannot be reached "
                                      f"({problem})")
    try:
        return WeightChoice("imagenet", f"ImageNet weights downloaded from {url}", fetch_checkpoint(url))
    except CheckpointError as e:
        return WeightChoice("random", f"the ImageNet download failed: {e}")


def _default_url(name: str) -> str:
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(name).url


#: a 2D network: a torchvision name (``"googlenet"``), or a declared ``Torchvision2D`` (anything with ``build()``)
Network2D = Union[str, Any]


def torchvision_2d_model(network: Network2D) -> torch.nn.Module:
    """torchvision's 2D network, randomly initialised, built as for its ImageNet weights: by the declaration of a
    registered model that mirrors it (GoogLeNet's weights need ``transform_input`` ...), or plainly."""
    if isinstance(network, str):
        declared = (model_class(name).network_2d for name in list_models())
        found = next((d for d in declared if d.arch == network), None)
        if found is None:
            return torchvision.models.get_model(network, weights=None)
        network = found
    return network.build()


def seeded_2d_state_dict(network: Network2D, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A torchvision model's state dict with seeded random weights and randomized BatchNorm statistics."""
    torch.manual_seed(seed)
    return randomize_batchnorm(torchvision_2d_model(network), seed + 1).state_dict()


def randomize_batchnorm(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``model`` with seeded random affine parameters and running statistics in every BatchNorm (in place), so
    that normalisation is not the identity it is at initialisation, as trained weights' is not."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                if m.affine:
                    m.weight.copy_(1 + 0.2 * torch.randn(n, generator=g))
                    m.bias.copy_(0.1 * torch.randn(n, generator=g))
                if m.track_running_stats:
                    m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                    m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model


def synthetic_images(count: int = 2, size: int = 112, seed: int = 0) -> torch.Tensor:
    """Smooth random colour images, ImageNet-normalized, (count, 3, size, size)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 8, 8, generator=g)
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    images = images.clamp(0, 1)
    return (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def load_images(directory: Path, size: int = 224) -> torch.Tensor:
    """The photos in ``directory`` (jpg/png/...), resized to 256, center-cropped to ``size``, normalized."""
    from PIL import Image
    from torchvision import transforms

    suffixes = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
    files = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in suffixes)
    if not files:
        raise ValueError(f"no images (.jpg, .jpeg, .png, .bmp, .webp) found in {directory}")
    transform = transforms.Compose([
        transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size), transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    return torch.stack([transform(Image.open(f).convert("RGB")) for f in files])


def boring_video_check(
    name: str,
    state_dict_2d: Dict[str, torch.Tensor],
    images: torch.Tensor,
    *,
    frames: Iterable[int],
    modes: Sequence[str] = INFLATION_MODES,
    dtype: torch.dtype = torch.float64,
) -> List[CheckResult]:
    """Compare the 2D model on ``images`` with the inflated 3D model on their boring videos.

    The 3D model is built through ``create_model(..., pretrained=True)`` from ``state_dict_2d``, i.e. through
    the same inflation a user's checkpoint goes through.
    """
    model_2d = torchvision_2d(model_class(name).network_2d, state_dict_2d).eval().to(dtype)
    images = images.to(dtype)
    with torch.no_grad():
        reference = model_2d(images)
    results = []
    for mode in modes:
        with default_dtype(dtype):  # build in `dtype`, so that the inflation itself runs in it
            model_3d = create_model(name, pretrained=True, inflation=mode,
                                    pretrained_cfg_overlay=dict(state_dict=state_dict_2d)).eval()
        for t in frames:
            clip = images.unsqueeze(2).expand(-1, -1, t, -1, -1)
            with torch.no_grad():
                output = model_3d(clip)
            diff = (output - reference).abs().max().item()
            results.append(CheckResult(name, mode, t, tuple(clip.shape), diff, diff / reference.abs().max().item()))
    return results


def torchvision_2d(network: Network2D, state_dict_2d: Dict[str, torch.Tensor]) -> torch.nn.Module:
    """The torchvision 2D model holding ``state_dict_2d`` (old DenseNet key names accepted, as torchvision does).

    Built on the meta device and given the tensors themselves: nothing is randomly initialised in vain.
    """
    with torch.device("meta"):
        model = torchvision_2d_model(network)
    model.load_state_dict(remap_legacy_densenet_keys(state_dict_2d), assign=True)
    return model


def torchvision_arch_of(name: str) -> str:
    """The torchvision 2D architecture registered model ``name`` is inflated from (``"resnet50"``)."""
    return model_class(name).torchvision_arch


def state_dict_for(name: str, choice: WeightChoice) -> Dict[str, torch.Tensor]:
    """The 2D state dict ``choice`` stands for: the ImageNet file, or seeded random weights."""
    if choice.kind == "imagenet":
        return read_state_dict(choice.path)
    return seeded_2d_state_dict(model_class(name).network_2d)


def _head_free_2d(model_2d: torch.nn.Module) -> torch.nn.Module:
    """The torchvision model with its classifier replaced by the identity: its output is the pooled features."""
    for attr in ("fc", "classifier"):
        if hasattr(model_2d, attr):
            setattr(model_2d, attr, torch.nn.Identity())
    return model_2d


def measure_equivalence(
    model: torch.nn.Module,
    state_dict_2d: Optional[Dict[str, torch.Tensor]] = None,
    *,
    size: int = 64,
    count: int = 2,
) -> Dict[str, object]:
    """Boring-video error of an inflated model against its 2D source, in float64, for the record.

    The 2D weights are ``state_dict_2d`` or the file the model was inflated from (``model.source_2d``).
    Logits are compared when the model keeps the source's 1000-way classifier, pooled features otherwise.
    Clip lengths: the model's minimum T and 16.
    """
    import copy

    if model.in_chans != 3:
        return {"measured": False, "why": "in_chans != 3: the 2D source takes 3 channels"}
    if state_dict_2d is None:
        path = (getattr(model, "source_2d", None) or {}).get("_path")
        if not path:
            return {"measured": False, "why": "the model was not inflated from a 2D file in this session"}
        state_dict_2d = read_state_dict(path)
    model_2d = torchvision_2d(model.network_2d, state_dict_2d)
    compare_logits = model.num_classes == 1000
    if not compare_logits:
        model_2d = _head_free_2d(model_2d)
    model_2d = model_2d.eval().double()
    model_3d = copy.deepcopy(model).eval().double()
    # a design may pad otherwise than its 2D network except at some frame sizes (DeepMind's I3D: 32k - 1)
    size = model.boring_video_size(size) if hasattr(model, "boring_video_size") else size
    images = synthetic_images(count=count, size=size).double()
    frames = sorted({model.min_input_size[0], 16})
    with torch.no_grad():
        reference = model_2d(images)
        worst_abs = 0.0
        for t in frames:
            clip = images.unsqueeze(2).expand(-1, -1, t, -1, -1)
            output = model_3d(clip) if compare_logits else model_3d.forward_head(model_3d.forward_features(clip),
                                                                                   pre_logits=True)
            worst_abs = max(worst_abs, (output - reference).abs().max().item())
    return {
        "measured": True,
        "compared": "logits" if compare_logits else "pooled features",
        "dtype": "float64",
        "frames": frames,
        "input": f"{count} synthetic images, {size}x{size}",
        "max_abs": worst_abs,
        "max_rel": worst_abs / reference.abs().max().item(),
    }
