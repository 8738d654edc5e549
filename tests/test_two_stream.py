"""Two-stream I3D extraction (``i3zoo.engines.two_stream``): video_features' frame resize, and a two-stream run of a
generated video through the Extractor -- windows, times, shapes, each stream's place in the features, resume and
failure reporting. Small: frames of 128 x 160 (RAFT's minimum is 128), one RAFT iteration, random weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from video_samples import decode_by_hand, write_video

import i3zoo
from i3zoo.engines import Extractor
from i3zoo.engines.loading import LoadedModel
from i3zoo.engines.two_stream import TwoStreamI3D, VideoFeaturesResize, video_features_transform
from i3zoo.video.flow import flow_pairs, flow_to_i3d_input
from i3zoo.weights.raft import raft_large_model


def test_the_resize_is_video_features():
    """PIL's bilinear filter to a short side of 256, the long side truncated (``int(256 * 341 / 255)`` = 342)."""
    frames = torch.randint(0, 256, (2, 3, 255, 341), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = VideoFeaturesResize(256)(frames)
    assert out.shape == (3, 2, 256, 342) and out.dtype == torch.float32
    by_hand = np.array(Image.fromarray(frames[1].permute(1, 2, 0).numpy()).resize((342, 256), Image.BILINEAR))
    assert torch.equal(out[:, 1], torch.from_numpy(by_hand).permute(2, 0, 1).float())
    assert VideoFeaturesResize(256).size_of(480, 256) == (480, 256)  # already 256: untouched
    assert VideoFeaturesResize(256).size_of(640, 360) == (455, 256)


@pytest.fixture(scope="module")
def two_stream():
    torch.manual_seed(0)
    # piergiaj's numerics: TensorFlow's padding takes clips of one frame (hassony2's static rule needs 2)
    rgb = i3zoo.create_model("i3inception_v1_dm.k400_rgb_piergiaj").eval()
    flow = i3zoo.create_model("i3inception_v1_dm.k400_flow_piergiaj").eval()
    model = TwoStreamI3D(rgb, flow, raft_large_model("none"), crop_size=128, iterations=1).eval()
    weights = {"kind": "random", "model": "two-stream", "inflation": "center"}
    return LoadedModel(model, "two-stream", weights, True)


def test_two_stream_extraction_windows_resume_and_failures(two_stream, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "clip.mp4", 4, height=128, width=160)
    (videos / "broken.mp4").write_bytes(b"not a video")
    extractor = Extractor(two_stream, clip_len=2, step=2, transform=video_features_transform(128), batch_size=2,
                          workers=0)
    summary = extractor.extract([videos], tmp_path / "out", progress=False)
    assert (summary.written, summary.windows) == (1, 2)
    assert [p for p, _ in summary.failures] == [str(videos / "broken.mp4")]
    with safe_open(str(tmp_path / "out" / "clip.mp4.safetensors"), framework="pt") as f:
        features, start, end = f.get_tensor("features"), f.get_tensor("start"), f.get_tensor("end")
        record = json.loads(f.metadata()["i3zoo"])
        streams = {name: f.get_tensor(name) for name in ("rgb", "flow")}
    assert features.shape == (2, 2048)  # windows of frames 0-1 and 2-3: RGB of the first frame, flow of the pair
    assert start.tolist() == [0.0, 2 / 25] and torch.allclose(end, torch.tensor([2 / 25, 4 / 25], dtype=torch.float64))
    assert record["settings"]["streams"] == {"rgb": [0, 1024], "flow": [1024, 2048]}
    # each stream beside the concatenation, as video_features hands them out
    assert torch.equal(streams["rgb"], features[:, :1024]) and torch.equal(streams["flow"], features[:, 1024:])
    # the RGB stream of the second window: frame 2 (its last frame only makes the flow pair), centre 128 x 128
    frames = torch.from_numpy(decode_by_hand(videos / "clip.mp4")).permute(3, 0, 1, 2).float()  # (3, T, H, W)
    with torch.no_grad():
        rgb = TwoStreamI3D._pooled(two_stream.model.rgb, 2 * frames[None, :, 2:3, :, 16:144] / 255 - 1)
    assert torch.allclose(features[1, :1024], rgb[0], rtol=1e-4, atol=1e-5)
    again = extractor.extract([videos / "clip.mp4"], tmp_path / "out", progress=False)
    assert (again.written, again.skipped, again.windows) == (0, 1, 0)


def test_two_stream_npy_outputs_give_each_stream_a_file(two_stream, tmp_path):
    write_video(tmp_path / "clip.mp4", 4, height=128, width=160)
    extractor = Extractor(two_stream, clip_len=2, step=2, transform=video_features_transform(128), batch_size=2,
                          workers=0, format="npy")
    assert extractor.extract([tmp_path / "clip.mp4"], tmp_path / "out", progress=False).written == 1
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4.flow.npy", "clip.mp4.json", "clip.mp4.npy",
                                                     "clip.mp4.rgb.npy"]
    whole = np.load(out / "clip.mp4.npy")
    assert whole.shape == (2, 2048)
    assert np.array_equal(np.load(out / "clip.mp4.rgb.npy"), whole[:, :1024])
    assert np.array_equal(np.load(out / "clip.mp4.flow.npy"), whole[:, 1024:])
    # the json, written last, marks the output complete: a rerun skips it
    again = extractor.extract([tmp_path / "clip.mp4"], out, progress=False)
    assert (again.written, again.skipped) == (0, 1)


