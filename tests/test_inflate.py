"""Weight-level checks of ``i3zoo.weights.inflate``: the two inflation rules and the strict 2D -> 3D state-dict
loader."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import seeded_2d_model

import i3zoo
from i3zoo.weights.inflate import inflate_conv_weight, inflate_state_dict


def _kernel(out_ch=4, in_ch=3, h=3, w=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(out_ch, in_ch, h, w, generator=g, dtype=dtype)


# --- inflate_conv_weight -------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [1, 3, 5])
def test_center_mode_puts_the_kernel_in_the_middle_slice_only(t):
    w2d = _kernel()
    w3d = inflate_conv_weight(w2d, t, "center")
    assert w3d.shape == (4, 3, t, 3, 5)
    assert w3d.dtype == w2d.dtype
    assert torch.equal(w3d[:, :, t // 2], w2d)
    for i in range(t):
        if i != t // 2:
            assert torch.equal(w3d[:, :, i], torch.zeros_like(w2d)), f"slice {i} of {t} is not zero"


def test_center_mode_is_the_default():
    w2d = _kernel()
    assert torch.equal(inflate_conv_weight(w2d, 3), inflate_conv_weight(w2d, 3, "center"))


@pytest.mark.parametrize("t", [1, 3, 5])
def test_mean_mode_replicates_and_rescales(t):
    w2d = _kernel()
    w3d = inflate_conv_weight(w2d, t, "mean")
    assert w3d.shape == (4, 3, t, 3, 5)
    assert w3d.dtype == w2d.dtype
    for i in range(t):
        assert torch.equal(w3d[:, :, i], w2d / t), f"slice {i} of {t} is not W / {t}"
    torch.testing.assert_close(w3d.sum(dim=2), w2d, rtol=1e-12, atol=1e-12)


def test_mean_mode_sums_to_the_kernel_in_float32():
    w2d = _kernel(dtype=torch.float32)
    torch.testing.assert_close(inflate_conv_weight(w2d, 3, "mean").sum(dim=2), w2d, rtol=1e-6, atol=1e-6)


def test_inflated_kernel_does_not_alias_the_2d_kernel():
    w2d = _kernel()
    for mode in i3zoo.INFLATION_MODES:
        w3d = inflate_conv_weight(w2d, 3, mode)
        w3d.zero_()
        assert w2d.abs().sum() > 0


def test_inflation_modes_are_center_and_mean():
    assert tuple(i3zoo.INFLATION_MODES) == ("center", "mean")


@pytest.mark.parametrize("mode", ["replicate", "Center", "", "avg"])
def test_unknown_mode_names_the_allowed_modes(mode):
    with pytest.raises(ValueError) as info:
        inflate_conv_weight(_kernel(), 3, mode)
    message = str(info.value)
    assert "'center'" in message and "'mean'" in message
    assert repr(mode) in message


def test_bad_kernel_rank_and_time_size_are_refused():
    with pytest.raises(ValueError, match=r"\(O, I, h, w\)"):
        inflate_conv_weight(torch.zeros(4, 3, 3), 3)
    with pytest.raises(ValueError, match="time_size"):
        inflate_conv_weight(_kernel(), 0)


# --- inflate_state_dict: strictness on a real 3D model -------------------------------------------------


@pytest.fixture(scope="module")
def resnet_target():
    """Keys and shapes of a real I3ResNet50, and of its 5D kernels' time sizes."""
    return {k: v.shape for k, v in i3zoo.I3ResNet50().state_dict().items()}


@pytest.fixture(scope="module")
def resnet_2d():
    return dict(seeded_2d_model("i3resnet50").state_dict())


def test_mismatch_error_is_a_value_error():
    assert issubclass(i3zoo.CheckpointMismatchError, ValueError)


def test_full_resnet_checkpoint_inflates(resnet_2d, resnet_target):
    inflated = inflate_state_dict(resnet_2d, resnet_target)
    assert set(inflated) == set(resnet_target)
    for key, shape in resnet_target.items():
        assert tuple(inflated[key].shape) == tuple(shape), key


