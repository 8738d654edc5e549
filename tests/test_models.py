"""timm's model tests for i3zoo's 5D models, parametrized over the whole registry.

timm's ``tests/test_models.py`` (huggingface/pytorch-image-models) holds the checks every timm model passes.
Their i3zoo equivalents, for every registered name (``ALL_MODELS``) or tag (``ALL_TAGS``):

* ``test_model_forward``: one forward pass, finite (N, num_classes) logits; with gradient checkpointing on,
  the same output.
* ``test_model_backward``: in train mode every parameter gets a gradient; ``num_classes=42`` heads (one model
  per family, design and block kind: ``BACKWARD_MODELS``).
* ``test_model_default_cfgs``: for every tag, the cfg names its architecture and tag, its ``classifier`` and
  ``first_conv`` name real parameters of the right shape, ``num_classes``/``num_features``; the output-size
  part of timm's test is in ``test_model_forward`` (``forward_features`` unpooled with the size the model's
  own reduction path predicts: timm's ``pool_size``, here (T', H', W') derived from the design;
  ``forward_head(pre_logits=True)``) and ``test_model_without_classifier`` (``reset_classifier(0)``,
  ``num_classes=0`` at creation).
* ``test_model_load_pretrained`` / ``test_model_features_pretrained``: every tag's weights load with
  ``in_chans=1`` and ``num_classes=5`` or ``0``, and into ``features_only``. The weights are the tag's own
  layout (torchvision's 2D state dict, PyTorchVideo's 3D one for ``ptv_k400``) on the meta device: the strict
  loader checks every name and shape, without downloading or allocating anything.
* ``test_model_forward_features``: ``features_only`` gives one 5D map per ``feature_info`` entry with its
  channels and the size its reduction predicts.

i3zoo's own additions: the class, ``torch.hub`` entry point and ``create_model`` build the same network; the
parameter count is the 2D source's plus the temporal taps; the minimum clip is exactly the smallest the
network takes.

Which of timm's checks do not apply, and why:

* ``test_model_inference`` compares pretrained outputs with tensors stored on the Hugging Face Hub: nothing can be
  downloaded here, and no pretrained 3D outputs exist to store; the boring-video equivalence with the 2D source
  (``test_equivalence.py``) is the check of the pretrained outputs.
* ``global_pool=''`` (no pooling: ``reset_classifier(0, '')``, ``create_model(num_classes=0, global_pool='')``):
  i3zoo offers ``"avg"`` and ``"max"`` only; the unpooled map is ``forward_features``.
* ``head_hidden_size``: i3zoo's heads have no hidden layer; ``num_features`` is the pre-logits width.
* ``test_model_default_cfgs_non_std``: for transformers (token outputs); i3zoo has none.
* ``forward_intermediates`` and ``features_only`` with ``feature_cls='getter'``: not offered; i3zoo's feature
  API is ``features_only`` through timm's ``FeatureListNet``.
* TorchScript and torch.fx (``test_model_forward_torchscript``, ``*_fx``, ``*_fx_torchscript``): every forward
  first checks the clip (rank, dtype, sizes) and raises a ``ValueError`` that names what is allowed; that branches
  on the input's shape, which fx's symbolic tracing cannot follow, and TorchScript is in maintenance in
  PyTorch. The compiled path i3zoo offers is ``torch.compile`` (``optimize_for_inference(compile=True)``,
  ``test_inference.py``).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import ALL_MODELS
from conftest import RANDOM_MODEL_CLASSES as NUM_CLASSES
from timm.models import get_pretrained_cfg
from torch import nn
from torchvision.transforms import v2

import i3zoo
from i3zoo.facts import one_model_per_design
from i3zoo.models import INCEPTION_DESIGNS
from i3zoo.models.layers import output_size
from i3zoo.registry import meta_model
from i3zoo.video import transforms_for
from i3zoo.weights.pytorchvideo import to_pytorchvideo_state_dict
from i3zoo.weights.verify import torchvision_2d_model

REPO_ROOT = Path(__file__).resolve().parents[1]
ALL_TAGS = i3zoo.list_models(pretrained=True)


def clip_size(model: nn.Module):
    """A small clip the model takes: its minimum, with frames of at least 16 x 16 (the ResNets' minimum is 1 x 1;
    16 leaves layer4 a 1 x 1 map)."""
    t, h, w = model.min_input_size
    return t, max(h, 16), max(w, 16)


def sizes_along_path(model: nn.Module, clip):
    """(T, H, W) after each layer of the model's reduction path, by PyTorch's output-size rule on each axis."""
    sizes, size = [], list(clip)
    for spec in model.reduction_path():
        size = [output_size(n, k, s, p, spec.ceil_mode)
                for n, k, s, p in zip(size, spec.kernel, spec.stride, spec.padding)]
        sizes.append(tuple(size))
    return sizes


def feature_size(model: nn.Module, clip):
    """(T', H', W') of the unpooled features: what timm's ``pool_size`` states for a 2D model, derived here from
    the design."""
    return sizes_along_path(model, clip)[-1]


def named_class(name: str) -> type:
    classes = {c.arch_name: c for family in (i3zoo.I3ResNet, i3zoo.I3DenseNet, i3zoo.I3InceptionV1)
               for c in (family, *family.__subclasses__()) if c.arch_name}
    return classes[name]


# --- forward and backward: real weights, one model per name shared with test_properties.py (conftest) ----------


def test_model_forward(random_model):
    model = random_model
    clip = torch.randn(1, 3, *clip_size(model), generator=torch.Generator().manual_seed(0))
    outputs = model(clip)
    assert outputs.shape == (1, NUM_CLASSES)
    assert torch.isfinite(outputs).all()
    # forward = forward_head(forward_features): unpooled features of the size the design predicts
    features = model.forward_features(clip)
    assert features.shape == (1, model.num_features, *feature_size(model, clip.shape[2:]))
    assert model.forward_head(features, pre_logits=True).shape == (1, model.num_features)
    torch.testing.assert_close(model.forward_head(features), outputs, rtol=0, atol=0)
    # gradient checkpointing (active only where gradients are recorded) computes the same function
    model.set_grad_checkpointing()
    checkpointed = model(clip)
    torch.testing.assert_close(checkpointed, outputs, rtol=1e-4, atol=1e-5)


# one model per (family, temporal design), and the Bottleneck and grouped blocks the smallest of those omits
# (I3ResNet's smallest is the BasicBlock ResNet-18): together they hold every block and layer the zoo builds; a
# deeper or wider sibling repeats the same blocks, and its backward pass costs up to 20 s on 2 cores
BACKWARD_MODELS = [n for n in ALL_MODELS if n in {*one_model_per_design(), "i3resnet50", "i3resnext50_32x4d"}]


@pytest.mark.parametrize("registered_name", BACKWARD_MODELS, indirect=True)
def test_model_backward(random_model):
    model = random_model
    model.train()
    clip = torch.randn(2, 3, *clip_size(model), generator=torch.Generator().manual_seed(1))
    outputs = model(clip)
    outputs.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
    assert sum(p.grad.numel() for p in model.parameters()) == sum(p.numel() for p in model.parameters())
    assert outputs.shape == (2, NUM_CLASSES) and torch.isfinite(outputs).all()


# --- shapes and cfgs: built on the meta device (no memory, no initialisation) --------------------------------


def on_meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return i3zoo.create_model(name, **kwargs).eval()


@pytest.mark.parametrize("name", ALL_TAGS)
def test_model_default_cfgs(name):
    model = on_meta(name)
    arch, tag = name.split(".")
    cfg = model.pretrained_cfg
    assert (cfg["architecture"], cfg["tag"]) == (arch, tag)
    assert model.num_classes == cfg["num_classes"] > 0 and model.num_features > 0
    state_dict = model.state_dict()
    assert f"{cfg['classifier']}.weight" in state_dict and f"{cfg['first_conv']}.weight" in state_dict
    assert (cfg["classifier"], cfg["first_conv"]) == (model.classifier_name, model.first_conv_name)
    assert state_dict[f"{cfg['classifier']}.weight"].shape == (cfg["num_classes"], model.num_features)
    assert cfg["input_size"][0] == model.in_chans == 3 and len(cfg["mean"]) == len(cfg["std"]) == 3
    assert cfg["url"] == get_pretrained_cfg(name).url and cfg["url"].startswith("https://")


@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_without_classifier(name):
    """``reset_classifier(0)`` and ``num_classes=0`` at creation: the output is the pooled features."""
    model = on_meta(name)
    x = torch.empty(1, 3, *clip_size(model), device="meta")
    model.reset_classifier(0)
    assert model.num_classes == 0 and isinstance(model.get_classifier(), nn.Identity)
    assert model(x).shape == (1, model.num_features)
    headless = on_meta(name, num_classes=0)
    assert headless.num_classes == 0 and isinstance(headless.get_classifier(), nn.Identity)
    assert not any(k.startswith(headless.classifier_name + ".") for k in headless.state_dict())


def pretrained_layout(name: str):
    """The tag's weights in their own layout, on the meta device: torchvision's 2D state dict, or for
    ``ptv_k400`` PyTorchVideo's 3D one."""
    arch, tag = name.split(".")
    if tag == "ptv_k400":
        model = on_meta(arch, num_classes=400)
        return to_pytorchvideo_state_dict(model.state_dict(), stage_pool=hasattr(model, "layer1_pool"))
    with torch.device("meta"):
        return torchvision_2d_model(model_arch(arch)).state_dict()


def model_arch(arch: str) -> str:
    return meta_model(arch).torchvision_arch


@pytest.mark.parametrize("name", ALL_TAGS)
def test_model_load_pretrained(name):
    overlay = dict(state_dict=pretrained_layout(name))
    # as timm's test (which keeps 3 channels for its pruned models): PyTorchVideo's trained 3D first kernel is
    # not adapted to other channel counts (timm's adapt_input_conv is 2D), so ptv_k400 keeps 3
    in_chans = 3 if name.endswith(".ptv_k400") else 1
    for num_classes in (5, 0):
        model = i3zoo.create_model(name, pretrained=True, in_chans=in_chans, num_classes=num_classes,
                                   pretrained_cfg_overlay=overlay)
        first = model.get_submodule(model.first_conv_name)
        assert first.in_channels == in_chans and model.num_classes == num_classes
        head = model.get_classifier()
        assert isinstance(head, nn.Identity) if num_classes == 0 else head.out_features == num_classes


@pytest.mark.parametrize("name", ALL_TAGS)
def test_model_features_pretrained(name):
    features = i3zoo.create_model(name, pretrained=True, features_only=True,
                                  pretrained_cfg_overlay=dict(state_dict=pretrained_layout(name)))
    assert len(features.feature_info.channels()) == 5


@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_forward_features(name):
    with torch.device("meta"):
        features = i3zoo.create_model(name, features_only=True).eval()
    model = meta_model(name)
    clip = clip_size(model)
    maps = features(torch.empty(1, 3, *clip, device="meta"))
    channels, reductions = features.feature_info.channels(), features.feature_info.reduction()
    assert len(channels) >= 4 and len(maps) == len(channels)
    assert channels[-1] == model.num_features
    for fmap, c, r in zip(maps, channels, reductions):
        assert fmap.dim() == 5 and fmap.shape[:2] == (1, c)
        assert all(size <= -(-n // r) + 1 for size, n in zip(fmap.shape[3:], clip[1:]))  # timm's bound
    # the deepest map has the size the whole reduction path predicts
    assert maps[-1].shape[2:] == feature_size(model, clip)


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
