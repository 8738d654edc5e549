"""The main command: `i3zoo list`, `i3zoo verify` (no network) and the flags of `i3zoo train`. One test runs the
installed command in a subprocess; the others call its `main` in-process through the `run_cli` fixture."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import i3zoo
from i3zoo.facts import model_table

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_command_runs(tmp_path):
    """`python -m i3zoo` in a fresh interpreter, and the `i3zoo` console script pointing at the same main."""
    from importlib.metadata import entry_points

    from i3zoo.cli import main

    env = dict(os.environ, TORCH_HOME=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "i3zoo", "list", "i3resnet50"], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == model_table(["i3resnet50"])
    (script,) = entry_points(group="console_scripts", name="i3zoo")
    assert script.load() is main


def test_list_prints_the_model_table(run_cli):
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == model_table()
    for name in i3zoo.list_models():
        assert f"`{name}`" in result.stdout


def test_readme_model_table_is_the_generated_one():
    readme = (REPO_ROOT / "README.md").read_text()
    match = re.search(r"<!-- model-table:start -->\n(.*?)\n<!-- model-table:end -->", readme, re.S)
    assert match, "README.md lacks the model-table markers"
    assert match.group(1).strip() == model_table(), "README table is stale: run `python scripts/update_readme.py`"


def test_model_table_numbers_are_measured():
    """Parameters are counted on a real model; the table's GFLOPs are counted with FlopCounterMode."""
    from i3zoo.facts import count_gflops, model_facts

    model = i3zoo.create_model("i3densenet121")
    facts = model_facts("i3densenet121")
    assert facts.params == sum(p.numel() for p in model.parameters())
    # the meta-device count equals a count on real tensors (a smaller clip keeps this quick)
    assert count_gflops(model, clip=(8, 64, 64)) == pytest.approx(
        count_gflops(i3zoo.create_model("i3densenet121").to("meta"), clip=(8, 64, 64)))
    assert facts.min_input_size == model.min_input_size == (8, 29, 29)


def test_verify_offline_uses_seeded_weights_and_says_so(run_cli):
    result = run_cli("verify", "i3resnet50", "i3densenet121", "--frames", "1", "8", "--size", "64",
                     "--offline")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("weights: seeded random 2D weights"), lines[0]
    assert "no ImageNet checkpoint cached" in lines[0]
    rows = [line.split() for line in lines if line.startswith(("i3resnet50 ", "i3densenet121 "))]
    # ResNet: T = 1 and 8, both modes; DenseNet: T = 8 only (its minimum), both modes
    assert sorted((r[0], r[1], r[2]) for r in rows) == sorted(
        [("i3resnet50", m, t) for m in ("center", "mean") for t in ("1", "8")]
        + [("i3densenet121", m, "8") for m in ("center", "mean")])
    for row in rows:
        assert row[3] == "random" and row[-1] == "ok" and float(row[5]) <= 1e-6
    assert lines[-1] == "all 6 checks within 1e-06"


def test_verify_uses_cached_imagenet_file_and_refuses_a_wrong_one(run_cli, tmp_path, checkpoint_2d):
    """A file at torchvision's cache path is used only if its hash matches the name; here it cannot match."""
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet50-0676ba61.pth").write_bytes(checkpoint_2d("i3resnet50").read_bytes())
    result = run_cli("verify", "i3resnet50", "--frames", "2", "--size", "32", "--offline", torch_home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("weights: seeded random") and "refused" in first and "0676ba61" in first


def test_verify_exits_nonzero_when_equivalence_breaks(run_cli):
    # float32 cannot meet a 1e-12 relative tolerance on a deep network: the command must say FAIL and exit 1
    result = run_cli("verify", "i3resnet50", "--frames", "4", "--size", "32", "--dtype", "float32",
                     "--tolerance", "1e-12", "--offline", "--modes", "mean")
    assert result.returncode == 1
    assert "FAIL" in result.stdout and result.stdout.splitlines()[-1].startswith("FAILED: 1 of 1")


def test_verify_table_lines_up_for_long_names(run_cli):
    result = run_cli("verify", "i3resnet50", "i3resnet50_slowonly", "--frames", "1", "--size", "32",
                     "--modes", "center", "--offline")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("model "))
    rows = [line for line in lines if line.startswith("i3resnet50")]
    assert len(rows) == 2
    for row in rows:
        assert row.index(" center ") == header.index(" mode "), (header, row)
        assert row.rstrip().endswith("  ok") and row.rindex("  ok") == header.rindex("  result"), (header, row)


