"""timm's model contract: timm's own model tests, run on every registered i3zoo model with 5D clips.

timm's ``tests/test_models.py`` (huggingface/pytorch-image-models) holds the checks every timm model passes. Their
i3zoo equivalents, for every registered name (``ALL_MODELS``) or tag (``ALL_TAGS``), at the smallest clips the
models take (batch 1 or 2, float32; shape-only checks on the meta device):

* ``test_model_forward``: one forward pass, finite (N, num_classes) logits; with gradient checkpointing on,
  the same output.
* ``test_model_backward``: in train mode every parameter gets a gradient; ``num_classes=42`` heads (one model
  per family, design and block kind: ``BACKWARD_MODELS``).
* ``test_model_default_cfgs``: for every tag, the cfg names its architecture and tag, its ``classifier`` and
  ``first_conv`` name real parameters of the right shape, ``num_classes``/``num_features``/``head_hidden_size``;
  timm's output sizes at the cfg's input: ``forward_features`` gives the cfg's ``pool_size`` (here (T', H', W')
  at the clip (``clip_len``, H, W), 16 frames for a cfg without ``clip_len``), ``reset_classifier(0)`` the pooled
  features, ``reset_classifier(0, '')`` the unpooled 5D map. The forward at the cfg's 16 x 224 x 224 clip runs on
  the meta device: the network's own shape rules without the compute (``test_model_forward`` checks the same
  arithmetic, ``feature_size``, against real tensors; ``test_pool_size_is_the_map_of_a_real_forward`` runs one
  model at the cfg's clip). ``create_model(num_classes=0, global_pool='')`` and the rule that pooling may be off
  only without a classifier: ``test_no_pooling_only_without_a_classifier``.
* ``test_model_without_classifier``: ``reset_classifier(0)``, ``num_classes=0`` at creation.
* ``test_model_load_pretrained`` / ``test_model_features_pretrained``: every tag's weights load with
  ``in_chans=1`` and ``num_classes=5`` or ``0``, and into ``features_only``. The weights are the tag's own
  layout (torchvision's 2D state dict, PyTorchVideo's 3D one for ``ptv_k400``) on the meta device: the strict
  loader checks every name and shape, without downloading or allocating anything.
* ``test_model_forward_features``: ``features_only`` (timm's ``FeatureListNet``) gives one 5D map per
  ``feature_info`` entry with its channels and the size its reduction predicts; ``feature_cls="getter"``
  (timm's ``FeatureGetterNet``, its ``test_model_forward_intermediates_features``) gives the same maps, and
  ``prune_intermediate_layers`` leaves a model that still gives the maps asked for.
* ``test_model_forward_intermediates``: ``forward_intermediates`` gives the final features and one map per
  ``feature_info`` entry, the maps of the ``feature_info`` modules' nodes in a torch.fx graph of the model
  (torchvision's ``create_feature_extractor``, on which timm's FX features are built), whose logits are the
  model's; the traced graph keeps the input check.
* ``test_model_features_fx``: ``feature_cls="fx"`` (timm's ``FeatureGraphNet``) gives the maps of
  ``forward_intermediates`` (one model per family and design: the tracer is the one
  ``test_model_forward_intermediates`` runs on every model).
* ``test_every_feature_path_checks_the_clip``: the eager, list, getter and FX paths refuse a clip below the
  minimum and a 4D tensor with the eager model's ``ValueError``; ``test_feature_api_arguments_are_checked``: bad
  ``indices``, ``output_fmt``, ``feature_cls``, ``feature_cfg`` and ``out_indices`` are errors naming what is allowed.

Which of timm's checks do not apply, and why:

* ``test_model_inference`` compares pretrained outputs with tensors stored on the Hugging Face Hub: nothing can be
  downloaded here, and no pretrained 3D outputs exist to store; the boring-video equivalence with the 2D source
  (``test_equivalence.py``) is the check of the pretrained outputs.
* ``test_model_default_cfgs_non_std``: for transformers (token outputs); i3zoo has none.
* TorchScript (``test_model_forward_torchscript``, ``test_model_forward_fx_torchscript``,
  ``test_model_forward_torchscript_with_features_fx``): TorchScript is deprecated upstream; ``torch.export``
  is the supported route to a graph (``test_export.py``).
* ``test_model_backward_fx``: a traced graph calls the model's own modules and parameters with the ops of the
  eager forward, whose backward ``test_model_backward`` checks (one backward per model keeps the suite short).
"""

from __future__ import annotations

