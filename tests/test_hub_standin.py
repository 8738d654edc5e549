"""The Hub stand-in (tests/hub_standin.py) speaks enough of the Hub API for huggingface_hub itself.

No i3zoo code here: these tests pin the stand-in's protocol against the installed huggingface_hub, so that
i3zoo's own Hub tests can rely on it. Nothing may leave 127.0.0.1: an audit hook records every host a socket
is opened to while a test runs, and the test fails if one is not loopback.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")

from hub_standin import HubStandIn, git_blob_sha  # noqa: E402
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

TOKEN = "hf_standin_test_token"
REPO = "i3zoo-test/standin-roundtrip"
BINARY = bytes(range(256)) * 8 + b"\x00\xff\x00"  # every byte value, NULs included

# ----------------------------------------------------------------------------- no traffic off this machine

_AUDIT = {"active": False, "hosts": []}


def _audit(event, args):
    if _AUDIT["active"]:
        if event == "socket.getaddrinfo":
            _AUDIT["hosts"].append(str(args[0]))
        elif event == "socket.connect" and isinstance(args[1], tuple):
            _AUDIT["hosts"].append(str(args[1][0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one only records while a test here runs


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    # Building request headers makes huggingface_hub fetch `{HF_ENDPOINT at import}/api/agent-harnesses` once
    # per process (huggingface.co by default) unless telemetry is off; constants are read at call time.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    _AUDIT["hosts"] = []
    _AUDIT["active"] = True
    try:
        yield
    finally:
        _AUDIT["active"] = False
    off_machine = {h for h in _AUDIT["hosts"] if h not in ("127.0.0.1", "localhost", "::1")}
    assert not off_machine, f"a test tried to reach {off_machine}"


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def hub():
    with HubStandIn() as h:
        yield h
    assert not h.errors, f"stand-in raised internally: {h.errors!r}"
    assert not h.unhandled, f"requests the stand-in has no route for: {h.unhandled}"


def make_folder(root: Path, files: dict) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


FIRST = {
    "config.json": json.dumps({"arch": "i3resnet50", "num_classes": 400}),
    "weights/model.safetensors": BINARY,
    "README.md": "---\nlicense: bsd-3-clause\ntags:\n- video\n---\n# stand-in card\n",
    "empty.txt": b"",
}


def populate(hub: HubStandIn, tmp_path: Path):
    """create_repo (twice), upload FIRST to main, then a second commit on branch `dev`."""
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    url = api.create_repo(REPO, private=True, exist_ok=True)
    assert url.repo_id == REPO and url.startswith(hub.endpoint)
    api.create_repo(REPO, private=True, exist_ok=True)  # already there: 409 swallowed by exist_ok
    first = api.upload_folder(repo_id=REPO, folder_path=make_folder(tmp_path / "v1", FIRST), commit_message="v1")

    api.create_branch(REPO, branch="dev", exist_ok=True)
    api.create_branch(REPO, branch="dev", exist_ok=True)
    second_files = {**FIRST, "config.json": '{"arch": "i3resnet50", "num_classes": 600}', "extra.bin": BINARY[::-1]}
    second = api.upload_folder(
        repo_id=REPO, folder_path=make_folder(tmp_path / "v2", second_files), commit_message="v2", revision="dev"
    )
    return api, first, second, second_files


def as_bytes(files: dict) -> dict:
    return {k: v if isinstance(v, bytes) else v.encode() for k, v in files.items()}


# ----------------------------------------------------------------------------- tests


def test_upload_then_download_from_main_branch_and_sha(hub, tmp_path):
    api, first, second, second_files = populate(hub, tmp_path)

    # server-side view
    assert hub.is_private(REPO)
    assert hub.files(REPO) == as_bytes(FIRST)
    assert hub.files(REPO, "dev") == as_bytes(second_files)
    assert hub.branches(REPO) == {"main": first.oid, "dev": second.oid}
    assert [m for _, m in hub.commits(REPO)] == ["initial commit", "v1", "v2"]
    assert [m for _, m in hub.commits(REPO, "main")] == ["initial commit", "v1"]
    assert all(len(sha) == 40 and int(sha, 16) >= 0 for sha, _ in hub.commits(REPO))
    assert first.oid != second.oid and second.commit_url.endswith(second.oid)

    # client-side view: every file from main, from the branch and by commit sha
    cache = tmp_path / "cache"
    for revision, expected in ((None, FIRST), ("main", FIRST), ("dev", second_files), (first.oid, FIRST),
                               (second.oid, second_files)):
        for filename, content in as_bytes(expected).items():
            path = hf_hub_download(
                REPO, filename, revision=revision, endpoint=hub.endpoint, cache_dir=cache, token=TOKEN
            )
            assert Path(path).read_bytes() == content, (revision, filename)
            sha = first.oid if expected is FIRST else second.oid
            assert f"snapshots/{sha}/" in Path(path).as_posix()
    assert (cache / "models--i3zoo-test--standin-roundtrip" / "refs" / "dev").read_text() == second.oid

    # the token travelled in the Authorization header only, never in a URL
    assert hub.requests
    for request in hub.requests:
        assert TOKEN not in request.path
        assert request.headers.get("Authorization") == f"Bearer {TOKEN}", request
    # files went inline in the commit: nothing but the plain Hub API was used (no LFS batch, no xet)
    paths = {r.path.split("?")[0] for r in hub.requests}
    assert f"/api/models/{REPO}/preupload/main" in paths and f"/api/models/{REPO}/commit/dev" in paths
    assert not any("lfs" in p or "xet" in p for p in paths)


def test_unchanged_upload_makes_no_commit(hub, tmp_path):
    """As on the Hub: preupload reports the remote blob ids, so huggingface_hub skips unchanged files."""
    api, first, _, _ = populate(hub, tmp_path)
    again = api.upload_folder(repo_id=REPO, folder_path=tmp_path / "v1", commit_message="v1 again")
    assert again.oid == first.oid
    assert [m for _, m in hub.commits(REPO, "main")] == ["initial commit", "v1"]


def test_create_commit_path_without_hf_xet(hub, tmp_path, monkeypatch):
    """Without hf_xet (or with HF_HUB_DISABLE_XET), upload_folder takes the single create_commit path."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_repo(REPO)
    info = api.upload_folder(repo_id=REPO, folder_path=make_folder(tmp_path / "f", FIRST), commit_message="legacy")
    api.upload_file(path_or_fileobj=BINARY, path_in_repo="more/w.bin", repo_id=REPO, commit_message="one file")
    assert hub.files(REPO) == {**as_bytes(FIRST), "more/w.bin": BINARY}
    assert [m for _, m in hub.commits(REPO)] == ["initial commit", "legacy", "one file"]
    with pytest.raises(EntryNotFoundError):  # not in the first commit
        hf_hub_download(REPO, "more/w.bin", revision=info.oid, endpoint=hub.endpoint, cache_dir=tmp_path / "c2")
    path = hf_hub_download(REPO, "more/w.bin", endpoint=hub.endpoint, cache_dir=tmp_path / "c")
    assert Path(path).read_bytes() == BINARY


