"""A real HTTP proxy on 127.0.0.1 in front of a real registry that fails on purpose.

Used to produce a registry failing part-way through a push: every request is forwarded to the
registry (with the proxy's own Host, so upload locations point back at the proxy) until the
rule says to answer 500 instead. Not a mock: skopeo talks HTTP to it and it to the registry.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests

Rule = Callable[[str, str, int], bool]
"""(method, path, number of this request) -> answer 500."""


def _read_body(handler: http.server.BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                return bytes(out)
            out += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


@contextmanager
def fault_proxy(upstream: str, fail: Rule, *, drop: bool = False) -> Iterator[str]:
    """Serve on a free 127.0.0.1 port; yield its host:port. When ``fail`` says so, answer 500,
    or with ``drop`` close the connection unanswered, as a registry that died does."""
    count = {"n": 0}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _any(self) -> None:
            try:
                body = _read_body(self)
                with lock:
                    count["n"] += 1
                    n = count["n"]
                if fail(self.command, self.path, n) and drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fail(self.command, self.path, n):
                    msg = b'{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}'
                    self.send_response(500)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in {"transfer-encoding", "content-length", "host"}
                }
                headers["Host"] = self.headers.get("Host", "")
                r = requests.request(
                    self.command,
                    f"http://{upstream}{self.path}",
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=60,
                )
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in {
                        "transfer-encoding",
                        "content-length",
                        "connection",
                        "content-encoding",
                    }:
                        self.send_header(k, v)
                # A HEAD answer has no body but says how long the body would be.
                length = r.headers.get("Content-Length", "0") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(r.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(r.content)
            except Exception as e:  # a proxy handler must never die on a request
                with contextlib.suppress(OSError):
                    self.send_error(502, str(e)[:200])

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
