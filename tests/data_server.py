"""A loopback HTTP server (127.0.0.1 only) standing in for the internet in the data tests: it serves
files by URL path, answers byte ranges as real servers do (206 + Content-Range), can cut a transfer
short once (an interrupted download) or ignore ranges, and serves the Hugging Face hub's tree listing
JSON for the files it holds under `/huggingface.co/datasets/<repo>/resolve/<revision>/...`, in pages
when asked (`Link: <...>; rel="next"`, which may name another host). It keeps every request's headers."""
from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


class LoopbackServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_once: dict[str, int] = {}  # path -> bytes sent before the connection drops (once)
        self.ignore_ranges = False
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.received: list[tuple[str, dict]] = []  # (path, every header as sent), in order
        self.page_size: int | None = None  # listings in pages of this many entries
        self.next_host: str | None = None  # the host:port the next page's link names (default: ours)
        handler = type("Handler", (_Handler,), {"server_state": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, url: str, data: bytes) -> None:
        """Serve `data` where the mirror puts `url`: /<host>/<path>."""
        parts = urlsplit(url)
        self.files[f"/{parts.netloc}{unquote(parts.path)}"] = data

    def add_hub_file(self, repo: str, revision: str, path: str, data: bytes) -> None:
        self.add(f"https://huggingface.co/datasets/{repo}/resolve/{revision}/{path}", data)

    def listing(self, path: str, query: str = "") -> tuple[bytes, dict] | None:
        """The hub's /api/datasets/<repo>/tree/<revision>[/<folder>] for the hub files held, and the
        headers to answer with (a `Link` to the next page when paging)."""
        match = re.fullmatch(r"/huggingface.co/api/datasets/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path)
        if not match:
            return None
        repo, revision, folder = match.group(1), match.group(2), match.group(3) or ""
        prefix = f"/huggingface.co/datasets/{repo}/resolve/{revision}/"
        entries = [{"type": "file", "oid": "0" * 40, "size": 134, "path": key[len(prefix):],
                    "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}}
                   for key, data in self.files.items()
                   if key.startswith(prefix) and key[len(prefix):].startswith(folder)]
        if not entries:
            return None
        start = int(parse_qs(query).get("cursor", ["0"])[0])
        end = len(entries) if self.page_size is None else start + self.page_size
        headers = {}
        if end < len(entries):
            host = self.next_host or self.url.removeprefix("http://")
            headers["Link"] = f'<http://{host}{path}?recursive=true&cursor={end}>; rel="next"'
        return json.dumps(entries[start:end]).encode(), headers


class _Handler(BaseHTTPRequestHandler):
    server_state: LoopbackServer

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        state, path = self.server_state, unquote(urlsplit(self.path).path)
        state.requests.append((path, self.headers.get("Range")))
        state.received.append((path, dict(self.headers.items())))
        data, extra = state.files.get(path), {}
        if data is None:
            data, extra = state.listing(path, urlsplit(self.path).query) or (None, {})
        if data is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not state.ignore_ranges:
            start = int(match.group(1))
            if start >= len(data):
                self.send_error(416)
                return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        body = data[start:]
        cut = state.cut_once.pop(path, None)
        self.wfile.write(body[:cut] if cut is not None else body)
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True
