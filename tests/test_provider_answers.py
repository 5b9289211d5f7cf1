"""The providers' documented answers that the local servers never give, injected through the loopback
proxy in front of SeaweedFS and fake-gcs-server, each handled as the provider documents it
(issue 10 item 9; README "Reliability", the provider-answer table):

* S3 ``409 ConditionalRequestConflict`` on a conditional write: another conditional write to the key is in
  flight, retry (same conditions); persistent, exit 4 — never a lost race (412 / exit 7);
* ``503 SlowDown`` with ``Retry-After`` and ``429``: backed off at least what the server asked for;
* ``200 OK`` CompleteMultipartUpload / CopyObject whose body is an ``<Error>``: a failure, retried;
* GCS ``429 rateLimitExceeded`` on index writes (more than one write per second to one object): backed off,
  retried (the write is conditional, so retry-safe); an unconditional GCS write is never retried;
* S3 ``301 PermanentRedirect`` / ``307`` naming the bucket's region: botocore re-sends once to that region,
  the obstore data plane hands over to it, and a redirect that persists is one line naming the region (exit 2).

Waits are observed through :mod:`syncops.retry` (recorded, not slept) in-process, or the CLI runs with the
proxy's ``Retry-After: 0``; nothing here measures time.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from syncops import retry
from tests import wire
from tests.conftest import Datastore, run_cli
from tests.expect import assert_index_is
from tests.proxy import FORWARD, RESET, Fault, Proxy

FILES = {"data/a.json": b'{"a": 1}\n', "data/b.bin": bytes(range(256)) * 40, "top.csv": b"x,y\n1,2\n"}

CONFLICT_409 = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ConditionalRequestConflict</Code><Message>A conflicting '
    b"operation occurred. If using PutObject you can retry the request.</Message></Error>"
)
SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
ERROR_IN_200 = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal '
    b"error. Please try again.</Message><RequestId>656c76696e67</RequestId></Error>"
)
GCS_429 = (
    b'{"error": {"code": 429, "message": "The object exceeded the rate limit for object mutation operations '
    b'(create, update, and delete).", "errors": [{"reason": "rateLimitExceeded", "domain": "usageLimits"}]}}'
)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[retry.Pause]:
    """Every wait the retry policy decides on, in order; none is slept."""
    seen: list[retry.Pause] = []
    monkeypatch.setattr(retry, "sleep", lambda seconds: None)
    monkeypatch.setattr(retry, "observers", [seen.append])
    return seen


def conditional_s3_put(kind: str, **options: Any) -> Fault:
    """A fault on S3 PUTs of ``kind`` (index or data) that carry ``If-None-Match`` or ``If-Match``."""
    return Fault(
        lambda method, path: wire.request_kind("s3", method, path) == kind,
        headers=lambda h: "if-none-match" in h or "if-match" in h,
        **options,
    )


def put_conditions(proxy: Proxy, kind: str) -> list[tuple[str | None, str | None, int]]:
    return [
        (s.headers.get("if-none-match"), s.headers.get("if-match"), s.status)
        for k, s in wire.kinds("s3", proxy)
        if k == kind
    ]


def _write(root: Path, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)


# -- S3 409 ConditionalRequestConflict ---------------------------------------------------------------------


def test_a_409_conditional_request_conflict_on_the_index_publish_is_retried_under_the_same_condition(
    make_datastore,
):
    ds = make_datastore("s3")
    ds.seed(FILES)
    with Proxy(ds.endpoint) as proxy:
        conflict = proxy.add_fault(conditional_s3_put(wire.INDEX_PUT, status=409, reply_body=CONFLICT_409))
        result = run_cli("discover", ds.url, "--json", env=wire.proxied_env("s3", ds.env, proxy))

        assert result.code == 0, result.stderr
        assert conflict.hits == 1
        # The same create-only write twice: the 409, then the one that landed. No adoption attempt.
        assert put_conditions(proxy, wire.INDEX_PUT) == [("*", None, 409), ("*", None, 200)]
    assert (result.json["status"], result.json["index_written"]) == ("discovered", True)
    assert_index_is(ds, FILES)


def test_a_409_on_a_pushed_data_write_is_retried_and_the_push_completes(make_datastore, tmp_path: Path):
    ds = make_datastore("s3")
    ds.seed(FILES)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    added = {"new/one.json": b'{"one": 1}', "new/two.json": b'{"two": 2}'}
    _write(tmp_path / "src", added)
    with Proxy(ds.endpoint) as proxy:
        conflict = proxy.add_fault(conditional_s3_put(wire.OBJECT_PUT, status=409, reply_body=CONFLICT_409))
        result = run_cli("push", ds.url, str(tmp_path / "src"), "--json", env=wire.proxied_env("s3", ds.env, proxy))

        assert result.code == 0, result.stderr
        assert conflict.hits == 1
        data_puts = put_conditions(proxy, wire.OBJECT_PUT)
        assert sorted(data_puts, key=lambda p: p[2]) == [("*", None, 200)] * 2 + [("*", None, 409)]
        assert wire.count("s3", proxy, wire.INDEX_PUT, 200) == 1
    assert (result.json["pushed"], result.json["conflicts"]) == (2, [])
    for key, data in added.items():
        assert ds.raw.get(key) == data
    index = ds.index()
    assert index is not None and set(added) <= set(index["entries"])


@pytest.mark.parametrize("command", ["discover", "push"])
def test_a_409_that_persists_exits_4_not_as_a_conflict(make_datastore, tmp_path: Path, command: str):
    """On every attempt another write is "in flight": a remote failure (4), not a lost race to adopt
    and not a conflict (7); nothing is published."""
    ds = make_datastore("s3")
    ds.seed(FILES)
    if command == "push":
        assert run_cli("discover", ds.url, env=ds.env).code == 0
        _write(tmp_path / "src", {"new/one.json": b"1"})
    version = ds.index_version()
    kind = wire.INDEX_PUT if command == "discover" else wire.OBJECT_PUT
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(conditional_s3_put(kind, status=409, reply_body=CONFLICT_409, times=None))
        env = wire.proxied_env("s3", ds.env, proxy, SYNCOPS_MAX_ATTEMPTS="3")
        args = ["discover", ds.url] if command == "discover" else ["push", ds.url, str(tmp_path / "src")]
        result = run_cli(*args, "--json", env=env)

        assert result.code == 4, (result.stdout, result.stderr)
        assert [status for _, _, status in put_conditions(proxy, kind)] == [409] * 3  # SYNCOPS_MAX_ATTEMPTS
        assert wire.count("s3", proxy, wire.INDEX_PUT, 200) == 0
        if command == "discover":
            # Not read as a lost race: no re-read of the index to adopt one that is not there.
            assert wire.count("s3", proxy, wire.INDEX_GET) == 1
    assert "ConditionalRequestConflict" in result.stderr and "in flight" in result.stderr
    assert result.json["exit_code"] == 4
    assert ds.index_version() == version
    assert ds.raw.get("new/one.json") is None


# -- throttling: 503 SlowDown with Retry-After, 429 ------------------------------------------------------


def test_slow_down_and_429_wait_what_retry_after_asks_then_succeed(make_datastore, waits):
    """In-process, so the waits are recorded rather than slept: 503 SlowDown with ``Retry-After: 7``
    on a listing page (delta-seconds), 429 with an HTTP-date an hour ahead on the index publish (capped)."""
    from syncops import api

    ds = make_datastore("s3")
    ds.seed(FILES)
    later = format_datetime(datetime.now(timezone.utc) + timedelta(hours=1), usegmt=True)
    with Proxy(ds.endpoint) as proxy:
        slow = proxy.add_fault(
            Fault(wire.is_list("s3"), status=503, reply_body=SLOW_DOWN, reply_headers={"Retry-After": "7"})
        )
        busy = proxy.add_fault(
            conditional_s3_put(wire.INDEX_PUT, status=429, reply_headers={"Retry-After": later}, times=1)
        )
        report = api.discover(ds.url, endpoint_url=proxy.endpoint)

        assert (slow.hits, busy.hits) == (1, 1)
        assert wire.count("s3", proxy, wire.LIST) == 2 and wire.count("s3", proxy, wire.INDEX_PUT) == 2
    assert (report.status, report.index_written) == ("discovered", True)
    assert_index_is(ds, FILES)
    assert [(w.what.split(" ")[0], w.failures, w.decision.verdict) for w in waits] == [
        ("ListObjectsV2", 1, retry.Verdict.THROTTLE),
        ("PutObject", 1, retry.Verdict.THROTTLE),
    ]
    assert [w.delay for w in waits] == [7.0, retry.RETRY_AFTER_CAP]


def test_throttling_on_the_boto3_download_path_honours_retry_after(make_datastore, waits, monkeypatch):
    """Object GETs on the boto3 plane (``_fetch``'s own loop) read the same header."""
    from syncops import api
    from syncops.stores import open_store

    ds = make_datastore("s3")
    ds.seed(FILES)
    assert api.discover(ds.url).index_written
    with Proxy(ds.endpoint) as proxy:
        throttled = proxy.add_fault(
            Fault(wire.is_object_get("s3"), status=503, reply_body=SLOW_DOWN, reply_headers={"Retry-After": "3"})
        )
        monkeypatch.setenv("SYNCOPS_S3_DATA_PLANE", "boto3")
        store = open_store(ds.url, endpoint_url=proxy.endpoint)
        try:
            out = io.BytesIO()
            store.download("data/b.bin", out)
        finally:
            store.close()
        assert throttled.hits == 1 and wire.count("s3", proxy, wire.OBJECT_GET) == 2
    assert out.getvalue() == FILES["data/b.bin"]
    assert [(w.decision.verdict, w.delay) for w in waits] == [(retry.Verdict.THROTTLE, 3.0)]


def test_gcs_429_on_index_writes_is_backed_off_and_the_conditional_write_retried(make_datastore):
    ds = make_datastore("gcs")
    ds.seed(FILES)
    with Proxy(ds.endpoint) as proxy:
        limited = proxy.add_fault(
            wire.index_write_fault(
                "gcs", status=429, times=2, reply_body=GCS_429, reply_headers={"Content-Type": "application/json"}
            )
        )
        result = run_cli("discover", ds.url, "--json", env=wire.proxied_env("gcs", ds.env, proxy))

        assert result.code == 0, result.stderr
        assert limited.hits == 2
        writes = [s for k, s in wire.kinds("gcs", proxy) if k == wire.INDEX_PUT]
        assert [s.status for s in writes] == [429, 429, 200]
        assert all("ifGenerationMatch=0" in s.path for s in writes), "every try kept the create-only condition"
    assert (result.json["status"], result.json["index_written"]) == ("discovered", True)
    assert_index_is(ds, FILES)


def test_gcs_429_waits_what_retry_after_asks(make_datastore, monkeypatch, waits):
    from syncops import api

    ds = make_datastore("gcs")
    ds.seed(FILES)
    with Proxy(ds.endpoint) as proxy:
        limited = proxy.add_fault(
            wire.index_write_fault(
                "gcs",
                status=429,
                reply_body=GCS_429,
                reply_headers={"Content-Type": "application/json", "Retry-After": "5"},
            )
        )
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        report = api.discover(ds.url)
        assert limited.hits == 1 and wire.count("gcs", proxy, wire.INDEX_PUT) == 2
    assert (report.status, report.index_written) == ("discovered", True)
    assert [(w.decision.verdict, w.decision.reason, w.delay) for w in waits] == [
        (retry.Verdict.THROTTLE, "429 rateLimitExceeded", 5.0)
    ]


def test_gcs_never_retries_an_unconditional_write(make_datastore):
    """The documented fallback for a refused condition is one unconditional write; GCS documents such a
    write as not idempotent, so a 429 on it is not retried: exit 4, nothing published."""
    ds = make_datastore("gcs")
    ds.seed(FILES)
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(wire.conditional_write_fault("gcs", 501, times=1))
        proxy.add_fault(
            Fault(
                lambda method, path: wire.is_write("gcs")(method, path) and "ifGenerationMatch" not in path,
                status=429,
                times=None,
                reply_body=GCS_429,
                reply_headers={"Content-Type": "application/json"},
            )
        )
        result = run_cli("discover", ds.url, "--json", env=wire.proxied_env("gcs", ds.env, proxy))

        assert result.code == 4, (result.stdout, result.stderr)
        assert [s.status for k, s in wire.kinds("gcs", proxy) if k == wire.INDEX_PUT] == [501, 429]
    assert ds.index() is None


# -- 200 OK whose body is an error ----------------------------------------------------------------------


def _complete_multipart(method: str, path: str) -> bool:
    return method == "POST" and "uploadId=" in path


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """Multipart uploads above 6 MiB in 5 MiB parts (S3's smallest), instead of above 64 MiB."""
    from syncops.stores import s3

    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(s3, "PART_SIZE", 5 * 1024 * 1024)
    return 11 * 1024 * 1024 + 17


def _cli_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from syncops import cli

    with pytest.raises(SystemExit) as exited:
        cli.main(list(args))
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out + captured.err


def conditional_complete_conflict(*, times: int | None) -> Fault:
    """S3's 409 ConditionalRequestConflict on a CompleteMultipartUpload that carries ``If-None-Match``."""
    return Fault(
        _complete_multipart,
        headers=lambda h: "if-none-match" in h,
        status=409,
        reply_body=CONFLICT_409,
        times=times,
    )


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "persistent"])
def test_an_error_inside_a_200_complete_multipart_upload_is_a_failure_retried(
    make_datastore, tmp_path: Path, small_parts: int, waits, capsys, monkeypatch, persistent: bool
):
    ds: Datastore = make_datastore("s3")
    assert run_cli("discover", ds.url, env=ds.env).code == 0  # an empty datastore
    big = bytes(range(251)) * (small_parts // 251 + 1)
    _write(tmp_path / "src", {"big.bin": big[:small_parts]})
    with Proxy(ds.endpoint) as proxy:
        failed = proxy.add_fault(
            Fault(_complete_multipart, status=200, reply_body=ERROR_IN_200, times=None if persistent else 1)
        )
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        monkeypatch.setenv("SYNCOPS_MAX_ATTEMPTS", "3")
        code, output = _cli_in_process(capsys, "push", ds.url, str(tmp_path / "src"))

        completes = [s.status for s in proxy.seen if _complete_multipart(s.method, s.path)]
        assert wire.count("s3", proxy, wire.OBJECT_PUT) == 3, "three parts, each sent once"
        if persistent:
            assert code == 4, output
            assert completes == [200] * 3 and failed.hits == 3  # SYNCOPS_MAX_ATTEMPTS
            assert "InternalError" in output
            assert ds.raw.get("big.bin") is None
        else:
            assert code == 0, output
            assert completes == [200, 200] and failed.hits == 1
            assert ds.raw.get("big.bin") == big[:small_parts]
    assert [w.what.split(" ")[0] for w in waits] == ["CompleteMultipartUpload"] * (2 if persistent else 1)
    assert all(w.decision.reason == "500 InternalError" for w in waits)


def test_a_409_on_a_conditional_complete_multipart_upload_starts_the_upload_over(
    make_datastore, tmp_path: Path, small_parts: int, waits, capsys, monkeypatch
):
    """S3 documents that a multipart upload whose conditional CompleteMultipartUpload got 409
    ConditionalRequestConflict is begun again (CreateMultipartUpload, every part), not completed again."""
    ds: Datastore = make_datastore("s3")
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    big = (bytes(range(251)) * (small_parts // 251 + 1))[:small_parts]
    _write(tmp_path / "src", {"big.bin": big})
    with Proxy(ds.endpoint) as proxy:
        conflict = proxy.add_fault(conditional_complete_conflict(times=1))
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        code, output = _cli_in_process(capsys, "push", ds.url, str(tmp_path / "src"))

        assert code == 0, output
        assert conflict.hits == 1
        assert [s.status for s in proxy.seen if _complete_multipart(s.method, s.path)] == [409, 200]
        assert sum(1 for s in proxy.seen if s.method == "POST" and s.path.endswith("?uploads")) == 2
        assert wire.count("s3", proxy, wire.OBJECT_PUT) == 6, "every part sent again"
    assert ds.raw.get("big.bin") == big
    assert [w.what.split(" ")[0] for w in waits] == ["multipart"]


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "persistent"])
def test_a_409_on_the_conditional_completion_of_a_multipart_copy_starts_the_copy_over(
    make_datastore, waits, monkeypatch, persistent: bool
):
    """Above S3's 5 GiB CopyObject limit a seed copies by UploadPartCopy; a 409 on its conditional
    CompleteMultipartUpload begins that copy again (a new upload, every part copied again), as for an
    upload; a 409 that persists fails the seed (exit 4) with no object at the key."""
    from syncops.errors import Unavailable
    from syncops.seed import seed
    from syncops.stores import open_store, s3

    monkeypatch.setattr(s3, "COPY_OBJECT_LIMIT", 5 * 1024 * 1024)
    monkeypatch.setattr(s3, "COPY_PART_SIZE", 5 * 1024 * 1024)
    monkeypatch.setenv("SYNCOPS_MAX_ATTEMPTS", "3")
    big = bytes(range(256)) * (28 * 1024)  # 7 MiB: parts of 5 and 2 MiB
    src, dst = make_datastore("s3"), make_datastore("s3")
    src.seed({"big.bin": big})
    with Proxy(src.endpoint) as proxy:
        conflict = proxy.add_fault(conditional_complete_conflict(times=None if persistent else 1))
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        if persistent:
            with pytest.raises(Unavailable, match="ConditionalRequestConflict"):
                seed(open_store(src.url), open_store(dst.url))
        else:
            report = seed(open_store(src.url), open_store(dst.url))
            assert (report.status, report.copied, report.copy_mode) == ("seeded", 1, "server-side")
        uploads = sum(1 for s in proxy.seen if s.method == "POST" and s.path.endswith("?uploads"))
        part_copies = sum(1 for s in proxy.seen if "x-amz-copy-source-range" in s.headers)
        completes = [s.status for s in proxy.seen if _complete_multipart(s.method, s.path)]
    attempts = 3 if persistent else 2
    assert conflict.hits == (3 if persistent else 1)
    assert uploads == attempts and part_copies == 2 * attempts, "begun again: a new upload, every part again"
    assert completes == ([409] * 3 if persistent else [409, 200])
    assert [w.what.split(" ")[:2] for w in waits] == [["multipart", "copy"]] * (attempts - 1)
    if persistent:
        assert dst.raw.get("big.bin") is None
    else:
        assert dst.raw.get("big.bin") == big


def test_an_error_inside_a_200_copy_object_is_retried(make_datastore, capsys, waits):
    src, dst = make_datastore("s3"), make_datastore("s3")
    src.seed(FILES)
    with Proxy(src.endpoint) as proxy:
        failed = proxy.add_fault(
            Fault(
                lambda method, path: method == "PUT",
                headers=lambda h: "x-amz-copy-source" in h,
                status=200,
                reply_body=ERROR_IN_200,
            )
        )
        code, output = _cli_in_process(capsys, "seed", src.url, dst.url, "--endpoint-url", proxy.endpoint)
        copies = [s for s in proxy.seen if "x-amz-copy-source" in s.headers]

        assert code == 0, output
        assert failed.hits == 1
        assert len(copies) == len(FILES) + 1, "one copy was sent twice, the others once"
    for key, data in FILES.items():
        assert dst.raw.get(key) == data
    assert [w.decision.reason for w in waits] == ["500 InternalError"]


@pytest.mark.parametrize("lean", ["on", "off"])
@pytest.mark.parametrize("answer", ["error-inside-200", "cut-mid-page"])
def test_a_listing_page_that_is_an_error_inside_a_200_or_cut_short_is_retried(
    make_datastore, capsys, monkeypatch, waits, answer: str, lean: str
):
    """The lean listing parser runs ahead of botocore's own check of 200 answers: a page it does not
    take (an ``<Error>`` in a 200, a body that breaks off) must still reach that check, be retried,
    and never read as a short, final page. Discovery's own requests (stores/s3_lean.py) retry it too."""
    ds: Datastore = make_datastore("s3")
    monkeypatch.setenv("SYNCOPS_S3_LEAN", lean)
    ds.seed({f"data/{n:03d}.txt": b"x" for n in range(30)})
    monkeypatch.setattr("syncops.stores.s3.LIST_PAGE_SIZE", 10)
    if answer == "error-inside-200":
        fault = Fault(wire.is_list("s3"), status=200, reply_body=ERROR_IN_200, skip=1)
    else:
        fault = Fault(wire.is_list("s3"), status=FORWARD, cut=200, skip=1)
    with Proxy(ds.endpoint) as proxy:
        hit = proxy.add_fault(fault)
        code, output = _cli_in_process(capsys, "discover", ds.url, "--endpoint-url", proxy.endpoint, "--json")
    assert code == 0, output
    assert hit.hits == 1
    assert '"entries": 30' in output
    assert len(waits) == 1 and waits[0].what.startswith("ListObjectsV2")


def test_each_listing_page_is_parsed_once(make_datastore, monkeypatch):
    """botocore's check of 200 answers sees the few bytes the lean parser left, not the page."""
    from botocore import handlers

    from syncops.discover import discover_outcome

    ds: Datastore = make_datastore("s3")
    monkeypatch.setenv("SYNCOPS_S3_LEAN", "off")  # the boto3 path (stores/s3_lean.py has no botocore)
    ds.seed({f"data/{n:03d}.txt": b"x" for n in range(25)})
    monkeypatch.setattr("syncops.stores.s3.LIST_PAGE_SIZE", 10)
    checked: list[bytes] = []
    real = handlers._looks_like_special_case_error
    monkeypatch.setattr(
        handlers, "_looks_like_special_case_error", lambda status, body: checked.append(body) or real(status, body)
    )
    store = ds.store()
    try:
        assert discover_outcome(store).entries == 25
    finally:
        store.close()
    from syncops.stores.s3_fast import _EMPTY_RESULT

    listing_bodies = [body for body in checked if b"ListBucketResult" in body]
    assert listing_bodies == [_EMPTY_RESULT] * 3


# -- 301 / 307: the bucket is in another region ---------------------------------------------------------

PERMANENT_REDIRECT = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>PermanentRedirect</Code><Message>The bucket you are '
    b"attempting to access must be addressed using the specified endpoint.</Message></Error>"
)


