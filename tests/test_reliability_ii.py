"""Reliability II: no hangs, no cache entry that lies, saves atomic as a whole, configs that cannot open the
door, errors that say what happened, nothing private leaked. One section per promise of the README's
"Safety, integrity and errors"; where a hang is the failure, the case runs in a subprocess with a time limit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import timm
import torch
from conftest import save_2d_checkpoint
from filelock import FileLock
from test_checkpoints import serve

import i3zoo
from i3zoo.weights.checkpoints import CheckpointError, cached_path, fetch_checkpoint
from i3zoo.weights.config import CONFIG_NAME
from i3zoo.weights.hub import CARD_NAME, WEIGHTS_NAME

REPO = Path(__file__).resolve().parents[1]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_python(code: str, *, timeout: float, env: dict = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a hang past ``timeout`` fails the test (TimeoutExpired)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO)


# --- 1. only regular files are read ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "symlink-to-fifo", "dev-zero", "socket"])
def test_special_files_are_refused_before_they_are_opened(tmp_path, kind):
    path = tmp_path / "resnet50.pth"
    if kind in ("fifo", "symlink-to-fifo"):
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)  # no writer: opening it for reading would block forever
        if kind == "fifo":
            path = fifo
        else:
            path.symlink_to(fifo)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")  # reading it would never end
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    result = run_python(f"""
        import i3zoo
        try:
            i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(file={str(path)!r}))
        except i3zoo.CheckpointError as e:
            print("refused:", e)
    """, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = {"fifo": "FIFO", "symlink-to-fifo": "FIFO (named pipe) (through a symlink)",
                "dev-zero": "character device (through a symlink)", "socket": "socket"}[kind]
    assert "refused:" in result.stdout and expected in result.stdout and "not a regular file" in result.stdout


def test_a_saved_folder_whose_weights_are_a_device_is_refused(tmp_path, saved_folder):
    folder = tmp_path / "copy"
    shutil.copytree(saved_folder, folder)
    (folder / WEIGHTS_NAME).unlink()
    (folder / WEIGHTS_NAME).symlink_to("/dev/zero")
    result = run_python(f"""
        import i3zoo
        try:
            i3zoo.create_model("local-dir:{folder}", pretrained=True)
        except i3zoo.CheckpointError as e:
            print("refused:", e)
    """, timeout=120)
    assert "refused:" in result.stdout and "character device" in result.stdout, result.stdout + result.stderr


# --- 2. downloads end -----------------------------------------------------------------------------------

class RawServer:
    """An HTTP server on 127.0.0.1 that answers every request with ``respond(connection)``: for bodies that
    stall or stop short, which http.server cannot send."""

    def __init__(self, respond):
        self.respond = respond
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection):
        with connection:
            connection.recv(65536)
            try:
                self.respond(connection, self.stop)
            except OSError:
                pass

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.sock.close()
        self.thread.join(timeout=5)


def _stall(connection, stop):
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    stop.wait(60)  # then nothing more


def _short(connection, stop):
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n" + b"x" * 500)


def _cache_leftovers(home: Path):
    folder = home / "hub" / "checkpoints"
    return sorted(p.name for p in folder.iterdir() if p.name != ".i3zoo") if folder.exists() else []


def test_a_stalled_server_is_an_error_naming_the_url_and_the_lock_is_released(tmp_path):
    home = tmp_path / "torch"
    with RawServer(_stall) as server:
        url = server.url("weights.pth")
        start = time.monotonic()
        result = run_python(f"""
            import i3zoo
            try:
                i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(url={url!r}))
            except i3zoo.CheckpointError as e:
                print("error:", e)
        """, timeout=120, env={"TORCH_HOME": str(home), "I3ZOO_DOWNLOAD_TIMEOUT": "2"})
        elapsed = time.monotonic() - start
    assert f"error: download of {url} stalled" in result.stdout, result.stdout + result.stderr
    assert elapsed < 60
    assert _cache_leftovers(home) == []  # no partial file
    entry = cached_path(url, home / "hub" / "checkpoints")
    lock = FileLock(str(entry.parent / ".i3zoo" / f"{entry.name}.lock"))
    lock.acquire(timeout=0)  # released: nobody holds it
    lock.release()


def test_a_body_shorter_than_its_content_length_is_refused_and_not_cached(tmp_path):
    with RawServer(_short) as server:
        with pytest.raises(CheckpointError, match="ended") as info:
            fetch_checkpoint(server.url("weights.pth"), cache_dir=tmp_path, progress=False)
    assert server.url("weights.pth") in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".i3zoo"]  # only the lock


def test_ctrl_c_during_a_download_leaves_no_partial_file(tmp_path):
    home = tmp_path / "torch"
    with RawServer(_stall) as server:
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import signal
                # as an interactive shell starts a program: a test run started in the background by a
                # non-interactive shell has SIGINT ignored (POSIX), and its children inherit that
                inherited = [line.split()[1] for line in open("/proc/self/status") if line.startswith(("SigIgn",
                                                                                                        "SigBlk"))]
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {{signal.SIGINT}})
                import sys, i3zoo
                from i3zoo.weights.checkpoints import fetch_checkpoint
                print("start", *inherited, flush=True)
                fetch_checkpoint({server.url("weights.pth")!r}, progress=False)
            """)], env={**os.environ, "TORCH_HOME": str(home), "I3ZOO_DOWNLOAD_TIMEOUT": "300"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        started = process.stdout.readline().split()
        assert started[:1] == ["start"], started  # then the SigIgn and SigBlk masks it was started with
        folder = home / "hub" / "checkpoints"
        deadline = time.monotonic() + 60
        while not any(".tmp-" in p.name for p in folder.glob(".*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(".tmp-" in p.name for p in folder.glob(".*")), "the download never started"
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"the download ignored Ctrl-C for 60 s; started with {started}") from None
    assert "KeyboardInterrupt" in err
    assert _cache_leftovers(home) == []


def test_a_url_without_a_file_name_is_refused_and_the_cache_folder_stays(tmp_path):
    (tmp_path / "keep.pth").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="names no file"):
        fetch_checkpoint("http://127.0.0.1:9/weights/", cache_dir=tmp_path)
    assert (tmp_path / "keep.pth").read_bytes() == b"x" and tmp_path.is_dir()


# --- 3. a cache entry is what it claims -----------------------------------------------------------------

@pytest.fixture
def hashless(tmp_path, checkpoint_2d):
    """Two served folders with different files under the same hash-less name."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copyfile(checkpoint_2d("i3resnet50"), a / "resnet50.pth")
    save_2d_checkpoint("i3resnet50", b / "resnet50.pth", seed=1)
    return tmp_path


def test_hashless_names_get_one_cache_entry_per_url_with_a_recorded_hash(hashless):
    cache = hashless / "cache"
    with serve(hashless) as server:
        first = fetch_checkpoint(server.url("a/resnet50.pth"), cache_dir=cache, progress=False)
        second = fetch_checkpoint(server.url("b/resnet50.pth"), cache_dir=cache, progress=False)
    assert first != second  # two URLs, two entries
    assert first.read_bytes() == (hashless / "a" / "resnet50.pth").read_bytes()
    assert second.read_bytes() == (hashless / "b" / "resnet50.pth").read_bytes()
    record = cache / ".i3zoo" / f"{first.name}.sha256"
    assert record.read_text().strip() == _sha256(first)


def test_a_changed_hashless_entry_is_never_loaded(hashless, monkeypatch):
    cache = hashless / "cache"
    with serve(hashless) as server:
        url = server.url("a/resnet50.pth")
        entry = fetch_checkpoint(url, cache_dir=cache, progress=False)
        good = entry.read_bytes()
        entry.write_bytes(good[:-10] + bytes(10))  # same size, last bytes changed
        with pytest.warns(UserWarning, match="downloaded anew"):
            assert fetch_checkpoint(url, cache_dir=cache, progress=False) == entry
        assert entry.read_bytes() == good
        entry.write_bytes(b"changed")
    with pytest.raises(CheckpointError, match="does not match the hash"):  # the server is gone now
        fetch_checkpoint(url, cache_dir=cache, progress=False)


def test_an_upper_case_hash_prefix_is_recognised(tmp_path, checkpoint_2d):
    source = checkpoint_2d("i3resnet50")
    name = f"resnet50-{_sha256(source)[:8].upper()}.pth"
    shutil.copyfile(source, tmp_path / name)
    with serve(tmp_path) as server:
        path = fetch_checkpoint(server.url(name), cache_dir=tmp_path / "cache", progress=False)
    assert path.name == name  # kept under its own name: a hash-carrying entry
    (tmp_path / "cache" / name).write_bytes(b"tampered")
    with pytest.raises(CheckpointError, match=_sha256(source)[:8]):
        fetch_checkpoint(f"http://127.0.0.1:9/{name}", cache_dir=tmp_path / "cache", progress=False)


_NO_NETWORK = """
    import socket, sys
    attempts = []
    def audit(event, args):
        if event in ("socket.connect", "socket.getaddrinfo"):
            attempts.append(event)
    sys.addaudithook(audit)
"""


def test_offline_means_no_network_attempt_anywhere(tmp_path, checkpoint_2d):
    result = run_python(_NO_NETWORK + f"""
    import i3zoo
    for name, overlay in (("i3resnet50", dict(url="http://127.0.0.1:9/resnet50.pth")),
                          ("i3resnet50", None), ("hf-hub:someone/i3resnet50.tv_in1k", None)):
        try:
            i3zoo.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
        except Exception as e:
            print(type(e).__name__, str(e).split(";")[0][:80])
    model = i3zoo.create_model("i3resnet50", pretrained=True,
                               pretrained_cfg_overlay=dict(file={str(checkpoint_2d("i3resnet50"))!r}))
    print("attempts:", attempts)
    """, timeout=180, env={"HF_HUB_OFFLINE": "1", "TORCH_HOME": str(tmp_path / "torch"),
                          "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr
    assert "attempts: []" in result.stdout, result.stdout
    assert result.stdout.count("offline (HF_HUB_OFFLINE)") == 2, result.stdout


def test_the_offline_flag_of_the_command_line_means_no_network_attempt(tmp_path):
    result = run_python(_NO_NETWORK + """
    from i3zoo.cli import main
    try:
        code = main(["export", "i3resnet50.tv_in1k", "--out", "OUT", "--offline"])
    except SystemExit as e:
        print(e.code, file=sys.stderr)
        code = 1
    print("code:", code, "attempts:", attempts)
    """.replace("OUT", str(tmp_path / "out")), timeout=180, env={"TORCH_HOME": str(tmp_path / "torch"),
                                                                 "HF_HOME": str(tmp_path / "hf")})
    assert "attempts: []" in result.stdout, result.stdout + result.stderr
    assert "offline" in result.stderr and not (tmp_path / "out").exists()


def test_locks_are_in_the_users_own_cache_not_a_shared_folder(tmp_path, checkpoint_2d):
    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir()
    (shared_tmp / "i3zoo-locks").write_text("another user's, not a folder")  # blocked the old shared lock dir
    source = checkpoint_2d("i3resnet50")
    name = f"resnet50-{_sha256(source)[:8]}.pth"
    shutil.copyfile(source, tmp_path / name)
    with serve(tmp_path) as server:
        result = run_python(f"""
            from i3zoo.weights.checkpoints import fetch_checkpoint
            print(fetch_checkpoint({server.url(name)!r}, progress=False))
        """, timeout=120, env={"TMPDIR": str(shared_tmp), "TORCH_HOME": str(tmp_path / "torch")})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "torch" / "hub" / "checkpoints" / ".i3zoo" / f"{name}.lock").exists()


# --- 4. save_pretrained is atomic as a whole ------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("saved") / "i3resnet50.tv_in1k"
    i3zoo.save_pretrained(i3zoo.create_model("i3resnet50", num_classes=7), folder, measure=False)
    return folder


def _folder_state(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_failure_before_writing_leaves_the_previous_folder(tmp_path, checkpoint_2d):
    target = tmp_path / "out"
    source = tmp_path / "resnet50.pth"
    shutil.copyfile(checkpoint_2d("i3resnet50"), source)
    model = i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=str(source)))
    i3zoo.save_pretrained(model, target, measure=False)
    before = _folder_state(target)
    source.unlink()  # measuring the equivalence (and hashing the source) now fails
    with pytest.raises(FileNotFoundError):
        i3zoo.save_pretrained(model, target)
    assert _folder_state(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.i3zoo-lock", "out"]  # no staging folder


def test_a_folder_holding_other_files_is_never_replaced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        i3zoo.save_pretrained(i3zoo.create_model("i3resnet50", num_classes=3), tmp_path, measure=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# A parent process builds the models once, then forks one child per save (a fresh interpreter per save would
# spend ~7 s importing torch each time); children are killed with SIGKILL at fractions of a save's duration.
_KILL_SAVES = """
import json, os, signal, sys, time
import torch
torch.set_num_threads(1)  # no OpenMP pool across fork
import i3zoo
from i3zoo.facts import model_facts

target, mode = sys.argv[1], sys.argv[2]
model_facts("i3resnet152")  # card facts computed once, in the parent
models = [i3zoo.create_model("i3resnet152", num_classes=n) for n in (5, 7)]

def save_in_child(model):
    pid = os.fork()
    if pid == 0:
        try:
            i3zoo.save_pretrained(model, target, measure=False)
        finally:
            os._exit(0)
    return pid

i3zoo.save_pretrained(models[0], target, measure=False)
if mode == "kill":
    start = time.perf_counter()
    os.waitpid(save_in_child(models[1]), 0)
    duration = time.perf_counter() - start
    for k in range(1, 9):
        pid = save_in_child(models[k % 2])
        time.sleep(duration * k / 9)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print("state", json.load(open(os.path.join(target, "config.json")))["num_classes"], flush=True)
else:  # two writers at once
    pids = [save_in_child(m) for m in models]
    for pid in pids:
        os.waitpid(pid, 0)
print("done", flush=True)
"""


def _assert_complete_save(folder: Path) -> int:
    assert sorted(p.name for p in folder.iterdir()) == sorted([WEIGHTS_NAME, CONFIG_NAME, CARD_NAME])
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["i3zoo"]["weights_sha256"] == _sha256(folder / WEIGHTS_NAME)
    model = i3zoo.create_model(f"local-dir:{folder}", pretrained=True)
    return model.num_classes


def test_a_save_killed_at_any_moment_leaves_a_complete_folder(tmp_path):
    target = tmp_path / "out"
    result = subprocess.run([sys.executable, "-c", _KILL_SAVES, str(target), "kill"], capture_output=True,
                            text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0 and "done" in result.stdout, result.stderr[-3000:]
    # after every kill the folder was the previous save or the new one, never something in between
    assert [int(line.split()[1]) in (5, 7) for line in result.stdout.splitlines() if line.startswith("state")] \
        == [True] * 8
    assert _assert_complete_save(target) in (5, 7)
    # a killed save may leave its staging folder; the next save removes it
    i3zoo.save_pretrained(i3zoo.create_model("i3resnet50", num_classes=3), target, measure=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.i3zoo-lock", "out"]
    assert _assert_complete_save(target) == 3


def test_two_processes_saving_into_one_folder(tmp_path):
    target = tmp_path / "out"
    result = subprocess.run([sys.executable, "-c", _KILL_SAVES, str(target), "race"], capture_output=True,
                            text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0 and "done" in result.stdout, result.stderr[-3000:]
    assert _assert_complete_save(target) in (5, 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.i3zoo-lock", "out"]


# --- 5. a config is data to validate --------------------------------------------------------------------

def _tamper(config: dict, change: str) -> object:
    if change == "not an object":
        return [config]
    if change == "a timm model":
        config["architecture"] = "resnet50"
    elif change == "extra model_args":
        config["model_args"]["pretrained_cfg_overlay"] = {"url": "http://127.0.0.1:9/other.pth", "source": None}
    elif change == "class counts disagree":
        config["pretrained_cfg"]["num_classes"] = 1000
    elif change == "labels disagree":
        config["label_names"] = ["a", "b"]
    elif change == "no i3zoo block":
        del config["i3zoo"]
    elif change == "sha256 not hex":
        config["i3zoo"]["weights_sha256"] = "skip"
    elif change == "i3zoo block not an object":
        config["i3zoo"] = "yes"
    elif change == "a weight source":
        config["pretrained_cfg"]["url"] = "http://127.0.0.1:9/other.pth"
    elif change == "another classifier":
        config["pretrained_cfg"]["classifier"] = "layer4"
    return config


_TAMPERED = [
    ("not an object", "JSON object"), ("a timm model", "'architecture'"),
    ("extra model_args", "'model_args.pretrained_cfg_overlay'"), ("class counts disagree", "class counts disagree"),
    ("labels disagree", "len(label_names)"), ("no i3zoo block", "no 'i3zoo' block"),
    ("sha256 not hex", "'i3zoo.weights_sha256'"), ("i3zoo block not an object", "'i3zoo'"),
    ("a weight source", "'pretrained_cfg.url'"), ("another classifier", "'pretrained_cfg.classifier'"),
]


# timm.create_model parses the config itself before any i3zoo code runs: a config naming timm's own resnet50
# builds that model (i3zoo's route refuses it), and timm refuses a non-object or a model_args key that clashes
# with its own arguments with a TypeError of its own (see the next test)
_TIMM_FIRST = ("a timm model", "not an object", "extra model_args")


@pytest.mark.parametrize("via, change, field", [("i3zoo", c, f) for c, f in _TAMPERED]
                         + [("timm", c, f) for c, f in _TAMPERED if c not in _TIMM_FIRST])
def test_a_tampered_config_is_refused_naming_the_field(tmp_path, saved_folder, change, field, via):
    folder = tmp_path / "tampered"
    shutil.copytree(saved_folder, folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    (folder / CONFIG_NAME).write_text(json.dumps(_tamper(config, change)))
    create = i3zoo.create_model if via == "i3zoo" else timm.create_model
    with pytest.raises(CheckpointError, match=re.escape(field)):
        create(f"local-dir:{folder}", pretrained=True)


@pytest.mark.parametrize("change", ["not an object", "extra model_args"])
def test_timm_refuses_what_it_parses_before_i3zoo_runs(tmp_path, saved_folder, change):
    folder = tmp_path / "tampered"
    shutil.copytree(saved_folder, folder)
    (folder / CONFIG_NAME).write_text(json.dumps(_tamper(json.loads((folder / CONFIG_NAME).read_text()), change)))
    with pytest.raises(TypeError):
        timm.create_model(f"local-dir:{folder}", pretrained=True)


def test_a_config_cannot_trade_the_verified_classifier_for_a_fresh_one(tmp_path, saved_folder):
    folder = tmp_path / "tampered"
    shutil.copytree(saved_folder, folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["num_classes"] = config["model_args"]["num_classes"] = config["pretrained_cfg"]["num_classes"] = 3
    (folder / CONFIG_NAME).write_text(json.dumps(config))  # consistent, but the weights hold 7 classes
    with pytest.raises(CheckpointError, match="says 3 classes, but the classifier in model.safetensors has 7"):
        i3zoo.create_model(f"local-dir:{folder}", pretrained=True)


# --- 6. errors that say what happened -------------------------------------------------------------------

class Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_a_refused_pickle_names_the_refused_global(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"asks to load the Python object (posix|os)\.getcwd"):
        i3zoo.read_state_dict(path)


def test_a_non_tensor_entry_is_named(tmp_path):
    path = tmp_path / "mixed.pth"
    torch.save({"conv1.weight": torch.zeros(1), "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="entry 'epoch' is a int, not a tensor"):
        i3zoo.read_state_dict(path)


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64])
def test_integer_or_complex_kernels_are_refused_by_name(checkpoint_2d, dtype):
    state_dict = dict(i3zoo.read_state_dict(checkpoint_2d("i3resnet50")))
    state_dict["layer1.0.conv2.weight"] = state_dict["layer1.0.conv2.weight"].to(dtype)
    with pytest.raises(i3zoo.CheckpointMismatchError, match=r"wrong kind.*layer1\.0\.conv2\.weight"):
        i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(state_dict=state_dict))


def test_safetensors_under_another_suffix_is_recognised_and_unknown_formats_named(tmp_path, checkpoint_2d):
    disguised = tmp_path / "resnet50.bin"
    shutil.copyfile(checkpoint_2d("i3resnet50", ".safetensors"), disguised)
    reference = i3zoo.read_state_dict(checkpoint_2d("i3resnet50"))
    loaded = i3zoo.read_state_dict(disguised)
    assert set(loaded) == set(reference) and all(torch.equal(loaded[k], reference[k]) for k in reference)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"GIF89a not a checkpoint at all")
    with pytest.raises(CheckpointError, match="neither a PyTorch checkpoint .* nor a safetensors file"):
        i3zoo.read_state_dict(junk)


def test_a_densenet_checkpoint_with_old_and_new_names_of_one_tensor_is_a_mismatch(checkpoint_2d):
    state_dict = dict(i3zoo.read_state_dict(checkpoint_2d("i3densenet121")))
    key = "features.denseblock1.denselayer1.norm1.weight"
    state_dict["features.denseblock1.denselayer1.norm.1.weight"] = state_dict[key] * 2
    with pytest.raises(i3zoo.CheckpointMismatchError, match="two names"):
        i3zoo.create_model("i3densenet121", pretrained=True, pretrained_cfg_overlay=dict(state_dict=state_dict))


def test_a_fine_tuned_2d_checkpoint_keeps_its_classifier(tmp_path, checkpoint_2d):
    import torchvision

    torch.manual_seed(3)
    model_2d = torchvision.models.resnet50(num_classes=10).eval()
    path = tmp_path / "finetuned.pth"
    torch.save(model_2d.state_dict(), path)
    model = i3zoo.create_model("i3resnet50", pretrained=True, num_classes=10,
                               pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.equal(model.fc.weight, model_2d.fc.weight) and torch.equal(model.fc.bias, model_2d.fc.bias)


def test_the_in_memory_state_dict_is_checked_like_a_file():
    with pytest.raises(CheckpointError, match="entry 'epoch' is a int"):
        i3zoo.create_model("i3resnet50", pretrained=True,
                           pretrained_cfg_overlay=dict(state_dict={"conv1.weight": torch.zeros(1), "epoch": 3}))


def test_a_misspelt_keyword_gets_a_suggestion():
    with pytest.raises(TypeError, match="unknown argument 'num_class' .*did you mean num_classes"):
        i3zoo.create_model("i3resnet50", num_class=10)


@pytest.mark.parametrize("features_only", [False, True])
def test_forward_features_and_features_only_check_the_clip(features_only):
    model = i3zoo.create_model("i3densenet121", features_only=features_only)
    run = model if features_only else model.forward_features
    with pytest.raises(ValueError, match="T >= 8"):
        run(torch.zeros(1, 3, 4, 32, 32))
    with pytest.raises(ValueError, match="4-D tensor"):
        run(torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("args, fragment", [
    (["export", "i3resnet50.tv_in1k", "--out", "OUT", "--file", "MISSING"], "checkpoint file not found"),
    (["export", "i3resnet50.tv_in1k", "--out", "OUT", "--file", "JUNK"], "neither a PyTorch checkpoint"),
    (["verify", "i3resnet50", "--images", "MISSING", "--offline"], "No such file"),
    (["export", "i3resnet50.tv_in1k", "--out", "OUT", "--inflation", "sideways"], "invalid choice: 'sideways'"),
    (["list", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_the_command_line_answers_bad_input_with_one_line(tmp_path, run_cli, args, fragment):
    (tmp_path / "junk.pth").write_bytes(b"junk")
    names = {"OUT": str(tmp_path / "out"), "MISSING": str(tmp_path / "missing"), "JUNK": str(tmp_path / "junk.pth")}
    result = run_cli(*[names.get(a, a) for a in args])
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


# --- 7. nothing private leaks, nothing false is claimed -------------------------------------------------

def test_a_query_string_never_reaches_config_card_or_log(tmp_path, checkpoint_2d, caplog):
    source = checkpoint_2d("i3resnet50")
    shutil.copyfile(source, tmp_path / "resnet50.pth")
    secret = "X-Amz-Signature=SECRET123"
    with serve(tmp_path) as server, caplog.at_level("DEBUG"):
        url = server.url("resnet50.pth") + "?" + secret
        model = i3zoo.create_model("i3resnet50", pretrained=True, pretrained_cfg_overlay=dict(url=url),
                                   cache_dir=tmp_path / "cache")
        folder = i3zoo.save_pretrained(model, tmp_path / "out")
        with pytest.raises(CheckpointError) as info:
            fetch_checkpoint(server.url("missing.pth") + "?" + secret, cache_dir=tmp_path / "cache")
    written = "".join(p.read_text() for p in (folder / CONFIG_NAME, folder / CARD_NAME))
    assert server.url("resnet50.pth") in written
    for text in (written, caplog.text, str(info.value)):
        assert "SECRET123" not in text


def test_a_card_of_other_weights_claims_neither_imagenet_nor_the_base_model(tmp_path, checkpoint_2d):
    model = i3zoo.create_model("i3resnet50", pretrained=True,
                               pretrained_cfg_overlay=dict(file=str(checkpoint_2d("i3resnet50"))))
    card = (i3zoo.save_pretrained(model, tmp_path / "out", measure=False) / CARD_NAME).read_text()
    front = card.split("---")[1]
    assert "base_model" not in front and "imagenet-1k" not in front
    assert "not torchvision's ImageNet-1k file" in card
    registered = (REPO / "model_cards" / "i3resnet50.tv_in1k.md").read_text()
    assert "base_model: timm/resnet50.tv_in1k" in registered and "- imagenet-1k" in registered

