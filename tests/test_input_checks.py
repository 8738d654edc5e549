"""Bad inputs get the exact exception type and a message that says what was wrong and what is allowed;
the smallest clips a model claims to accept really run."""

from __future__ import annotations

import pytest
import torch

import i3zoo


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {
        "i3resnet50": i3zoo.create_model("i3resnet50").eval(),
        "i3densenet121": i3zoo.create_model("i3densenet121").eval(),
    }


# (id, model, input, exception, message fragment)
BAD_CLIPS = [
    ("4d-tensor", "i3resnet50", lambda: torch.randn(2, 3, 32, 32), ValueError, "(N, C, T, H, W)"),
    ("4d-tensor-hint", "i3resnet50", lambda: torch.randn(2, 3, 32, 32), ValueError, "unsqueeze(2)"),
    ("3d-tensor", "i3densenet121", lambda: torch.randn(3, 32, 32), ValueError, "3-D tensor"),
    ("6d-tensor", "i3resnet50", lambda: torch.randn(1, 2, 3, 8, 32, 32), ValueError, "(N, C, T, H, W)"),
    ("wrong-channels", "i3resnet50", lambda: torch.randn(2, 4, 8, 32, 32), ValueError, "C = 4"),
    ("wrong-channels-allowed", "i3densenet121", lambda: torch.randn(2, 1, 8, 32, 32), ValueError, "C = 3"),
    ("channels-last-layout", "i3resnet50", lambda: torch.randn(2, 8, 32, 32, 3), ValueError, "N, C, T, H, W"),
    ("uint8", "i3resnet50", lambda: torch.zeros(2, 3, 8, 32, 32, dtype=torch.uint8), ValueError,
     "Convert and normalize"),
    ("int64", "i3densenet121", lambda: torch.zeros(2, 3, 8, 32, 32, dtype=torch.long), ValueError, "torch.int64"),
    ("empty-batch", "i3resnet50", lambda: torch.randn(0, 3, 8, 32, 32), ValueError, "empty batch"),
    ("densenet-T7", "i3densenet121", lambda: torch.randn(1, 3, 7, 32, 32), ValueError, "8x29x29"),
    ("densenet-H28", "i3densenet121", lambda: torch.randn(1, 3, 8, 28, 32), ValueError, "8x29x29"),
    ("densenet-W28", "i3densenet121", lambda: torch.randn(1, 3, 8, 32, 28), ValueError, "W = 28"),
    ("resnet-T0", "i3resnet50", lambda: torch.randn(1, 3, 0, 32, 32), ValueError, "1x1x1"),
    ("not-a-tensor", "i3resnet50", lambda: [[0.0]], TypeError, "(N, C, T, H, W)"),
]


@pytest.mark.parametrize(
    "model_name, make_input, error, fragment",
    [case[1:] for case in BAD_CLIPS],
    ids=[case[0] for case in BAD_CLIPS],
)
def test_bad_clip(models, model_name, make_input, error, fragment):
    model = models[model_name]
    with pytest.raises(error) as info:
        model(make_input())
    assert type(info.value) is error
    assert fragment in str(info.value)


# (id, constructor kwargs, message fragments)
BAD_ARGUMENTS = [
    ("inflation", dict(inflation="inflate"), ["'inflate'", "'center'", "'mean'"]),
    ("inflation-case", dict(inflation="Mean"), ["'Mean'", "'center', 'mean'"]),
    ("num_classes-negative", dict(num_classes=-1), ["num_classes", "-1"]),
    ("num_classes-float", dict(num_classes=1.5), ["num_classes", "1.5"]),
    ("num_classes-bool", dict(num_classes=True), ["num_classes", "True"]),
    ("in_chans-zero", dict(in_chans=0), ["in_chans", "positive integer", "0"]),
    ("global_pool", dict(global_pool="avgmax"), ["'avgmax'", "'avg'", "'max'"]),
    ("no-pooling-with-a-classifier", dict(global_pool=""), ["global_pool=''", "needs num_classes=0",
                                                            "num_classes=1000", "'avg' or 'max'"]),
    ("drop_rate", dict(drop_rate=1.0), ["drop_rate", "[0, 1)"]),
]


