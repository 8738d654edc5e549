"""push_to_hub -> load round trips against the Hub stand-in (tests/hub_standin.py, 127.0.0.1 only):
what arrives, loading in a fresh process with HF_ENDPOINT, then offline from the cache; registry tags with a
published record (hash checked, fallback to inflation when the Hub cannot be reached)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from hub_standin import HubStandIn
from huggingface_hub import constants
from test_checkpoints import serve
from timm.models import _registry

import i3zoo
from i3zoo.weights import published
from i3zoo.weights.checkpoints import sha256_of
from i3zoo.weights.hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME

TOKEN = "hf_i3zoo_secret_token_0123456789"
REPO = "i3zoo-test/i3densenet121.tv_in1k"


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch):
    # huggingface_hub otherwise fetches {import-time endpoint}/api/agent-harnesses once per process
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


@pytest.fixture(scope="module")
def model(checkpoint_2d):
    return i3zoo.create_model("i3densenet121", pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(checkpoint_2d("i3densenet121")))).eval()


CLIP_SEED = 7


def clip() -> torch.Tensor:
    return torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(CLIP_SEED))


def load_in_fresh_process(name: str, env: dict, out: Path, factory: str = "i3zoo") -> subprocess.CompletedProcess:
    """``create_model(name, pretrained=True)`` in a new interpreter; its logits on ``clip()`` go to ``out``."""
    script = textwrap.dedent(f"""
        import sys, torch, timm, i3zoo
        create = i3zoo.create_model if {factory!r} == "i3zoo" else timm.create_model
        model = create({name!r}, pretrained=True).eval()
        x = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed({CLIP_SEED}))
        with torch.no_grad():
            torch.save(model(x), {str(out)!r})
    """)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    return subprocess.run([sys.executable, "-c", script], env={**clean, **env}, capture_output=True, text=True,
                          timeout=300)


def test_push_then_load_online_then_offline(model, tmp_path, monkeypatch):
    with torch.no_grad():
        expected = model(clip())
    hf_home = tmp_path / "hf"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with HubStandIn(require_token=TOKEN) as hub:
        commit = i3zoo.push_to_hub(model, REPO, token=TOKEN, private=False, endpoint=hub.endpoint)
        # the folder saved for the upload is gone, and the lock file kept beside it with it
        assert list(scratch.iterdir()) == []

        # what arrived: one commit with the three files
        assert [m for _, m in hub.commits(REPO)] == ["initial commit", "Add i3zoo pre-inflated weights"]
        assert hub.branches(REPO)["main"] == commit.oid
        files = hub.files(REPO)
        assert sorted(files) == sorted([WEIGHTS_NAME, CONFIG_NAME, CARD_NAME])
        config = json.loads(files[CONFIG_NAME])
        assert config["architecture"] == "i3densenet121" and config["model_args"]["inflation"] == "center"
        weights = tmp_path / "arrived.safetensors"
        weights.write_bytes(files[WEIGHTS_NAME])
        assert sha256_of(weights) == config["i3zoo"]["weights_sha256"]
        front = yaml.safe_load(files[CARD_NAME].decode().split("---\n")[1])
        # inflated from seeded random weights, not torchvision's file: the card claims no ImageNet base model
        assert front["library_name"] == "i3zoo" and "base_model" not in front

        # the token went in the Authorization header only: never into a file, a URL or the commit
        for content in files.values():
            assert TOKEN.encode() not in content
        assert all(TOKEN not in r.path for r in hub.requests)
        assert any(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in hub.requests)

        # a fresh process, pointed at the stand-in by HF_ENDPOINT, through i3zoo and through timm; the repo is
        # public, so downloading needs no token
        hub.require_token = None
        for factory in ("i3zoo", "timm"):
            out = tmp_path / f"online-{factory}.pt"
            result = load_in_fresh_process(f"hf-hub:{REPO}", hub.env(hf_home), out, factory)
            assert result.returncode == 0, result.stderr
            assert torch.equal(torch.load(out), expected)

    # the stand-in is gone: offline, from the Hugging Face cache
    out = tmp_path / "offline.pt"
    result = load_in_fresh_process(f"hf-hub:{REPO}", {**hub.env(hf_home, offline=True)}, out)
    assert result.returncode == 0, result.stderr
    assert torch.equal(torch.load(out), expected)


def test_push_to_a_revision_and_load_it(model, tmp_path):
    with HubStandIn() as hub:
        i3zoo.push_to_hub(model, REPO, token=TOKEN, endpoint=hub.endpoint, private=True, revision="v1",
                          commit_message="first release")
        assert hub.is_private(REPO)
        assert [m for _, m in hub.commits(REPO, "v1")][-1] == "first release"
        assert WEIGHTS_NAME not in hub.files(REPO, "main")  # only the branch got the weights
        out = tmp_path / "v1.pt"
        env = {**hub.env(tmp_path / "hf"), "HF_TOKEN": TOKEN}
        result = load_in_fresh_process(f"hf-hub:{REPO}@v1", env, out)
        assert result.returncode == 0, result.stderr
    with torch.no_grad():
        assert torch.equal(torch.load(out), model(clip()))


@pytest.fixture
def published_record(model, tmp_path, monkeypatch):
    """A stand-in Hub holding a pushed i3densenet121.tv_in1k, and a PUBLISHED record for it."""
    with HubStandIn() as hub:
        hub.patch_hf_hub(monkeypatch, tmp_path / "hf")
        commit = i3zoo.push_to_hub(model, REPO, endpoint=hub.endpoint, token=TOKEN)
        sha = json.loads(hub.files(REPO)[CONFIG_NAME])["i3zoo"]["weights_sha256"]
        record = published.HubWeights(repo_id=REPO, revision=commit.oid, sha256=sha)
        monkeypatch.setitem(published.PUBLISHED, "i3densenet121.tv_in1k", record)
        yield hub, record


def test_registered_tag_loads_published_weights(published_record, model):
    loaded = i3zoo.create_model("i3densenet121.tv_in1k", pretrained=True).eval()
    state, reference = loaded.state_dict(), model.state_dict()
    assert all(torch.equal(state[k], reference[k]) for k in reference)
    # the registered 2D source (download.pytorch.org) was never needed: nothing but the stand-in was asked
    fine_tune = i3zoo.create_model("i3densenet121.tv_in1k", pretrained=True, num_classes=7)
    assert torch.equal(fine_tune.features.conv0.weight, model.features.conv0.weight)
    assert fine_tune.classifier.out_features == 7


def test_published_weights_with_wrong_hash_are_refused(published_record, monkeypatch):
    hub, record = published_record
    bad = dataclasses.replace(record, sha256="0" * 64)
    monkeypatch.setitem(published.PUBLISHED, "i3densenet121.tv_in1k", bad)
    with pytest.raises(i3zoo.CheckpointError, match="does not match its recorded sha256") as info:
        i3zoo.create_model("i3densenet121.tv_in1k", pretrained=True)
    assert "0" * 64 in str(info.value) and record.sha256 in str(info.value)


def test_unreachable_hub_falls_back_to_inflation_and_says_so(published_record, monkeypatch, tmp_path,
                                                              checkpoint_2d, model):
    hub, _ = published_record
    hub.stop()
    # the registered 2D source, served on 127.0.0.1 under a torchvision-style name carrying its true hash
    served = tmp_path / "served"
    served.mkdir()
    source = checkpoint_2d("i3densenet121")
    name = f"densenet121-{sha256_of(source)[:8]}.pth"
    (served / name).write_bytes(source.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with serve(served) as server:
        key = "i3densenet121.tv_in1k"
        cfg = _registry._model_pretrained_cfgs[key]
        monkeypatch.setitem(_registry._model_pretrained_cfgs, key, dataclasses.replace(cfg, url=server.url(name)))
        with pytest.warns(UserWarning, match="inflating the 2D source instead"):
            loaded = i3zoo.create_model(key, pretrained=True)
    state, reference = loaded.state_dict(), model.state_dict()
    assert all(torch.equal(state[k], reference[k]) for k in reference)


def test_other_inflation_mode_does_not_use_published_center_weights(published_record, checkpoint_2d):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Hub attempt, so no fallback warning either
        model = i3zoo.create_model("i3densenet121.tv_in1k", pretrained=True, inflation="mean",
                                   pretrained_cfg_overlay=dict(file=str(checkpoint_2d("i3densenet121"))))
    assert model.inflation == "mean"


def test_push_command_prints_progress_and_the_record(tmp_path, checkpoint_2d):
    with HubStandIn() as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        scratch = tmp_path / "tmp"
        scratch.mkdir()
        env.update(hub.env(tmp_path / "hf"), HF_TOKEN=TOKEN, TMPDIR=str(scratch))
        result = subprocess.run(
            [sys.executable, "-m", "i3zoo", "push", "i3densenet121.tv_in1k", "--repo", REPO,
             "--file", str(checkpoint_2d("i3densenet121")), "--private"],
            env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        assert hub.is_private(REPO)
        sha = json.loads(hub.files(REPO)[CONFIG_NAME])["i3zoo"]["weights_sha256"]
        head = hub.branches(REPO)["main"]
    assert [p.name for p in scratch.iterdir() if p.name.startswith(("i3zoo-push-", ".i3zoo-push-"))] == []
    out = result.stdout
    assert "[i3densenet121.tv_in1k] inflating" in out and f"uploading to {REPO} (private)" in out
    assert f'revision="{head}", sha256="{sha}"' in out
    assert TOKEN not in out + result.stderr


def test_push_uploads_a_fine_tuned_folder_as_saved(tmp_path, run_cli):
    """``i3zoo push local-dir:DIR`` (what ``i3zoo train`` writes as ``best/``): the same bytes arrive, and the
    Hub copy loads with its class names; a folder that does not load is refused before any upload."""
    torch.manual_seed(0)
    trained = i3zoo.create_model("i3resnet18", num_classes=3).eval()
    folder = i3zoo.save_pretrained(trained, tmp_path / "best", label_names=["jump", "run", "swim"],
                                   training=dict(start="`i3resnet18`, random initialisation", train="6 videos of `t`",
                                                 epochs=2, validation="none"))
    repo = "i3zoo-test/fine-tuned"
    with HubStandIn() as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        env.update(hub.env(tmp_path / "hf"), HF_TOKEN=TOKEN)
        push = [sys.executable, "-m", "i3zoo", "push", f"local-dir:{folder}", "--repo", repo]
        result = subprocess.run(push, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        assert f"uploading {folder} to {repo}" in result.stdout and f'hf-hub:{repo}' in result.stdout
        assert hub.files(repo) == {p.name: p.read_bytes() for p in folder.iterdir()}
        loaded = load_in_fresh_process(f"hf-hub:{repo}", hub.env(tmp_path / "hf2"), tmp_path / "logits.pt")
        assert loaded.returncode == 0, loaded.stderr
        with torch.no_grad():
            assert torch.equal(torch.load(tmp_path / "logits.pt"), trained(clip()))

        # refused before any upload: in this process (the command's own main, as the console script runs it)
        (folder / WEIGHTS_NAME).write_bytes((folder / WEIGHTS_NAME).read_bytes()[:-8])  # a damaged folder
        refused = run_cli("push", f"local-dir:{folder}", "--repo", "i3zoo-test/damaged", "--endpoint", hub.endpoint)
        assert refused.returncode == 2 and "is not a loadable saved folder" in refused.stderr
        assert "i3zoo-test/damaged" not in hub.repos()
    both = run_cli("push", f"local-dir:{folder}", "--all", "--repo", "x")
    assert both.returncode == 2 and "uploaded alone and as saved" in both.stderr
