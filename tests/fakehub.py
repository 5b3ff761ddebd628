"""A fake Hugging Face hub on 127.0.0.1, serving repositories from a folder tree.

`datasets` and `huggingface_hub` talk to the hub over a handful of HTTP
endpoints. This server answers those from files on disk, so that tests can
stream a dataset (or, later, download a model) through the real client
libraries without a network:

    GET  /api/{datasets,models}/REPO[/revision/REV]     repo info: sha, siblings, gated
    GET  /api/{datasets,models}/REPO/tree/REV[/PATH]     listing (recursive or not)
    POST /api/{datasets,models}/REPO/paths-info/REV      info on given paths
    GET  /api/agent-harnesses                            an empty registry
    HEAD/GET /[datasets/]REPO/resolve/REV/PATH            a file: ETag, X-Repo-Commit,
                                                          Content-Length, Range

A repo is a folder, `root/datasets/REPO_ID` or `root/models/REPO_ID`, made
with `add_repo`. Its sha is a hash of its files, so changing a file changes
the revision, as a commit would on the hub; the fake keeps no history, so
only "main" and the current sha resolve. A gated repo refuses its files
without `Authorization: Bearer TOKEN`, answering as the hub does (401 with
`X-Error-Code: GatedRepo`).

Every request is logged in `requests`; one the fake does not understand gets
a plain 404 and is logged in `unhandled` too, so a test fails loudly when a
client starts to need an endpoint the fake lacks.

The client libraries read `HF_ENDPOINT`, `HF_HOME`, `HF_HUB_OFFLINE` and the
cache folders into module constants when first imported. The `fake_hub`
fixture therefore sets the environment and *reloads* `huggingface_hub.constants`
and `datasets.config` (both read their settings only there, and every other
module reads them through those modules at call time), and reloads them again
with the old environment afterwards. Reloading re-runs their own code, so it
stays right when a library version adds a constant, where patching a list of
names would silently miss it; a subprocess per test would be just as sure but
cost seconds of imports each.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

REPO_TYPES = ("datasets", "models")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case, as HTTP compares them
    sent: int = 0  # bytes of body the client took before it stopped reading


@dataclass
class FakeHub:
    """The state of the fake: where repos live, which are gated, and what was asked."""

    url: str
    root: Path
    token: str = "hf_fake_token"
    gated: set[str] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    unhandled: list[Request] = field(default_factory=list)

    def add_repo(self, repo_id: str, files: dict[str, bytes | str], kind: str = "datasets") -> Path:
        """Write a repo's files (replacing any it had); returns its folder."""
        folder = self.root / kind / repo_id
        if folder.exists():
            for old in sorted(folder.rglob("*"), reverse=True):
                old.unlink() if old.is_file() else old.rmdir()
        for name, content in files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            path.write_bytes(data)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def add_dataset(self, repo_id: str, files: dict[str, bytes | str]) -> Path:
        return self.add_repo(repo_id, files, "datasets")

    def sha(self, repo_id: str, kind: str = "datasets") -> str:
        """The repo's revision: a hash of its paths and contents."""
        digest = hashlib.sha1()
        for name, path in _files(self.root / kind / repo_id):
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def paths(self, method: str | None = None) -> list[str]:
        """The paths requested so far (of one method, if given), for assertions."""
        return [r.path for r in self.requests if method is None or r.method == method]

    def downloads(self) -> list[str]:
        """The file contents served so far (GETs of resolve URLs)."""
        return [r.path for r in self.requests if r.method == "GET" and "/resolve/" in r.path]

    def environment(self, **env: str | None):
        """Run with more environment variables set (None unsets), reloading the libraries."""
        return hub_environment(**env)


def _files(folder: Path) -> list[tuple[str, Path]]:
    if not folder.is_dir():
        return []
    found = (p for p in folder.rglob("*") if p.is_file())
    return sorted((p.relative_to(folder).as_posix(), p) for p in found)