@pytest.mark.parametrize("arch", ["i3resnet50", "i3densenet121"])
@pytest.mark.parametrize(
    "kwargs, fragments", [case[1:] for case in BAD_ARGUMENTS], ids=[case[0] for case in BAD_ARGUMENTS]
)
def test_bad_constructor_argument(arch, kwargs, fragments):
    with pytest.raises(ValueError) as info:
        i3zoo.create_model(arch, **kwargs)
    assert type(info.value) is ValueError
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_bad_arguments_through_the_explicit_classes():
    with pytest.raises(ValueError, match="'center', 'mean'"):
        i3zoo.I3ResNet50(inflation="zeros")
    with pytest.raises(ValueError, match="num_classes"):
        i3zoo.I3DenseNet121(num_classes=-1)
    with pytest.raises(ValueError, match="in_chans"):
        i3zoo.I3ResNet50(in_chans=0)


def test_reset_classifier_checks_its_arguments(models):
    model = i3zoo.create_model("i3resnet50")
    with pytest.raises(ValueError, match="num_classes"):
        model.reset_classifier(-3)
    with pytest.raises(ValueError, match="'avg', 'max'"):
        model.reset_classifier(10, global_pool="token")


# --- the smallest accepted clips really run ------------------------------------------------------------


def test_resnet_accepts_a_single_pixel_single_frame_clip(models):
    model = models["i3resnet50"]
    assert tuple(model.min_input_size) == (1, 1, 1)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 1, 1, 1))
    assert out.shape == (1, 1000)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("t, h, w", [(1, 1, 1), (1, 5, 3), (3, 2, 7)])
def test_resnet_accepts_tiny_and_odd_clips(models, t, h, w):
    with torch.no_grad():
        out = models["i3resnet50"].forward_features(torch.randn(1, 3, t, h, w))
    assert out.shape[:2] == (1, 2048) and min(out.shape[2:]) >= 1


def test_densenet_accepts_exactly_its_minimum(models):
    model = models["i3densenet121"]
    assert tuple(model.min_input_size) == (8, 29, 29)
    t, h, w = model.min_input_size
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, t, h, w))
        out = model(torch.randn(1, 3, t, h, w))
    assert feats.shape[2:] == (1, 1, 1)
    assert out.shape == (1, 1000)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_densenet_minimum_is_tight(models, axis):
    """One less along any axis is refused with the minimum in the message -- and really could not run."""
    model = models["i3densenet121"]
    size = list(model.min_input_size)
    size[axis] -= 1
    x = torch.randn(1, 3, *size)
    with pytest.raises(ValueError, match="8x29x29"):
        model(x)
    # the check is not over-cautious: the unchecked backbone cannot produce an output for this clip either
    with torch.no_grad(), pytest.raises(RuntimeError):
        model._features(x)


def test_min_input_size_matches_the_densenet_family(models):
    for arch in ("i3densenet161", "i3densenet169", "i3densenet201"):
        # the temporal/spatial reduction path is shared, so is the minimum
        assert i3zoo.create_model(arch).min_input_size == models["i3densenet121"].min_input_size


# --- bad names and bad weight sources: (id, create_model arguments, exception, message fragments) -------

def _bad_loads(tmp_path, checkpoint_2d):
    return [
        ("unknown-model", ("i3resnet5",), {}, ValueError, ["unknown model 'i3resnet5'", "i3resnet50"]),
        ("unknown-tag", ("i3resnet50.in22k",), {}, ValueError, ["unknown pretrained tag 'in22k'", "tv2_in1k"]),
        ("repo-without-prefix", ("org/i3resnet50",), {}, ValueError, ["'hf-hub:org/i3resnet50'", "local-dir:"]),
        ("missing-file", ("i3resnet50",), dict(pretrained=True, pretrained_cfg_overlay=dict(
            file=str(tmp_path / "gone.pth"))), FileNotFoundError, [str(tmp_path / "gone.pth")]),
        ("directory-as-file", ("i3resnet50",), dict(pretrained=True, pretrained_cfg_overlay=dict(
            file=str(tmp_path))), IsADirectoryError, [str(tmp_path), "directory"]),
        ("checkpoint-of-another-arch", ("i3resnet50",), dict(pretrained=True, pretrained_cfg_overlay=dict(
            file=str(checkpoint_2d("i3densenet121")))), i3zoo.CheckpointMismatchError,
         ["i3densenet121.pth", "missing from the checkpoint", "conv1.weight", "unexpected in the checkpoint"]),
        ("features-out-indices", ("i3resnet50",), dict(features_only=True, out_indices=(1, 7)), ValueError,
         ["out_indices", "range(-5, 5)", "got (1, 7)"]),
    ]


def test_bad_names_and_sources(tmp_path, checkpoint_2d):
    for case_id, args, kwargs, error, fragments in _bad_loads(tmp_path, checkpoint_2d):
        with pytest.raises(error) as info:
            i3zoo.create_model(*args, **kwargs)
        for fragment in fragments:
            assert fragment in str(info.value), (case_id, fragment, str(info.value))
