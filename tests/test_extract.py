"""`i3zoo extract` on PyAV-written videos: outputs mirror the inputs, equal the model on frames decoded by hand,
survive kill -9 (the rerun takes the dead process's claims over and rewrites no complete output), resume, and
report bad videos. The smallest model with 2-frame clips and 32-pixel crops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import relative_error
from safetensors import safe_open
from video_samples import decode_by_hand, write_audio_only, write_video

import i3zoo
from i3zoo.video import sliding_windows, transforms_for
from i3zoo.weights.verify import seeded_2d_state_dict

FAST = ("--model", "i3resnet50", "--clip-len", "2", "--crop-size", "32")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """videos/{a/clip.mp4, b/clip.mp4, b/deeper/odd.avi, broken.mp4, sound.mp4}."""
    root = tmp_path_factory.mktemp("tree") / "videos"
    (root / "a").mkdir(parents=True)
    (root / "b" / "deeper").mkdir(parents=True)
    write_video(root / "a" / "clip.mp4", 6, 32, 40, fps=25)
    write_video(root / "b" / "clip.mp4", 5, 32, 40, fps=10)
    write_video(root / "b" / "deeper" / "odd.avi", 3, 33, 41, fps=24, codec="mpeg4")
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    write_audio_only(root / "sound.mp4")
    return root


def _random_model():
    model = i3zoo.create_model("i3resnet50", pretrained=True,
                               pretrained_cfg_overlay=dict(state_dict=seeded_2d_state_dict("resnet50", 0))).eval()
    model.reset_classifier(0)
    return model


def _read(path: Path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["i3zoo"]), f.metadata()


def test_extract_mirrors_folders_equals_the_model_and_reports_failures(run_cli, tree, tmp_path):
    out = tmp_path / "features"
    # PyAV, as the frames decoded by hand below (TorchCodec, where it runs, may round MPEG-4 differently)
    result = run_cli("extract", str(tree), *FAST, "--random-weights", "--out", str(out), "--batch-size", "3",
                     "--workers", "2", "--backend", "pyav")
    assert result.returncode == 1, result.stdout + result.stderr  # two of five videos cannot be read
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a/clip.mp4.safetensors", "b/clip.mp4.safetensors", "b/deeper/odd.avi.safetensors"]
    lines = result.stdout.splitlines()
    assert all(line.startswith("[random weights] ") for line in lines)  # every printed line says so
    assert "summary: 3 written, 0 skipped (complete), 2 failed" in result.stdout
    assert f"FAILED {tree / 'sound.mp4'}: no video stream (streams: audio)" in result.stdout
    assert f"FAILED {tree / 'broken.mp4'}: not a readable video file" in result.stdout

    model, transform = _random_model(), transforms_for("i3resnet50", crop_size=32)
    for name, fps in (("a/clip.mp4", 25), ("b/deeper/odd.avi", 24)):
        tensors, record, metadata = _read(out / f"{name}.safetensors")
        assert metadata["random_weights"] == "true" and record["settings"]["weights"]["kind"] == "random"
        assert record["settings"]["clip_len"] == 2 and record["settings"]["crop_size"] == 32
        assert record["inference"] == {"precision": "float32", "optimized": True, "compiled": False}  # short job
        frames = torch.from_numpy(decode_by_hand(tree / name)).permute(0, 3, 1, 2)
        windows = sliding_windows(len(frames), clip_len=2)
        with torch.no_grad():
            expected = model(torch.stack([transform(frames[w]) for w in windows.tolist()]))
        assert tensors["features"].dtype == torch.float32 and tensors["features"].shape == (len(windows), 2048)
        # batches of other sizes take other convolution paths: float32 round-off, relative to the largest value
        assert relative_error(tensors["features"], expected) < 1e-5
        starts = [w[0] / fps for w in windows.tolist()]
        assert torch.allclose(tensors["start"], torch.tensor(starts, dtype=torch.float64))
        assert torch.allclose(tensors["end"], torch.tensor(starts, dtype=torch.float64) + 2 / fps)
    tensors, _, _ = _read(out / "b/deeper/odd.avi.safetensors")
    assert tensors["padded"].tolist() == [0]  # 3 frames, one back-to-back window of 2

    # resumable: complete outputs are skipped; other settings are not silently mixed in
    again = run_cli("extract", str(tree), *FAST, "--random-weights", "--out", str(out), "--workers", "0")
    assert "summary: 0 written, 3 skipped (complete), 2 failed" in again.stdout
    other = run_cli("extract", str(tree / "a"), *FAST[:-2], "--crop-size", "40", "--random-weights", "--out",
                    str(out / "a"), "--workers", "0")
    assert other.returncode == 1 and "exists with other settings" in other.stdout


def test_short_video_is_padded_and_npy_format(run_cli, tree, tmp_path):
    out = tmp_path / "npy"
    result = run_cli("extract", str(tree / "b" / "deeper" / "odd.avi"), *FAST[:2], "--clip-len", "4",
                     "--crop-size", "32", "--random-weights", "--out", str(out), "--format", "npy", "--workers", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "padded: the video has fewer frames than one clip" in result.stdout
    relative = Path(os.path.relpath(tree / "b" / "deeper" / "odd.avi"))
    stem = out / relative if ".." not in relative.parts else out / "odd.avi"
    features = np.load(f"{stem}.npy")
    sidecar = json.loads(Path(f"{stem}.json").read_text())
    assert features.shape == (1, 2048) and features.dtype == np.float32
    assert sidecar["padded"] == [1] and sidecar["settings"]["weights"]["kind"] == "random"
    assert sidecar["start"] == [0.0] and sidecar["end"] == pytest.approx([3 / 24])


def test_files_with_one_name_collide_and_list_file(run_cli, tree, tmp_path):
    clash = run_cli("extract", str(tree / "a" / "clip.mp4"), str(tree / "b" / "clip.mp4"), *FAST, "--random-weights",
                    "--out", str(tmp_path / "x"))
    assert clash.returncode == 2 and "would write the same output" in clash.stderr
    assert not (tmp_path / "x").exists()
    listing = tree / "list.csv"
    listing.write_text("a/clip.mp4,jump\n# a comment\nmissing.mp4,run\n")
    result = run_cli("extract", "--list", str(listing), *FAST, "--random-weights", "--out", str(tmp_path / "l"),
                     "--workers", "0")
    assert result.returncode == 1
    assert (tmp_path / "l" / "a" / "clip.mp4.safetensors").is_file()
    assert "FAILED missing.mp4: no such file or folder" in result.stdout


def test_without_weights_it_stops_at_once_saying_how_to_get_them(run_cli, tree, tmp_path):
    result = run_cli("extract", str(tree), "--model", "i3resnet50", "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "cannot load weights for i3resnet50" in result.stderr and "--file PATH" in result.stderr
    assert "--random-weights" in result.stderr and not (tmp_path / "o").exists()


def test_weights_from_a_2d_file_are_recorded(run_cli, tree, tmp_path, checkpoint_2d):
    out = tmp_path / "file"
    result = run_cli("extract", str(tree / "a"), *FAST, "--file", str(checkpoint_2d("i3resnet50")), "--out", str(out),
                     "--workers", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[random weights]" not in result.stdout
    _, record, metadata = _read(out / "clip.mp4.safetensors")
    assert metadata["random_weights"] == "false"
    assert record["settings"]["weights"] == {"kind": "file", "name": "i3resnet50.pth", "model": "i3resnet50",
                                             "inflation": "center"}


def test_kill_9_leaves_no_partial_output_and_the_rerun_finishes(tmp_path):
    videos = tmp_path / "many"
    videos.mkdir()
    for i in range(4):
        write_video(videos / f"v{i}.mp4", 8, 32, 40)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "i3zoo", "extract", str(videos), *FAST, "--random-weights", "--out", str(out),
               "--batch-size", "1", "--workers", "0"]
    env = dict(os.environ, TORCH_HOME=str(tmp_path))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 300
    while time.time() < deadline and not list(out.rglob("*.safetensors")):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(out.rglob("*.safetensors"))
    assert 1 <= len(finished) < 4, "the run was not interrupted mid-way"
    # the killed process held claims on the videos it had started (its lock died with it; the file stays)
    assert list(out.glob(".*.safetensors.claim"))
    complete = {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in finished}
    for path in finished:  # an output under its final name is whole
        tensors, _, _ = _read(path)
        assert tensors["features"].shape == (4, 2048)
    # what a killed run's writer left under a temporary name is removed when that output is written
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    unfinished = next(f"v{i}.mp4.safetensors" for i in range(4) if out / f"v{i}.mp4.safetensors" not in finished)
    (out / f".{unfinished}.tmp-{dead.stdout.strip()}").write_bytes(b"half")
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert not list(out.glob(".*.tmp-*"))
    assert not list(out.glob(".*.claim"))  # its successor took the dead process's claims over
    assert f"{4 - len(finished)} written, {len(finished)} skipped (complete), 0 failed" in rerun.stdout
    assert {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in finished} == complete  # never rewritten
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        f"v{i}.mp4.safetensors" for i in range(4)]


@pytest.mark.parametrize("first", ["bfloat16", "float32"])
def test_auto_precision_keeps_the_folders(run_cli, tmp_path, first):
    """A folder holds one settings: ``--precision auto`` (float32 for a short job, bfloat16 for a long one where
    the hardware runs it fast) takes the precision of the features already there instead of being refused."""
    for name in ("one", "two"):
        write_video(tmp_path / f"{name}.mp4", 3, 32, 40, fps=25)
    out = tmp_path / "features"
    given = run_cli("extract", str(tmp_path / "one.mp4"), *FAST, "--random-weights", "--out", str(out),
                    "--precision", first, "--no-compile")
    assert given.returncode == 0, given.stderr
    auto = run_cli("extract", str(tmp_path / "two.mp4"), *FAST, "--random-weights", "--out", str(out),
                   "--no-compile")
    assert auto.returncode == 0, auto.stderr
    assert f"holds {first} features; --precision auto keeps {first}" in auto.stderr
    for name in ("one", "two"):
        tensors, record, _ = _read(out / f"{name}.mp4.safetensors")
        assert record["settings"]["dtype"] == first and record["inference"]["precision"] == first
    other = "float32" if first == "bfloat16" else "bfloat16"
    refused = run_cli("extract", str(tmp_path / "two.mp4"), *FAST, "--random-weights", "--out", str(out),
                      "--precision", other, "--no-compile")
    assert refused.returncode == 2 and "holds features made with other settings (dtype" in refused.stderr
