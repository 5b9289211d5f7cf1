"""The ``ObjectStore`` contract (syncops/stores/base.py), run in-process against every backend.

One test per promise of the protocol, parametrized over ``file://``, SeaweedFS (S3) and
fake-gcs-server (GCS), each against the real local servers (session-wide fixtures, a fresh bucket per
test). A new backend is one more parameter here; the CLI tests can stay at the level of what a user
sees, because what a store promises is pinned once, here.

Where a server legitimately differs from the real service, that parameter is an ``xfail(strict=True)``
with the reason: the assertion still runs, and the test turns red the day the server changes.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from syncops.errors import AccessDenied, NotFound, PreconditionFailed, StoreError, Unavailable
from syncops.localfs import HashingReader
from syncops.stores import ObjectStore, open_store
from syncops.stores.base import PageTokens
from tests.conftest import Datastore
from tests.proxy import Fault, Proxy
from tests.servers import free_ports

BACKENDS = ("file", "s3", "gcs")
REMOTE = ("s3", "gcs")

#: A real condition the emulator does not enforce; the request is still checked to carry it in
#: tests/test_sync_model.py (resumable uploads) and tests/test_store_delete.py (DELETE).
GCS_IGNORES_RESUMABLE_CONDITIONS = pytest.param(
    "gcs",
    marks=pytest.mark.xfail(
        strict=True,
        raises=pytest.fail.Exception,
        reason="fake-gcs-server ignores ifGenerationMatch on resumable uploads (above 8 MiB); GCS answers 412",
    ),
)
GCS_IGNORES_DELETE_CONDITIONS = pytest.param(
    "gcs",
    marks=pytest.mark.xfail(
        strict=True,
        raises=pytest.fail.Exception,
        reason="fake-gcs-server ignores ifGenerationMatch on DELETE (deletes anyway); GCS answers 412",
    ),
)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def opened() -> Iterator[Callable[..., ObjectStore]]:
    """``opened(url_or_datastore, **open_store_kwargs)``: a store that is closed after the test (close is
    part of the contract: every store the suite opens goes through it)."""
    stores: list[ObjectStore] = []

    def open_(target: Datastore | str, **kwargs: Any) -> ObjectStore:
        store = open_store(target.url if isinstance(target, Datastore) else target, **kwargs)
        stores.append(store)
        return store

    yield open_
    for store in stores:
        store.close()


@pytest.fixture
def upload_body(tmp_path: Path) -> Iterator[Callable[[bytes], HashingReader]]:
    """``upload_body(data)``: the body push hands to ``upload``: a HashingReader over a real file."""
    fds: list[int] = []

    def make(data: bytes) -> HashingReader:
        path = tmp_path / f"body-{len(fds)}"
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        fds.append(fd)
        return HashingReader(fd, len(data))

    yield make
    for fd in fds:
        os.close(fd)


def lower_part_thresholds(kind: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Make the backend's multipart / resumable path start at 1 MiB; returns a size that takes it.

    S3: parts of 5 MiB (S3's minimum but for the last); GCS: google-cloud-storage switches from one
    multipart request to a resumable session above ``_MAX_MULTIPART_SIZE`` and sends chunks of
    ``_DEFAULT_CHUNKSIZE`` (a multiple of 256 KiB). ``file://`` has one path only.
    """
    if kind == "s3":
        import syncops.stores.s3 as s3

        monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 1 << 20)
        monkeypatch.setattr(s3, "PART_SIZE", 5 << 20)
    elif kind == "gcs":
        import google.cloud.storage.blob as gcs_blob

        monkeypatch.setattr(gcs_blob, "_MAX_MULTIPART_SIZE", 1 << 20)
        monkeypatch.setattr(gcs_blob, "_DEFAULT_CHUNKSIZE", 1 << 20)
    return (11 << 20) + 3  # S3: three parts (5 + 5 + 1 MiB and 3 bytes); GCS: twelve chunks