import pytest
import torch
from conftest import ALL_MODELS
from conftest import RANDOM_MODEL_CLASSES as NUM_CLASSES
from test_models import sizes_along_path
from timm.models import get_pretrained_cfg
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import i3zoo
from i3zoo.facts import one_model_per_design
from i3zoo.models._model import DEFAULT_CLIP_LEN
from i3zoo.registry import meta_model
from i3zoo.weights.deepmind_i3d import to_port_state_dict
from i3zoo.weights.pytorchvideo import PYTORCHVIDEO_KINETICS400, to_pytorchvideo_state_dict
from i3zoo.weights.verify import torchvision_2d_model

ALL_TAGS = i3zoo.list_models(pretrained=True)
#: one model per family and temporal design: together every distinct layer structure the zoo builds
DESIGN_MODELS = one_model_per_design()


def clip_size(model: nn.Module):
    """A small clip the model takes: its minimum, with frames of at least 16 x 16 (the ResNets' minimum is 1 x 1;
    16 leaves layer4 a 1 x 1 map)."""
    t, h, w = model.min_input_size
    return t, max(h, 16), max(w, 16)


def feature_size(model: nn.Module, clip):
    """(T', H', W') of the unpooled features: what timm's ``pool_size`` states for a 2D model, derived here from
    the design."""
    return sizes_along_path(model, clip)[-1]


