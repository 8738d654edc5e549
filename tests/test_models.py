"""i3zoo's own registry-wide model checks, parametrized over every registered name (``ALL_MODELS``) or tag.

timm's model tests (forward, backward, default cfgs, features, intermediates, FX) run on every model in
``test_timm_contract.py``. Here: the class, ``torch.hub`` entry point and ``create_model`` build the same network;
the parameter count is the 2D source's plus the temporal taps; the minimum clip is exactly the smallest the network
takes (by PyTorch's output-size rule along the design's reduction path, ``sizes_along_path``); the video transforms
follow each tag's cfg; the README's Inception-v1 design table and the family arguments.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import ALL_MODELS
from timm.models import get_pretrained_cfg
from torch import nn
from torchvision.transforms import v2

import i3zoo
from i3zoo.models import INCEPTION_DESIGNS
from i3zoo.models.layers import output_size
from i3zoo.registry import meta_model
from i3zoo.video import transforms_for
from i3zoo.weights.verify import torchvision_2d_model

REPO_ROOT = Path(__file__).resolve().parents[1]
ALL_TAGS = i3zoo.list_models(pretrained=True)


def sizes_along_path(model: nn.Module, clip):
    """(T, H, W) after each layer of the model's reduction path, by PyTorch's output-size rule on each axis."""
    sizes, size = [], list(clip)
    for spec in model.reduction_path():
        size = [output_size(n, k, s, p, spec.ceil_mode)
                for n, k, s, p in zip(size, spec.kernel, spec.stride, spec.padding)]
        sizes.append(tuple(size))
    return sizes


def named_class(name: str) -> type:
    classes = {c.arch_name: c for family in (i3zoo.I3ResNet, i3zoo.I3DenseNet, i3zoo.I3InceptionV1)
               for c in (family, *family.__subclasses__()) if c.arch_name}
    return classes[name]


# --- i3zoo's own registry-wide checks ------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def hubconf_module():
    spec = importlib.util.spec_from_file_location("i3zoo_hubconf", REPO_ROOT / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_way_in_builds_the_same_network(name):
    """create_model, the class and the torch.hub entry point (with a docstring stating the minimum clip)."""
    reference = meta_model(name)
    with torch.device("meta"):
        from_class = named_class(name)()
        from_hub = torch.hub.load(str(REPO_ROOT), name, source="local")
    for model in (from_class, from_hub):
        assert type(model) is type(reference)
        assert {k: v.shape for k, v in model.state_dict().items()} == \
            {k: v.shape for k, v in reference.state_dict().items()}
    doc = getattr(hubconf_module(), name).__doc__
    assert doc and f"T >= {reference.min_input_size[0]}" in doc


@pytest.mark.parametrize("name", ALL_MODELS)
def test_parameter_count_is_the_2d_count_plus_the_temporal_taps(name):
    """P3D = P2D + sum over convolutions of (t - 1) * numel(W2D).

    A 2D kernel W2D of shape (O, I/groups, h, w) becomes (O, I/groups, t, h, w): t times its parameters, so
    each convolution adds (t - 1) * numel(W2D); every other parameter (BatchNorm, classifier) is the 2D one.
    P2D leaves out the 2D keys the model drops on purpose (GoogLeNet's auxiliary classifiers).
    """
    model = meta_model(name)
    with torch.device("meta"):
        model_2d = torchvision_2d_model(model.network_2d)
    params_2d = model.network_2d.drop_ignored(dict(model_2d.named_parameters()))
    taps = 0
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Conv3d):
            w2d = params_2d[f"{module_name}.weight"]
            t = module.weight.shape[2]
            assert module.weight.shape == (*w2d.shape[:2], t, *w2d.shape[2:]), module_name
            taps += (t - 1) * w2d.numel()
    params_3d = sum(p.numel() for p in model.parameters())
    assert params_3d == sum(p.numel() for p in params_2d.values()) + taps
    assert (taps > 0) == any(m.kernel_size[0] > 1 for m in model.modules() if isinstance(m, nn.Conv3d))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_minimum_clip_is_derived_and_tight(name):
    """The minimum clip runs; one frame or pixel less along any axis is a ValueError, and the network itself
    (without the check) could not run it either: the minimum is the design's, not an arbitrary bound."""
    model = meta_model(name).eval()
    minimum = model.min_input_size
    assert model(torch.empty(1, 3, *minimum, device="meta")).shape == (1, model.num_classes)
    assert min(min(size) for size in sizes_along_path(model, minimum)) >= 1
    for axis in range(3):
        if minimum[axis] == 1:
            continue
        smaller = list(minimum)
        smaller[axis] -= 1
        with pytest.raises(ValueError, match="minimum clip"):
            model(torch.empty(1, 3, *smaller, device="meta"))
        assert min(min(size) for size in sizes_along_path(model, smaller)) < 1  # a layer has no output there


def test_inception_minimum_frame_is_torchvision_googlenets():
    """I3InceptionV1's smallest frame (derived from its design) is the smallest torchvision's GoogLeNet takes."""
    model = meta_model("i3inception_v1")
    _, h, w = model.min_input_size
    with torch.device("meta"):
        googlenet = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval()
    assert googlenet(torch.empty(1, 3, h, w, device="meta")).shape == (1, 1000)
    with pytest.raises(RuntimeError):
        googlenet(torch.empty(1, 3, h - 1, w - 1, device="meta"))


@pytest.mark.parametrize("name", ALL_TAGS)
def test_video_transforms_follow_the_pretrained_cfg(name):
    """The evaluation transform of every tag normalizes with its cfg's mean and std and crops its input size."""
    cfg = get_pretrained_cfg(name).to_dict()
    if cfg["input_size"][0] != 3:  # DeepMind's flow stream: its input is computed from frames, not decoded
        with pytest.raises(i3zoo.UsageError, match=f"the model takes {cfg['input_size'][0]}-channel input"):
            transforms_for(cfg)
        return
    transform = transforms_for(cfg)  # what transforms_for(name) reads, without building the model
    normalize = next(t for t in transform.transforms if isinstance(t, v2.Normalize))
    assert tuple(normalize.mean) == tuple(cfg["mean"]) and tuple(normalize.std) == tuple(cfg["std"])
    frames = torch.randint(0, 256, (2, 3, 300, 400), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert transform(frames).shape == (3, 2, *cfg["input_size"][1:])


def test_readme_inception_design_table_is_the_design():
    """The README's I3InceptionV1 rows for the layers that shape the clip are INCEPTION_DESIGNS["i3d"]."""
    design = INCEPTION_DESIGNS["i3d"]
    readme = (REPO_ROOT / "README.md").read_text()

    def row(label, spec, padding):
        kernel = "×".join(map(str, spec.kernel))
        return f"| {label} | {kernel} | {','.join(map(str, spec.stride))} | {padding} |"

    assert row("conv1", design.conv1, ",".join(map(str, design.conv1.padding))) in readme
    assert design.maxpool1 == design.maxpool2 and design.maxpool1.padding == (0, 0, 0) and design.maxpool1.ceil_mode
    assert row("maxpool1, maxpool2 (before conv2, before Mixed_3)", design.maxpool1, "0 (rounding up)") in readme
    assert design.maxpool3.ceil_mode and design.maxpool4.ceil_mode and design.maxpool4.padding == (0, 0, 0)
    assert row("maxpool3 (before Mixed_4)", design.maxpool3,
               ",".join(map(str, design.maxpool3.padding)) + " (rounding up)") in readme
    assert row("maxpool4 (before Mixed_5)", design.maxpool4, "0 (rounding up)") in readme
    assert f"Time is reduced {meta_model('i3inception_v1').temporal_reduction}×" in readme


def test_family_arguments_that_do_not_fit_are_named():
    with torch.device("meta"):
        with pytest.raises(ValueError, match="allowed: 'seed', 'c2d'"):
            i3zoo.I3ResNet18(temporal="i3d")  # defined on a bottleneck's 1x1 convolution, which BasicBlocks lack
        with pytest.raises(ValueError, match="use 'i3resnet18_c2d'"):
            i3zoo.I3ResNet18(temporal="c2d")
        with pytest.raises(ValueError, match="groups=1 and width_per_group=64"):
            i3zoo.I3ResNet(block_counts=(2, 2, 2, 2), block="basic", groups=32)
        with pytest.raises(ValueError, match="unknown block 'basicblock'"):
            i3zoo.I3ResNet(block_counts=(2, 2, 2, 2), block="basicblock")
        with pytest.raises(ValueError, match="transform_input=False"):
            i3zoo.I3InceptionV1(in_chans=1, transform_input=True)
        assert i3zoo.I3InceptionV1(in_chans=1).transform_input is False
        assert isinstance(i3zoo.I3InceptionV1().input_transform, nn.Module)


def test_transform_input_is_saved_with_the_model():
    """save_pretrained's model_args carry Inception-v1's transform_input, so a reloaded model keeps it."""
    from i3zoo.weights.hub import model_args_of

    with torch.device("meta"):
        model = i3zoo.create_model("i3inception_v1", transform_input=False)
        args = model_args_of(model)
        assert args["transform_input"] is False
        assert i3zoo.create_model("i3inception_v1", **args).transform_input is False
        assert "transform_input" not in model_args_of(i3zoo.create_model("i3resnet18"))
