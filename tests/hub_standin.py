"""An in-memory stand-in for the Hugging Face Hub HTTP API, for tests that must never reach the real Hub.

The server half uses the standard library only (``http.server.ThreadingHTTPServer`` on ``127.0.0.1``, port 0,
in a background thread). It speaks the part of the Hub API that ``huggingface_hub`` (written against 2.4.0)
uses for::

    HfApi(endpoint=hub.endpoint, token=...).create_repo(repo_id, private=..., exist_ok=True)
    HfApi.create_branch / delete_branch / delete_repo
    HfApi.upload_folder / upload_file / create_commit      (files travel inline, base64, in the NDJSON commit)
    hf_hub_download(..., endpoint=hub.endpoint)            (HEAD + GET /{repo}/resolve/{rev}/{path})
    snapshot_download(..., endpoint=hub.endpoint)          (repo info + tree listing + the above)
    HfApi.file_exists / list_repo_files / list_repo_tree / model_info / repo_info / list_repo_refs /
    list_repo_commits / get_paths_info / whoami

Usage::

    with HubStandIn() as hub:
        api = HfApi(endpoint=hub.endpoint, token="hf_test")
        api.create_repo("me/repo", exist_ok=True)
        api.upload_folder(repo_id="me/repo", folder_path=folder, commit_message="init")
        assert hub.files("me/repo")["config.json"] == b"..."

Every upload is answered ``"uploadMode": "regular"``, so no LFS or Xet endpoint is ever needed (and none is
implemented: an ``lfsFile`` commit operation is answered 501). Nothing is logged to stderr; exceptions raised
inside the handler are kept in ``hub.errors`` and requests that matched no route in ``hub.unhandled``.

``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_OFFLINE``, ``HF_HUB_DISABLE_TELEMETRY`` ...
once, at import time. In-process, either pass ``endpoint=`` / ``cache_dir=`` explicitly or use
:meth:`HubStandIn.patch_hf_hub` (pytest ``monkeypatch``); for a subprocess use :meth:`HubStandIn.env`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import itertools
import json
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple, Union
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["HubStandIn", "Request", "git_blob_sha"]

_REPO_TYPES_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space", "kernels": "kernel"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/", "kernel": "kernels/"}
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
_INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


def git_blob_sha(content: bytes) -> str:
    """The git blob id of ``content`` (what the Hub returns as ETag / ``oid`` of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Request(NamedTuple):
    """One request seen by the stand-in.

    ``path`` is the raw request target, query string included (so a token leaking into a URL shows up here).
    ``headers`` is an ``email.message.Message``: ``headers.get("Authorization")`` is case-insensitive.
    """

    method: str
    path: str
    headers: Any


@dataclass
class _Commit:
    sha: str
    parent: Optional[str]
    message: str
    description: str
    files: Dict[str, bytes]
    date: str


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    branches: Dict[str, str] = field(default_factory=dict)
    commits: Dict[str, _Commit] = field(default_factory=dict)
    order: List[str] = field(default_factory=list)  # commit shas, oldest first


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: Optional[str] = None, headers: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # we close client sockets and join handler threads ourselves in HubStandIn.stop()
    hub: "HubStandIn"

    def handle_error(self, request, client_address):  # never print tracebacks to stderr
        import sys

        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, (ConnectionError, OSError)):
            self.hub.errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real Hub (every response carries Content-Length)
    server_version = "HubStandIn/1.0"
    sys_version = ""
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr access log
        pass

    def setup(self):
        super().setup()
        self.server.hub._register_connection(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.hub._unregister_connection(self.connection)

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self):
        hub = self.server.hub
        hub.requests.append(Request(self.command, self.path, self.headers))
        try:
            body = self._read_body()
            status, headers, payload = hub._handle(self.command, self.path, self.headers, body)
        except _HttpError as e:
            status, headers, payload = _error_response(e)
        except Exception as e:  # a bug in the stand-in: answer 400 (not 5xx, which huggingface_hub retries slowly)
            hub.errors.append(e)
            status, headers, payload = _error_response(_HttpError(400, f"HubStandIn internal error: {e!r}"))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)


