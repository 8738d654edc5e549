"""The committed sample video: what the README says it is, and what scripts/make_sample_video.py writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from video_samples import decode_by_hand

from i3zoo.video import VideoReader

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "shapes.mp4"


def _script():
    spec = importlib.util.spec_from_file_location("make_sample_video", REPO / "scripts" / "make_sample_video.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_is_small_and_decodes_to_the_documented_frames():
    script = _script()
    assert SAMPLE.stat().st_size < 100_000
    reader = VideoReader(SAMPLE)
    assert (reader.num_frames, reader.size, reader.codec) == (48, (120, 160), "h264")
    assert (script.FRAMES, script.HEIGHT, script.WIDTH, script.FPS) == (48, 120, 160, 24)
    assert torch.allclose(reader.frame_times, torch.arange(48, dtype=torch.float64) / 24)
    decoded = decode_by_hand(SAMPLE).astype(np.int16)
    drawn = np.stack([script.frame_pixels(i) for i in range(48)]).astype(np.int16)
    assert np.abs(decoded - drawn).mean() < 6  # the pictures the script draws, through lossy H.264


def test_script_reproduces_the_sample(tmp_path):
    fresh = _script().write_sample(tmp_path / "shapes.mp4")
    # byte-identical with the same PyAV wheel; another x264 build may differ in bits, not in the pictures
    difference = np.abs(decode_by_hand(fresh).astype(np.int16) - decode_by_hand(SAMPLE).astype(np.int16))
    assert fresh.read_bytes() == SAMPLE.read_bytes() or difference.mean() < 1.0
    assert difference.max() <= 40


def test_readme_python_example_runs_on_the_sample(monkeypatch, checkpoint_2d, capsys):
    """The README's "from a file to features" block, run as written except for the weights' source (a seeded
    2D file stands in for the ImageNet download)."""
    import re

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Video in"):readme.index("## Pre-inflated weights")]
    (code,) = re.findall(r"From a file to features in Python:\n\n```python\n(.*?)```", section, re.S)
    call = 'i3zoo.create_model("i3resnet50", pretrained=True)'
    assert call in code
    code = code.replace(call, f'i3zoo.create_model("i3resnet50", pretrained=True, '
                              f'pretrained_cfg_overlay=dict(file={str(checkpoint_2d("i3resnet50"))!r}))')
    monkeypatch.chdir(REPO)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["clips"].shape == (3, 3, 16, 224, 224)
    assert namespace["features"].shape == (3, 2048)  # as the example's comment says
    assert torch.allclose(namespace["windows"].start, torch.tensor([0, 16, 32], dtype=torch.float64) / 24)
