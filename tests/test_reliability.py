"""Reliability and security properties: no code runs from checkpoints, integrity on every load, concurrent
downloads, determinism, and no token leaks. Each test would fail if its property broke."""

from __future__ import annotations

import ast
import functools
import hashlib
import http.server
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import cache_entries
from hub_standin import HubStandIn
from huggingface_hub import constants
from test_checkpoints import serve

import i3zoo

PACKAGE = Path(i3zoo.__file__).resolve().parent


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- 1. no code from checkpoints ---------------------------------------------------------------------

def test_every_torch_load_in_the_package_is_weights_only():
    calls = []
    for source in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = getattr(node.func.value, "id", "")
                if (owner, node.func.attr) == ("torch", "load"):
                    keywords = {k.arg: k.value for k in node.keywords}
                    assert isinstance(keywords.get("weights_only"), ast.Constant) and \
                        keywords["weights_only"].value is True, f"{source.name}:{node.lineno}"
                    calls.append(source.name)
                assert (owner, node.func.attr) not in {("pickle", "load"), ("pickle", "loads")}, source.name
    assert calls, "the scan found no torch.load at all: it is not looking at the package"


# --- 2. integrity on every load --------------------------------------------------------------------

@pytest.fixture
def served(tmp_path, checkpoint_2d):
    """A folder serving the seeded ResNet-50 file under its torchvision-style, hash-carrying name."""
    folder = tmp_path / "served"
    folder.mkdir()
    source = checkpoint_2d("i3resnet50")
    name = f"resnet50-{_sha256(source)[:8]}.pth"
    shutil.copyfile(source, folder / name)
    return folder, name


def test_corrupt_cached_file_is_downloaded_anew_once_when_reachable(served, tmp_path, monkeypatch):
    folder, name = served
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / name
    cached.parent.mkdir(parents=True)
    good = (folder / name).read_bytes()
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0x01  # same size, one bit flipped
    cached.write_bytes(bytes(corrupt))
    with serve(folder) as server:
        with pytest.warns(UserWarning, match="downloaded anew"):
            model = i3zoo.create_model("i3resnet50", pretrained=True,
                                       pretrained_cfg_overlay=dict(url=server.url(name)))
    assert cached.read_bytes() == good
    reference = i3zoo.create_model("i3resnet50", pretrained=True,
                                   pretrained_cfg_overlay=dict(file=str(folder / name)))
    assert torch.equal(model.conv1.weight, reference.conv1.weight)


@pytest.mark.parametrize("damage", ["truncated", "bit-flip"])
def test_damaged_cached_file_unreachable_url_names_file_hashes_and_remedy(served, tmp_path, monkeypatch, damage):
    folder, name = served
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / name
    cached.parent.mkdir(parents=True)
    data = bytearray((folder / name).read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 3]
    else:
        data[100] ^= 0x10
    cached.write_bytes(bytes(data))
    with serve(folder) as server:
        url = server.url(name)
    with pytest.raises(i3zoo.CheckpointError) as info:  # the server is gone
        i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(url=url))
    message = str(info.value)
    assert str(cached) in message and name[9:17] in message and _sha256(cached) in message
    assert "Delete the file" in message
    assert cached.read_bytes() == bytes(data)  # refused, not loaded, not replaced by anything partial


def test_truncated_download_is_refused_and_leaves_nothing(served, tmp_path, monkeypatch):
    folder, name = served
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])  # the server sends half the file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with serve(folder) as server, pytest.raises(i3zoo.CheckpointError, match="does not match its known hash"):
        i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(url=server.url(name)))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    assert cache_entries(cache) == []


# --- 3. concurrency --------------------------------------------------------------------------------

class _SlowCountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files slowly (so that concurrent clients overlap) and counts GETs."""

    gets = 0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_GET(self):
        with self.lock:
            type(self).gets += 1
        path = Path(self.translate_path(self.path))
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for start in range(0, len(data), 1 << 22):
            self.wfile.write(data[start:start + (1 << 22)])
            time.sleep(0.1)


def test_four_processes_share_one_download(served, tmp_path):
    folder, name = served
    handler = functools.partial(_SlowCountingHandler, directory=str(folder))
    _SlowCountingHandler.gets = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{name}"
    script = textwrap.dedent(f"""
        import hashlib, sys, torch, i3zoo
        model = i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(url={url!r}))
        digest = hashlib.sha256()
        for key, value in sorted(model.state_dict().items()):
            digest.update(key.encode()); digest.update(value.numpy().tobytes())
        print(digest.hexdigest())
    """)
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch"), OMP_NUM_THREADS="1")
    try:
        procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        httpd.shutdown()
        httpd.server_close()
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err
    digests = {out.strip() for out, _ in results}
    assert len(digests) == 1  # identical weights everywhere
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    assert cache_entries(cache) == [name]  # one complete file, no partial downloads
    assert _sha256(cache / name) == _sha256(folder / name)
    assert _SlowCountingHandler.gets == 1  # the lock made the others wait instead of downloading again


# --- 7. determinism --------------------------------------------------------------------------------

def test_pretrained_builds_are_bitwise_identical(checkpoint_2d):
    overlay = dict(file=str(checkpoint_2d("i3densenet121")))
    a = i3zoo.create_model("i3densenet121", pretrained=True, inflation="mean", pretrained_cfg_overlay=overlay)
    b = i3zoo.create_model("i3densenet121", pretrained=True, inflation="mean", pretrained_cfg_overlay=overlay)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fresh_classifier_is_reproducible_under_a_seed(checkpoint_2d):
    overlay = dict(file=str(checkpoint_2d("i3resnet50")))
    heads = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        heads.append(i3zoo.create_model("i3resnet50", pretrained=True, num_classes=5,
                                        pretrained_cfg_overlay=overlay).fc.weight)
    assert torch.equal(heads[0], heads[1]) and not torch.equal(heads[0], heads[2])


# --- 8. no leaks -----------------------------------------------------------------------------------

TOKEN = "hf_leakcheck_0123456789abcdefABCDEF"


def test_token_never_reaches_files_logs_or_errors(tmp_path, monkeypatch, caplog, checkpoint_2d, capfd):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    model = i3zoo.create_model("i3densenet121", pretrained=True,
                               pretrained_cfg_overlay=dict(file=str(checkpoint_2d("i3densenet121"))))
    caplog.set_level(logging.DEBUG)
    with HubStandIn(require_token=TOKEN) as hub:
        i3zoo.push_to_hub(model, "org/leak", token=TOKEN, endpoint=hub.endpoint)
        pushed = hub.files("org/leak")
        hub.require_token = "hf_a_different_token"
        with pytest.raises(Exception) as info:  # the Hub refuses this token: the error must not echo it
            i3zoo.push_to_hub(model, "org/leak", token=TOKEN, endpoint=hub.endpoint)
    for content in pushed.values():
        assert TOKEN.encode() not in content
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert TOKEN not in str(info.getrepr())  # the whole traceback pytest would print
    out, err = capfd.readouterr()
    assert TOKEN not in caplog.text and TOKEN not in out and TOKEN not in err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
