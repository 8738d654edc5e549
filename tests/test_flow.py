"""Flow input: ``in_chans=2`` (the second stream of two-stream I3D) adapts the 2D RGB stem kernel as timm does,
then inflates it.

timm's ``adapt_input_conv(2, W)`` (``timm/models/_manipulate.py``) repeats the RGB kernel ceil(2 / 3) = 1 time,
keeps the first two input channels and scales them by 3 / 2 (computing in float32):

    W2[:, 0] = 3/2 W[:, 0]  (red),   W2[:, 1] = 3/2 W[:, 1]  (green);   the blue kernel is dropped.

So the stem answers two channels (a, b) as the RGB stem answers the image (3/2 a, 3/2 b, 0), and the grey-clip
relation is: **the 2-channel model on a boring clip whose two channels are a grey image g equals the 2D RGB
network on (3/2 g, 3/2 g, 0)** -- not on the grey image replicated to RGB, (g, g, g), which it would equal only
if W_B = (W_R + W_G) / 2. Both are checked here, in float64, for both inflation modes, and the whole 2-channel
model is compared with timm's own 2-channel 2D ResNet-50 filled from the same file.
"""

from __future__ import annotations

import pytest
import timm
import torch
from conftest import boring_video, float64_default, relative_error, seeded_2d_model

import i3zoo
from i3zoo.weights.inflate import inflate_conv_weight

ARCH = "i3resnet50"
FRAMES, SIZE = 4, 32
#: timm adapts the stem in float32, so the adapted kernel carries float32 rounding (~6e-8 relative) even in a
#: float64 model; everything else is float64. The boring-video tolerance of the whole suite.
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def flow_model(checkpoint_2d):
    """``flow_model(inflation)``: the float64 2-channel model filled from the seeded checkpoint, built once here."""
    built = {}

    def get(inflation: str) -> torch.nn.Module:
        if inflation not in built:
            with float64_default():
                built[inflation] = i3zoo.create_model(ARCH, pretrained=True, in_chans=2, inflation=inflation,
                                                      pretrained_cfg_overlay=dict(file=str(checkpoint_2d(ARCH))))
        return built[inflation].eval()

    yield get
    built.clear()


def _grey_images(seed: int = 0) -> torch.Tensor:
    """(2, 1, SIZE, SIZE) float64 grey images in [-1, 1], the range of I3D's scaled flow."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 1, SIZE, SIZE, generator=g, dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("inflation", ["center", "mean"])
def test_grey_flow_clip_equals_2d_network_on_red_green_image(flow_model, inflation):
    model = flow_model(inflation)
    reference = seeded_2d_model(ARCH).double()
    w_rgb = reference.conv1.weight.detach()
    # the stem is timm's adaptation, inflated: 3/2 of the red and green kernels, blue dropped
    expected_stem = inflate_conv_weight(w_rgb[:, :2] * 1.5, model.conv1.weight.shape[2], inflation)
    torch.testing.assert_close(model.conv1.weight.detach(), expected_stem, rtol=1e-7, atol=1e-9)

    grey = _grey_images()
    with torch.no_grad():
        flow_out = model(boring_video(grey.expand(-1, 2, -1, -1), FRAMES))
        red_green = torch.cat([1.5 * grey, 1.5 * grey, torch.zeros_like(grey)], dim=1)
        assert relative_error(flow_out, reference(red_green)) <= TOLERANCE
        # ... and not the grey image replicated to RGB: the relation is timm's, not a channel average
        assert relative_error(flow_out, reference(grey.expand(-1, 3, -1, -1))) > 1e-3


def test_flow_model_is_timms_two_channel_resnet_inflated(flow_model, checkpoint_2d):
    """Any flow image (x, y channels), not only grey: the 3D model on its boring clip equals timm's ResNet-50
    built with ``in_chans=2`` from the same 2D file (timm adapts the stem with the same function)."""
    model = flow_model("center")
    with float64_default():
        timm_2d = timm.create_model("resnet50", pretrained=True, in_chans=2,
                                    pretrained_cfg_overlay=dict(file=str(checkpoint_2d(ARCH)))).eval()
    flow = torch.rand(2, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        assert relative_error(model(boring_video(flow, FRAMES)), timm_2d(flow)) <= 1e-12
