"""i3zoo train: it learns time, two processes equal one, a killed run resumes bit for bit, frozen stages stay
frozen, the trained folder loads and names its classes, bad input stops before training.

Small on purpose: clips of 4 frames of 32x32, a few videos, a few steps. The learning test uses a one-block-per-
stage ResNet of the I3ResNet family (the Python entry point's ``model_kwargs``); the command-line runs use the
full I3ResNet-50 from torchvision's random initialisation (``--no-pretrained``; the seeded 2D stand-ins for
ImageNet weights give gradients of norm 5e4 on these tiny clips, too ill-conditioned to compare two runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from motion_videos import CLASSES, write_motion_dataset

import i3zoo
from i3zoo.train import CHECKPOINT_NAME, METRICS_NAME, TENSORBOARD_NAME, TrainConfig, default_lr, fit, lr_factor
from i3zoo.train.recipe import build_model

SMALL = dict(clip_len=4, frame_interval=1, crop_size=32, workers=0, progress=False)
SHALLOW = dict(model="i3resnet50", pretrained=False, model_kwargs=dict(block_counts=(1, 1, 1, 1)))
CLI_CLIP = ["--clip-len", "4", "--crop-size", "32", "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    """Sliding-texture videos: ``learn`` (24 + 24 train, 10 + 10 val) and ``small`` (4 + 4 train, 3 + 2 val:
    five validation videos, which two processes split unevenly)."""
    root = tmp_path_factory.mktemp("motion")
    write_motion_dataset(root / "learn_train", 24, seed=0)
    write_motion_dataset(root / "learn_val", 10, seed=1)
    write_motion_dataset(root / "small_train", 4, seed=2)
    write_motion_dataset(root / "small_val", 3, seed=3)
    (root / "small_val" / CLASSES[1] / "002.mp4").unlink()
    return root


def _checkpoint(folder: Path) -> dict:
    return torch.load(Path(folder) / CHECKPOINT_NAME, map_location="cpu", weights_only=True)


@contextlib.contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _subprocess_env(tmp_path: Path) -> dict:
    # one thread per process: two processes on a 2-core machine, and the same arithmetic in every run
    return dict(os.environ, TORCH_HOME=str(tmp_path), OMP_NUM_THREADS="1")


# --- the recipe --------------------------------------------------------------------------------------------

def test_recipe_defaults_follow_mmaction2():
    assert default_lr("sgd", 64) == 0.01 and default_lr("sgd", 8) == 0.00125
    config = TrainConfig(train="x", output="y")
    assert (config.optimizer, config.momentum, config.grad_clip) == ("sgd", 0.9, 40.0)
    assert lr_factor(0, total_steps=10, warmup_steps=2) == pytest.approx(0.1)
    assert lr_factor(2, total_steps=10, warmup_steps=2) == pytest.approx(1.0)
    assert lr_factor(6, total_steps=10, warmup_steps=2) == pytest.approx(0.5)
    assert lr_factor(10, total_steps=10, warmup_steps=2) == pytest.approx(0.0)


def test_it_learns_time(motion, tmp_path):
    """Up and down: any one frame is a random texture; only motion tells the class (chance: 50%)."""
    # Seeds 0-10 on a 2-core EPYC (0-6 with one validation clip): best epoch 95-100%, last 85-100%. With 6 epochs
    # at lr 1e-3 seeds 1-5 ended at 70-85%: too short a run for a bar that must hold under any CPU's rounding.
    result = fit(TrainConfig(train=str(motion / "learn_train"), val=str(motion / "learn_val"), output=str(tmp_path),
                             **SHALLOW, **SMALL, epochs=16, batch_size=8, optimizer="adamw", lr=2e-3,
                             warmup_epochs=0.5, eval_clips=3, tensorboard=True))
    lines = [json.loads(line) for line in (tmp_path / METRICS_NAME).read_text().splitlines()]
    assert lines == result["history"] and len(lines) == 16
    assert {"train_loss", "val_top1", "val_top5", "lr", "clips_per_s", "seconds"} <= set(lines[-1])
    assert lines[-1]["val_samples"] == 20
    assert result["best"] == max(lines, key=lambda line: line["val_top1"])  # the first of the best epochs
    assert result["best"]["val_top1"] >= 90.0, lines  # the epoch a run keeps as best/
    assert lines[-1]["val_top1"] >= 80.0, lines  # and it does not fall back to chance (50%) by the end

    # --tensorboard: the same numbers, one scalar series per metrics.jsonl key, step = epoch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(tmp_path / TENSORBOARD_NAME))
    board.Reload()
    assert set(board.Tags()["scalars"]) == set(lines[0]) - {"epoch"}
    for key in ("train_loss", "val_top1", "lr"):
        events = board.Scalars(key)
        assert [e.step for e in events] == [line["epoch"] for line in lines]
        assert [e.value for e in events] == pytest.approx([line[key] for line in lines], rel=1e-6)  # stored as float32


# --- two processes, and resume ------------------------------------------------------------------------------

def _cli_run(motion: Path, output: Path, *extra: str):
    return ["--train", str(motion / "small_train"), "--val", str(motion / "small_val"), "--model", "i3resnet50",
            "--no-pretrained", "--output", str(output), *CLI_CLIP, "--eval-clips", "2", *extra]


def _one_process_config(motion: Path, output: Path, **changes) -> TrainConfig:
    """What ``_cli_run`` asks for, through the Python entry point."""
    settings = dict(train=str(motion / "small_train"), val=str(motion / "small_val"), output=str(output),
                    model="i3resnet50", pretrained=False, inflation="center", eval_clips=2, **SMALL)
    settings.update(changes)
    return TrainConfig(**settings)


def test_two_processes_with_sync_bn_equal_one_and_count_every_sample_once(motion, tmp_path, run_cli):
    two = tmp_path / "two"
    command = [sys.executable, "-m", "i3zoo", "train", "--nproc", "2",
               *_cli_run(motion, two, "--batch-size", "2", "--epochs", "1", "--sync-bn", "--device", "cpu",
                        "--float64")]
    result = subprocess.run(command, capture_output=True, text=True, env=_subprocess_env(tmp_path), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with _one_thread():  # as each of the two processes
        one = fit(_one_process_config(motion, tmp_path / "one", batch_size=4, epochs=1, float64=True))
    two_lines = [json.loads(line) for line in (two / METRICS_NAME).read_text().splitlines()]
    assert len(one["history"]) == len(two_lines) == 1
    for a, b in zip(one["history"], two_lines):
        assert a["val_samples"] == b["val_samples"] == 5  # split 3 + 2 between the processes
        assert a["train_clips"] == b["train_clips"] == 8
        assert a["val_top1"] == b["val_top1"] and a["val_top5"] == b["val_top5"]
        # the weights are float64; the losses are computed from float32 logits
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
    weights_one, weights_two = _checkpoint(tmp_path / "one")["model"], _checkpoint(two)["model"]
    assert weights_one.keys() == weights_two.keys()
    moved = 0
    for key, value in weights_one.items():
        torch.testing.assert_close(weights_two[key], value, rtol=1e-7, atol=1e-8, msg=key)  # measured: <= 6e-10
        moved += key.endswith("running_mean") and not torch.equal(value, torch.zeros_like(value))
    assert moved  # the statistics were synchronised, not left alone

    # the trained folder loads by itself and names its classes
    model = i3zoo.create_model(f"local-dir:{two / 'last'}", pretrained=True)
    assert model.pretrained_cfg["label_names"] == list(CLASSES)
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights_two[key].to(value.dtype)), key  # built in float32, trained in float64
    video = next((motion / "small_val" / CLASSES[0]).iterdir())
    predicted = run_cli("predict", str(video), "--model", f"local-dir:{two / 'best'}", "--clip-len", "4",
                        "--crop-size", "32", "--num-clips", "2", "--json")
    assert predicted.returncode == 0, predicted.stderr
    top = json.loads(predicted.stdout)["results"][0]["top"]
    assert {t["label"] for t in top} == set(CLASSES)

    # its card says how it was trained, and claims neither ImageNet weights nor the boring-video equivalence
    card = (two / "last" / "README.md").read_text()
    assert "fine-tuned on video with `i3zoo train`" in card and "imagenet-1k" not in card.lower()
    # folder and label names are made inert for markdown and HTML (i3zoo.text.card_text): small\_train
    assert "random initialisation" in card and "8 videos of small\\_train" in card
    assert f"top-1 {two_lines[0]['val_top1']:.2f}%" in card and "on 5 videos of small\\_val, 2 clip(s) each" in card
    assert "down, up" in card and "Equivalence guarantee" not in card and str(tmp_path) not in card
    assert f"| parameters | {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M |" in card  # its 2-way head
    meta = json.loads((two / "last" / "config.json").read_text())["i3zoo"]
    assert meta["training"]["epochs"] == 1 and meta["equivalence"]["measured"] is False

    # a checkpoint of two processes is not resumed by one
    with pytest.raises(ValueError, match="number of processes 2; this run has 1"):
        fit(_one_process_config(motion, two, batch_size=2, epochs=1, float64=True, resume=True))


def test_a_run_killed_mid_epoch_resumes_bit_for_bit(motion, tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    arguments = _cli_run(motion, killed, "--batch-size", "2", "--epochs", "1", "--save-every", "1",
                         "--deterministic", "--device", "cpu")
    env = _subprocess_env(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "i3zoo", "train", *arguments], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 300
    while not (killed / CHECKPOINT_NAME).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-3000:]
    saved = _checkpoint(killed)
    assert saved["epoch"] == 0 and 0 < saved["step_in_epoch"] < 4  # mid-epoch: 4 steps of 2 clips per epoch
    assert not (killed / "last").exists()

    with _one_thread():  # as the killed process
        resumed = fit(_one_process_config(motion, killed, batch_size=2, epochs=1, save_every=1,
                                          deterministic=True, resume=True))
        uninterrupted = fit(_one_process_config(motion, whole, batch_size=2, epochs=1, deterministic=True))
    a, b = _checkpoint(killed), _checkpoint(whole)
    assert a["step"] == b["step"] == 4
    for key, value in b["model"].items():
        assert torch.equal(a["model"][key], value), key
    for state_a, state_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(state_a["momentum_buffer"], state_b["momentum_buffer"])
    for line_a, line_b in zip(resumed["history"], uninterrupted["history"]):
        assert line_a["train_loss"] == line_b["train_loss"] and line_a["val_loss"] == line_b["val_loss"]

    # a checkpoint of another model, or of another number of classes, is refused
    with pytest.raises(ValueError, match="model 'i3resnet50'; this run has 'i3resnet50_c2d'"):
        fit(_one_process_config(motion, killed, batch_size=2, epochs=1, model="i3resnet50_c2d", resume=True))
    listed = tmp_path / "listed.txt"
    listed.write_text("".join(f"{p},{k}\n" for k, name in enumerate(CLASSES)
                              for p in sorted((motion / "small_train" / name).iterdir())))
    with pytest.raises(ValueError, match="number of classes 2; this run has 3"):
        fit(_one_process_config(motion, killed, train=str(listed), val=None, num_classes=3, batch_size=2,
                                epochs=1, resume=True))


# --- freezing through the trainer ---------------------------------------------------------------------------

@pytest.mark.parametrize("frozen_stages, norm_eval", [(1, False), (-1, True)])
def test_frozen_stages_and_norm_eval_through_the_trainer(motion, tmp_path, frozen_stages, norm_eval):
    config = TrainConfig(train=str(motion / "small_train"), output=str(tmp_path), **SHALLOW, **SMALL, epochs=1,
                         batch_size=4, frozen_stages=frozen_stages, norm_eval=norm_eval)
    before = build_model(config, len(CLASSES)).state_dict()
    fit(config)
    after = _checkpoint(tmp_path)["model"]
    frozen = ("conv1.", "bn1.", "layer1.") if frozen_stages == 1 else ()
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    for key, value in before.items():
        unchanged = torch.equal(value, after[key])
        if key.startswith(frozen) or (norm_eval and key.endswith(statistics)):
            assert unchanged, key
        elif key.endswith(("weight", "bias")):
            assert not unchanged, key  # every live parameter learns
    if not norm_eval:
        assert not torch.equal(before["layer2.0.bn1.running_mean"], after["layer2.0.bn1.running_mean"])


# --- bad input ----------------------------------------------------------------------------------------------

def _bad_config(train: Path, tmp_path: Path, **changes) -> TrainConfig:
    return TrainConfig(**dict(dict(train=str(train), output=str(tmp_path / "out"), **SHALLOW, **SMALL), **changes))


def test_bad_input_is_refused_before_training(motion, tmp_path):
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no video files"):
        fit(_bad_config(empty, tmp_path))

    broken = tmp_path / "broken"
    for name in CLASSES:
        (broken / name).mkdir(parents=True)
    for path in (motion / "small_train" / CLASSES[0]).iterdir():
        (broken / CLASSES[0] / path.name).write_bytes(path.read_bytes())
    (broken / CLASSES[1] / "0.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match=f"no readable video for class folder .*{CLASSES[1]}"):
        fit(_bad_config(broken, tmp_path))

    listed = tmp_path / "labels.txt"
    videos = sorted((motion / "small_train" / CLASSES[0]).iterdir())
    listed.write_text(f"{videos[0]},0\n{videos[1]},5\n")
    with pytest.raises(ValueError, match="label 5 .* outside the model's 2 classes"):
        fit(_bad_config(listed, tmp_path, num_classes=2))

    with pytest.raises(ValueError, match=r"global batch .* larger than the training set \(8 videos\)"):
        fit(_bad_config(motion / "small_train", tmp_path, batch_size=9))
    assert not (tmp_path / "out").exists()  # nothing was written


def test_an_unreadable_video_is_reported_and_the_run_goes_on(motion, tmp_path, capfd):
    """One corrupt file among readable ones, in training and in validation: named, left out, counted."""
    train, val = tmp_path / "train", tmp_path / "val"
    for source, target in ((motion / "small_train", train), (motion / "small_val", val)):
        for video in source.rglob("*.mp4"):
            (target / video.parent.name).mkdir(parents=True, exist_ok=True)
            (target / video.parent.name / video.name).write_bytes(video.read_bytes())
        (target / CLASSES[1] / "zz_truncated.mp4").write_bytes(
            next((source / CLASSES[1]).iterdir()).read_bytes()[:300])
    result = fit(_bad_config(train, tmp_path, val=str(val), batch_size=3, epochs=2, workers=2))  # as users run
    err = capfd.readouterr().err
    for target, what in ((train, "training"), (val, "validation")):
        assert f"skipped an unreadable {what} video, {target / CLASSES[1] / 'zz_truncated.mp4'}:" in err
    for line in result["history"]:
        # 9 training videos, 3 steps of 3: the bad one is met once an epoch; 6 validation videos, 5 read
        assert (line["train_clips"], line["train_skipped"]) == (8, 1)
        assert (line["val_samples"], line["val_skipped"]) == (5, 1)