def test_missing_file_revision_and_repo_raise_huggingface_hub_errors(hub, tmp_path):
    populate(hub, tmp_path)
    kwargs = dict(endpoint=hub.endpoint, cache_dir=tmp_path / "cache", token=TOKEN)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "no-such-file.bin", **kwargs)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch", **kwargs)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("i3zoo-test/no-such-repo", "config.json", **kwargs)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.endpoint, token=TOKEN).model_info("i3zoo-test/no-such-repo")
    # private repo, no token: the Hub answers 401 RepoNotFound, and so does the stand-in
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(REPO, "config.json", endpoint=hub.endpoint, cache_dir=tmp_path / "c2", token=False)


def test_listing_info_and_snapshot(hub, tmp_path):
    api, first, second, second_files = populate(hub, tmp_path)
    assert sorted(api.list_repo_files(REPO)) == sorted(FIRST)
    assert sorted(api.list_repo_files(REPO, revision="dev")) == sorted(second_files)
    assert api.file_exists(REPO, "weights/model.safetensors")
    assert not api.file_exists(REPO, "nope.bin")
    assert not api.file_exists("i3zoo-test/no-such-repo", "config.json")
    info = api.model_info(REPO)
    assert info.sha == first.oid and info.private is True
    assert sorted(s.rfilename for s in info.siblings) == sorted(FIRST)
    assert api.model_info(REPO, revision="dev").sha == second.oid
    assert api.repo_exists(REPO) and not api.repo_exists("i3zoo-test/no-such-repo")
    tree = {f.path: f for f in api.list_repo_tree(REPO, recursive=True) if hasattr(f, "blob_id")}
    assert tree["weights/model.safetensors"].blob_id == git_blob_sha(BINARY)
    assert tree["weights/model.safetensors"].size == len(BINARY)
    assert [c.title for c in api.list_repo_commits(REPO, revision="dev")] == ["v2", "v1", "initial commit"]

    folder = snapshot_download(REPO, revision="dev", endpoint=hub.endpoint, cache_dir=tmp_path / "c", token=TOKEN)
    got = {p.relative_to(folder).as_posix(): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}
    assert got == as_bytes(second_files)