def test_verify_with_user_images(run_cli, tmp_path):
    from PIL import Image

    images = tmp_path / "photos"
    images.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        pixels = (torch.rand(40, 50, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(images / f"{i}.png")
    result = run_cli("verify", "i3resnet50", "--images", str(images), "--size", "32", "--frames", "2",
                     "--modes", "center", "--offline")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"2 photos from {images}" in result.stdout


def test_verify_rejects_unknown_names(run_cli):
    result = run_cli("verify", "i3resnet5")
    assert result.returncode == 2 and "unknown model 'i3resnet5'" in result.stderr


def test_readme_usage_shapes():
    """The shapes the README's usage example states."""
    model = i3zoo.create_model("i3resnet50").eval()
    clip = torch.randn(2, 3, 16, 224, 224)
    with torch.no_grad():
        features = model.forward_features(clip)
        assert features.shape == (2, 2048, 1, 7, 7)
        assert model.forward_head(features, pre_logits=True).shape == (2, 2048)
        assert model.forward_head(features).shape == (2, 1000)


def _train_parser():
    from i3zoo.cli import build_parser

    (commands,) = [a for a in build_parser()._actions if a.dest == "command"]
    return commands.choices["train"]


def test_every_train_config_field_is_a_flag_with_its_help():
    """`i3zoo train`'s flags are generated from TrainConfig: each field has one (or is one of a short list of
    Python-only fields) with the field's help text and default, so that a field is written once."""
    from dataclasses import MISSING, fields

    from i3zoo.cli.train import NOT_FLAGS, _shared_flags
    from i3zoo.train import TrainConfig

    assert sorted(NOT_FLAGS) == ["model_kwargs", "pretrained_cfg_overlay"]
    actions = {a.dest: a for a in _train_parser()._actions}
    shared = _shared_flags()  # --model, --clip-len, --device ...: the flags extract and predict share
    for f in fields(TrainConfig):
        assert f.metadata["help"], f"TrainConfig.{f.name} has no help text"
        if f.name in NOT_FLAGS:
            assert f.name not in actions
            continue
        assert f.name in actions, f"TrainConfig.{f.name} has no flag"
        action = actions[f.name]
        if f.name in shared:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.default is True:  # a boolean that defaults to True is switched off by --no-NAME
            assert action.option_strings == [f"--no-{flag[2:]}"] and action.help == f.metadata["flag"]["help_no"]
        else:
            assert action.option_strings == [flag] and action.help == f.metadata["help"], f.name
        assert action.required == (f.default is MISSING and f.default_factory is MISSING), f.name
        assert action.required or action.default == f.default, f.name
    assert actions["optimizer"].choices == ("sgd", "adamw")
    assert actions["device"].default == "auto"  # training takes the GPU when there is one


def test_train_flags_make_the_config_they_say():
    from i3zoo.cli.train import config_from_args
    from i3zoo.train import TrainConfig

    parse = _train_parser().parse_args
    assert config_from_args(parse(["--train", "t", "--output", "o", "--model", "i3resnet50"])) == TrainConfig(
        train="t", output="o", model="i3resnet50", inflation="center")
    args = parse(["--train", "t", "--val", "v", "--output", "o", "--model", "i3resnet50", "--no-pretrained",
                  "--clip-len", "4", "--crop-size", "32", "--batch-size", "2", "--lr", "0.1", "--optimizer",
                  "adamw", "--momentum", "0.5", "--label-names", "names.txt", "--amp", "--no-progress",
                  "--save-every", "3", "--device", "cpu", "--inflation", "mean"])
    assert config_from_args(args) == TrainConfig(
        train="t", val="v", output="o", model="i3resnet50", pretrained=False, clip_len=4, crop_size=32,
        batch_size=2, lr=0.1, optimizer="adamw", momentum=0.5, label_names="names.txt", amp=True, progress=False,
        save_every=3, device="cpu", inflation="mean")
    preinflated = config_from_args(parse(["--train", "t", "--output", "o", "--model", "local-dir:run/best"]))
    assert preinflated.inflation is None and preinflated.pretrained_cfg_overlay is None
