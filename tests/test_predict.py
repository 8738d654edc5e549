"""`i3zoo predict`: multi-clip top-k with the weights' label names (ImageNet categories for an ImageNet-style
1000-class model), as a table and as JSON; unreadable videos fail with their reason."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from video_samples import decode_by_hand, write_audio_only, write_video

import i3zoo
from i3zoo.engines import model_label_names
from i3zoo.video import evenly_spaced_clips, transforms_for
from i3zoo.weights.verify import seeded_2d_state_dict

FAST = ("--model", "i3resnet50", "--clip-len", "2", "--crop-size", "32", "--random-weights")
CATEGORIES = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict")
    return (write_video(folder / "shapes.mp4", 10, 32, 40, fps=25),
            write_audio_only(folder / "sound.mp4"))


def test_json_top_k_is_the_mean_softmax_of_evenly_spaced_clips(run_cli, clips):
    video, _ = clips
    result = run_cli("predict", str(video), *FAST, "--num-clips", "3", "--top-k", "4", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["random_weights"] is True and report["labels"] == "ImageNet-1k"
    # three clips cannot repay a compile: the optimized copy ran in float32, eagerly, and the output says so
    assert report["inference"] == {"precision": "float32", "optimized": True, "compiled": False}
    (entry,) = report["results"]
    model = i3zoo.create_model("i3resnet50", pretrained=True,
                               pretrained_cfg_overlay=dict(state_dict=seeded_2d_state_dict("resnet50", 0))).eval()
    frames = torch.from_numpy(decode_by_hand(video)).permute(0, 3, 1, 2)
    transform = transforms_for(model, crop_size=32)
    batch = torch.stack([transform(frames[c]) for c in evenly_spaced_clips(10, 2, 1, 3).tolist()])
    with torch.no_grad():
        probabilities = model(batch).softmax(dim=1).mean(dim=0)
    values, indices = probabilities.topk(4)
    assert [t["class"] for t in entry["top"]] == indices.tolist()
    assert [t["label"] for t in entry["top"]] == [CATEGORIES[i] for i in indices.tolist()]
    assert [t["probability"] for t in entry["top"]] == pytest.approx(values.tolist(), rel=1e-4)
    plain = run_cli("predict", str(video), *FAST, "--num-clips", "3", "--top-k", "4", "--json", "--no-optimize")
    assert plain.returncode == 0 and "inference: the plain model in float32 (as asked)" in plain.stderr
    report = json.loads(plain.stdout)
    assert report["inference"] == {"precision": "float32", "optimized": False, "compiled": False}
    assert [t["probability"] for t in report["results"][0]["top"]] == pytest.approx(values.tolist(), rel=1e-5)
    refused = run_cli("predict", str(video), *FAST, "--no-optimize", "--compile")
    assert refused.returncode == 2 and "--no-optimize) runs the plain float32 model" in refused.stderr


def test_table_prints_imagenet_category_names_and_fails_unreadable_videos(run_cli, clips):
    video, sound = clips
    result = run_cli("predict", str(video), str(sound), *FAST, "--top-k", "2")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert all(line.startswith("[random weights] ") for line in lines)
    assert "labels: ImageNet-1k" in lines[0] and "name objects seen in the frames, not actions" in lines[1]
    assert lines[3].split()[2:4] == [str(video), "1"] and lines[4].split()[2] == "2"
    labels = [line.rsplit("  ", 1)[-1] for line in lines[3:5]]  # the label column comes last
    assert all(label in CATEGORIES for label in labels), labels
    assert lines[5].split()[2] == str(sound) and lines[5].endswith("FAILED: no video stream (streams: audio)")
    assert "1 of 2 videos could not be read" in result.stderr


def test_label_names_come_from_the_weights():
    model = i3zoo.create_model("i3resnet50", num_classes=3)
    assert model_label_names(model) == (None, "none (class numbers)")
    model.pretrained_cfg = dict(model.pretrained_cfg, label_names=["archery", "bowling", "surfing"])
    assert model_label_names(model) == (["archery", "bowling", "surfing"], "the model's label_names")
    model.pretrained_cfg = dict(model.pretrained_cfg, label_names=["archery", "bowling"])
    assert model_label_names(model) == (None, "none: the model's 2 label_names do not fit its 3 classes")
    names, source = model_label_names(i3zoo.create_model("i3resnet50"))
    assert names == CATEGORIES and source == "ImageNet-1k"


def test_a_video_shorter_than_a_clip_is_padded_and_says_so(run_cli, clips):
    video, _ = clips  # 10 frames
    args = ("predict", str(video), "--model", "i3resnet50", "--clip-len", "12", "--crop-size", "32",
            "--random-weights", "--num-clips", "1", "--top-k", "1")
    table = run_cli(*args)
    assert table.returncode == 0 and "(shorter than one clip: padded by repeating its last frame)" in table.stdout
    assert json.loads(run_cli(*args, "--json").stdout)["results"][0]["padded"] is True


def test_a_fine_tuned_folder_predicts_with_its_ownmodel_label_names(run_cli, clips, tmp_path):
    """A saved model whose config carries label_names (timm's convention), loaded as local-dir:."""
    names = ["jump", "run", "swim", "throw", "wave"]
    torch.manual_seed(0)
    model = i3zoo.create_model("i3resnet50", num_classes=5)
    model.pretrained_cfg = dict(model.pretrained_cfg, num_classes=5, label_names=names)  # as a fine-tuning run sets it
    folder = i3zoo.save_pretrained(model, tmp_path / "finetuned", measure=False)
    assert json.loads((folder / "config.json").read_text())["pretrained_cfg"]["label_names"] == names
    video, _ = clips
    result = run_cli("predict", str(video), "--model", f"local-dir:{folder}", "--clip-len", "2", "--crop-size", "32",
                     "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["labels"] == "the model's label_names" and report["random_weights"] is False
    (entry,) = report["results"]
    assert sorted(top["label"] for top in entry["top"]) == sorted(names)
    assert all(top["label"] == names[top["class"]] for top in entry["top"])
