#!/usr/bin/env python3
"""A tiny stand-in for the Hugging Face Hub, for offline tests: serves one local folder as
one model repo, well enough for huggingface_hub's `snapshot_download` / `hf_hub_download`.

    python tools/tests/hub_server.py FOLDER [--repo BAAI/AltCLIP] [--revision main]...
                                            [--port 0] [--lifetime 300]

It prints `http://127.0.0.1:PORT` on stdout, then serves until --lifetime seconds have passed
(or Ctrl-C). Point a client at it with `HF_ENDPOINT=http://127.0.0.1:PORT`.

From Python (tests):

    with HubServer(folder, repo="BAAI/AltCLIP", lifetime=120) as hub:
        env["HF_ENDPOINT"] = hub.url
        ...
        hub.requests   # [(method, path), ...] every request served so far

Only loopback: it binds 127.0.0.1 and never opens a connection itself. It stops by itself
after `lifetime` seconds even if nobody calls stop().

Endpoints (what huggingface_hub 0.2x-2.x calls; checked against 2.4.0's source):
  GET  /api/models/{repo}[/revision/{rev}]          -> {"id", "sha", "siblings", ...}
  GET  /api/models/{repo}/tree/{rev}[/{path}]       -> [{"type": "file", "path", "size", "oid", "lfs"?}]
  HEAD /{repo}/resolve/{rev}/{file}                 -> X-Repo-Commit, ETag, X-Linked-Etag/-Size (LFS),
  GET  /{repo}/resolve/{rev}/{file}                    Content-Length, Accept-Ranges; GET honours Range
Revisions: each name given with --revision (default: main) and the commit sha, which is
derived from the files' contents. Unknown repos, revisions and files get the hub's errors
with X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound). No xet headers are
sent, so clients use plain HTTP downloads.
"""
from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import re
import sys
import threading
import time
from typing import Dict, Iterable, List, Optional, Tuple
from urllib.parse import quote, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".model", ".pt", ".pth", ".onnx", ".msgpack", ".h5")


class _File:
    __slots__ = ("path", "abspath", "size", "oid", "sha256", "lfs")

    def __init__(self, root: str, rel: str):
        self.path = rel
        self.abspath = os.path.join(root, *rel.split("/"))
        with open(self.abspath, "rb") as f:
            data = f.read()
        self.size = len(data)
        self.oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git blob id
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.lfs = rel.endswith(LFS_SUFFIXES)

    def etag(self) -> str:
        return self.sha256 if self.lfs else self.oid

    def tree_entry(self) -> dict:
        entry = {"type": "file", "oid": self.oid, "size": self.size, "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": 134}
        return entry

    def sibling(self) -> dict:
        out = {"rfilename": self.path, "size": self.size, "blobId": self.oid}
        if self.lfs:
            out["lfs"] = {"sha256": self.sha256, "size": self.size, "pointerSize": 134}
        return out


def _scan(folder: str) -> Dict[str, _File]:
    files = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), folder).replace(os.sep, "/")
            files[rel] = _File(folder, rel)
    return files