class CountingRAFT(torch.nn.Module):
    """The real RAFT, counting the frame pairs it is run on."""

    def __init__(self, raft: torch.nn.Module) -> None:
        super().__init__()
        self.raft, self.pairs = raft, 0

    def forward(self, first, second, num_flow_updates):
        self.pairs += first.shape[0]
        return self.raft(first, second, num_flow_updates=num_flow_updates)


def test_overlapping_windows_compute_each_flow_pair_once(two_stream, tmp_path):
    """Windows of 3 frames every frame (2 pairs each, 4 windows over 6 frames, in batches of 2): RAFT runs on the
    5 distinct pairs only, and each window's flow features are those of its own pairs computed alone."""
    write_video(tmp_path / "clip.mp4", 6, height=128, width=160)
    raft = CountingRAFT(two_stream.model.raft)
    model = TwoStreamI3D(None, two_stream.model.flow, raft, crop_size=128, iterations=1).eval()
    loaded = LoadedModel(model, "flow", two_stream.weights, True)
    extractor = Extractor(loaded, clip_len=3, step=1, transform=video_features_transform(128), batch_size=2,
                          workers=0)
    assert extractor.extract([tmp_path / "clip.mp4"], tmp_path / "out", progress=False).windows == 4
    assert raft.pairs == 5
    with safe_open(str(tmp_path / "out" / "clip.mp4.safetensors"), framework="pt") as f:
        features = f.get_tensor("flow")
    frames = torch.from_numpy(decode_by_hand(tmp_path / "clip.mp4")).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    with torch.no_grad():
        for start in range(4):
            flow = flow_to_i3d_input(flow_pairs(raft.raft, frames[start:start + 3], iterations=1), 128)
            alone = TwoStreamI3D._pooled(model.flow, flow[None])
            assert torch.allclose(features[start], alone[0], rtol=1e-4, atol=1e-5), start


def test_two_stream_refuses_what_it_cannot_do(two_stream):
    with pytest.raises(i3zoo.UsageError, match="runs as it is"):
        Extractor(two_stream, clip_len=3, dtype="bfloat16")
    assert two_stream.model.min_input_size == (2, 128, 128)
    with pytest.raises(i3zoo.UsageError, match="clip_len 1 is below"):
        Extractor(two_stream, clip_len=1)
    with pytest.raises(i3zoo.UsageError, match="returns its own features: give its frame transform"):
        Extractor(two_stream, clip_len=3)
    with pytest.raises(ValueError, match="needs a RAFT model"):
        TwoStreamI3D(None, two_stream.model.flow, None)


def test_the_command_takes_only_deepminds_i3d(run_cli, tmp_path):
    write_video(tmp_path / "v.mp4", 2)
    result = run_cli("extract", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "i3resnet50",
                     "--streams", "rgb", "flow")
    assert result.returncode == 2 and "--streams and --preset take DeepMind's I3D" in result.stderr
    result = run_cli("extract", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "i3inception_v1_dm",
                     "--preset", "video-features", "--clip-len", "16", "--random-weights")
    assert result.returncode == 2 and "--preset video-features sets --clip-len 65; got 16" in result.stderr
    result = run_cli("extract", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "i3inception_v1_dm",
                     "--preset", "video-features", "--flow", "tvl1", "--random-weights")
    assert result.returncode == 2 and "computes RAFT flow, as video_features does; got --flow tvl1" in result.stderr
    result = run_cli("extract", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "i3resnet50", "--flow",
                     "tvl1", "--random-weights")
    assert result.returncode == 2 and "--flow and --raft-file are the flow stream's: give --streams" in result.stderr
    assert not (tmp_path / "o").exists()


def test_tvl1_flow_stream_through_the_extractor(tmp_path):
    """``flow_method="tvl1"`` (``--flow tvl1``): no RAFT; each window's flow features are the flow model's on the
    quantised TV-L1 flow of its frame pairs, and the outputs record the method."""
    from i3zoo.engines.two_stream import load_two_stream
    from i3zoo.video.flow import dequantize_flow, quantize_flow, tvl1_between

    write_video(tmp_path / "clip.mp4", 5, height=128, width=160)
    loaded = load_two_stream("piergiaj", ("flow",), random_weights=True, crop_size=128, flow_method="tvl1")
    assert loaded.model.raft is None and loaded.weights["flow"] == "tvl1"
    extractor = Extractor(loaded, clip_len=3, step=2, transform=video_features_transform(128), batch_size=2,
                          workers=0)
    assert extractor.extract([tmp_path / "clip.mp4"], tmp_path / "out", progress=False).windows == 2
    with safe_open(str(tmp_path / "out" / "clip.mp4.safetensors"), framework="pt") as f:
        features = f.get_tensor("flow")
        assert json.loads(f.metadata()["i3zoo"])["settings"]["weights"]["flow"] == "tvl1"
    frames = torch.from_numpy(decode_by_hand(tmp_path / "clip.mp4")).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    with torch.no_grad():
        for window, start in enumerate((0, 2)):
            clip = frames[start:start + 3]
            flow = dequantize_flow(quantize_flow(tvl1_between(clip[:-1], clip[1:]), 128))
            alone = TwoStreamI3D._pooled(loaded.model.flow, flow[None])
            assert torch.allclose(features[window], alone[0], rtol=1e-4, atol=1e-5), window
    with pytest.raises(ValueError, match="flow_method 'farneback': choose from raft, tvl1"):
        TwoStreamI3D(None, loaded.model.flow, None, flow_method="farneback")
