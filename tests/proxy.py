"""A loopback HTTP proxy in front of a test server: counts every request and injects faults.

Used to prove request budgets (exact counts per kind of request) and to show that transient
failures (500/503/429, connection resets) are retried while persistent ones fail loudly.
The client talks to the proxy as if it were the server: the Host header is passed through
unchanged, so SigV4 signatures still verify upstream.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Seen:
    method: str
    path: str  # path and query, as sent
    status: int  # what the client got; 0 for a reset connection


@dataclass
class Fault:
    """Answer matching requests with ``status`` (or reset the connection when ``status`` is 0).

    ``times`` is how many matching requests are hit (None: every one); ``skip`` lets that many
    matching requests through first.
    """

    match: Callable[[str, str], bool]
    status: int = 503
    times: int | None = 1
    skip: int = 0
    hits: int = 0

    def take(self, method: str, path: str) -> bool:
        if not self.match(method, path):
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        self.hits += 1
        return True


#: Rewrites an upstream response body: (method, path, status, body) -> body.
Rewrite = Callable[[str, str, int, bytes], bytes]


@dataclass
class ProxyState:
    upstream: str
    seen: list[Seen] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ProxyState

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _record(self, status: int) -> None:
        with self.state.lock:
            self.state.seen.append(Seen(self.command, self.path, status))

    def _fault(self) -> Fault | None:
        with self.state.lock:
            for fault in self.state.faults:
                if fault.take(self.command, self.path):
                    return fault
        return None

    def _reset(self) -> None:
        self._record(0)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self._fault()
        if fault is not None:
            if fault.status == 0:
                self._reset()
                return
            payload = f"<Error><Code>Injected{fault.status}</Code><Message>injected</Message></Error>".encode()
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            if fault.status in (429, 503):
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(payload)
            self._record(fault.status)
            return
        target = urlsplit(self.state.upstream)
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            status = response.status
            reply_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS]
        finally:
            upstream.close()
        for rewrite in self.state.rewrites:
            data = rewrite(self.command, self.path, status, data)
        self.send_response(status)
        for name, value in reply_headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._record(status)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle


class Proxy:
    """``with Proxy(upstream) as proxy:`` — point clients at ``proxy.endpoint``."""

    def __init__(self, upstream: str) -> None:
        self.state = ProxyState(upstream=upstream.rstrip("/"))
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def seen(self) -> list[Seen]:
        with self.state.lock:
            return list(self.state.seen)

    def reset_counts(self) -> None:
        with self.state.lock:
            self.state.seen.clear()

    def add_fault(self, fault: Fault) -> Fault:
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    def count(self, method: str | None = None, predicate: Callable[[str], bool] | None = None) -> int:
        return sum(
            1
            for s in self.seen
            if (method is None or s.method == method) and (predicate is None or predicate(s.path))
        )