@pytest.mark.parametrize("plane", ["lean", "obstore", "boto3"])
@pytest.mark.parametrize("status", [301, 307])
def test_a_bucket_in_another_region_is_one_line_naming_the_region(make_datastore, status: int, plane: str):
    """botocore's region redirector re-sends once, signed for the region S3 named (that is all it takes on
    AWS); the obstore data plane hands the GET to boto3 at its first redirect; discovery's own requests
    (stores/s3_lean.py, an explicit endpoint, for which botocore's redirector follows nothing) report it
    at once. A redirect that persists means the configured endpoint/region is wrong for the bucket:
    exit 2, one line naming the region."""
    ds = make_datastore("s3")
    ds.seed(FILES)
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(
            Fault(
                wire.is_index_get("s3"),
                status=status,
                times=None,
                reply_body=PERMANENT_REDIRECT if status == 301 else b"",
                reply_headers={"x-amz-bucket-region": "eu-west-3"},
            )
        )
        if plane == "lean":
            env = wire.proxied_env("s3", ds.env, proxy)
        else:
            env = wire.proxied_env("s3", ds.env, proxy, SYNCOPS_S3_DATA_PLANE=plane, SYNCOPS_S3_LEAN="off")
        result = run_cli("discover", ds.url, "--json", env=env)

        assert result.code == 2, (result.stdout, result.stderr)
        # lean: its one GET; obstore's one GET (no retry), then boto3's GET and the redirector's re-sent GET.
        assert wire.count("s3", proxy, wire.INDEX_GET, status) == {"lean": 1, "obstore": 3, "boto3": 2}[plane]
        assert wire.count("s3", proxy, wire.LIST) == 0 and wire.count("s3", proxy, wire.INDEX_PUT) == 0
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "eu-west-3" in line and "AWS_REGION=eu-west-3" in line
    assert result.json["exit_code"] == 2
    assert ds.index() is None


