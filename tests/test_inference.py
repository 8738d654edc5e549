"""optimize_for_inference: every setting stays faithful to the plain model (fp32 within 1e-4 relative,
bf16 within 3% relative L2 on real-looking clips), and fusion keeps the boring-video equivalence."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from conftest import boring_video, relative_error, seeded_2d_model

import i3zoo
from i3zoo.inference import conv_bn_pairs, native_bfloat16
from i3zoo.weights.verify import synthetic_images

NAMES = ["i3resnet50", "i3densenet121"]
# where the CPU has no bfloat16 kernels (AVX2 only), optimize_for_inference(dtype=bfloat16) warns; tested below
SLOW_BF16_WARNING = "ignore:bfloat16 convolutions have no fast kernels"


@pytest.fixture(scope="module")
def models(checkpoint_2d):
    return {name: i3zoo.create_model(name, pretrained=True, inflation="mean",
                                      pretrained_cfg_overlay=dict(file=str(checkpoint_2d(name)))).eval()
            for name in NAMES}


def real_looking_clip(frames: int = 8, size: int = 32) -> torch.Tensor:
    """Smooth, normalized images drifting slowly over time -- not white noise."""
    start, end = synthetic_images(count=2, size=size, seed=1), synthetic_images(count=2, size=size, seed=2)
    weights = torch.linspace(0, 1, frames).view(1, 1, frames, 1, 1)
    return (1 - weights) * start.unsqueeze(2) + weights * end.unsqueeze(2)


def relative_l2(output: torch.Tensor, reference: torch.Tensor) -> float:
    return ((output - reference).norm() / reference.norm()).item()


@pytest.mark.filterwarnings(SLOW_BF16_WARNING)
@pytest.mark.parametrize("fuse_bn, channels_last", list(itertools.product([True, False], repeat=2)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_every_setting_matches_the_plain_model(models, name, dtype, fuse_bn, channels_last):
    model = models[name]
    clip = real_looking_clip()
    with torch.no_grad():
        reference = model(clip)
    fast = i3zoo.optimize_for_inference(model, dtype=dtype, fuse_bn=fuse_bn, channels_last=channels_last)
    output = fast(clip)
    assert output.dtype == torch.float32 and output.shape == reference.shape
    if dtype == torch.float32:
        assert relative_error(output, reference) <= 1e-4
    else:
        assert relative_l2(output, reference) <= 0.03


@pytest.mark.parametrize("name", NAMES)
def test_fusion_folds_batchnorms_and_leaves_the_original_alone(models, name):
    model = models[name]
    fast = i3zoo.optimize_for_inference(model)
    remaining = sum(isinstance(m, torch.nn.BatchNorm3d) for m in fast.modules())
    before = sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules())
    assert remaining == before - len(conv_bn_pairs(model)) and len(conv_bn_pairs(model)) > 0
    if name == "i3resnet50":
        assert remaining == 0  # every ResNet BatchNorm follows a convolution
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules()) == before
    assert model.training is False and all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_fused_fp32_keeps_the_boring_video_equivalence(models, name):
    fast = i3zoo.optimize_for_inference(models[name])
    model_2d = seeded_2d_model(name)
    images = synthetic_images(count=2, size=64, seed=3)
    with torch.no_grad():
        reference = model_2d(images)
    for frames in (8, 16):
        assert relative_error(fast(boring_video(images, frames)), reference) <= 1e-4


@pytest.mark.filterwarnings(SLOW_BF16_WARNING)
def test_input_is_still_checked(models):
    fast = i3zoo.optimize_for_inference(models["i3densenet121"], dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="8x29x29"):
        fast(torch.randn(1, 3, 4, 64, 64))
    with pytest.raises(TypeError, match="i3zoo model"):
        i3zoo.optimize_for_inference(torch.nn.Conv3d(3, 3, 1))


@pytest.mark.filterwarnings(SLOW_BF16_WARNING)
def test_compiled_bfloat16_matches_the_plain_model():
    """torch.compile (Inductor; C++ on the CPU) of the bf16 fused model: same tolerance, same signature.

    On a one-block-per-stage I3ResNet: the code path is every model's, and compiling ResNet-50 would cost
    most of a minute of the test run.
    """
    torch.manual_seed(0)
    model = i3zoo.I3ResNet(block_counts=(1, 1, 1, 1)).eval()
    clip = real_looking_clip(frames=4)
    with torch.no_grad():
        reference = model(clip)
    fast = i3zoo.optimize_for_inference(model, dtype=torch.bfloat16, compile=True)
    output = fast(clip)
    assert output.dtype == torch.float32
    assert relative_l2(output, reference) <= 0.03


def test_bfloat16_without_fast_kernels_warns(models):
    """A bfloat16 request on a CPU without bfloat16 kernels is honoured, and the user is told it will be slow."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        i3zoo.optimize_for_inference(models["i3resnet50"], dtype=torch.bfloat16)
        i3zoo.optimize_for_inference(models["i3resnet50"])  # float32 never warns
    messages = [str(w.message) for w in caught if "bfloat16 convolutions" in str(w.message)]
    assert len(messages) == (0 if native_bfloat16(torch.device("cpu")) else 1)


@pytest.mark.parametrize("name", ["i3resnet18", "i3inception_v1"])
def test_basic_blocks_and_inception_branches_fold_every_batchnorm(name):
    """Every BatchNorm of a BasicBlock ResNet and of Inception-v1 (stem and branch BasicConv3d) follows a
    convolution: all fold, and the folded model computes the same function."""
    torch.manual_seed(0)
    model = i3zoo.create_model(name, num_classes=5).eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so that folding is visible
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    before = sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules())
    assert len(conv_bn_pairs(model)) == before > 0
    fast = i3zoo.optimize_for_inference(model, channels_last=False)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fast.modules())
    clip = real_looking_clip(frames=2, size=17)
    with torch.no_grad():
        assert relative_error(fast(clip), model(clip)) <= 1e-4


@pytest.mark.filterwarnings(SLOW_BF16_WARNING)
@pytest.mark.parametrize("name, in_chans", [("i3resnet18", 3), ("i3inception_v1", 3), ("i3resnet18", 2)])
def test_bfloat16_stem_takes_an_even_number_of_channels(name, in_chans):
    """In bfloat16 an RGB stem gets a fourth input channel of zero weights (oneDNN's bfloat16 kernels take
    channels in pairs), fed zeros: same function, and the copy still takes and checks the model's own C."""
    torch.manual_seed(0)
    model = i3zoo.create_model(name, num_classes=5, in_chans=in_chans).eval()
    fast = i3zoo.optimize_for_inference(model, dtype=torch.bfloat16)
    stem = fast.model.get_submodule(model.first_conv_name)
    even = in_chans + in_chans % 2
    assert stem.in_channels == even and stem.weight.shape[1] == even
    assert stem.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(stem.weight[:, in_chans:], torch.zeros_like(stem.weight[:, in_chans:]))
    assert model.get_submodule(model.first_conv_name).in_channels == in_chans  # the original is left alone
    clip = real_looking_clip(frames=4)[:, :in_chans]
    with torch.no_grad():
        assert relative_l2(fast(clip), model(clip)) <= 0.03
    with pytest.raises(ValueError, match=rf"C = {in_chans}, .*got C = {in_chans + 1} "):  # RGB: the stem's 4
        fast(torch.randn(1, in_chans + 1, 4, 32, 32))