def test_missing_key_is_named(resnet_2d, resnet_target):
    sd = dict(resnet_2d)
    del sd["layer2.1.conv2.weight"]
    with pytest.raises(i3zoo.CheckpointMismatchError) as info:
        inflate_state_dict(sd, resnet_target)
    assert "layer2.1.conv2.weight" in str(info.value)
    assert "missing" in str(info.value)


def test_unexpected_key_is_named(resnet_2d, resnet_target):
    sd = dict(resnet_2d)
    sd["head.extra.weight"] = torch.zeros(3)
    with pytest.raises(i3zoo.CheckpointMismatchError) as info:
        inflate_state_dict(sd, resnet_target)
    assert "head.extra.weight" in str(info.value)
    assert "unexpected" in str(info.value)


def test_misshaped_tensor_names_key_and_both_shapes(resnet_2d, resnet_target):
    sd = dict(resnet_2d)
    sd["fc.weight"] = torch.zeros(10, 2048)
    with pytest.raises(i3zoo.CheckpointMismatchError) as info:
        inflate_state_dict(sd, resnet_target)
    message = str(info.value)
    assert "fc.weight" in message
    assert str((10, 2048)) in message
    assert str(tuple(resnet_target["fc.weight"])) in message


def test_misshaped_kernel_is_not_inflated_into_a_wrong_shape(resnet_2d, resnet_target):
    sd = dict(resnet_2d)
    sd["conv1.weight"] = torch.zeros(64, 3, 5, 5)  # 2D 5x5 where the model has 7x7
    with pytest.raises(i3zoo.CheckpointMismatchError) as info:
        inflate_state_dict(sd, resnet_target)
    message = str(info.value)
    assert "conv1.weight" in message
    assert str((64, 3, 5, 5)) in message and str(tuple(resnet_target["conv1.weight"])) in message


def test_several_problems_are_all_named_in_one_error(resnet_2d, resnet_target):
    sd = dict(resnet_2d)
    del sd["bn1.running_var"]
    del sd["layer4.2.conv3.weight"]
    sd["aux.weight"] = torch.zeros(1)
    sd["layer1.0.bn2.bias"] = torch.zeros(65)
    with pytest.raises(i3zoo.CheckpointMismatchError) as info:
        inflate_state_dict(sd, resnet_target)
    message = str(info.value)
    for key in ("bn1.running_var", "layer4.2.conv3.weight", "aux.weight", "layer1.0.bn2.bias"):
        assert key in message, f"{key} not named in: {message}"
    assert str((65,)) in message and str((64,)) in message


def test_unknown_mode_in_inflate_state_dict(resnet_2d, resnet_target):
    with pytest.raises(ValueError, match="'center', 'mean'"):
        inflate_state_dict(resnet_2d, resnet_target, mode="spread")


@pytest.mark.parametrize("mode", ["center", "mean"])
def test_non_kernel_tensors_are_copied_unchanged(resnet_2d, resnet_target, mode):
    inflated = inflate_state_dict(resnet_2d, resnet_target, mode)
    kernels = 0
    for key, value in resnet_2d.items():
        if value.dim() == 4:
            kernels += 1
            t = resnet_target[key][2]
            assert torch.equal(inflated[key], inflate_conv_weight(value, t, mode)), key
        else:
            # BatchNorm affine + running stats + counters, the classifier weight and every bias
            assert torch.equal(inflated[key], value), key
            assert inflated[key].dtype == value.dtype, key
    assert kernels == sum(1 for s in resnet_target.values() if len(s) == 5)
    assert torch.equal(inflated["fc.weight"], resnet_2d["fc.weight"])
    assert torch.equal(inflated["fc.bias"], resnet_2d["fc.bias"])
    assert torch.equal(inflated["bn1.running_mean"], resnet_2d["bn1.running_mean"])
    assert torch.equal(inflated["layer3.5.bn3.running_var"], resnet_2d["layer3.5.bn3.running_var"])