def assert_timm_feature_maps(maps, channels, reductions, clip, batch: int = 1) -> None:
    """timm's checks of feature maps: one per entry, its channels, H and W within timm's bound of the reduction."""
    assert len(maps) == len(channels) == len(reductions)
    for fmap, c, r in zip(maps, channels, reductions):
        assert fmap.dim() == 5 and fmap.shape[:2] == (batch, c)
        assert all(size <= -(-n // r) + 1 for size, n in zip(fmap.shape[3:], clip[1:]))  # timm's bound


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
    assert model.head_hidden_size == model.num_features  # timm's pre-logits width (no hidden layer here)
    torch.testing.assert_close(model.forward_head(features), outputs, rtol=0, atol=0)
    # gradient checkpointing (active only where gradients are recorded) computes the same function
    model.set_grad_checkpointing()
    checkpointed = model(clip)
    torch.testing.assert_close(checkpointed, outputs, rtol=1e-4, atol=1e-5)


# one model per (family, temporal design), and the Bottleneck and grouped blocks the smallest of those omits
# (I3ResNet's smallest is the BasicBlock ResNet-18): together they hold every block and layer the zoo builds; a
# deeper or wider sibling repeats the same blocks, and its backward pass costs up to 20 s on 2 cores
BACKWARD_MODELS = [n for n in ALL_MODELS if n in {*DESIGN_MODELS, "i3resnet50", "i3resnext50_32x4d"}]


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
    # DeepMind's flow stream takes 2 channels; its cfg's mean and std are the RGB frames' the flow is computed from
    channels = 2 if "_flow_" in tag else 3
    assert cfg["input_size"][0] == model.in_chans == channels and len(cfg["mean"]) == len(cfg["std"]) == 3
    assert cfg["url"] == get_pretrained_cfg(name).url and cfg["url"].startswith("https://")
    # timm's output sizes at the cfg's input, by the network's own shape rules on the meta device: forward_features
    # is the (T', H', W') map of pool_size at the cfg's clip, the pooled width head_hidden_size; without a classifier
    # the output is pooled, and without pooling too (reset_classifier(0, '')) the map itself
    clip = (cfg.get("clip_len") or DEFAULT_CLIP_LEN, *cfg["input_size"][1:])
    x = torch.empty(1, channels, *clip, device="meta")
    features = model.forward_features(x)
    assert features.shape == (1, model.num_features, *cfg["pool_size"])
    assert model.forward_head(features, pre_logits=True).shape == (1, model.head_hidden_size)
    model.reset_classifier(0)
    assert model.num_classes == 0 and model(x).shape == (1, model.head_hidden_size)
    model.reset_classifier(0, "")
    assert model(x).shape == (1, model.num_features, *cfg["pool_size"])
    if tag == "ptv_k400":  # the same definition as PyTorchVideo's head, which pools the final map of its clip
        assert tuple(cfg["pool_size"]) == PYTORCHVIDEO_KINETICS400[model.temporal].head_pool_kernel


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
    ``ptv_k400`` PyTorchVideo's 3D one, for DeepMind's ``k400_<stream>_<port>`` the port's."""
    arch, tag = name.split(".")
    if tag.startswith("k400_"):
        return to_port_state_dict(on_meta(name).state_dict(), tag.rsplit("_", 1)[1])
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
    # nor are DeepMind's (a port's tag builds the stream it holds: in_chans is the tag's)
    in_chans = 3 if name.endswith(".ptv_k400") else meta_model(name).in_chans if ".k400_" in name else 1
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
    """``features_only`` through timm's ``FeatureListNet`` (the default) and ``FeatureGetterNet``
    (``feature_cls="getter"``, timm's ``test_model_forward_intermediates_features``): the same maps; pruned for
    features 1 and 2 only, the model keeps no later module and no head, and still gives them."""
    with torch.device("meta"):
        features = i3zoo.create_model(name, features_only=True).eval()
        getter = i3zoo.create_model(name, features_only=True, feature_cls="getter").eval()
    model = getter.model  # the network itself (pruned of nothing but its head: every feature is asked for)
    clip = clip_size(model)
    maps = features(torch.empty(1, 3, *clip, device="meta"))
    channels, reductions = features.feature_info.channels(), features.feature_info.reduction()
    assert len(channels) >= 4 and len(maps) == len(channels)
    assert channels[-1] == model.num_features
    assert_timm_feature_maps(maps, channels, reductions, clip)
    # the deepest map has the size the whole reduction path predicts
    assert maps[-1].shape[2:] == feature_size(model, clip)
    assert (getter.feature_info.channels(), getter.feature_info.reduction()) == (channels, reductions)
    assert [m.shape for m in getter(torch.empty(1, 3, *clip, device="meta"))] == [m.shape for m in maps]
    parameters = sum(p.numel() for p in model.parameters())
    assert model.prune_intermediate_layers((1, 2)) == [1, 2]
    later = [n for stage in model.feature_stages()[3:] for n in stage]
    assert later and all(isinstance(model.get_submodule(n), nn.Identity) for n in later)
    assert model.num_features == model.head_hidden_size == channels[2] and model.num_classes == 0
    assert sum(p.numel() for p in model.parameters()) < parameters
    pruned = model.forward_intermediates(torch.empty(1, 3, *clip, device="meta"), indices=(1, 2),
                                         intermediates_only=True)
    assert [m.shape for m in pruned] == [m.shape for m in maps[1:3]]


# --- timm's feature API: forward_intermediates, the getter, torch.fx -----------------------------------------


def feature_modules(model: nn.Module):
    return [info["module"] for info in model.feature_info]


def test_model_forward_intermediates(random_model):
    """The final features and one map per ``feature_info`` entry, which are the outputs of the ``feature_info``
    modules in a torch.fx graph of the model (torchvision's ``create_feature_extractor``, on which timm's FX
    features are built); the graph gives the model's logits and keeps the input check."""
    model = random_model
    clip = torch.randn(1, 3, *clip_size(model), generator=torch.Generator().manual_seed(2))
    modules = feature_modules(model)
    traced = create_feature_extractor(model, return_nodes=modules + [model.classifier_name])
    with torch.no_grad():
        features, maps = model.forward_intermediates(clip)
        graph_outputs = list(traced(clip).values())
        first, (second,) = model.forward_intermediates(clip, indices=[1], stop_early=True, output_fmt="NCHW")
    assert_timm_feature_maps(maps, [info["num_chs"] for info in model.feature_info],
                             [info["reduction"] for info in model.feature_info], clip.shape[2:])
    assert features.shape == (1, model.num_features, *model.feature_map_size(clip.shape[2:]))
    for fmap, node in zip(maps + [model.forward_head(features)], graph_outputs):
        torch.testing.assert_close(node, fmap, rtol=0, atol=0)
    # stop_early: the backbone stops at the last map asked for, which is then the final output
    torch.testing.assert_close(first, maps[1], rtol=0, atol=0)
    torch.testing.assert_close(second, maps[1], rtol=0, atol=0)
    with pytest.raises(ValueError, match="a single image"):
        traced(clip[:, :, 0])


@pytest.mark.parametrize("name", DESIGN_MODELS)
def test_model_features_fx(name):
    """``feature_cls="fx"``: timm's ``FeatureGraphNet`` traces the model with torch.fx and gives the maps of
    ``forward_intermediates`` (asked for through ``feature_cfg``, as timm's tests do)."""
    graph = on_meta(name, features_only=True, feature_cfg=dict(feature_cls="fx", out_indices=(0, 2, 4)))
    model = meta_model(name).eval()
    x = torch.empty(1, 3, *clip_size(model), device="meta")
    maps = model.forward_intermediates(x, indices=(0, 2, 4), intermediates_only=True)
    assert [m.shape for m in graph(x)] == [m.shape for m in maps]
    assert graph.feature_info.channels() == [model.feature_info[i]["num_chs"] for i in (0, 2, 4)]


@pytest.mark.parametrize("path", ["forward", "forward_intermediates", "list", "getter", "fx"])
def test_every_feature_path_checks_the_clip(path):
    """A clip the model does not take is the eager model's ValueError on every path, traced ones included."""
    name = "i3densenet121"
    if path in ("forward", "forward_intermediates"):
        run = getattr(on_meta(name), path)
    else:
        run = on_meta(name, features_only=True, feature_cls=path)
    t, h, w = meta_model(name).min_input_size
    with pytest.raises(ValueError, match="minimum clip for I3DenseNet121 is 8x29x29"):
        run(torch.empty(1, 3, t - 1, h, w, device="meta"))
    with pytest.raises(ValueError, match="a single image"):
        run(torch.empty(1, 3, h, w, device="meta"))


def test_feature_api_arguments_are_checked():
    model = on_meta("i3resnet18")
    x = torch.empty(1, 3, 1, 16, 16, device="meta")
    with pytest.raises(ValueError, match=r"indices must be .* range\(-5, 5\); got \(5,\)"):
        model.forward_intermediates(x, indices=(5,))
    with pytest.raises(ValueError, match="a count from 1 to 5"):
        model.prune_intermediate_layers(indices=0)
    with pytest.raises(ValueError, match="unknown output_fmt 'NHWC'; allowed: 'NCTHW', 'NCHW'"):
        model.forward_intermediates(x, output_fmt="NHWC")
    with pytest.raises(ValueError, match="unknown feature_cls 'hook'; allowed: 'list', 'getter', 'fx'"):
        on_meta("i3resnet18", features_only=True, feature_cls="hook")
    with pytest.raises(ValueError, match="unknown feature_cfg key 'nrom'.*norm"):
        on_meta("i3resnet18", features_only=True, feature_cls="getter", feature_cfg=dict(nrom=True))
    with pytest.raises(ValueError, match=r"out_indices must be .* range\(-5, 5\); got \(0, 5\)"):
        on_meta("i3resnet18", features_only=True, out_indices=(0, 5))
    assert on_meta("i3resnet18", features_only=True, out_indices=2).feature_info.channels() == [256, 512]
    getter = on_meta("i3resnet18", features_only=True, feature_cls="getter", out_indices=(1, 2))
    assert getter.feature_info.channels() == [64, 128] and isinstance(getter.model.layer3, nn.Identity)
    assert [m.shape for m in getter(x)] == [(1, 64, 1, 4, 4), (1, 128, 1, 2, 2)]


def test_pool_size_is_the_map_of_a_real_forward():
    """The cfg's pool_size, which ``test_model_default_cfgs`` checks on the meta device for every tag, is the map
    real tensors give at the cfg's clip (16 x 224 x 224; the cheapest model, float32, batch 1)."""
    torch.manual_seed(0)
    model = i3zoo.create_model("i3resnet18_c2d", num_classes=0, global_pool="").eval()
    cfg = model.pretrained_cfg
    with torch.no_grad():
        maps = model(torch.randn(1, 3, DEFAULT_CLIP_LEN, *cfg["input_size"][1:]))
    assert "clip_len" not in cfg and maps.shape == (1, 512, *cfg["pool_size"]) and cfg["pool_size"] == (8, 7, 7)


def test_no_pooling_only_without_a_classifier():
    """timm's rule: ``global_pool=''`` needs ``num_classes=0`` (a classifier takes pooled features), at creation
    and in ``reset_classifier``; with it, ``forward`` is ``forward_features``."""
    model = on_meta("i3resnet18", num_classes=3)  # (at creation: test_input_checks.py's BAD_ARGUMENTS)
    with pytest.raises(ValueError, match="needs num_classes=0.*got num_classes=3"):
        model.reset_classifier(3, "")
    assert (model.num_classes, model.global_pool) == (3, "avg")  # a refused reset changes nothing
    model.reset_classifier(0, "")
    with pytest.raises(ValueError, match="needs num_classes=0"):
        model.reset_classifier(5)  # keeps global_pool=''
    model.reset_classifier(5, "max")
    x = torch.empty(2, 3, 1, 16, 16, device="meta")
    assert model(x).shape == (2, 5)
    unpooled = on_meta("i3resnet18", num_classes=0, global_pool="")  # timm's create_model(num_classes=0, ...)
    assert unpooled(x).shape == unpooled.forward_features(x).shape == (2, 512, 1, 1, 1)

