"""Pre-inflated weights: save_pretrained -> load round trips, the config and card it writes, atomic writes,
hash checks of pre-inflated files, and the committed model cards."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest
import timm
import torch
import yaml

import i3zoo
from i3zoo.weights.cards import committed_card
from i3zoo.weights.hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, checkpoint_2d):
    """An I3ResNet50 inflated (mean mode, 10 classes) from a seeded 2D file, and its save_pretrained folder."""
    torch.manual_seed(0)
    model = i3zoo.create_model("i3resnet50", pretrained=True, inflation="mean", num_classes=10,
                               pretrained_cfg_overlay=dict(file=str(checkpoint_2d("i3resnet50")))).eval()
    folder = tmp_path_factory.mktemp("export") / "i3resnet50.tv_in1k"
    assert i3zoo.save_pretrained(model, folder) == folder
    return model, folder


def test_folder_holds_safetensors_config_and_card_only(exported):
    _, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == sorted([WEIGHTS_NAME, CONFIG_NAME, CARD_NAME])
    with open(folder / WEIGHTS_NAME, "rb") as f:  # a safetensors header, not a zip/pickle
        header_len = int.from_bytes(f.read(8), "little")
        assert json.loads(f.read(header_len))


@pytest.mark.parametrize("via", ["i3zoo", "timm"])
def test_local_dir_round_trip_is_identical(exported, via):
    model, folder = exported
    create = i3zoo.create_model if via == "i3zoo" else timm.create_model
    loaded = create(f"local-dir:{folder}", pretrained=True).eval()
    assert type(loaded) is type(model)
    assert loaded.inflation == "mean" and loaded.num_classes == 10
    assert same_state(model, loaded)
    clip = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(clip), loaded(clip))


def test_config_is_timm_layout_with_video_facts(exported):
    model, folder = exported
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["architecture"] == "i3resnet50"
    assert config["num_classes"] == 10 and config["num_features"] == 2048 and config["global_pool"] == "avg"
    assert config["model_args"] == dict(inflation="mean", num_classes=10, in_chans=3, global_pool="avg",
                                        drop_rate=0.0)
    assert config["pretrained_cfg"]["tag"] == "tv_in1k" and config["pretrained_cfg"]["num_classes"] == 10
    facts = config["i3zoo"]
    assert facts["input_layout"] == "NCTHW"
    assert facts["min_input_size"] == [1, 1, 1] and facts["temporal_reduction"] == 16
    assert facts["inflation"] == "mean" and facts["temporal_padding"] == "replicate"
    assert facts["weights_sha256"] == i3zoo.weights.checkpoints.sha256_of(folder / WEIGHTS_NAME)
    assert facts["source_2d"]["sha256"] == i3zoo.weights.checkpoints.sha256_of(model.source_2d["_path"])
    equivalence = facts["equivalence"]
    # 10 classes: the head is new, so pooled features are compared; float32 weights carry W / t rounding
    assert equivalence["measured"] and equivalence["compared"] == "pooled features"
    assert 0 < equivalence["max_rel"] < 1e-6


def test_no_local_paths_or_user_names_leak(exported, tmp_path_factory):
    model, folder = exported
    secrets = {str(folder.parent), str(Path.home()), model.source_2d["_path"], "/tmp/"}
    user = getpass.getuser()
    for name in (CONFIG_NAME, CARD_NAME):
        text = (folder / name).read_text()
        for secret in secrets:
            assert secret not in text, (name, secret)
        assert f"/{user}/" not in text and f"\\{user}\\" not in text


def test_card_front_matter_and_sections(exported):
    _, folder = exported
    text = (folder / CARD_NAME).read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["library_name"] == "i3zoo" and front["pipeline_tag"] == "video-classification"
    # the weights came from a seeded file, not torchvision's: no claim of its license, data set or base model
    assert front["license"] == "other" and "datasets" not in front and "base_model" not in front
    assert {"video-classification", "i3d", "inflated", "timm"} <= set(front["tags"])
    for section in ("## Model details", "## Usage", "## Equivalence", "## Citation"):
        assert section in text
    assert "local file `i3resnet50.pth`" in text  # the card says the weights came from a given file


def test_tampered_weights_are_refused(exported, tmp_path):
    _, folder = exported
    copy = tmp_path / "tampered"
    copy.mkdir()
    for name in (CONFIG_NAME, CARD_NAME):
        (copy / name).write_bytes((folder / name).read_bytes())
    data = bytearray((folder / WEIGHTS_NAME).read_bytes())
    data[-1] ^= 0xFF  # same size, one bit pattern changed in the last tensor
    (copy / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(i3zoo.CheckpointError, match="does not match its recorded sha256") as info:
        i3zoo.create_model(f"local-dir:{copy}", pretrained=True)
    assert WEIGHTS_NAME in str(info.value)


def test_loading_in_another_mode_is_refused(exported):
    _, folder = exported
    with pytest.raises(ValueError, match="inflated in 'mean' mode"):
        i3zoo.create_model(f"local-dir:{folder}", pretrained=True, inflation="center")


def test_failed_save_leaves_the_previous_export_untouched(exported, tmp_path):
    model, folder = exported
    target = tmp_path / "target"
    target.mkdir()
    for name in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME):
        (target / name).write_bytes((folder / name).read_bytes())
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    broken = i3zoo.create_model("i3resnet50", num_classes=10)
    broken.bn1.running_var = broken.bn1.running_mean  # two buffers, one tensor: safetensors refuses to save
    with pytest.raises(RuntimeError):
        i3zoo.save_pretrained(broken, target)
    after = {p.name: p.read_bytes() for p in target.iterdir()}
    assert after == before  # no partial file, no temporary file, nothing replaced


def test_save_refuses_unregistered_models(tmp_path):
    with pytest.raises(TypeError, match="registered i3zoo model"):
        i3zoo.save_pretrained(torch.nn.Linear(2, 2), tmp_path)


TAGGED = i3zoo.list_models(pretrained=True)


def test_every_tag_has_a_committed_card():
    committed = sorted(p.stem for p in (REPO_ROOT / "model_cards").glob("*.md") if p.name != "README.md")
    assert committed == sorted(TAGGED)


@pytest.mark.parametrize("arch", sorted({name.split(".")[0] for name in TAGGED}))
def test_committed_cards_are_current(arch):
    """Regenerate the cards of ``arch``'s tags (numbers measured now, once per architecture) and compare with
    model_cards/; one test per architecture, so that the measurements spread over the test workers."""
    for name in (name for name in TAGGED if name.split(".")[0] == arch):
        assert (REPO_ROOT / "model_cards" / f"{name}.md").read_text() == committed_card(name), (
            f"model_cards/{name}.md is stale: run `python scripts/update_model_cards.py`")


@pytest.mark.parametrize("name", ["i3resnet50.tv2_in1k", "i3densenet121.tv_in1k"])
def test_committed_card_front_matter(name):
    text = (REPO_ROOT / "model_cards" / f"{name}.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["base_model"] == f"timm/{name.removeprefix('i3')}"
    assert front["library_name"] == "i3zoo" and front["pipeline_tag"] == "video-classification"
    facts = i3zoo.facts.model_facts(name.split(".")[0])
    assert f"| parameters | {facts.params / 1e6:.1f} M |" in text
    assert f"| GFLOPs (one 16×224×224 clip) | {facts.gflops:.1f} |" in text
    assert "**≤ 1e-12**" in text


def test_export_command_offline(run_cli, tmp_path, checkpoint_2d):
    out = tmp_path / "out"
    result = run_cli("export", "i3densenet121.tv_in1k", "--out", str(out), "--file",
                     str(checkpoint_2d("i3densenet121")))
    assert result.returncode == 0, result.stderr
    assert "[i3densenet121.tv_in1k] wrote README.md, config.json, model.safetensors" in result.stdout
    loaded = i3zoo.create_model(f"local-dir:{out}", pretrained=True)
    reference = i3zoo.create_model("i3densenet121", pretrained=True,
                                   pretrained_cfg_overlay=dict(file=str(checkpoint_2d("i3densenet121"))))
    assert same_state(loaded, reference)


def test_export_command_without_weights_says_what_to_do(run_cli, tmp_path):
    result = run_cli("export", "i3resnet50.tv_in1k", "--out", str(tmp_path / "o"), torch_home=tmp_path / "th")
    assert result.returncode != 0
    assert "--file PATH" in result.stderr and not (tmp_path / "o").exists()
