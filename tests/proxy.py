"""A loopback HTTP proxy in front of a test server: counts every request and injects faults.

Used to prove request budgets (exact counts per kind of request) and to show that transient
failures (500/503/429, connection resets) are retried while persistent ones fail loudly.
The client talks to the proxy as if it were the server: the Host header is passed through
unchanged, so SigV4 signatures still verify upstream.
"""

from __future__ import annotations

import http.client
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}

#: ``Fault.status`` values that are not HTTP statuses.
RESET = 0  # reset the connection before any response byte
FORWARD = -1  # pass the request upstream (after ``delay``/``before``/``gather``), optionally ``cut``/``trickle``


@dataclass
class Seen:
    method: str
    path: str  # path and query, as sent
    status: int  # what the client got; 0 for a reset connection
    headers: dict[str, str] = field(default_factory=dict)  # request headers, names lower-cased
    body: bytes = b""  # the first 4 KiB of the request body (a GCS upload names its object there)


@dataclass
class Fault:
    """Answer matching requests with ``status`` (or reset the connection when ``status`` is 0).

    ``times`` is how many matching requests are hit (None: every one); ``skip`` lets that many
    matching requests through first. Optional extras, all off by default:

    * ``headers``: the request headers (lower-cased names) must satisfy this too; ``body``: the
      request body must (a GCS upload names its object in the body);
    * ``delay``: seconds to wait before acting; ``before``: a callable run before acting (e.g. a
      concurrent writer changing an object between a client's read and its write);
    * ``gather``: hold matching requests until this many are waiting (or ``gather_timeout`` passed),
      so racing clients really are all in the window at once;
    * with ``status=FORWARD``: ``cut`` sends the real status, headers (full Content-Length) and only
      the first ``cut`` body bytes, then resets (a body broken off mid-stream; with ``quietly``, closes
      cleanly instead, as a server or middlebox that gives up may: no error, just too few bytes); ``trickle`` sends the
      body in 16 KiB pieces this many seconds apart (a slow download); ``drop_response`` lets the
      request reach the server and then resets the connection instead of answering (a write that
      landed although the client saw it fail);
    * ``reply_body`` / ``reply_headers``: the answer of an injected status is this body (an S3
      ``<Error>`` document, a GCS JSON error) with these headers (``Retry-After``, ``x-amz-bucket-region``,
      ``Content-Type``) instead of the default ``Injected<status>`` error; ``status=200`` with an
      ``<Error>`` body is S3's "200 OK that failed".
    """

    match: Callable[[str, str], bool]
    status: int = 503
    times: int | None = 1
    skip: int = 0
    hits: int = 0
    headers: Callable[[Mapping[str, str]], bool] | None = None
    body: Callable[[bytes], bool] | None = None
    delay: float = 0.0
    before: Callable[[], None] | None = None
    gather: int = 0
    gather_timeout: float = 30.0
    cut: int | None = None
    quietly: bool = False
    trickle: float = 0.0
    drop_response: bool = False
    reply_body: bytes | None = None
    reply_headers: Mapping[str, str] | None = None
    _arrived: int = 0
    _gathered: threading.Condition = field(default_factory=threading.Condition)

    def take(self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b"") -> bool:
        if not self.match(method, path):
            return False
        if self.headers is not None and not self.headers(headers or {}):
            return False
        if self.body is not None and not self.body(body):
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        self.hits += 1
        return True

    def hold(self) -> None:
        """Run ``delay``, ``gather`` and ``before`` for one matching request (outside the proxy lock)."""
        if self.delay:
            time.sleep(self.delay)
        if self.gather:
            with self._gathered:
                self._arrived += 1
                self._gathered.notify_all()
                self._gathered.wait_for(lambda: self._arrived >= self.gather, timeout=self.gather_timeout)
        if self.before is not None:
            self.before()


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
    _body_head: bytes = b""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _record(self, status: int) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.state.lock:
            self.state.seen.append(Seen(self.command, self.path, status, headers, self._body_head))

    def _fault(self) -> Fault | None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.state.lock:
            for fault in self.state.faults:
                if fault.take(self.command, self.path, headers, self._body_head):
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
        self._body_head = body[:4096]
        fault = self._fault()
        if fault is not None:
            fault.hold()
        if fault is not None and fault.status != FORWARD:
            if fault.status == RESET:
                self._reset()
                return
            payload = fault.reply_body
            if payload is None:
                payload = f"<Error><Code>Injected{fault.status}</Code><Message>injected</Message></Error>".encode()
            reply = {"Content-Type": "application/xml"}
            if fault.status in (429, 503):
                reply["Retry-After"] = "0"
            reply.update(fault.reply_headers or {})
            self._record(fault.status)  # before a byte leaves: the client never acts on an uncounted answer
            self.send_response(fault.status)
            for name, value in reply.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        target = urlsplit(self.state.upstream)
        upstream = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            status = response.status
            reply_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS]
        finally:
            upstream.close()
        if fault is not None and fault.drop_response:
            self._reset()
            return
        for rewrite in self.state.rewrites:
            data = rewrite(self.command, self.path, status, data)
        cut = fault is not None and fault.cut is not None and bool(data) and self.command != "HEAD"
        trickled = fault is not None and bool(fault.trickle)
        if not cut and not trickled:
            # Before a byte leaves: the client never acts on an answer the test has not counted yet.
            # (A trickled answer is counted when it is complete: tests wait for finished transfers.)
            self._record(status)
        self.send_response(status)
        for name, value in reply_headers:
            if name.lower() != "content-length" or self.command == "HEAD":
                self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            data = b""
        if cut:
            assert fault is not None and fault.cut is not None
            self.wfile.write(data[: fault.cut])
            self.wfile.flush()
            if fault.quietly:
                self._record(0)
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_WR)
            else:
                self._reset()
            return
        if fault is not None and fault.trickle:
            for start in range(0, len(data), 16 * 1024):
                self.wfile.write(data[start : start + 16 * 1024])
                self.wfile.flush()
                time.sleep(fault.trickle)
            self._record(status)
        else:
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle


class Proxy:
    """``with Proxy(upstream) as proxy:`` — point clients at ``proxy.endpoint``."""

    def __init__(self, upstream: str, *, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: answer HTTPS with this server context (its certificate) instead of plain HTTP."""
        self.state = ProxyState(upstream=upstream.rstrip("/"))
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A client killed mid-transfer (crash tests) breaks the pipe: expected, not worth a traceback.
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        if tls is not None:
            # The handshake is made in the handler's thread (a client that refuses the certificate
            # must not stall the accepting one).
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        scheme = "https" if tls is not None else "http"
        self.endpoint = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
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
            1 for s in self.seen if (method is None or s.method == method) and (predicate is None or predicate(s.path))
        )


class Held:
    """Requests held at the proxy (a :class:`Fault`'s ``before``) until :meth:`release` (or the end of a
    ``with``); the test waits for a number of them to be waiting, without timing anything."""

    def __init__(self) -> None:
        self._arrived = threading.Condition()
        self.count = 0
        self._released = threading.Event()

    def hold(self) -> None:
        with self._arrived:
            self.count += 1
            self._arrived.notify_all()
        self._released.wait(timeout=120)

    def wait_for(self, count: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        with self._arrived:
            reached = self._arrived.wait_for(lambda: self.count >= count or proc.poll() is not None, timeout)
        assert proc.poll() is None, "the process finished before it could be killed half-way"
        assert reached, "the process never got half-way"

    def release(self) -> None:
        self._released.set()

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()  # whatever happened, no request stays held (the proxy can shut down)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc`` (it must still be running) and reap it."""
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