def test_require_token(tmp_path):
    with HubStandIn(require_token=TOKEN) as hub:
        api = HfApi(endpoint=hub.endpoint, token=TOKEN)
        api.create_repo(REPO, exist_ok=True)
        api.upload_folder(repo_id=REPO, folder_path=make_folder(tmp_path / "f", {"a.txt": "a"}), commit_message="a")
        with pytest.raises(HfHubHTTPError) as excinfo:
            HfApi(endpoint=hub.endpoint, token="hf_wrong").model_info(REPO)
        assert excinfo.value.response.status_code == 401
        with pytest.raises(HfHubHTTPError) as excinfo:
            hf_hub_download(REPO, "a.txt", endpoint=hub.endpoint, cache_dir=tmp_path / "c", token="hf_wrong")
        assert excinfo.value.response.status_code == 401
        path = hf_hub_download(REPO, "a.txt", endpoint=hub.endpoint, cache_dir=tmp_path / "c", token=TOKEN)
        assert Path(path).read_bytes() == b"a"
        assert not hub.errors


def test_raw_http_details(hub):
    """Headers huggingface_hub's cache relies on, JSON errors, Range requests."""
    sha = hub.commit("ns/raw", {"w.bin": BINARY}, "seed")

    def fetch(url, method="GET", headers=None):
        req = urllib.request.Request(hub.endpoint + url, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    status, headers, body = fetch("/ns/raw/resolve/main/w.bin", "HEAD")
    assert status == 200 and body == b""
    assert headers["X-Repo-Commit"] == sha
    assert headers["ETag"] == f'"{git_blob_sha(BINARY)}"'
    assert int(headers["Content-Length"]) == len(BINARY)
    status, headers, body = fetch(f"/ns/raw/resolve/{sha}/w.bin", headers={"Range": "bytes=10-"})
    assert status == 206 and body == BINARY[10:]
    assert headers["Content-Range"] == f"bytes 10-{len(BINARY) - 1}/{len(BINARY)}"
    status, headers, body = fetch("/ns/raw/resolve/main/missing.bin")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound" and headers["X-Repo-Commit"] == sha
    assert "error" in json.loads(body)
    status, headers, _ = fetch("/ns/nothing/resolve/main/w.bin")
    assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"


def test_patch_hf_hub_redirects_default_endpoint_and_cache(hub, tmp_path, monkeypatch):
    hub.commit("ns/patched", {"f.txt": "patched"}, "seed")
    hub.patch_hf_hub(monkeypatch, tmp_path / "hf")
    path = hf_hub_download("ns/patched", "f.txt")  # no endpoint=, no cache_dir=
    assert Path(path).read_text() == "patched"
    assert Path(path).is_relative_to(tmp_path / "hf" / "hub")


def test_cache_serves_when_server_is_gone_and_offline_in_fresh_process(tmp_path):
    hf_home = tmp_path / "hf_home"
    cache = hf_home / "hub"  # what a fresh process with HF_HOME=hf_home uses as its cache
    with HubStandIn() as hub:
        _, first, second, second_files = populate(hub, tmp_path)
        for filename in ("weights/model.safetensors", "config.json"):
            for revision in (None, "dev"):
                hf_hub_download(REPO, filename, revision=revision, endpoint=hub.endpoint, cache_dir=cache,
                                token=TOKEN)
        snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=cache, token=TOKEN)
        env_offline = hub.env(hf_home, offline=True)
        endpoint = hub.endpoint

    # same process, server down (keep-alive connections included): huggingface_hub falls back to its cache
    path = hf_hub_download(REPO, "config.json", endpoint=endpoint, cache_dir=cache, token=TOKEN)
    assert Path(path).read_bytes() == as_bytes(FIRST)["config.json"]

    script = textwrap.dedent(
        """
        import hashlib, json, sys
        from pathlib import Path
        from huggingface_hub import hf_hub_download, snapshot_download
        repo = sys.argv[1]
        out = {}
        for rev in ("main", "dev"):
            for name in ("weights/model.safetensors", "config.json"):
                path = hf_hub_download(repo, name, revision=None if rev == "main" else rev)
                out[f"{rev}:{name}"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        out["snapshot"] = sorted(
            p.relative_to(snapshot_download(repo)).as_posix()
            for p in Path(snapshot_download(repo)).rglob("*") if p.is_file()
        )
        print(json.dumps(out))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(env_offline)
    result = subprocess.run(
        [sys.executable, "-c", script, REPO], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    digest = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    assert out["main:weights/model.safetensors"] == digest(BINARY)
    assert out["main:config.json"] == digest(as_bytes(FIRST)["config.json"])
    assert out["dev:config.json"] == digest(as_bytes(second_files)["config.json"])
    assert out["snapshot"] == sorted(FIRST)
