"""The flow stream's input as video_features makes it (``i3zoo.video.flow``) and RAFT's weights in torchvision's
layout (``i3zoo.weights.raft``). RAFT itself is torchvision's; README "I3D features as in the papers" records that it
gives the authors' code's flow exactly with the same weights. Frames of 128 x 128 (RAFT's minimum) and one
refinement iteration keep RAFT cheap on a CPU."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.optical_flow import raft_large

from i3zoo.video.flow import center_crop, flow_pairs, flow_to_i3d_input, pad_for_raft, raft_padding
from i3zoo.weights.inflate import CheckpointMismatchError
from i3zoo.weights.raft import convert_raft_state_dict, raft_large_model, to_original_raft_state_dict


def test_post_processing_on_known_flows():
    """Clamp to ±20, 128 + 6.375 f rounded half to even, 2 q / 255 - 1; the crop from (H - 224) // 2."""
    values = torch.tensor([-30.0, -20.0, -0.1, 0.0, 0.0784313725, 1.0, 19.99, 20.0, 100.0])
    flow = values.repeat(26)[:231].expand(3, 2, 230, 231)  # every row: the values, period 9
    out = flow_to_i3d_input(flow, crop_size=224)
    assert out.shape == (2, 3, 224, 224)
    quantised = torch.tensor([0.5, 0.5, 127.3625, 128.0, 128.5, 134.375, 255.43625, 255.5, 255.5]).round()
    assert quantised.tolist() == [0, 0, 127, 128, 128, 134, 255, 256, 256]  # half to even: 0.5 -> 0, 128.5 -> 128
    expected = 2 * quantised / 255 - 1
    top_left = (231 - 224) // 2  # 3: the columns repeat with period 9, so column c holds values[(c + 3) % 9]
    assert torch.equal(out[0, 0, 0, :9], expected[[(c + top_left) % 9 for c in range(9)]])


def test_raft_padding_is_the_input_padders():
    assert raft_padding(256, 340) == (2, 2, 0, 0)
    assert raft_padding(255, 341) == (1, 2, 0, 1)
    frames = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).view(2, 3, 5, 6)
    padded = pad_for_raft(frames)
    assert padded.shape == (2, 3, 8, 8)
    assert torch.equal(padded[..., 1:6, 1:7], frames) and torch.equal(padded[..., 0, 1:7], frames[..., 0, :])
    assert torch.equal(padded[..., 7, 1:7], frames[..., 4, :])  # the odd rows after, edge repeated
    with pytest.raises(ValueError, match="smaller than the 224x224 crop"):
        center_crop(frames, 224)


@pytest.fixture(scope="module")
def random_raft():
    torch.manual_seed(0)
    model = raft_large().eval()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
    return model


def original_layout(model):
    """torchvision's weights in the authors' layout as ``raft-sintel.pth`` has them: ``module.`` (DataParallel) and
    the third norm of each residual block under ``norm3`` too."""
    original = to_original_raft_state_dict(model.state_dict())
    for key in [k for k in original if ".downsample.1." in k]:
        original[key.replace(".downsample.1.", ".norm3.")] = original[key]
    return {f"module.{k}": v for k, v in original.items()}


def test_the_authors_layout_round_trips(random_raft, tmp_path):
    path = tmp_path / "raft-sintel.pth"
    torch.save(original_layout(random_raft), path)
    loaded = raft_large_model("sintel", file=str(path))
    expected = random_raft.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())
    keys = set(original_layout(random_raft))
    assert {"module.fnet.conv1.weight", "module.update_block.gru.convq2.bias", "module.update_block.mask.2.weight",
            "module.cnet.layer2.0.norm3.running_var", "module.update_block.encoder.convf1.weight"} <= keys


def test_the_converter_names_every_misfit(random_raft):
    original = {k.removeprefix("module."): v for k, v in original_layout(random_raft).items()}
    del original["update_block.gru.convz1.bias"]
    original["update_block.gru.convw1.weight"] = torch.zeros(1)
    original["fnet.conv2.bias"] = original["fnet.conv2.bias"][:-1]
    with pytest.raises(CheckpointMismatchError) as caught:
        convert_raft_state_dict(original, random_raft.state_dict())
    message = str(caught.value)
    assert "does not fill (1): update_block.recurrent_block.convgru1.convz.bias" in message
    assert "no place in raft_large (1): update_block.gru.convw1.weight" in message
    assert "fnet.conv2.bias -> feature_encoder.conv.bias: checkpoint (255,), model (256,)" in message


def test_flow_pairs_are_consecutive_frames_batched(random_raft):
    frames = torch.randint(0, 256, (3, 3, 128, 132), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    flows = flow_pairs(random_raft, frames, iterations=1, batch_size=2)
    assert flows.shape == (2, 2, 128, 136)  # padded to multiples of 8, and kept so
    scaled = 2 * (pad_for_raft(frames.float()) / 255.0) - 1.0
    with torch.no_grad():
        second = random_raft(scaled[1:2], scaled[2:3], num_flow_updates=1)[-1]
    assert torch.allclose(flows[1:], second, rtol=1e-4, atol=1e-4)


def _texture(height: int, width: int, seed: int) -> torch.Tensor:
    """A smooth random colour texture, (3, H, W) in 0..255: something TV-L1 can follow."""
    coarse = torch.rand(1, 3, height // 8, width // 8, generator=torch.Generator().manual_seed(seed))
    return 255 * torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic")[0].clamp(0, 1)


def test_tvl1_is_opencvs_on_grayscale_frames_and_follows_motion():
    """OpenCV's TV-L1 (default parameters) on the frames as 8-bit grayscale, (x, y) channels first; a texture
    moved 2 pixels right gives a flow of about (2, 0)."""
    import cv2

    from i3zoo.video.flow import tvl1_between

    first = _texture(96, 128, 0).round()
    second = torch.roll(first, shifts=2, dims=2)
    flow = tvl1_between(first[None], second[None])
    assert flow.shape == (1, 2, 96, 128) and flow.dtype == torch.float32
    gray = [cv2.cvtColor(f.to(torch.uint8).permute(1, 2, 0).contiguous().numpy(), cv2.COLOR_RGB2GRAY)
            for f in (first, second)]
    by_hand = cv2.optflow.DualTVL1OpticalFlow_create().calc(gray[0], gray[1], None)
    assert torch.equal(flow[0], torch.from_numpy(by_hand).permute(2, 0, 1))
    inner = flow[0, :, 16:-16, 16:-16]  # away from the wrapped-around edge
    assert abs(inner[0].median().item() - 2) < 0.2 and abs(inner[1].median().item()) < 0.2


def test_tvl1_without_opencv_contrib_says_what_to_install(monkeypatch):
    import sys

    import i3zoo
    from i3zoo.video.flow import tvl1_between

    monkeypatch.setitem(sys.modules, "cv2", None)  # as where OpenCV is not installed: its import fails
    frames = torch.zeros(1, 3, 8, 8)
    with pytest.raises(i3zoo.UsageError, match=r"needs OpenCV's contrib build .*pip install -e '\.\[tvl1\]'"):
        tvl1_between(frames, frames)
