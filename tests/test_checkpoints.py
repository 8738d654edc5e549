"""The weight sources, for real: local files (.pth / .safetensors), downloads over HTTP on 127.0.0.1 into
torch.hub's checkpoint cache, hash checks of downloads and of cached files, and refusal of unsafe pickles."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import pickle
import shutil
import socket
import threading
from pathlib import Path

import pytest
import torch
from conftest import cache_entries, save_2d_checkpoint

import i3zoo


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the signature is http.server's
        pass


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``directory`` from a background thread."""

    def __init__(self, directory: Path):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def shutdown(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=10)
            self.running = False


@contextlib.contextmanager
def serve(directory: Path):
    server = _Server(directory)
    try:
        yield server
    finally:
        server.shutdown()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty TORCH_HOME, so torch.hub's checkpoint cache starts empty."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert Path(torch.hub.get_dir()) == home / "hub"
    return home


@pytest.fixture(scope="module")
def from_pth(checkpoint_2d):
    """I3ResNet50 filled from a seeded 2D .pth file: the reference every other route must match."""
    return i3zoo.create_model(
        "i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=str(checkpoint_2d("i3resnet50")))
    )


@pytest.fixture(scope="module")
def served_dir(tmp_path_factory, checkpoint_2d) -> Path:
    """A folder holding the seeded 2D ResNet-50 under its torchvision-style name, resnet50-<sha256[:8]>.pth."""
    folder = tmp_path_factory.mktemp("served")
    source = checkpoint_2d("i3resnet50")
    name = f"resnet50-{_sha256(source)[:8]}.pth"
    shutil.copyfile(source, folder / name)
    return folder


def _served_name(served_dir: Path) -> str:
    (name,) = [p.name for p in served_dir.iterdir() if p.name.startswith("resnet50-")]
    return name


# --- (a) local files ------------------------------------------------------------------------------------


def test_pth_and_safetensors_give_identical_weights(from_pth, checkpoint_2d):
    st = checkpoint_2d("i3resnet50", ".safetensors")
    assert st.suffix == ".safetensors"
    from_st = i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=str(st)))
    _assert_same_state(from_pth, from_st)
    assert from_st.pretrained_cfg["file"] == str(st)


def test_read_state_dict_reads_both_formats_alike(checkpoint_2d):
    pth = i3zoo.read_state_dict(checkpoint_2d("i3resnet50"))
    st = i3zoo.read_state_dict(checkpoint_2d("i3resnet50", ".safetensors"))
    assert set(pth) == set(st)
    for key in pth:
        assert torch.equal(pth[key], st[key]), key


def test_pth_file_wrapped_in_state_dict_key_loads(tmp_path, from_pth, checkpoint_2d):
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": i3zoo.read_state_dict(checkpoint_2d("i3resnet50"))}, wrapped)
    model = i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=str(wrapped)))
    _assert_same_state(model, from_pth)


def test_half_precision_checkpoint_gives_a_float32_model(tmp_path, from_pth, checkpoint_2d):
    full = i3zoo.read_state_dict(checkpoint_2d("i3resnet50"))
    half = {k: v.half() if v.is_floating_point() else v for k, v in full.items()}
    path = tmp_path / "resnet50-half.pth"
    torch.save(half, path)
    model = i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    reference = from_pth.state_dict()
    for key, value in model.state_dict().items():
        assert value.dtype == reference[key].dtype, key
    assert torch.equal(model.bn1.running_var, half["bn1.running_var"].float())
    assert torch.equal(model.conv1.weight[:, :, 1], half["conv1.weight"].float())


def test_model_owns_its_weights_after_the_file_changes(tmp_path, from_pth, checkpoint_2d):
    """Checkpoints are memory-mapped while they are read; the model must not keep views into the file."""
    path = tmp_path / "resnet50-mmap.pth"
    shutil.copyfile(checkpoint_2d("i3resnet50"), path)
    model = i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert not any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))
    size = path.stat().st_size
    with open(path, "r+b") as f:  # overwrite in place, same size
        f.write(b"\x00" * size)
    _assert_same_state(model, from_pth)


# --- (b) download into torch.hub's cache, then reuse ------------------------------------------------------


def test_download_lands_in_the_hub_cache_and_is_reused_offline(torch_home, served_dir, from_pth):
    name = _served_name(served_dir)
    cache = torch_home / "hub" / "checkpoints"
    with serve(served_dir) as server:
        url = server.url(name)
        model = i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(url=url))
        assert model.pretrained_cfg["url"] == url
    assert not server.running

    cached = cache / name
    assert cached.is_file()
    assert _sha256(cached) == _sha256(served_dir / name)
    assert cache_entries(cache) == [name], "partial or stray files left in the cache"
    _assert_same_state(model, from_pth)

    # the server is gone: a second load must come from the cache
    again = i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(url=url))
    _assert_same_state(again, from_pth)
    assert cache_entries(cache) == [name]