# -- progress taken back on every retried download path -------------------------------------------------


class _Bar:
    """A progress sink that remembers the highest total it was ever shown."""

    def __init__(self) -> None:
        self.total = self.highest = self.expected = 0

    def start(self, description: str, files: int, total_bytes: int) -> None:
        self.expected = total_bytes

    def advance(self, nbytes: int) -> None:
        self.total += nbytes
        self.highest = max(self.highest, self.total)

    def stop(self) -> None:
        pass


@pytest.mark.parametrize(
    "backend,plane", [("s3", "obstore"), ("s3", "boto3"), ("gcs", "")], ids=["s3", "s3-boto3-downloads", "gcs"]
)
def test_a_retried_download_takes_back_the_progress_it_reported(
    make_datastore, tmp_path: Path, monkeypatch, waits, backend: str, plane: str
):
    """Bodies cut off after 1.5 and 2.5 MiB (past the first chunks each plane writes), then a reset: each
    retry starts from byte 0 and the bar is never shown more bytes than the transfer holds."""
    from syncops import api

    ds = make_datastore(backend)
    files = {"big/one.bin": bytes(range(256)) * 12 * 1024, "big/two.bin": b"\x07" * (3 << 20)}
    ds.seed(files)
    assert api.discover(ds.url).index_written
    if plane:
        monkeypatch.setenv("SYNCOPS_S3_DATA_PLANE", plane)
    bar = _Bar()
    with Proxy(ds.endpoint) as proxy:
        gets = wire.is_object_get(backend)
        cuts = [proxy.add_fault(Fault(gets, status=FORWARD, cut=cut)) for cut in (3 << 19, 5 << 19, 3 << 19)]
        reset = proxy.add_fault(Fault(gets, status=RESET))
        if backend == "gcs":
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        report = api.hydrate(
            ds.url, tmp_path / "cache", endpoint_url=proxy.endpoint if backend == "s3" else None, progress=bar
        )
        assert [f.hits for f in [*cuts, reset]] == [1, 1, 1, 1]
        assert wire.count(backend, proxy, wire.OBJECT_GET) == len(files) + 4
    assert report.pulled == len(files)
    assert bar.expected == bar.total == bar.highest == sum(map(len, files.values()))
    assert len(waits) == 4