class HubServer:
    """Serve FOLDER as model repo REPO on http://127.0.0.1:PORT (PORT 0: a free port)."""

    def __init__(self, folder: str, repo: str = "BAAI/AltCLIP", revisions: Iterable[str] = ("main",),
                 port: int = 0, lifetime: float = 300.0, quiet: bool = True):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder}: not a folder")
        self.folder, self.repo, self.lifetime, self.quiet = folder, repo, lifetime, quiet
        self.files = _scan(folder)
        h = hashlib.sha1()
        for f in self.files.values():
            h.update(f"{f.path}\0{f.oid}\n".encode())
        self.sha = h.hexdigest()
        self.revisions = set(revisions) | {self.sha}
        self.requests: List[Tuple[str, str]] = []
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: Optional[threading.Thread] = None
        self._timer: Optional[threading.Timer] = None
        self._stopped = threading.Event()

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> "HubServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="hub_server", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def wait(self) -> None:
        """Block until stopped (lifetime over, or stop() called)."""
        while not self._stopped.wait(0.5):
            pass

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def count(self, method: Optional[str] = None, contains: str = "") -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if (method is None or m == method) and contains in p)

    # -- HTTP -------------------------------------------------------------------------
    def _handler_class(self):
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "hub_server/1.0"

            def log_message(self, fmt, *args):
                if not hub.quiet:
                    sys.stderr.write("hub_server: " + (fmt % args) + "\n")

            def do_GET(self):
                hub._dispatch(self, head=False)

            def do_HEAD(self):
                hub._dispatch(self, head=True)

        return Handler

    def _send(self, h, status: int, body: bytes = b"", headers: Optional[dict] = None, head: bool = False,
              content_type: str = "application/json") -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if not head and body:
            h.wfile.write(body)

    def _error(self, h, status: int, code: str, message: str, head: bool) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(h, status, body, {"X-Error-Code": code, "X-Error-Message": message}, head)

    def _json(self, h, obj, head: bool, headers: Optional[dict] = None) -> None:
        self._send(h, 200, json.dumps(obj).encode(), headers, head)

    def _dispatch(self, h, head: bool) -> None:
        url = urlsplit(h.path)
        with self._lock:
            self.requests.append(("HEAD" if head else "GET", url.path))
        # Split on "/" before unquoting: revisions like refs%2Fpr%2F7 arrive as one segment.
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        try:
            if parts[:2] == ["api", "models"]:
                return self._api(h, parts[2:], head)
            return self._resolve(h, parts, head)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _repo_rest(self, h, parts: List[str], head: bool) -> Optional[List[str]]:
        if len(parts) < 2 or "/".join(parts[:2]) != self.repo:
            self._error(h, 401, "RepoNotFound", f"Repository {'/'.join(parts[:2])} not found", head)
            return None
        return parts[2:]

    def _check_revision(self, h, rev: str, head: bool) -> bool:
        if rev in self.revisions:
            return True
        self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
        return False

    def _api(self, h, parts: List[str], head: bool) -> None:
        rest = self._repo_rest(h, parts, head)
        if rest is None:
            return
        if rest == [] or (len(rest) == 2 and rest[0] == "revision"):
            rev = rest[1] if rest else "main"
            if not self._check_revision(h, rev, head):
                return
            return self._json(h, {
                "_id": self.sha[:24], "id": self.repo, "modelId": self.repo, "author": self.repo.split("/")[0],
                "sha": self.sha, "lastModified": "2024-01-01T00:00:00.000Z", "private": False,
                "gated": False, "disabled": False, "tags": ["altclip"], "library_name": "transformers",
                "siblings": [f.sibling() for f in self.files.values()],
            }, head)
        if len(rest) >= 2 and rest[0] == "tree":
            rev, sub = rest[1], "/".join(rest[2:]).strip("/")
            if not self._check_revision(h, rev, head):
                return
            return self._json(h, self._tree(sub, recursive=self._recursive(h)), head)
        self._error(h, 404, "EntryNotFound", "not served by hub_server", head)

    @staticmethod
    def _recursive(h) -> bool:
        query = urlsplit(h.path).query
        return bool(re.search(r"(^|&)recursive=(1|true|True)(&|$)", query))

    def _tree(self, sub: str, recursive: bool) -> List[dict]:
        prefix = sub + "/" if sub else ""
        out, folders = [], set()
        for path, f in self.files.items():
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                for i in range(len(parts)):
                    folders.add(prefix + "/".join(parts[:i + 1]))
            out.append(f.tree_entry())
        dirs = [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                for d in sorted(folders)]
        return dirs + out

    def _resolve(self, h, parts: List[str], head: bool) -> None:
        rest = self._repo_rest(h, parts, head)
        if rest is None:
            return
        if len(rest) < 3 or rest[0] != "resolve":
            return self._error(h, 404, "EntryNotFound", "not served by hub_server", head)
        rev, name = rest[1], "/".join(rest[2:])
        if not self._check_revision(h, rev, head):
            return
        f = self.files.get(name)
        if f is None:
            return self._error(h, 404, "EntryNotFound", f"{name} does not exist on {rev}", head)
        headers = {
            "X-Repo-Commit": self.sha,
            "ETag": f'"{f.etag()}"',
            "Accept-Ranges": "bytes",
        }
        if f.lfs:
            headers["X-Linked-Etag"] = f'"{f.sha256}"'
            headers["X-Linked-Size"] = str(f.size)
        start, end = 0, f.size - 1
        status = 200
        rng = h.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (m.group(1) == "" and m.group(2) == ""):
                return self._send(h, 416, b"", {"Content-Range": f"bytes */{f.size}"}, head)
            if m.group(1) == "":  # suffix range: the last N bytes
                start = max(f.size - int(m.group(2)), 0)
            else:
                start = int(m.group(1))
                if m.group(2):
                    end = min(int(m.group(2)), f.size - 1)
            if start >= f.size or start > end:
                return self._send(h, 416, b"", {"Content-Range": f"bytes */{f.size}"}, head)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        with open(f.abspath, "rb") as fh:
            fh.seek(start)
            body = fh.read(end - start + 1)
        self._send(h, status, body, headers, head, content_type="application/octet-stream")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Serve a local folder as a Hugging Face Hub model repo on 127.0.0.1.")
    ap.add_argument("folder")
    ap.add_argument("--repo", default="BAAI/AltCLIP", help="repo id to serve it as (default BAAI/AltCLIP)")
    ap.add_argument("--revision", action="append", help="revision name(s) to accept (default: main)")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: a free port)")
    ap.add_argument("--lifetime", type=float, default=300.0, help="stop after this many seconds (default 300)")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = ap.parse_args(argv)
    hub = HubServer(args.folder, repo=args.repo, revisions=args.revision or ["main"], port=args.port,
                    lifetime=args.lifetime, quiet=not args.verbose)
    hub.start()
    print(hub.url, flush=True)
    try:
        hub.wait()
    except KeyboardInterrupt:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