# --- (c) a download whose content does not match its name's hash ---------------------------------------------


def test_download_with_a_wrong_hash_is_refused_and_discarded(tmp_path, torch_home, checkpoint_2d):
    folder = tmp_path / "served_bad"
    folder.mkdir()
    bad_name = "resnet50-deadbeef.pth"
    assert not _sha256(checkpoint_2d("i3resnet50")).startswith("deadbeef")
    shutil.copyfile(checkpoint_2d("i3resnet50"), folder / bad_name)
    with serve(folder) as server:
        with pytest.raises(i3zoo.CheckpointError) as info:
            i3zoo.create_model(
                "i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(url=server.url(bad_name))
            )
    assert "deadbeef" in str(info.value)
    cache = torch_home / "hub" / "checkpoints"
    leftovers = cache_entries(cache)
    assert leftovers == [], f"left behind in the cache: {leftovers}"


def test_missing_file_on_the_server_is_a_checkpoint_error(tmp_path, torch_home):
    folder = tmp_path / "served_empty"
    folder.mkdir()
    with serve(folder) as server:
        with pytest.raises(i3zoo.CheckpointError):
            i3zoo.create_model(
                "i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(url=server.url("resnet50-12345678.pth"))
            )
    cache = torch_home / "hub" / "checkpoints"
    assert cache_entries(cache) == []


# --- (d) a cached file whose content no longer matches its name's hash ---------------------------------------


def test_tampered_cached_file_is_refused(torch_home, served_dir, checkpoint_dir):
    name = _served_name(served_dir)
    expected_prefix = name.removeprefix("resnet50-").removesuffix(".pth")
    cache = torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    # different (seed 1) weights under the name of the seed-0 file
    other = save_2d_checkpoint("i3resnet50", checkpoint_dir / "resnet50-seed1.pth", seed=1)
    assert not _sha256(other).startswith(expected_prefix)
    shutil.copyfile(other, cache / name)

    # a closed port: the cached file must be judged before any network access
    url = f"http://127.0.0.1:{_closed_port()}/{name}"
    with pytest.raises(i3zoo.CheckpointError) as info:
        i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(url=url))
    message = str(info.value)
    assert str(cache / name) in message
    assert expected_prefix in message


# --- (e) bad local files ---------------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "resnet50.pth"
    with pytest.raises(FileNotFoundError) as info:
        i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=str(missing)))
    assert str(missing) in str(info.value)


def test_directory_as_file_is_refused(tmp_path):
    folder = tmp_path / "a_folder.pth"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=str(folder)))
    assert str(folder) in str(info.value)


class _Payload:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("saver", ["torch.save", "pickle.dump"])
def test_pickle_payload_is_refused_and_never_run(tmp_path, saver):
    pwned = tmp_path / "pwned"
    path = tmp_path / "resnet50-payload.pth"
    payload = {"conv1.weight": torch.zeros(1), "evil": _Payload(f"touch {pwned}")}
    if saver == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    with pytest.raises(i3zoo.CheckpointError) as info:
        i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert "not a plain weights file" in str(info.value)
    assert str(path) in str(info.value)
    assert not pwned.exists(), "the pickle payload ran"


def test_truncated_pth_is_a_checkpoint_error(tmp_path, checkpoint_2d):
    data = checkpoint_2d("i3resnet50").read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(i3zoo.CheckpointError) as info:
        i3zoo.read_state_dict(path)
    assert str(path) in str(info.value)


def test_corrupt_safetensors_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(i3zoo.CheckpointError) as info:
        i3zoo.read_state_dict(path)
    assert str(path) in str(info.value)


def test_pth_without_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(i3zoo.CheckpointError, match="state dict"):
        i3zoo.read_state_dict(path)


# --- (f) no network ------------------------------------------------------------------------------------


def test_unreachable_url_suggests_a_local_file(torch_home):
    url = f"http://127.0.0.1:{_closed_port()}/resnet50-00000000.pth"
    with pytest.raises(i3zoo.CheckpointError) as info:
        i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(url=url))
    message = str(info.value)
    assert "pretrained_cfg_overlay=dict(file=" in message
    assert url in message
    cache = torch_home / "hub" / "checkpoints"
    assert cache_entries(cache) == []
