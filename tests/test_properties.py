"""Property tests (hypothesis): any valid clip runs and gives finite (N, num_classes) logits; the boring-video
equivalence holds for any T; any clip below the minimum gets a ValueError, never an error from inside torch."""

from __future__ import annotations

import pytest
import torch
from conftest import boring_video, float64_default, relative_error, seeded_2d_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import i3zoo

SETTINGS = settings(max_examples=4, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_any_valid_clip_gives_finite_logits(random_model):
    model = random_model  # every registered model, seeded random weights (shared with test_models.py)
    min_t, min_h, min_w = model.min_input_size

    @SETTINGS
    @given(n=st.integers(1, 2), t=st.integers(min_t, min_t + 12), h=st.integers(min_h, min_h + 24),
           w=st.integers(min_w, min_w + 24))
    def check(n, t, h, w):
        with torch.no_grad():
            out = model(torch.randn(n, 3, t, h, w))
        assert out.shape == (n, model.num_classes) and torch.isfinite(out).all()

    check()


def test_below_the_minimum_is_a_value_error(random_model):
    model = random_model
    minimum = model.min_input_size

    @SETTINGS
    @given(axis=st.integers(0, 2), shortfall=st.integers(1, 8), data=st.data())
    def check(axis, shortfall, data):
        size = [data.draw(st.integers(m, m + 8)) for m in minimum]
        size[axis] = max(0, minimum[axis] - shortfall)
        with pytest.raises(ValueError, match="minimum clip"):
            model(torch.randn(1, 3, *size))

    check()



@pytest.mark.parametrize("mode", i3zoo.INFLATION_MODES)
@pytest.mark.parametrize("name", ["i3resnet50", "i3densenet121"])
def test_boring_video_equivalence_for_any_t(name, mode, checkpoint_2d):
    with float64_default():
        model_3d = i3zoo.create_model(name, pretrained=True, inflation=mode,
                                      pretrained_cfg_overlay=dict(file=str(checkpoint_2d(name)))).eval()
    model_2d = seeded_2d_model(name).double()
    min_t, min_h, _ = model_3d.min_input_size

    @SETTINGS
    @given(t=st.integers(min_t, 40), size=st.integers(max(min_h, 16), 48), seed=st.integers(0, 2**16))
    def check(t, size, seed):
        images = torch.randn(1, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            assert relative_error(model_3d(boring_video(images, t)), model_2d(images)) <= 1e-6

    check()
