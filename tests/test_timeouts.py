"""Timeouts (issue 10 item 6, SPEC §4): every request has a connect and a read timeout, every command an
overall deadline; a silent server, a stalled download and a trickling one all end in exit 4 with one
line (one JSON object with --json), nothing partial at a target path, and a rerun that finishes.

The stalls are real: a loopback socket that accepts and never answers, and the test proxy holding a
request (released when the test ends) or trickling a body. The knobs under test are the documented
ones (``SYNCOPS_READ_TIMEOUT``, ``SYNCOPS_DEADLINE`` / ``--deadline``), lowered so each stall is met
within seconds; no assertion is about elapsed time.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import wire
from tests.conftest import clean_environment, run_cli
from tests.expect import FAKE_AWS, assert_hydrated, assert_one_line_error, data_files
from tests.proxy import FORWARD, Fault, Proxy

FILES = {
    "small/a.json": b'{"a": 1}\n',
    "small/b.txt": b"bee\n" * 100,
    "large/slow.bin": bytes(range(256)) * 4096,  # 1 MiB: 64 trickled pieces of 16 KiB
}

#: A stall is met in about a second, and a persistent one is tried twice (S3) or for 3 s (GCS).
QUICK = {"SYNCOPS_READ_TIMEOUT": "1", "AWS_MAX_ATTEMPTS": "2", "SYNCOPS_GCS_RETRY_TIMEOUT": "3"}


class SilentServer:
    """Accepts TCP connections and reads what is sent, but never answers a byte."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)  # kept open (and unread) until close()

    def close(self) -> None:
        self._listener.close()
        for conn in self._open:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.mark.parametrize("backend", ["s3", "s3-boto3", "gcs"])
def test_a_silent_server_fails_the_command_at_the_read_timeout(silent: SilentServer, backend: str):
    """Nothing ever answers: each attempt ends at the read timeout, the retries too, then exit 4
    (not a hang, not "empty"), in one line and one JSON object."""
    env = {**QUICK}
    if backend.startswith("s3"):
        env.update(FAKE_AWS, AWS_ENDPOINT_URL=silent.endpoint, AWS_REGION="us-east-1")
        if backend == "s3-boto3":
            env["SYNCOPS_S3_DATA_PLANE"] = "boto3"
        url = "s3://silent-bucket/env"
    else:
        env.update(STORAGE_EMULATOR_HOST=silent.endpoint)
        url = "gs://silent-bucket/env"
    result = run_cli("discover", url, "--json", env={**clean_environment(), **env})

    assert_one_line_error(result, 4, "", as_json=True)
    message = result.json["error"].lower()
    assert "timed out" in message or "timeout" in message, message
    assert silent.connections >= 2, "the timed-out request was tried again"


@pytest.mark.parametrize(
    "backend,plane", [("s3", "obstore"), ("s3", "boto3"), ("gcs", "")], ids=["s3", "s3-boto3-downloads", "gcs"]
)
def test_a_stalled_download_fails_its_key_alone_and_the_others_hydrate(
    make_datastore, tmp_path: Path, backend: str, plane: str
):
    """The proxy holds every GET of one object (forever, for the test's length): that key is reported
    after its read timeouts, the other keys hydrate, the base is written, exit 4."""
    ds = make_datastore(backend)
    ds.seed(FILES)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    target = tmp_path / "cache"
    release = threading.Event()
    with Proxy(ds.endpoint) as proxy:
        stalled = proxy.add_fault(
            Fault(
                lambda m, p: wire.is_object_get(backend)(m, p) and "slow.bin" in p,
                status=FORWARD,
                times=None,
                before=lambda: release.wait(60),
            )
        )
        extra = {**QUICK, **({"SYNCOPS_S3_DATA_PLANE": plane} if plane else {})}
        try:
            result = run_cli("hydrate", ds.url, str(target), "--json", env=wire.proxied_env(backend, ds.env, proxy, **extra))
        finally:
            release.set()

    assert result.code == 4, result.stderr
    assert "Traceback" not in result.stderr
    assert stalled.hits >= 2, "the stalled GET was tried again before the key was given up"
    report = result.json
    assert [p["key"] for p in report["problems"]] == ["large/slow.bin"]
    assert (report["pulled"], report["status"]) == (2, "found")
    brought = {k: v for k, v in FILES.items() if k != "large/slow.bin"}
    assert data_files(target) == brought
    base = (target / ".datastore-index.json").read_text()
    assert "small/a.json" in base and "large/slow.bin" not in base


