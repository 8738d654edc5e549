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


def _comment(path: Path) -> str:
    import av

    with av.open(str(path)) as container:
        return container.metadata.get("comment", "")


def test_script_reproduces_the_sample(tmp_path):
    """The script's x264 runs its C code (``asm=0``), so the same PyAV build writes the same bytes on every
    processor. Another build (another PyAV release, platform or architecture) may take other decisions; then the
    pictures must still be the drawn ones as closely as the sample's are. Bounds measured with PyAV 18.1 on an
    AVX-512 Xeon, over x264's four code paths there (C, and its assembly restricted to SSE2, to AVX2 as on an AMD
    EPYC, or all of it): mean difference from the drawn pictures 2.70 to 2.71 levels, worst frame 3.06 to 3.09."""
    script = _script()
    fresh = script.write_sample(tmp_path / "shapes.mp4")
    assert _comment(fresh) == script.encoder_build()
    if _comment(SAMPLE) == script.encoder_build():
        assert fresh.read_bytes() == SAMPLE.read_bytes()
        return
    decoded = decode_by_hand(fresh).astype(np.int16)
    drawn = np.stack([script.frame_pixels(i) for i in range(script.FRAMES)]).astype(np.int16)
    error = np.abs(decoded - drawn).mean(axis=(1, 2, 3))
    assert error.mean() < 3.25 and error.max() < 4.0, (error.mean(), error.max())


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