def _json(data: Any, status: int = 200, headers: Optional[dict] = None) -> Tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, json.dumps(data).encode()


def _error_response(e: _HttpError) -> Tuple[int, dict, bytes]:
    headers = {"X-Error-Message": e.message.encode("latin-1", "replace").decode("latin-1"), **e.headers}
    if e.code is not None:
        headers["X-Error-Code"] = e.code
    return _json({"error": e.message}, status=e.status, headers=headers)


class HubStandIn:
    """In-memory Hub on ``http://127.0.0.1:<port>``; use as a context manager (or call start()/stop()).

    Args:
        require_token: if set, every request must carry ``Authorization: Bearer <require_token>``; otherwise
            the stand-in answers 401 (huggingface_hub then raises ``HfHubHTTPError`` for a wrong token,
            ``RepositoryNotFoundError`` for a missing one on repo URLs, as the real Hub does). Can be changed
            at any time through the attribute of the same name.
        username: the user ``whoami`` reports, and the namespace of a repo created without one.

    Attributes:
        endpoint: ``"http://127.0.0.1:<port>"`` (set once started).
        requests: list of :class:`Request` ``(method, path, headers)`` in arrival order.
        errors: exceptions raised inside the stand-in (a non-empty list means a stand-in bug).
        unhandled: ``(method, path)`` of requests that matched no route (answered 404).
    """

    def __init__(self, *, require_token: Optional[str] = None, username: str = "standin-user"):
        self.require_token = require_token
        self.username = username
        self.endpoint: str = ""
        self.requests: List[Request] = []
        self.errors: List[BaseException] = []
        self.unhandled: List[Tuple[str, str]] = []
        self._repos: Dict[Tuple[str, str], _Repo] = {}
        self._lock = threading.RLock()
        self._counter = itertools.count()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._connections: Dict[socket.socket, threading.Thread] = {}
        self._conn_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "HubStandIn":
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.hub = self
        self._server = server
        self.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="HubStandIn", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving. Open keep-alive connections are closed too, so the endpoint is really down afterwards."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._conn_lock:
            connections = dict(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in connections.values():
            thread.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "HubStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _register_connection(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections[conn] = threading.current_thread()

    def _unregister_connection(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.pop(conn, None)

    # ------------------------------------------------------------------ environment helpers

    def env(self, hf_home: Union[str, os.PathLike], *, offline: bool = False) -> Dict[str, str]:
        """Environment variables pointing a *fresh* process's huggingface_hub at this stand-in and ``hf_home``.

        Merge into ``os.environ`` for a subprocess (``{**os.environ, **hub.env(tmp_path / "hf")}``). Also drop
        ``HF_TOKEN`` / ``HF_HUB_CACHE`` / ... from the parent environment if they could interfere.
        """
        return {
            "HF_ENDPOINT": self.endpoint,
            "HF_HOME": str(hf_home),
            "HF_HUB_OFFLINE": "1" if offline else "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",  # else building headers GETs {endpoint}/api/agent-harnesses once
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }

    def patch_hf_hub(self, monkeypatch, hf_home: Union[str, os.PathLike], *, offline: bool = False) -> None:
        """Point the *already imported* huggingface_hub of this process at the stand-in (pytest ``monkeypatch``).

        Sets the env vars of :meth:`env` and patches the import-time constants that huggingface_hub reads at
        call time (``ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE``, ``HF_HOME``, ``HF_HUB_CACHE``, token paths,
        ``HF_HUB_OFFLINE``, ``HF_HUB_DISABLE_TELEMETRY``), so library code that calls ``hf_hub_download(repo, f)``
        without ``endpoint=`` / ``cache_dir=`` lands here. Everything is undone by monkeypatch.
        """
        hf_home = str(hf_home)
        for key, value in self.env(hf_home, offline=offline).items():
            monkeypatch.setenv(key, value)
        for key in (
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_TOKEN_PATH",
            "HF_OIDC_RESOURCE",
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
            "HF_ASSETS_CACHE",
            "HF_XET_CACHE",
            "TRANSFORMERS_OFFLINE",
        ):
            monkeypatch.delenv(key, raising=False)
        try:
            from huggingface_hub import constants
        except ImportError:  # pragma: no cover - nothing to patch
            return
        values = {
            "ENDPOINT": self.endpoint,
            "HUGGINGFACE_CO_URL_TEMPLATE": self.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
            "HF_HOME": hf_home,
            "HF_HUB_CACHE": os.path.join(hf_home, "hub"),
            "HUGGINGFACE_HUB_CACHE": os.path.join(hf_home, "hub"),
            "HF_ASSETS_CACHE": os.path.join(hf_home, "assets"),
            "HUGGINGFACE_ASSETS_CACHE": os.path.join(hf_home, "assets"),
            "HF_XET_CACHE": os.path.join(hf_home, "xet"),
            "HF_TOKEN_PATH": os.path.join(hf_home, "token"),
            "HF_STORED_TOKENS_PATH": os.path.join(hf_home, "stored_tokens"),
            "AGENT_HARNESSES_PATH": os.path.join(hf_home, ".agent_harnesses.json"),
            "CHECK_FOR_UPDATE_DONE_PATH": os.path.join(hf_home, ".check_for_update_done"),
            "HF_HUB_OFFLINE": offline,
            "HF_HUB_DISABLE_TELEMETRY": True,
        }
        for name, value in values.items():
            if hasattr(constants, name):
                monkeypatch.setattr(constants, name, value)

    # ------------------------------------------------------------------ inspection / seeding (thread-safe)

    def repo_exists(self, repo_id: str, *, repo_type: str = "model") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    def is_private(self, repo_id: str, *, repo_type: str = "model") -> bool:
        with self._lock:
            return self._get_repo(repo_type, repo_id).private

    def repos(self, *, repo_type: Optional[str] = None) -> List[str]:
        with self._lock:
            return sorted(rid for (rtype, rid) in self._repos if repo_type is None or rtype == repo_type)

    def branches(self, repo_id: str, *, repo_type: str = "model") -> Dict[str, str]:
        """``{branch: head commit sha}``."""
        with self._lock:
            return dict(self._get_repo(repo_type, repo_id).branches)

    def files(self, repo_id: str, revision: str = "main", *, repo_type: str = "model") -> Dict[str, bytes]:
        """``{path: content}`` at ``revision`` (a branch or a full commit sha)."""
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            return dict(repo.commits[self._resolve(repo, revision)].files)

    def commits(
        self, repo_id: str, revision: Optional[str] = None, *, repo_type: str = "model"
    ) -> List[Tuple[str, str]]:
        """``[(sha, message), ...]`` oldest first, the repo's ``"initial commit"`` included.

        With ``revision=None``: every commit of the repo (all branches) in creation order; with a branch or
        sha: the history of that revision.
        """
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            if revision is None:
                return [(sha, repo.commits[sha].message) for sha in repo.order]
            return [(c.sha, c.message) for c in reversed(self._history(repo, self._resolve(repo, revision)))]

    def create_repo(self, repo_id: str, *, private: bool = False, repo_type: str = "model") -> None:
        """Create a repo server-side (with an empty ``"initial commit"`` on ``main``), as the API would."""
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                raise ValueError(f"{repo_type} repo {repo_id} exists already")
            repo = _Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=_now())
            self._repos[(repo_type, repo_id)] = repo
            self._new_commit(repo, "main", parent=None, files={}, message="initial commit")

    def commit(
        self,
        repo_id: str,
        files: Mapping[str, Union[bytes, str]],
        message: str = "Seed files",
        *,
        branch: str = "main",
        delete: Iterable[str] = (),
        repo_type: str = "model",
    ) -> str:
        """Commit ``files`` (added or replaced) and ``delete`` (removed) on ``branch`` server-side; returns the sha.

        The repo is created (public) if needed, the branch is created from ``main`` if needed.
        """
        with self._lock:
            if (repo_type, repo_id) not in self._repos:
                self.create_repo(repo_id, repo_type=repo_type)
            repo = self._repos[(repo_type, repo_id)]
            if branch not in repo.branches:
                repo.branches[branch] = repo.branches["main"]
            parent = repo.branches[branch]
            new_files = dict(repo.commits[parent].files)
            for path in delete:
                new_files.pop(path, None)
            for path, content in files.items():
                new_files[path] = content.encode() if isinstance(content, str) else bytes(content)
            return self._new_commit(repo, branch, parent=parent, files=new_files, message=message)

    def create_branch(self, repo_id: str, branch: str, *, revision: str = "main", repo_type: str = "model") -> None:
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            repo.branches[branch] = self._resolve(repo, revision)

    # ------------------------------------------------------------------ state internals (call with _lock held)

    def _get_repo(self, repo_type: str, repo_id: str) -> _Repo:
        try:
            return self._repos[(repo_type, repo_id)]
        except KeyError:
            raise KeyError(f"no {repo_type} repo {repo_id!r} on the stand-in") from None

    def _new_commit(self, repo: _Repo, branch: str, *, parent, files, message, description="") -> str:
        h = hashlib.sha1()
        h.update(f"{repo.repo_type}/{repo.repo_id}\n{parent}\n{next(self._counter)}\n{message}\n".encode())
        for path in sorted(files):
            h.update(f"{path}\0{git_blob_sha(files[path])}\n".encode())
        sha = h.hexdigest()
        repo.commits[sha] = _Commit(sha, parent, message, description, dict(files), _now())
        repo.order.append(sha)
        repo.branches[branch] = sha
        return sha

    @staticmethod
    def _resolve(repo: _Repo, revision: str) -> str:
        if revision in repo.branches:
            return repo.branches[revision]
        if revision.startswith("refs/heads/") and revision[len("refs/heads/") :] in repo.branches:
            return repo.branches[revision[len("refs/heads/") :]]
        if _COMMIT_SHA.match(revision) and revision in repo.commits:
            return revision
        raise _HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    @staticmethod
    def _history(repo: _Repo, sha: Optional[str]) -> List[_Commit]:
        out = []
        while sha is not None:
            out.append(repo.commits[sha])
            sha = repo.commits[sha].parent
        return out  # newest first

    def _repo_url(self, repo: _Repo) -> str:
        return f"{self.endpoint}/{_URL_PREFIX.get(repo.repo_type, '')}{repo.repo_id}"

    # ------------------------------------------------------------------ auth

    def _check_auth(self, headers, repo: Optional[_Repo] = None, *, need_token: bool = False) -> None:
        auth = headers.get("Authorization")
        token = auth[len("Bearer ") :].strip() if auth and auth.startswith("Bearer ") else None
        if self.require_token is not None:
            if auth is None:
                raise _HttpError(401, "You must be authenticated to access this resource")
            if token != self.require_token:
                raise _HttpError(401, _INVALID_CREDENTIALS)
        if token is None and (need_token or (repo is not None and repo.private)):
            # what the real Hub answers to an anonymous request for a private (or missing) repo
            raise _HttpError(401, "Repository not found", "RepoNotFound")

    def _find_repo(self, repo_type: str, repo_id: str, headers) -> _Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            self._check_auth(headers)
            raise _HttpError(404, "Repository not found", "RepoNotFound")
        self._check_auth(headers, repo)
        return repo

    # ------------------------------------------------------------------ routing

    def _handle(self, method: str, raw_path: str, headers, body: bytes) -> Tuple[int, dict, bytes]:
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        segs = [unquote(s) for s in split.path.split("/")[1:]]
        if segs and segs[-1] == "" and len(segs) > 1:
            segs = segs[:-1]
        with self._lock:
            if segs[:1] == ["api"]:
                result = self._route_api(method, segs[1:], query, headers, body)
            else:
                result = self._route_resolve(method, segs, headers)
        if result is None:
            self.unhandled.append((method, raw_path))
            raise _HttpError(404, f"HubStandIn: no route for {method} {split.path}")
        return result

    def _split_repo(self, repo_type: str, rest: List[str]) -> Tuple[str, List[str]]:
        """``[ns, name, *tail]`` or ``[name, *tail]`` -> (repo_id, tail): the two-segment id unless only the
        one-segment one exists."""
        if len(rest) >= 2:
            two = f"{rest[0]}/{rest[1]}"
            if (repo_type, two) in self._repos or (repo_type, rest[0]) not in self._repos:
                return two, rest[2:]
        return rest[0], rest[1:]

    def _route_api(self, method, segs, query, headers, body):
        if segs == ["repos", "create"] and method == "POST":
            return self._api_create_repo(headers, body)
        if segs == ["repos", "delete"] and method == "DELETE":
            return self._api_delete_repo(headers, body)
        if segs == ["validate-yaml"] and method == "POST":
            self._check_auth(headers)
            return _json({"errors": [], "warnings": []})
        if segs == ["whoami-v2"] and method == "GET":
            self._check_auth(headers, need_token=True)
            return _json(
                {
                    "type": "user",
                    "id": hashlib.sha1(self.username.encode()).hexdigest()[:24],
                    "name": self.username,
                    "fullname": self.username,
                    "email": None,
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "stand-in", "role": "write"}},
                }
            )
        if segs == ["agent-harnesses"] and method == "GET":
            return _json({"standardEnvVars": [], "harnesses": {}})
        if len(segs) < 2 or segs[0] not in _REPO_TYPES_PLURAL:
            return None
        repo_type = _REPO_TYPES_PLURAL[segs[0]]
        repo_id, tail = self._split_repo(repo_type, segs[1:])
        action = tail[0] if tail else None

        if action is None and method == "GET":
            return self._api_repo_info(repo_type, repo_id, None, query, headers)
        if action == "revision" and len(tail) == 2 and method == "GET":
            return self._api_repo_info(repo_type, repo_id, tail[1], query, headers)
        if action == "preupload" and len(tail) == 2 and method == "POST":
            return self._api_preupload(repo_type, repo_id, tail[1], query, headers, body)
        if action == "commit" and len(tail) == 2 and method == "POST":
            return self._api_commit(repo_type, repo_id, tail[1], query, headers, body)
        if action == "branch" and len(tail) >= 2 and method in ("POST", "DELETE"):
            return self._api_branch(method, repo_type, repo_id, "/".join(tail[1:]), headers, body)
        if action == "tree" and len(tail) >= 2 and method == "GET":
            return self._api_tree(repo_type, repo_id, tail[1], "/".join(tail[2:]), query, headers)
        if action == "paths-info" and len(tail) == 2 and method == "POST":
            return self._api_paths_info(repo_type, repo_id, tail[1], headers, body)
        if action == "refs" and len(tail) == 1 and method == "GET":
            return self._api_refs(repo_type, repo_id, headers)
        if action == "commits" and len(tail) == 2 and method == "GET":
            return self._api_commits(repo_type, repo_id, tail[1], headers)
        return None

    # ------------------------------------------------------------------ API endpoints

    def _api_create_repo(self, headers, body):
        self._check_auth(headers, need_token=self.require_token is not None)
        payload = json.loads(body or b"{}")
        name = payload.get("name")
        if not name:
            raise _HttpError(400, "Missing repo name")
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise _HttpError(400, f"Invalid repo type {repo_type!r}")
        repo_id = f"{payload.get('organization') or self.username}/{name}"
        if "visibility" in payload:
            private = payload["visibility"] != "public"
        else:
            private = bool(payload.get("private", False))
        existing = self._repos.get((repo_type, repo_id))
        if existing is not None:
            return _json(
                {"error": f"You already created this {repo_type} repo", "url": self._repo_url(existing)}, status=409
            )
        self.create_repo(repo_id, private=private, repo_type=repo_type)
        repo = self._repos[(repo_type, repo_id)]
        return _json({"url": self._repo_url(repo), "name": repo_id, "id": repo.order[0][:24]})

    def _api_delete_repo(self, headers, body):
        payload = json.loads(body or b"{}")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.username}/{payload.get('name')}"
        self._find_repo(repo_type, repo_id, headers)
        del self._repos[(repo_type, repo_id)]
        return _json({})

    def _file_entry(self, path: str, content: bytes) -> dict:
        return {"type": "file", "oid": git_blob_sha(content), "size": len(content), "path": path}

    @staticmethod
    def _dir_entry(path: str, files: Mapping[str, bytes]) -> dict:
        h = hashlib.sha1(path.encode())
        for p in sorted(f for f in files if f.startswith(path + "/")):
            h.update(f"{p}\0{git_blob_sha(files[p])}\n".encode())
        return {"type": "directory", "oid": h.hexdigest(), "size": 0, "path": path}

    def _api_repo_info(self, repo_type, repo_id, revision, query, headers):
        repo = self._find_repo(repo_type, repo_id, headers)
        sha = self._resolve(repo, revision or "main")
        commit = repo.commits[sha]
        blobs = query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        for path in sorted(commit.files):
            sibling: Dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=len(commit.files[path]), blobId=git_blob_sha(commit.files[path]))
            siblings.append(sibling)
        info = {
            "_id": repo.order[0][:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": sha,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if repo_type == "model":
            info["library_name"] = None
        if repo_type == "space":
            info.update(sdk="static", runtime=None)
        return _json(info)

    def _api_preupload(self, repo_type, repo_id, revision, query, headers, body):
        repo = self._find_repo(repo_type, repo_id, headers)
        if query.get("create_pr", ["0"])[0] not in ("1", "true", "True"):
            files = repo.commits[self._resolve(repo, revision)].files
        else:
            files = repo.commits[self._resolve(repo, "main")].files
        payload = json.loads(body or b"{}")
        out = []
        for entry in payload.get("files", []):
            path = entry["path"]
            out.append(
                {
                    "path": path,
                    "uploadMode": "regular",  # always inline: no LFS / Xet round trips
                    "shouldIgnore": False,
                    "oid": git_blob_sha(files[path]) if path in files else None,
                }
            )
        return _json({"files": out})

    def _api_commit(self, repo_type, repo_id, revision, query, headers, body):
        repo = self._find_repo(repo_type, repo_id, headers)
        if query.get("create_pr", ["0"])[0] in ("1", "true", "True"):
            raise _HttpError(501, "HubStandIn does not implement pull requests (create_pr)")
        branch = revision[len("refs/heads/") :] if revision.startswith("refs/heads/") else revision
        if branch not in repo.branches:
            if _COMMIT_SHA.match(branch) and branch in repo.commits:
                raise _HttpError(400, f"Cannot commit to a commit id ({branch}): use a branch name")
            raise _HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        parent = repo.branches[branch]
        files = dict(repo.commits[parent].files)
        summary, description = None, ""
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                summary = value.get("summary")
                description = value.get("description") or ""
                parent_commit = value.get("parentCommit")
                if parent_commit is not None and parent_commit != parent:
                    raise _HttpError(412, f"Parent commit {parent_commit} is not the head of {branch} ({parent})")
            elif key == "file":
                path = value["path"]
                if value.get("encoding", "base64") == "base64":
                    files[path] = base64.b64decode(value["content"])
                else:
                    files[path] = str(value["content"]).encode()
            elif key == "deletedFile":
                path = value["path"]
                if path not in files:
                    raise _HttpError(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                doomed = [p for p in files if p.startswith(prefix)]
                if not doomed:
                    raise _HttpError(404, "A folder with this name doesn't exist", "EntryNotFound")
                for p in doomed:
                    del files[p]
            elif key == "lfsFile":
                raise _HttpError(501, "HubStandIn does not implement LFS (preupload always answers 'regular')")
            else:
                raise _HttpError(400, f"Unknown commit operation {key!r}")
        if not summary:
            raise _HttpError(400, "Missing commit summary (header line)")
        sha = self._new_commit(repo, branch, parent=parent, files=files, message=summary, description=description)
        return _json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self._repo_url(repo)}/commit/{sha}",
                "hookOutput": "",
            }
        )

    def _api_branch(self, method, repo_type, repo_id, branch, headers, body):
        repo = self._find_repo(repo_type, repo_id, headers)
        if method == "DELETE":
            if branch == "main":
                raise _HttpError(403, "Cannot delete the default branch")
            if branch not in repo.branches:
                raise _HttpError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            del repo.branches[branch]
            return _json({})
        if branch in repo.branches:
            return _json({"error": "Reference already exists"}, status=409)
        payload = json.loads(body or b"{}")
        repo.branches[branch] = self._resolve(repo, payload.get("startingPoint") or "main")
        return _json({})

    def _api_tree(self, repo_type, repo_id, revision, path, query, headers):
        repo = self._find_repo(repo_type, repo_id, headers)
        files = repo.commits[self._resolve(repo, revision)].files
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        path = path.strip("/")
        prefix = path + "/" if path else ""
        if path and path in files:
            return _json([self._file_entry(path, files[path])])
        under = sorted(p for p in files if p.startswith(prefix))
        if path and not under:
            raise _HttpError(404, f"{path} does not exist on {revision}", "EntryNotFound")
        entries, seen_dirs = [], set()
        for p in under:
            parts = p[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                d = prefix + "/".join(parts[:depth])
                if d not in seen_dirs and (recursive or depth == 1):
                    seen_dirs.add(d)
                    entries.append(self._dir_entry(d, files))
            if recursive or len(parts) == 1:
                entries.append(self._file_entry(p, files[p]))
        return _json(entries)

    def _api_paths_info(self, repo_type, repo_id, revision, headers, body):
        repo = self._find_repo(repo_type, repo_id, headers)
        files = repo.commits[self._resolve(repo, revision)].files
        ctype = (headers.get("Content-Type") or "").lower()
        if "json" in ctype:
            paths = json.loads(body or b"{}").get("paths", [])
        else:
            paths = parse_qs(body.decode(), keep_blank_values=True).get("paths", [])
        out = []
        for p in paths:
            p = p.strip("/")
            if p in files:
                out.append(self._file_entry(p, files[p]))
            elif any(f.startswith(p + "/") for f in files):
                out.append(self._dir_entry(p, files))
        return _json(out)

    def _api_refs(self, repo_type, repo_id, headers):
        repo = self._find_repo(repo_type, repo_id, headers)
        branches = [
            {"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha} for name, sha in repo.branches.items()
        ]
        return _json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def _api_commits(self, repo_type, repo_id, revision, headers):
        repo = self._find_repo(repo_type, repo_id, headers)
        items = [
            {
                "id": c.sha,
                "title": c.message,
                "message": c.description,
                "authors": [{"user": self.username}],
                "date": c.date,
            }
            for c in self._history(repo, self._resolve(repo, revision))
        ]
        return _json(items)

    # ------------------------------------------------------------------ file resolution

    def _route_resolve(self, method, segs, headers):
        if method not in ("GET", "HEAD"):
            return None
        repo_type = "model"
        if segs and segs[0] in ("datasets", "spaces", "kernels") and "resolve" in segs[2:4]:
            repo_type, segs = _REPO_TYPES_PLURAL[segs[0]], segs[1:]
        if len(segs) >= 5 and segs[2] == "resolve":
            repo_id, rest = f"{segs[0]}/{segs[1]}", segs[3:]
        elif len(segs) >= 4 and segs[1] == "resolve":
            repo_id, rest = segs[0], segs[2:]
        else:
            return None
        revision, path = rest[0], "/".join(rest[1:])
        repo = self._find_repo(repo_type, repo_id, headers)
        sha = self._resolve(repo, revision)
        files = repo.commits[sha].files
        if path not in files:
            raise _HttpError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": sha})
        content = files[path]
        out_headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{git_blob_sha(content)}"',
            "X-Repo-Commit": sha,
            "Accept-Ranges": "bytes",
        }
        status = 200
        range_header = headers.get("Range")
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip()) if range_header else None
        if match and (match.group(1) or match.group(2)):
            total = len(content)
            if match.group(1):
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else total - 1
            else:  # suffix range: the last N bytes
                start, end = max(total - int(match.group(2)), 0), total - 1
            end = min(end, total - 1)
            if start >= total or start > end:
                raise _HttpError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{total}"})
            content = content[start : end + 1]
            status = 206
            out_headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        out_headers["Content-Length"] = str(len(content))
        return status, out_headers, content