def _blob_id(path: Path) -> str:
    """Git's blob sha1, as the hub gives for every file."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@contextmanager
def hub_environment(**env: str | None) -> Iterator[None]:
    """Run with these environment variables (None unsets), as huggingface_hub and datasets see
    them; then put back the old ones, for them too."""
    saved = {name: os.environ.get(name) for name in env}
    _set_environment(env)
    try:
        yield
    finally:
        _set_environment(saved)


def _set_environment(env: dict[str, str | None]) -> None:
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reload_hub_libraries()


def reload_hub_libraries() -> None:
    """Make huggingface_hub and datasets read the environment again (see the module docstring)."""
    for name in ("huggingface_hub.constants", "datasets.config"):
        if name in sys.modules:
            importlib.reload(sys.modules[name])


# A repo id is NAME or OWNER/NAME.
_API = re.compile(
    r"^/api/(datasets|models)/([^/]+(?:/[^/]+)?)(?:/(revision|tree|paths-info)/([^/]+)(/.*)?)?$"
)
_RESOLVE = re.compile(r"^/(?:(datasets)/)?([^/]+(?:/[^/]+)?)/resolve/([^/]+)/(.+)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub  # set on a per-fixture subclass

    def log_message(self, *args: object) -> None:  # quiet: the requests are in hub.requests
        pass

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        request = Request(method, self.path, {k.lower(): v for k, v in self.headers.items()})
        self.hub.requests.append(request)
        path = urlsplit(self.path).path
        if path == "/api/agent-harnesses":  # huggingface_hub's agent detection: none known
            self._json({"standardEnvVars": [], "harnesses": {}})
        elif (match := _API.match(path)) and method in ("GET", "POST"):
            self._api(method, *match.groups())
        elif (match := _RESOLVE.match(path)) and method in ("GET", "HEAD"):
            kind, repo_id, revision, name = match.groups()
            self._resolve(method, kind or "models", repo_id, unquote(revision), unquote(name))
        else:
            self.hub.unhandled.append(request)
            self._send(404, b"not served by the fake hub")

    # -- replies ---------------------------------------------------------------------------

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        request = self.hub.requests[-1]
        try:
            for start in range(0, len(body), 1 << 16):
                self.wfile.write(body[start : start + (1 << 16)])
                request.sent = min(len(body), start + (1 << 16))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client had read enough and hung up

    def _json(self, value: object) -> None:
        self._send(200, json.dumps(value).encode(), {"Content-Type": "application/json"})

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {"X-Error-Code": code, "X-Error-Message": message}
        self._send(status, body, {"Content-Type": "application/json", **headers})

    def _check(self, kind: str, repo_id: str, revision: str, files: bool) -> Path | None:
        """The repo's folder, or None after answering as the hub does when it cannot be had."""
        folder = self.hub.root / kind / repo_id
        if not folder.is_dir():
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return None
        if revision not in ("main", self.hub.sha(repo_id, kind)):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        authorized = self.headers.get("Authorization") == f"Bearer {self.hub.token}"
        if files and repo_id in self.hub.gated and not authorized:
            self._error(401, "GatedRepo", f"Access to {kind[:-1]} {repo_id} is restricted.")
            return None
        return folder

    def _api(self, method: str, kind: str, repo_id: str, action, revision, rest) -> None:
        revision = unquote(revision or "main")
        folder = self._check(kind, repo_id, revision, files=action in ("tree", "paths-info"))
        if folder is None:
            return
        if action in (None, "revision") and method == "GET":
            self._json(self._info(kind, repo_id, folder))
        elif action == "tree" and method == "GET":
            query = parse_qs(urlsplit(self.path).query)
            recursive = query.get("recursive", ["False"])[0].lower() == "true"
            self._json(self._tree(folder, unquote(rest or "/").strip("/"), recursive))
        elif action == "paths-info" and method == "POST":
            self._json(self._paths_info(folder, self._form_paths()))
        else:
            self.hub.unhandled.append(self.hub.requests[-1])
            self._send(404, b"not served by the fake hub")

    def _info(self, kind: str, repo_id: str, folder: Path) -> dict:
        gated = "auto" if repo_id in self.hub.gated else False
        return {
            "id": repo_id,
            "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
            "author": repo_id.split("/")[0] if "/" in repo_id else None,
            "sha": self.hub.sha(repo_id, kind),
            "private": False,
            "gated": gated,
            "disabled": False,
            "tags": [],
            "lastModified": "2026-01-01T00:00:00.000Z",
            "createdAt": "2026-01-01T00:00:00.000Z",
            "siblings": [{"rfilename": name} for name, _ in _files(folder)],
        }

    def _entry(self, folder: Path, name: str) -> dict | None:
        path = folder / name
        if path.is_file():
            size = path.stat().st_size
            return {"type": "file", "oid": _blob_id(path), "size": size, "path": name}
        if path.is_dir():
            oid = hashlib.sha1(name.encode()).hexdigest()
            return {"type": "directory", "oid": oid, "size": 0, "path": name}
        return None

    def _tree(self, folder: Path, under: str, recursive: bool) -> list[dict]:
        base = folder / under if under else folder
        if not base.is_dir():
            return []
        found = base.rglob("*") if recursive else base.iterdir()
        names = sorted(p.relative_to(folder).as_posix() for p in found)
        return [entry for name in names if (entry := self._entry(folder, name))]

    def _form_paths(self) -> list[str]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(body).get("paths", [])
            return [paths] if isinstance(paths, str) else paths
        return parse_qs(body).get("paths", [])

    def _paths_info(self, folder: Path, paths: list[str]) -> list[dict]:
        return [entry for name in paths if (entry := self._entry(folder, name.strip("/")))]

    def _resolve(self, method: str, kind: str, repo_id: str, revision: str, name: str) -> None:
        folder = self._check(kind, repo_id, revision, files=True)
        if folder is None:
            return
        path = folder / name
        if not path.is_file():
            self._error(404, "EntryNotFound", f"{name} does not exist on {revision}")
            return
        data = path.read_bytes()
        headers = {
            "ETag": f'"{_blob_id(path)}"',
            "X-Repo-Commit": self.hub.sha(repo_id, kind),
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if match is None:
            self._send(200, data, headers)
            return
        start, end = match.groups()
        first = int(start) if start else max(0, len(data) - int(end))
        last = min(len(data) - 1, int(end) if start and end else len(data) - 1)
        if first >= len(data):
            self._send(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
            return
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        self._send(206, data[first : last + 1], headers)


@contextmanager
def serve(root: Path) -> Iterator[FakeHub]:
    """A fake hub serving repos under `root`, on a free port of 127.0.0.1, until the block ends."""
    handler = type("Handler", (_Handler,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    hub = FakeHub(url=f"http://127.0.0.1:{httpd.server_address[1]}", root=root)
    handler.hub = hub
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fake_hub(tmp_path: Path) -> Iterator[FakeHub]:
    """A fake hub, with huggingface_hub and datasets pointed at it and their caches in tmp_path.

    No token of the person running the tests is sent (HF_TOKEN is unset and the
    token file lives in the temporary HF_HOME), and offline mode is off unless
    a test turns it on with `hub.environment(HF_HUB_OFFLINE="1")`.
    """
    with serve(tmp_path / "hub") as hub:
        env = {
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "hf-home"),
            "HF_DATASETS_CACHE": str(tmp_path / "hf-datasets"),
            "HF_HUB_CACHE": None,
            "HUGGINGFACE_HUB_CACHE": None,
            "HF_TOKEN": None,
            "HUGGING_FACE_HUB_TOKEN": None,
            "HF_HUB_OFFLINE": None,
            "HF_DATASETS_OFFLINE": None,
            "TRANSFORMERS_OFFLINE": None,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        }
        with hub.environment(**env):
            yield hub