def test_inflated_state_dict_loads_strictly_into_the_model(resnet_2d):
    model = i3zoo.I3ResNet50(inflation="mean")
    target = {k: v.shape for k, v in model.state_dict().items()}
    model.load_state_dict(inflate_state_dict(resnet_2d, target, "mean"), strict=True)
    assert torch.equal(model.conv1.weight[:, :, 0], resnet_2d["conv1.weight"] / 3)


# --- old torchvision DenseNet key names ----------------------------------------------------------------


def _to_legacy_densenet_keys(state_dict):
    """torchvision's densenet121-a639ec97.pth layout: 'denselayer1.norm.1.weight', no num_batches_tracked."""
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))([12])\.(weight|bias|running_mean|running_var)$")
    legacy = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        legacy[pattern.sub(r"\1.\2.\3", key)] = value
    return legacy


@pytest.fixture(scope="module")
def densenet_2d():
    return dict(seeded_2d_model("i3densenet121").state_dict())


@pytest.fixture(scope="module")
def densenet_target():
    return {k: v.shape for k, v in i3zoo.I3DenseNet121().state_dict().items()}


def test_legacy_densenet_keys_give_the_same_inflation(densenet_2d, densenet_target):
    legacy = _to_legacy_densenet_keys(densenet_2d)
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    assert "features.denseblock4.denselayer16.conv.2.weight" in legacy
    assert "features.denseblock1.denselayer1.norm1.weight" not in legacy
    assert not any(k.endswith("num_batches_tracked") for k in legacy)
    assert any(k.endswith("num_batches_tracked") for k in densenet_target)

    new = inflate_state_dict(densenet_2d, densenet_target)
    old = inflate_state_dict(legacy, densenet_target)
    assert set(old) == set(new) == set(densenet_target)
    for key in new:
        assert torch.equal(old[key], new[key]), key


def test_legacy_densenet_checkpoint_loads_into_i3densenet121(tmp_path, checkpoint_2d, densenet_2d):
    legacy_file = tmp_path / "densenet121-legacy.pth"
    torch.save(_to_legacy_densenet_keys(densenet_2d), legacy_file)
    new_model = i3zoo.create_model(
        "i3densenet121", pretrained=True, pretrained_cfg_overlay=dict(file=str(checkpoint_2d("i3densenet121")))
    )
    old_model = i3zoo.I3DenseNet121(pretrained=True, pretrained_cfg_overlay=dict(file=str(legacy_file)))
    new_sd, old_sd = new_model.state_dict(), old_model.state_dict()
    assert set(new_sd) == set(old_sd)
    for key in new_sd:
        assert torch.equal(old_sd[key], new_sd[key]), key
    # and the weights really are the 2D ones
    assert torch.equal(
        old_sd["features.denseblock2.denselayer3.norm1.running_var"],
        densenet_2d["features.denseblock2.denselayer3.norm1.running_var"],
    )


# --- the same strictness through create_model -----------------------------------------------------------


def test_create_model_with_a_checkpoint_missing_a_key_names_it(tmp_path, resnet_2d):
    sd = {k: v for k, v in resnet_2d.items() if k != "layer3.2.bn1.weight"}
    path = tmp_path / "resnet50-missing.pth"
    torch.save(sd, path)
    with pytest.raises(i3zoo.CheckpointMismatchError) as info:
        i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert "layer3.2.bn1.weight" in str(info.value)


def test_create_model_with_an_extra_key_names_it(tmp_path, resnet_2d):
    sd = dict(resnet_2d)
    sd["layer1.0.extra.weight"] = torch.ones(2)
    path = tmp_path / "resnet50-extra.pth"
    torch.save(sd, path)
    with pytest.raises(i3zoo.CheckpointMismatchError) as info:
        i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert "layer1.0.extra.weight" in str(info.value)


def test_verify_accepts_a_legacy_densenet_checkpoint(densenet_2d):
    """`i3zoo verify` on torchvision's real DenseNet files: their old key names must reach the 2D model too."""
    from i3zoo.weights.verify import boring_video_check, synthetic_images

    images = synthetic_images(count=1, size=32)
    (result,) = boring_video_check("i3densenet121", _to_legacy_densenet_keys(densenet_2d), images, frames=[8],
                                   modes=["center"])
    assert result.max_rel <= 1e-6