@pytest.mark.parametrize("backend", ["s3", "gcs"])
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_trickling_download_is_ended_by_the_command_deadline(make_datastore, tmp_path: Path, backend: str, how: str):
    """A server that sends a piece every quarter second never trips a read timeout; the command's
    deadline ends it: exit 4, one line (one JSON object), no file at the trickled key's path; a
    rerun without the trickle finishes the job."""
    ds = make_datastore(backend)
    ds.seed(FILES)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    target = tmp_path / "cache"
    with Proxy(ds.endpoint) as proxy:
        slow = proxy.add_fault(
            Fault(
                lambda m, p: wire.is_object_get(backend)(m, p) and "slow.bin" in p,
                status=FORWARD,
                times=None,
                trickle=0.25,
            )
        )
        env = wire.proxied_env(backend, ds.env, proxy)
        if how == "flag":
            result = run_cli("hydrate", ds.url, str(target), "--json", "--deadline", "3", env=env)
        else:
            result = run_cli("hydrate", ds.url, str(target), env={**env, "SYNCOPS_DEADLINE": "3"})

        assert_one_line_error(result, 4, "deadline passed: stopped after 3 s", as_json=how == "flag")
        assert slow.hits == 1
        assert not (target / "large" / "slow.bin").exists()
        assert all(v == FILES[k] for k, v in data_files(target).items() if k in FILES), "nothing torn"

        proxy.state.faults.remove(slow)
        rerun = run_cli("hydrate", ds.url, str(target), "--json", env=env)
    assert rerun.code == 0, rerun.stderr
    assert_hydrated(target, FILES)


@pytest.mark.parametrize(
    "args,env,needle",
    [
        (["--deadline", "-1"], {}, "--deadline"),
        (["--deadline", "soon"], {}, "--deadline"),
        ([], {"SYNCOPS_DEADLINE": "nan"}, "--deadline"),
        ([], {"SYNCOPS_READ_TIMEOUT": "fast"}, "SYNCOPS_READ_TIMEOUT='fast'"),
        ([], {"SYNCOPS_CONNECT_TIMEOUT": "0"}, "SYNCOPS_CONNECT_TIMEOUT='0'"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_bad_timeout_settings_are_bad_input(silent: SilentServer, args, env, needle, as_json):
    """A timeout knob that is not a positive number is refused up front (exit 2), before any request."""
    full_env = {**clean_environment(), **FAKE_AWS, "AWS_ENDPOINT_URL": silent.endpoint, **env}
    result = run_cli("discover", "s3://some-bucket", *args, *(["--json"] if as_json else []), env=full_env)
    assert_one_line_error(result, 2, needle, as_json=as_json)
    assert silent.connections == 0


@pytest.mark.parametrize("value", ["0", "1e3", "99999999999999999999", "101"])
def test_an_attempt_count_out_of_range_is_bad_input(silent: SilentServer, value: str):
    """An attempt count that is not a whole number from 1 to 100 is refused before any request (a huge
    one would retry a dead server for days)."""
    env = {**clean_environment(), **FAKE_AWS, "AWS_ENDPOINT_URL": silent.endpoint, "SYNCOPS_MAX_ATTEMPTS": value}
    result = run_cli("discover", "s3://some-bucket", "--json", env=env)
    assert_one_line_error(result, 2, f"SYNCOPS_MAX_ATTEMPTS={value!r}", as_json=True)
    assert silent.connections == 0