@contextmanager
def counting_pages(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every listing page a backend reads goes through ``PageTokens.next``: record them."""
    pages: list[str] = []
    original = PageTokens.next

    def next_(self: PageTokens, more: bool, token: str | None) -> str | None:
        pages.append(self.where)
        return original(self, more, token)

    monkeypatch.setattr(PageTokens, "next", next_)
    yield pages


# -- reads of what is not there ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_missing_object_is_not_found_on_get_head_and_download(make_datastore, opened, kind: str):
    ds = make_datastore(kind)
    store = opened(ds)
    store.put("present.txt", b"here")  # the bucket is not empty: only the key is missing
    out = io.BytesIO()
    for read in (
        lambda: store.get("absent.txt"),
        lambda: store.head("absent.txt"),
        lambda: store.download("absent.txt", out),
        lambda: store.download("absent.txt", out, checked_by_caller=True),
        lambda: store.get("nested/absent.txt"),
    ):
        with pytest.raises(NotFound):
            read()
    assert out.getvalue() == b""


# -- writes and their version tokens ----------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_put_returns_the_token_get_and_head_report(make_datastore, opened, kind: str):
    ds = make_datastore(kind)
    store = opened(ds)
    data = b'{"version": 1}'
    token = store.put("dir/with space/\u00fcn\u00efcode.json", data)
    blob, head = store.get("dir/with space/\u00fcn\u00efcode.json"), store.head("dir/with space/\u00fcn\u00efcode.json")
    assert (blob.data, blob.token, head.token, head.size, head.md5) == (data, token, token, len(data), md5(data))
    assert isinstance(blob.last_modified, datetime) and blob.last_modified.tzinfo is not None
    assert ds.raw.get(ds.full("dir/with space/\u00fcn\u00efcode.json")) == data


@pytest.mark.parametrize("kind", BACKENDS)
def test_put_of_a_stream_of_chunks_writes_them_all(make_datastore, opened, kind: str):
    ds = make_datastore(kind)
    store = opened(ds)
    chunks = [b"{", b'"a": ' * 1000, b"1}"]
    token = store.put("index.json", iter(chunks))
    assert store.get("index.json").data == b"".join(chunks)
    assert store.head("index.json").token == token


@pytest.mark.parametrize("method", ["put", "upload"])
@pytest.mark.parametrize("kind", BACKENDS)
def test_a_create_only_write_over_an_existing_key_fails_and_leaves_it(
    make_datastore, opened, upload_body, kind, method
):
    ds = make_datastore(kind)
    store = opened(ds)
    first = store.put("k.bin", b"first", if_absent=True)
    with pytest.raises(PreconditionFailed):
        if method == "put":
            store.put("k.bin", b"second", if_absent=True)
        else:
            store.upload("k.bin", upload_body(b"second"), if_absent=True)
    assert (store.get("k.bin").data, store.head("k.bin").token) == (b"first", first)


@pytest.mark.parametrize("method", ["put", "upload"])
@pytest.mark.parametrize("kind", BACKENDS)
def test_a_write_on_a_stale_token_fails_and_leaves_the_object(make_datastore, opened, upload_body, kind, method):
    ds = make_datastore(kind)
    store = opened(ds)
    stale = store.put("k.bin", b"first")
    ds.raw.put(ds.full("k.bin"), b"someone else's")  # the object moves on behind the reader
    current = store.head("k.bin").token
    assert current != stale
    with pytest.raises(PreconditionFailed):
        if method == "put":
            store.put("k.bin", b"mine", if_token=stale)
        else:
            store.upload("k.bin", upload_body(b"mine"), if_token=stale)
    assert (store.get("k.bin").data, store.head("k.bin").token) == (b"someone else's", current)


@pytest.mark.parametrize("method", ["put", "upload"])
@pytest.mark.parametrize("kind", BACKENDS)
def test_a_write_on_a_token_whose_object_is_gone_fails(make_datastore, opened, upload_body, kind, method):
    ds = make_datastore(kind)
    store = opened(ds)
    token = store.put("k.bin", b"first")
    ds.raw.delete(ds.full("k.bin"))
    with pytest.raises(PreconditionFailed):
        if method == "put":
            store.put("k.bin", b"mine", if_token=token)
        else:
            store.upload("k.bin", upload_body(b"mine"), if_token=token)
    with pytest.raises(NotFound):
        store.head("k.bin")


@pytest.mark.parametrize("method", ["put", "upload"])
@pytest.mark.parametrize("kind", BACKENDS)
def test_a_write_on_the_current_token_succeeds_with_a_new_token(make_datastore, opened, upload_body, kind, method):
    ds = make_datastore(kind)
    store = opened(ds)
    first = store.put("k.bin", b"first", if_absent=True)
    if method == "put":
        second = store.put("k.bin", b"second", if_token=first)
    else:
        second = store.upload("k.bin", upload_body(b"second"), if_token=first)
    assert second != first
    assert (store.get("k.bin").data, store.head("k.bin").token) == (b"second", second)
    with pytest.raises(PreconditionFailed):  # the old token is spent
        store.put("k.bin", b"third", if_token=first)


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_create_only_upload_of_a_new_key_writes_it(make_datastore, opened, upload_body, kind: str):
    ds = make_datastore(kind)
    store = opened(ds)
    data = os.urandom(3000)
    token = store.upload("new/k.bin", upload_body(data), if_absent=True)
    assert (ds.raw.get(ds.full("new/k.bin")), store.head("new/k.bin").token) == (data, token)


# -- large objects ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_an_upload_above_the_multipart_threshold_is_the_exact_object(
    make_datastore, opened, upload_body, monkeypatch, kind: str
):
    size = lower_part_thresholds(kind, monkeypatch)
    ds = make_datastore(kind)
    store = opened(ds)
    data = os.urandom(size)
    body = upload_body(data)
    token = store.upload("big.bin", body, if_absent=True)
    assert ds.raw.get(ds.full("big.bin")) == data
    head = store.head("big.bin")
    assert (head.size, head.token) == (size, token)
    assert body.sha256() == hashlib.sha256(data).hexdigest()  # the digest push records is of these bytes
    replaced = os.urandom(size)
    newer = store.upload("big.bin", upload_body(replaced), if_token=token)
    assert newer != token and ds.raw.get(ds.full("big.bin")) == replaced


class _CountingSlots:
    """A semaphore that remembers how many of its slots were ever held at once."""

    def __init__(self, slots: int) -> None:
        self._semaphore = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self.held = 0
        self.most = 0

    def acquire(self) -> bool:
        self._semaphore.acquire()
        with self._lock:
            self.held += 1
            self.most = max(self.most, self.held)
        return True

    def release(self) -> None:
        with self._lock:
            self.held -= 1
        self._semaphore.release()


def test_concurrent_s3_multipart_uploads_share_one_bound_on_part_buffers(
    make_datastore, opened, upload_body, monkeypatch
):
    """Parts in memory are bounded per store, not per file: three 3-part uploads at once, with room for
    two parts, hold at most two (and every slot is given back: a leak would stall the third upload)."""
    size = lower_part_thresholds("s3", monkeypatch)
    ds = make_datastore("s3")
    store = opened(ds)
    slots = _CountingSlots(2)
    monkeypatch.setattr(store, "_upload_slots", slots)
    bodies = {f"big-{n}.bin": os.urandom(size) for n in range(3)}
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = [pool.submit(store.upload, key, upload_body(data), if_absent=True) for key, data in bodies.items()]
        for future in done:
            future.result(timeout=120)
    assert 1 <= slots.most <= 2 and slots.held == 0, "the parts took their buffers from the shared budget"
    for key, data in bodies.items():
        assert ds.raw.get(ds.full(key)) == data


@pytest.mark.parametrize("kind", ["file", "s3", GCS_IGNORES_RESUMABLE_CONDITIONS])
def test_a_conditional_upload_above_the_multipart_threshold_that_loses_writes_nothing(
    make_datastore, opened, upload_body, monkeypatch, kind: str
):
    size = lower_part_thresholds(kind, monkeypatch)
    ds = make_datastore(kind)
    store = opened(ds)
    stale = store.put("big.bin", b"first")
    ds.raw.put(ds.full("big.bin"), b"someone else's")
    with pytest.raises(PreconditionFailed):
        store.upload("big.bin", upload_body(os.urandom(size)), if_token=stale)
    with pytest.raises(PreconditionFailed):
        store.upload("big.bin", upload_body(os.urandom(size)), if_absent=True)
    assert ds.raw.get(ds.full("big.bin")) == b"someone else's"


@pytest.mark.parametrize("checked_by_caller", [False, True], ids=["store-checks", "caller-checks"])
@pytest.mark.parametrize("size", [0, 4096, (5 << 20) + 7], ids=["empty", "4KiB", "5MiB+7"])
@pytest.mark.parametrize("kind", BACKENDS)
def test_download_writes_the_exact_bytes_and_reports_size_and_token_as_head(
    make_datastore, opened, tmp_path, kind: str, size: int, checked_by_caller: bool
):
    ds = make_datastore(kind)
    store = opened(ds)
    data = os.urandom(size)
    ds.raw.put(ds.full("data/object.bin"), data)
    head = store.head("data/object.bin")
    with open(tmp_path / "out", "w+b") as out:
        fetched = store.download("data/object.bin", out, checked_by_caller=checked_by_caller)
        out.seek(0)
        assert out.read() == data
    assert (fetched.size, fetched.token) == (size, head.token)
    assert (head.size, head.md5) == (size, md5(data))


# -- listings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_listing_pages_through_the_prefix_and_skips_its_folder_marker(make_datastore, opened, monkeypatch, kind):
    """Seven objects under ``env/dev``, listed three to a page; neighbours outside the prefix
    (``env/devx/…``, ``other/…``) and the prefix's own folder object (``env/dev/``) are not keys."""
    import syncops.stores.gcs as gcs
    import syncops.stores.s3 as s3

    monkeypatch.setattr(s3, "LIST_PAGE_SIZE", 3)
    monkeypatch.setattr(gcs, "LIST_PAGE_SIZE", 3)
    ds = make_datastore(kind, prefix="env/dev")
    expected = {f"d{i % 2}/k{i}.bin": os.urandom(i + 1) for i in range(7)}
    ds.seed(expected)
    if kind != "file":  # a directory in a file:// datastore is no object at all
        ds.raw.put("env/dev/", b"")  # the console's folder object for the prefix
        ds.raw.put("env/devx/neighbour.bin", b"not mine")
        ds.raw.put("other/neighbour.bin", b"not mine")
        assert "env/dev/" in ds.raw.keys()  # the server holds (and lists) the marker
    store = opened(ds)
    with counting_pages(monkeypatch) as pages:
        listed = list(store.list())
    assert {o.key: o.size for o in listed} == {key: len(data) for key, data in expected.items()}
    assert len(listed) == len(expected)
    assert all(isinstance(o.last_modified, datetime) and o.last_modified.tzinfo for o in listed)
    if kind != "file":
        # 8 objects under "env/dev/" (the marker is listed by the server, then dropped), 3 a page
        assert len(pages) == 3


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_listing_of_an_empty_datastore_is_empty(make_datastore, opened, kind: str):
    assert list(opened(make_datastore(kind, prefix="env/dev")).list()) == []


# -- delete -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_delete_at_the_current_token_removes_the_object(make_datastore, opened, kind: str):
    ds = make_datastore(kind)
    store = opened(ds)
    token = store.put(".datastore.lock", b"{}", if_absent=True)
    store.delete(".datastore.lock", if_token=token)
    with pytest.raises(NotFound):
        store.head(".datastore.lock")
    assert ds.raw.get(ds.full(".datastore.lock")) is None


@pytest.mark.parametrize("kind", ["file", "s3", GCS_IGNORES_DELETE_CONDITIONS])
def test_delete_with_a_stale_token_is_refused_and_leaves_the_object(make_datastore, opened, kind: str):
    ds = make_datastore(kind)
    store = opened(ds)
    stale = store.put(".datastore.lock", b'{"nonce": "1"}', if_absent=True)
    ds.raw.put(ds.full(".datastore.lock"), b'{"nonce": "2"}')
    with pytest.raises(PreconditionFailed):
        store.delete(".datastore.lock", if_token=stale)
    assert ds.raw.get(ds.full(".datastore.lock")) == b'{"nonce": "2"}'


@pytest.mark.parametrize("kind", BACKENDS)
def test_delete_of_a_missing_object_is_not_found_or_on_s3_precondition_failed(make_datastore, opened, kind: str):
    """S3 answers a conditional DeleteObject of an absent key with 412, as AWS documents (SeaweedFS too):
    a lock that is gone and a lock that changed are one outcome there, and release treats both alike."""
    ds = make_datastore(kind)
    store = opened(ds)
    token = store.put(".datastore.lock", b"{}")
    ds.raw.delete(ds.full(".datastore.lock"))
    with pytest.raises(PreconditionFailed if kind == "s3" else NotFound):
        store.delete(".datastore.lock", if_token=token)
    assert ds.raw.get(ds.full(".datastore.lock")) is None


# -- server-side copy -------------------------------------------------------------------------------


@pytest.fixture
def two_buckets(make_datastore, opened) -> Callable[[str], tuple[ObjectStore, ObjectStore]]:
    """``two_buckets(kind)``: a source store and a destination store (with a prefix) on one server."""

    def make(kind: str) -> tuple[ObjectStore, ObjectStore]:
        return opened(make_datastore(kind)), opened(make_datastore(kind, prefix="copy"))

    return make


@pytest.mark.parametrize("kind", REMOTE)
def test_copy_from_a_bucket_of_the_same_server_is_the_exact_object(two_buckets, kind: str):
    source, target = two_buckets(kind)
    assert target.can_copy_from(source)
    data = os.urandom(5000)
    source.put("models/a.bin", data)
    token = target.copy_from(source, "models/a.bin", size=len(data), if_absent=True)
    assert (target.get("models/a.bin").data, target.head("models/a.bin").token) == (data, token)
    newer = target.copy_from(source, "models/a.bin", size=len(data), if_token=token)  # the token serves as a condition
    assert target.head("models/a.bin").token == newer


@pytest.mark.parametrize("kind", REMOTE)
def test_copy_from_a_missing_source_object_is_not_found_and_writes_nothing(two_buckets, kind: str):
    source, target = two_buckets(kind)
    source.put("models/other.bin", b"x")
    with pytest.raises(NotFound):
        target.copy_from(source, "models/missing.bin", size=1, if_absent=True)
    with pytest.raises(NotFound):
        target.head("models/missing.bin")


GCS_IGNORES_REWRITE_CONDITIONS = pytest.param(
    "gcs",
    marks=pytest.mark.xfail(
        strict=True,
        raises=pytest.fail.Exception,
        reason="fake-gcs-server ignores ifGenerationMatch on rewriteTo (overwrites); GCS answers 412",
    ),
)


@pytest.mark.parametrize("kind", ["s3", GCS_IGNORES_REWRITE_CONDITIONS])
def test_a_conditional_copy_that_loses_is_refused_and_leaves_the_destination(two_buckets, kind: str):
    source, target = two_buckets(kind)
    source.put("models/a.bin", b"from the source")
    stale = target.put("models/a.bin", b"first")
    current = target.put("models/a.bin", b"the destination's own", if_token=stale)
    with pytest.raises(PreconditionFailed):
        target.copy_from(source, "models/a.bin", size=15, if_absent=True)
    with pytest.raises(PreconditionFailed):
        target.copy_from(source, "models/a.bin", size=15, if_token=stale)
    assert (target.get("models/a.bin").data, target.head("models/a.bin").token) == (b"the destination's own", current)


def test_a_gcs_rewrite_sends_its_generation_condition(make_datastore, monkeypatch):
    """What the emulator ignores (above) still travels on the wire, for GCS itself to enforce."""
    source_ds, target_ds = make_datastore("gcs"), make_datastore("gcs")
    open_store(source_ds.url).put("k", b"x")
    token = open_store(target_ds.url).put("k", b"y")
    with Proxy(source_ds.endpoint) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        source, target = open_store(source_ds.url), open_store(target_ds.url)
        target.copy_from(source, "k", size=1, if_absent=True)
        target.copy_from(source, "k", size=1, if_token=token)
        rewrites = [s.path for s in proxy.seen if "/rewriteTo/" in s.path]
        source.close()
        target.close()
    assert ["ifGenerationMatch=0" in rewrites[0], f"ifGenerationMatch={token}" in rewrites[1]] == [True, True]


@pytest.mark.parametrize("kind", BACKENDS)
def test_no_server_side_copy_across_providers_or_from_a_directory(make_datastore, opened, kind: str):
    store = opened(make_datastore(kind))
    others = [opened(make_datastore(other)) for other in BACKENDS if other != kind]
    assert [store.can_copy_from(other) for other in others] == [False, False]
    if kind == "file":
        assert not store.can_copy_from(opened(make_datastore("file")))
        with pytest.raises(StoreError):
            store.copy_from(others[0], "k", size=1)


# -- errors and credentials -------------------------------------------------------------------------


def every_operation(store: ObjectStore, body: HashingReader) -> list[tuple[str, Callable[[], Any]]]:
    out = io.BytesIO()
    return [
        ("get", lambda: store.get("k.bin")),
        ("head", lambda: store.head("k.bin")),
        ("download", lambda: store.download("k.bin", out)),
        ("list", lambda: list(store.list())),
        ("put", lambda: store.put("k.bin", b"data")),
        ("put create-only", lambda: store.put("new.bin", b"data", if_absent=True)),
        ("upload", lambda: store.upload("k.bin", body)),
    ]


@pytest.mark.parametrize("kind", REMOTE)
def test_a_denied_request_is_access_denied_on_every_operation(make_datastore, opened, upload_body, monkeypatch, kind):
    """S3: SeaweedFS checks SigV4, so a wrong secret is refused for real (both S3 clients: boto3 for
    control, obstore for bytes). fake-gcs-server checks no credentials: its 403 comes from the test
    proxy. ``file://`` is not here: the suite runs as root, whom permissions do not stop."""
    ds = make_datastore(kind)
    ds.seed({"k.bin": b"existing"})
    with ExitStack() as stack:
        if kind == "s3":
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        else:
            proxy = stack.enter_context(Proxy(ds.endpoint))
            proxy.add_fault(Fault(lambda method, path: True, status=403, times=None))
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        store = opened(ds)
        for name, operation in every_operation(store, upload_body(b"data")):
            with pytest.raises(AccessDenied) as denied:
                operation()
            assert "not-the-secret" not in str(denied.value), name
    assert ds.raw.get(ds.full("k.bin")) == b"existing"


@pytest.mark.parametrize("kind", REMOTE)
def test_a_server_that_does_not_answer_is_unavailable_on_every_operation(opened, upload_body, monkeypatch, kind):
    """A closed port (nothing listens: a stopped server), with the retry budget lowered through the
    documented knobs so the retries run out in a second."""
    (port,) = free_ports(1)
    endpoint = f"http://127.0.0.1:{port}"
    if kind == "s3":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        url = "s3://some-bucket/env"
    else:
        monkeypatch.setenv("SYNCOPS_GCS_RETRY_TIMEOUT", "0.5")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
        url = "gs://some-bucket/env"
    store = opened(url)
    for name, operation in every_operation(store, upload_body(b"data")):
        with pytest.raises(Unavailable) as unavailable:
            operation()
        assert str(port) in str(unavailable.value) or "some-bucket" in str(unavailable.value), name


@pytest.mark.parametrize("kind", BACKENDS)
def test_the_credential_source_is_named_without_secrets(make_datastore, opened, kind: str):
    ds = make_datastore(kind)
    source = opened(ds).credential_source()
    expected = {
        "file": f"local file permissions of uid {os.getuid()}",
        "s3": "environment variables (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
        "gcs": f"anonymous (emulator at {ds.endpoint})",
    }
    assert source == expected[kind]
    assert os.environ.get("AWS_SECRET_ACCESS_KEY", "\0") not in source
