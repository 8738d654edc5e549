"""Names, tags and the timm surface: list_models / is_model / list_tags, create_model (i3zoo's and timm's),
head and input-channel options with pretrained weights, features_only, and the model methods timm users call."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torchvision
from conftest import seeded_2d_model
from timm.models import get_pretrained_cfg

import i3zoo
from i3zoo.weights.inflate import inflate_conv_weight

SEVEN = {
    "i3resnet50", "i3resnet101", "i3resnet152",
    "i3densenet121", "i3densenet161", "i3densenet169", "i3densenet201",
}
PRESETS = {"i3resnet50_i3d", "i3resnet50_slowonly", "i3resnet50_c2d"}  # ResNet-50 in PyTorchVideo's designs
# issue 13: ResNet-18/34 (and their C2D designs), ResNeXt, Wide ResNet, Inception-v1 (torchvision's GoogLeNet)
MORE_FAMILIES = {
    "i3resnet18": "resnet18", "i3resnet34": "resnet34", "i3resnet18_c2d": "resnet18", "i3resnet34_c2d": "resnet34",
    "i3resnext50_32x4d": "resnext50_32x4d", "i3resnext101_32x8d": "resnext101_32x8d",
    "i3resnext101_64x4d": "resnext101_64x4d", "i3wide_resnet50_2": "wide_resnet50_2",
    "i3wide_resnet101_2": "wide_resnet101_2", "i3inception_v1": "googlenet",
    "i3inception_v1_dm": "googlenet",  # issue 19: DeepMind's I3D, a design of Inception-v1
}
ALL_ARCHS = SEVEN | PRESETS | set(MORE_FAMILIES)
TORCHVISION_WEIGHTS = {
    **{name: torchvision.models.ResNet50_Weights for name in PRESETS},
    "i3resnet50": torchvision.models.ResNet50_Weights,
    "i3resnet101": torchvision.models.ResNet101_Weights,
    "i3resnet152": torchvision.models.ResNet152_Weights,
    "i3densenet121": torchvision.models.DenseNet121_Weights,
    "i3densenet161": torchvision.models.DenseNet161_Weights,
    "i3densenet169": torchvision.models.DenseNet169_Weights,
    "i3densenet201": torchvision.models.DenseNet201_Weights,
    **{name: torchvision.models.get_model_weights(arch) for name, arch in MORE_FAMILIES.items()},
}
TAG_OF_ENTRY = {"IMAGENET1K_V1": "tv_in1k", "IMAGENET1K_V2": "tv2_in1k"}


def _clip(channels=3, t=8, size=32, n=2, seed=0):
    return torch.randn(n, channels, t, size, size, generator=torch.Generator().manual_seed(seed))


def _file_overlay(checkpoint_2d, arch="i3resnet50"):
    return dict(file=str(checkpoint_2d(arch)))


@pytest.fixture(scope="module")
def reference(checkpoint_2d):
    """I3ResNet50 filled from the seeded 2D checkpoint through i3zoo.create_model, in eval mode."""
    return i3zoo.create_model(
        "i3resnet50", pretrained=True, pretrained_cfg_overlay=_file_overlay(checkpoint_2d)
    ).eval()


def _assert_same_state(a, b, skip=()):
    sa, sb = a.state_dict(), b.state_dict()
    keys_a = {k for k in sa if not k.startswith(skip)} if skip else set(sa)
    keys_b = {k for k in sb if not k.startswith(skip)} if skip else set(sb)
    assert keys_a == keys_b
    for key in keys_a:
        assert torch.equal(sa[key], sb[key]), key


# --- names and tags ---------------------------------------------------------------------------------------


def test_list_models_is_exactly_the_declared_architectures():
    names = i3zoo.list_models()
    assert sorted(names) == sorted(ALL_ARCHS)
    assert len(names) == len(set(names)) == 21


def test_list_models_pretrained_gives_arch_tag_names():
    tagged = i3zoo.list_models(pretrained=True)
    for name in ("i3resnet50.tv_in1k", "i3resnet50.tv2_in1k", "i3densenet121.tv_in1k"):
        assert name in tagged
    assert "i3densenet121.tv2_in1k" not in tagged
    assert all("." in name and name.split(".")[0] in ALL_ARCHS for name in tagged)
    # every architecture has its default tv_in1k weights; the presets also PyTorchVideo's Kinetics-400 ones
    assert {name.split(".")[0] for name in tagged if name.endswith(".tv_in1k")} == ALL_ARCHS
    assert {name.split(".")[0] for name in tagged if name.endswith(".ptv_k400")} == PRESETS


def test_list_models_filters_with_wildcards():
    assert sorted(i3zoo.list_models("i3dense*")) == sorted(m for m in SEVEN if m.startswith("i3densenet"))
    assert sorted(i3zoo.list_models("i3resnet*")) == sorted(
        ["i3resnet18", "i3resnet34", "i3resnet18_c2d", "i3resnet34_c2d", "i3resnet101", "i3resnet152", "i3resnet50",
         *PRESETS])
    assert i3zoo.list_models("i3resnext*") == ["i3resnext50_32x4d", "i3resnext101_32x8d", "i3resnext101_64x4d"]
    assert i3zoo.list_models("*inception*", pretrained=True) == [
        "i3inception_v1.tv_in1k", *(f"i3inception_v1_dm.k400_{s}_{p}" for s in ("flow", "rgb")
                                    for p in ("hassony2", "piergiaj")), "i3inception_v1_dm.tv_in1k"]
    assert i3zoo.list_models("*50") == ["i3resnet50"]
    assert i3zoo.list_models("*_i3d") == ["i3resnet50_i3d"]
    assert i3zoo.list_models("i3dense*", pretrained=True) == [
        f"{m}.tv_in1k" for m in i3zoo.list_models("i3dense*")
    ]
    assert i3zoo.list_models("nothing*") == []


def test_list_models_does_not_leak_timm_models():
    # timm's own resnet50 lives in the same registry but is not one of i3zoo's
    assert "resnet50" in timm.list_models("resnet50")
    assert sorted(i3zoo.list_models("*resnet50*")) == sorted(["i3resnet50", "i3wide_resnet50_2", *PRESETS])


@pytest.mark.parametrize(
    "name, expected",
    [
        ("i3resnet50", True),
        ("i3densenet201", True),
        ("i3resnet50.tv_in1k", True),
        ("i3resnet50.tv2_in1k", True),
        ("i3densenet121.tv_in1k", True),
        ("i3densenet121.tv2_in1k", False),
        ("i3resnet50.imagenet", False),
        ("i3resnet50_i3d.ptv_k400", True),
        ("i3resnet50_i3d.tv2_in1k", True),
        ("i3resnet50.ptv_k400", False),
        ("i3resnet5", False),
        ("resnet50", False),
        ("", False),
    ],
)
def test_is_model(name, expected):
    assert i3zoo.is_model(name) is expected


def test_list_tags():
    assert i3zoo.list_tags("i3resnet50") == ["tv_in1k", "tv2_in1k"]
    assert i3zoo.list_tags("i3densenet121") == ["tv_in1k"]
    assert i3zoo.list_tags("i3resnet50_slowonly") == ["tv_in1k", "tv2_in1k", "ptv_k400"]
    for arch in ALL_ARCHS:
        assert i3zoo.list_tags(arch)[0] == "tv_in1k", arch
    with pytest.raises(ValueError, match="i3resnet5"):
        i3zoo.list_tags("i3resnet5")


@pytest.mark.parametrize("arch", sorted(ALL_ARCHS))
def test_default_tag_points_at_torchvision_v1(arch):
    cfg = get_pretrained_cfg(arch)
    assert cfg.tag == "tv_in1k"
    assert cfg.url == TORCHVISION_WEIGHTS[arch].IMAGENET1K_V1.url
    # every ImageNet weight torchvision has for the architecture is a tag (V2 where it exists), and no other
    entries = list(TORCHVISION_WEIGHTS[arch])
    assert [t for t in i3zoo.list_tags(arch) if t.startswith("tv")] == [TAG_OF_ENTRY[e.name] for e in entries]
    for entry in entries:
        assert get_pretrained_cfg(f"{arch}.{TAG_OF_ENTRY[entry.name]}").url == entry.url


def test_created_model_records_the_default_and_v2_sources():
    v1 = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url
    v2 = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.url
    assert v1 != v2
    default = i3zoo.create_model("i3resnet50")
    assert default.pretrained_cfg["tag"] == "tv_in1k"
    assert default.pretrained_cfg["url"] == v1
    tagged = i3zoo.create_model("i3resnet50.tv2_in1k")
    assert tagged.pretrained_cfg["tag"] == "tv2_in1k"
    assert tagged.pretrained_cfg["url"] == v2
    dense = i3zoo.create_model("i3densenet121")
    assert dense.pretrained_cfg["url"] == torchvision.models.DenseNet121_Weights.IMAGENET1K_V1.url


# --- timm.create_model -----------------------------------------------------------------------------------


def test_timm_create_model_builds_i3zoo_models():
    model = timm.create_model("i3resnet50")
    assert type(model) is i3zoo.I3ResNet50
    assert isinstance(timm.create_model("i3densenet121"), i3zoo.I3DenseNet121)


def test_timm_create_model_with_tag_and_local_file(checkpoint_2d, reference):
    model = timm.create_model(
        "i3resnet50.tv2_in1k", pretrained=True, pretrained_cfg_overlay=_file_overlay(checkpoint_2d)
    )
    assert isinstance(model, i3zoo.I3ResNet50)
    assert model.pretrained_cfg["tag"] == "tv2_in1k"
    assert model.pretrained_cfg["file"] == str(checkpoint_2d("i3resnet50"))
    _assert_same_state(model, reference)


# --- bad names -------------------------------------------------------------------------------------------


def test_unknown_name_is_named_and_a_close_one_suggested():
    with pytest.raises(ValueError) as info:
        i3zoo.create_model("i3resnet5")
    message = str(info.value)
    assert "'i3resnet5'" in message
    assert "i3resnet50" in message


def test_unknown_tag_lists_the_known_tags():
    with pytest.raises(ValueError) as info:
        i3zoo.create_model("i3resnet50.in21k")
    message = str(info.value)
    assert "in21k" in message
    assert "tv_in1k" in message and "tv2_in1k" in message


def test_tag_of_another_family_is_unknown():
    with pytest.raises(ValueError, match="tv_in1k"):
        i3zoo.create_model("i3densenet121.tv2_in1k")


# --- heads and input channels with pretrained weights ----------------------------------------------------


def test_num_classes_10_keeps_the_backbone_and_starts_a_fresh_head(checkpoint_2d, reference):
    model = i3zoo.create_model(
        "i3resnet50", pretrained=True, pretrained_cfg_overlay=_file_overlay(checkpoint_2d), num_classes=10
    ).eval()
    assert model.num_classes == 10
    assert model.fc.weight.shape == (10, model.num_features)
    assert model.fc.bias.shape == (10,)
    _assert_same_state(model, reference, skip=("fc.",))
    fc_2d = seeded_2d_model("i3resnet50").fc
    assert not torch.equal(model.fc.weight, fc_2d.weight[:10])
    assert not torch.equal(model.fc.bias, fc_2d.bias[:10])
    with torch.no_grad():
        out = model(_clip())
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_num_classes_0_gives_pooled_features(checkpoint_2d, reference):
    model = i3zoo.create_model(
        "i3resnet50", pretrained=True, pretrained_cfg_overlay=_file_overlay(checkpoint_2d), num_classes=0
    ).eval()
    assert isinstance(model.fc, torch.nn.Identity)
    _assert_same_state(model, reference, skip=("fc.",))
    x = _clip()
    with torch.no_grad():
        out = model(x)
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True)
    assert out.shape == (2, model.num_features)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_in_chans_1_with_pretrained_weights(checkpoint_2d, reference):
    model = i3zoo.create_model(
        "i3resnet50", pretrained=True, pretrained_cfg_overlay=_file_overlay(checkpoint_2d), in_chans=1
    ).eval()
    assert model.in_chans == 1
    w2d = seeded_2d_model("i3resnet50").conv1.weight.detach()
    # timm's rule for 3 -> 1 input channels: sum the RGB kernels
    expected = inflate_conv_weight(w2d.sum(dim=1, keepdim=True), model.conv1.weight.shape[2], model.inflation)
    assert model.conv1.weight.shape == (64, 1) + tuple(reference.conv1.weight.shape[2:])
    torch.testing.assert_close(model.conv1.weight.detach(), expected, rtol=1e-6, atol=1e-7)
    _assert_same_state(model, reference, skip=("conv1.",))
    with torch.no_grad():
        out = model(_clip(channels=1))
    assert out.shape == (2, 1000)
    with pytest.raises(ValueError, match="C = 1"):
        model(_clip(channels=3))


# --- features_only --------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["i3resnet50", "i3densenet121"])
def test_features_only_returns_five_5d_maps(arch, checkpoint_2d):
    features = i3zoo.create_model(
        arch, pretrained=True, pretrained_cfg_overlay=_file_overlay(checkpoint_2d, arch), features_only=True
    ).eval()
    full = i3zoo.create_model(
        arch, pretrained=True, pretrained_cfg_overlay=_file_overlay(checkpoint_2d, arch)
    ).eval()
    x = _clip()
    with torch.no_grad():
        maps = features(x)
        last = full.forward_features(x)
    channels = features.feature_info.channels()
    reductions = features.feature_info.reduction()
    assert len(maps) == 5 and len(channels) == 5
    for fmap, c, r in zip(maps, channels, reductions):
        assert fmap.dim() == 5
        assert fmap.shape[0] == 2 and fmap.shape[1] == c
        assert fmap.shape[3] == fmap.shape[4] == -(-32 // r)
    assert channels[-1] == full.num_features
    # the deepest map is the backbone's output (a DenseNet applies its final ReLU after norm5)
    deepest = maps[-1] if arch.startswith("i3resnet") else torch.relu(maps[-1])
    torch.testing.assert_close(deepest, last, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["i3resnet50", "i3densenet121"])
def test_features_only_out_indices(arch):
    features = i3zoo.create_model(arch, features_only=True, out_indices=(1, 3)).eval()
    with torch.no_grad():
        maps = features(_clip())
    assert len(maps) == 2
    assert [m.shape[1] for m in maps] == features.feature_info.channels()


# --- the explicit classes ----------------------------------------------------------------------------------


def test_explicit_class_fills_the_same_weights_as_create_model(checkpoint_2d, reference):
    model = i3zoo.I3ResNet50(pretrained=True, pretrained_cfg_overlay=_file_overlay(checkpoint_2d))
    assert type(model) is i3zoo.I3ResNet50
    _assert_same_state(model, reference)


def test_generic_family_class_refuses_pretrained():
    with pytest.raises(ValueError, match="I3ResNet50"):
        i3zoo.I3ResNet(block_counts=(3, 4, 6, 3), pretrained=True)


# --- the timm surface --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def densenet():
    torch.manual_seed(0)
    return i3zoo.create_model("i3densenet121").eval()


@pytest.fixture(params=["i3resnet50", "i3densenet121"])
def surface_model(request, reference, densenet):
    return copy.deepcopy(reference if request.param == "i3resnet50" else densenet)


def test_forward_features_and_forward_head(surface_model):
    model = surface_model
    x = _clip()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.dim() == 5
        assert feats.shape[:2] == (2, model.num_features)
        # a ResNet rounds sizes up (padded strided convs), a DenseNet down (unpadded 2x2x2 pools)
        reduce = (lambda n, r: -(-n // r)) if hasattr(model, "layer1") else (lambda n, r: n // r)
        assert tuple(feats.shape[2:]) == (
            reduce(8, model.temporal_reduction),
            reduce(32, model.spatial_reduction),
            reduce(32, model.spatial_reduction),
        )
        pooled = model.forward_head(feats, pre_logits=True)
        assert pooled.shape == (2, model.num_features)
        torch.testing.assert_close(pooled, feats.mean(dim=(2, 3, 4)))
        logits = model.forward_head(feats)
        assert logits.shape == (2, model.num_classes)
        torch.testing.assert_close(logits, model(x), rtol=0, atol=0)
        torch.testing.assert_close(logits, model.get_classifier()(pooled))


def test_reset_classifier(surface_model):
    model = surface_model
    x = _clip()
    model.reset_classifier(5)
    assert model.num_classes == 5
    assert isinstance(model.get_classifier(), torch.nn.Linear)
    assert model.get_classifier().out_features == 5
    with torch.no_grad():
        assert model(x).shape == (2, 5)
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
    model.reset_classifier(0)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, model.num_features)
    torch.testing.assert_close(out, pooled, rtol=0, atol=0)
    model.reset_classifier(7, global_pool="max")
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        feats = model.forward_features(x)
        torch.testing.assert_close(model.forward_head(feats, pre_logits=True), feats.amax(dim=(2, 3, 4)))


def test_set_grad_checkpointing_same_output_and_gradients(surface_model):
    model = surface_model
    probe = model.layer1 if hasattr(model, "layer1") else model.features.denseblock1
    calls = []
    # a pre-hook: non-reentrant recomputation may stop before the stage's forward returns
    probe.register_forward_pre_hook(lambda *args: calls.append(1))

    def run():
        model.zero_grad(set_to_none=True)
        x = _clip(n=1).requires_grad_(True)
        out = model(x)
        out.square().sum().backward()
        first_conv = model.conv1 if hasattr(model, "layer1") else model.features.conv0
        return out.detach(), x.grad.clone(), first_conv.weight.grad.clone()

    plain = run()
    plain_calls = len(calls)
    assert plain_calls == 1
    model.set_grad_checkpointing(True)
    assert model.grad_checkpointing
    checkpointed = run()
    # the stage ran again during backward: checkpointing really happened
    assert len(calls) - plain_calls == 2
    for a, b in zip(plain, checkpointed):
        assert b.abs().sum() > 0
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    model.set_grad_checkpointing(False)
    assert not model.grad_checkpointing


def test_pretrained_model_is_real_and_trainable(reference):
    model = copy.deepcopy(reference).train()
    tensors = list(model.parameters()) + list(model.buffers())
    assert not any(t.is_meta for t in tensors)
    assert all(p.requires_grad for p in model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.layer4[0].conv2.weight.detach().clone()
    out = model(_clip())
    torch.nn.functional.cross_entropy(out, torch.tensor([1, 2])).backward()
    assert all(p.grad is not None for p in model.parameters())
    optimizer.step()
    assert not torch.equal(model.layer4[0].conv2.weight, before)
    # BatchNorm updated its running statistics in train mode; the reference model is untouched
    assert not torch.equal(model.bn1.running_mean, reference.bn1.running_mean)