# -- the policy itself (no server) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "status,code,verdict",
    [
        (409, "ConditionalRequestConflict", retry.Verdict.RETRY),
        (409, "OperationAborted", retry.Verdict.RETRY),
        (409, "BucketAlreadyOwnedByYou", retry.Verdict.FATAL),
        (412, "PreconditionFailed", retry.Verdict.FATAL),
        (503, "SlowDown", retry.Verdict.THROTTLE),
        (503, "", retry.Verdict.RETRY),
        (429, "rateLimitExceeded", retry.Verdict.THROTTLE),
        (500, "InternalError", retry.Verdict.RETRY),
        (200, "InternalError", retry.Verdict.RETRY),
        (301, "PermanentRedirect", retry.Verdict.FATAL),
        (403, "AccessDenied", retry.Verdict.FATAL),
        (404, "NoSuchKey", retry.Verdict.FATAL),
    ],
)
def test_one_classifier_for_every_provider_answer(status: int, code: str, verdict: retry.Verdict):
    assert retry.classify(status, code).verdict is verdict


def test_retry_after_is_waited_at_least_and_capped():
    now = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)
    assert retry.parse_retry_after("7") == 7.0
    assert retry.parse_retry_after("86400") == retry.RETRY_AFTER_CAP
    assert retry.parse_retry_after("Mon, 04 May 2026 12:00:30 GMT", now=now) == 30.0
    assert retry.parse_retry_after("Mon, 04 May 2026 11:00:00 GMT", now=now) == 0.0
    assert retry.parse_retry_after("soon") is None and retry.parse_retry_after(None) is None
    policy = retry.RetryPolicy()
    asked = retry.Decision(retry.Verdict.THROTTLE, retry_after=7.0)
    assert all(policy.backoff(1, asked) == 7.0 for _ in range(50))  # the first jitter is at most 1 s
    plain = retry.Decision(retry.Verdict.RETRY)
    assert all(
        0 <= policy.backoff(n, plain) <= min(retry.MAX_DELAY, retry.BASE_DELAY * 2 ** (n - 1)) for n in (1, 5, 20)
    )
    assert policy.delay(policy.attempts, plain) is None, "the last attempt is not followed by a wait"
    assert policy.delay(1, retry.Decision(retry.Verdict.FATAL)) is None


