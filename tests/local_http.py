"""A local HTTP file server for download tests (127.0.0.1, a thread): Range requests, optional dropped
connections and throttling; it records each request's path and Range header."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


class FileServer(ThreadingHTTPServer):
    """Serves files from `root`; `drop_first` requests per path send half the body then close the socket."""
    daemon_threads = True

    def __init__(self, root: Path, drop_first: int = 0, delay: float = 0.0, ranges: bool = True):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.drop_first, self.delay, self.ranges = Path(root), drop_first, delay, ranges
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.lock = threading.Lock()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"

    def count(self, name: str) -> int:
        return sum(1 for p, _ in self.requests if p == f"/{name}")


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        srv = self.server
        rng = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((self.path, rng))
            n = srv.count(self.path.lstrip("/"))
        f = srv.root / self.path.lstrip("/")
        if not f.is_file():
            self.send_error(404)
            return
        data = f.read_bytes()
        start = 0
        if rng and srv.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if n <= srv.drop_first:  # half the body, then the connection goes away
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        for i in range(0, len(body), 4096):
            self.wfile.write(body[i:i + 4096])
            if srv.delay:
                time.sleep(srv.delay)


@contextmanager
def serve(root: Path, **kwargs) -> Iterator[FileServer]:
    """A running FileServer for the `with` block."""
    srv = FileServer(root, **kwargs)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