def test_transport_errors_are_recognised_by_name_without_importing_the_sdks():
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
    from requests.exceptions import ChunkedEncodingError
    from urllib3.exceptions import ProtocolError

    for exc in (
        ConnectionResetError(),
        TimeoutError(),
        EndpointConnectionError(endpoint_url="http://x"),
        ReadTimeoutError(endpoint_url="http://x"),
        ProtocolError("broken"),
        ChunkedEncodingError(),
    ):
        assert retry.classify(None, exc=exc).verdict is retry.Verdict.RETRY, exc
    assert retry.classify(None, exc=ValueError("bug")).verdict is retry.Verdict.FATAL


def test_the_attempt_budget_comes_from_syncops_max_attempts_then_aws_max_attempts(monkeypatch):
    from syncops.errors import BadInput

    monkeypatch.delenv("SYNCOPS_MAX_ATTEMPTS", raising=False)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    assert retry.attempts_from_environment(aws=True) == 2
    assert retry.attempts_from_environment() == retry.MAX_ATTEMPTS, "AWS's variable is for S3 only"
    monkeypatch.setenv("SYNCOPS_MAX_ATTEMPTS", "4")
    assert retry.attempts_from_environment(aws=True) == 4 and retry.attempts_from_environment() == 4
    monkeypatch.setenv("SYNCOPS_MAX_ATTEMPTS", "0")
    with pytest.raises(BadInput):
        retry.attempts_from_environment()
