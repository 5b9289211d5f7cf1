"""Large objects in parallel ranged GETs (issue 12 item 2): the exact bytes, one request per part, a
failed part retried alone, and never a file spliced from two versions of an object replaced meanwhile.

The part size is lowered in-process (64 KiB parts from 128 KiB up), so the objects stay small; the
requests are counted by the loopback proxy in front of the real server (SeaweedFS for S3, where a
part is pinned with ``If-Match``; fake-gcs-server for GCS, where it is pinned with ``ifGenerationMatch``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import unquote

import pytest

from syncops.hydrate import hydrate
from syncops.stores import open_store, ranged
from tests.conftest import Datastore
from tests.proxy import FORWARD, Fault, Proxy, Seen

PART = 64 * 1024
PARTS_PER_OBJECT = 4
KEY = "data/big.bin"
#: 17 parts, the last one short.
BIG = os.urandom(16 * PART + 1234)
PARTS = -(-len(BIG) // PART)


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranged, "PART_SIZE", PART)
    monkeypatch.setattr(ranged, "RANGED_THRESHOLD", 2 * PART)
    monkeypatch.setattr(ranged, "PARTS_PER_OBJECT", PARTS_PER_OBJECT)
    monkeypatch.setattr(ranged, "PART_BUFFERS", 2 * PARTS_PER_OBJECT)


class Counting:
    """A progress bar that only adds up what it is told (a retry must take its bytes back)."""

    def __init__(self) -> None:
        self.total = 0

    def start(self, description: str, files: int, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        self.total += nbytes

    def stop(self) -> None:
        pass


CLOUD = ("s3", "gcs")


def is_get_of(key: str):
    return lambda method, path: method == "GET" and unquote(path.split("?")[0]).endswith(key)


def object_gets(proxy: Proxy, key: str = KEY) -> list[Seen]:
    return [s for s in proxy.seen if is_get_of(key)(s.method, s.path)]


def pinned(seen: Seen) -> bool:
    return bool(seen.headers.get("if-match")) or "ifGenerationMatch=" in seen.path


def range_start(seen: Seen) -> int:
    return int(seen.headers["range"].removeprefix("bytes=").split("-")[0])


def starts_at(offset: int):
    return lambda headers: headers.get("range", "").startswith(f"bytes={offset}-")


def hydrate_through(ds: Datastore, proxy: Proxy, monkeypatch: pytest.MonkeyPatch, target: Path, progress=None):
    monkeypatch.setenv("AWS_ENDPOINT_URL" if ds.kind == "s3" else "STORAGE_EMULATOR_HOST", proxy.endpoint)
    store = open_store(ds.url)
    try:
        return hydrate(store, target, progress=progress)
    finally:
        store.close()


def publish_with_sha256(ds: Datastore, monkeypatch: pytest.MonkeyPatch, source: Path) -> None:
    """Push ``BIG`` through syncops, so the index entry carries its sha256."""
    from syncops.push import push

    (source / "data").mkdir(parents=True)
    (source / KEY).write_bytes(BIG)
    store = open_store(ds.url)
    try:
        push(store, source)
    finally:
        store.close()
    assert ds.index()["entries"][KEY]["sha256"] == hashlib.sha256(BIG).hexdigest()


@pytest.mark.parametrize("backend", CLOUD)
@pytest.mark.parametrize("indexed", [True, False], ids=["sha256-in-index", "store-checksum-only"])
def test_a_large_object_arrives_exact_in_one_ranged_get_per_part(
    make_datastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indexed: bool, backend: str
):
    ds = make_datastore(backend)
    if indexed:
        publish_with_sha256(ds, monkeypatch, tmp_path / "source")
    else:
        ds.seed({KEY: BIG})  # discovery indexes it without a sha256: S3's ETag MD5 or GCS's crc32c is checked
    progress = Counting()
    with Proxy(ds.endpoint) as proxy:
        report = hydrate_through(ds, proxy, monkeypatch, tmp_path / "out", progress)
        gets = object_gets(proxy)
    assert report.exit_code == 0 and report.pulled == 1
    assert (tmp_path / "out" / KEY).read_bytes() == BIG
    base = json.loads((tmp_path / "out" / ".datastore-index.json").read_text())
    assert base["entries"][KEY]["sha256"] == hashlib.sha256(BIG).hexdigest()
    assert progress.total == len(BIG)
    # Exactly one request per part, no probe: the first part's answer gives the size and the ETag.
    assert len(gets) == PARTS and all(s.status == 206 for s in gets)
    assert sorted(range_start(s) for s in gets) == [i * PART for i in range(PARTS)]
    # Parts asked for after the first answer is in are pinned to its version (ETag or generation).
    later = [s for s in gets if range_start(s) >= PARTS_PER_OBJECT * PART]
    assert later and all(pinned(s) for s in later)


@pytest.mark.parametrize("backend", CLOUD)
def test_a_part_that_fails_once_is_retried_alone(
    make_datastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
):
    ds = make_datastore(backend)
    publish_with_sha256(ds, monkeypatch, tmp_path / "source")
    progress = Counting()
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(Fault(is_get_of(KEY), status=503, headers=starts_at(5 * PART)))
        proxy.add_fault(Fault(is_get_of(KEY), status=FORWARD, cut=1000, headers=starts_at(9 * PART)))
        report = hydrate_through(ds, proxy, monkeypatch, tmp_path / "out", progress)
        gets = object_gets(proxy)
    assert report.exit_code == 0, report.problems
    assert (tmp_path / "out" / KEY).read_bytes() == BIG
    assert progress.total == len(BIG)
    assert len(gets) == PARTS + 2  # the two broken parts asked for again, nothing else
    assert [range_start(s) for s in gets].count(5 * PART) == 2
    assert [range_start(s) for s in gets].count(9 * PART) == 2


@pytest.mark.parametrize("backend", CLOUD)
@pytest.mark.parametrize("replacement", ["same-size", "smaller"])
def test_an_object_replaced_mid_download_never_yields_a_mixed_file(
    make_datastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replacement: str, backend: str
):
    ds = make_datastore(backend)
    ds.seed({KEY: BIG})
    newer = os.urandom(len(BIG)) if replacement == "same-size" else os.urandom(6 * PART)
    progress = Counting()
    with Proxy(ds.endpoint) as proxy:
        # Just before part 8 is answered (it was asked for pinned, or not: both are caught),
        # another writer replaces the object.
        proxy.add_fault(
            Fault(
                is_get_of(KEY),
                status=FORWARD,
                headers=starts_at(8 * PART),
                before=lambda: ds.raw.put(ds.full(KEY), newer),
            )
        )
        report = hydrate_through(ds, proxy, monkeypatch, tmp_path / "out", progress)
        gets = object_gets(proxy)
    # The change is a retry of the whole object: the new version, whole, from one plain GET.
    assert report.exit_code == 0, report.problems
    assert (tmp_path / "out" / KEY).read_bytes() == newer
    assert progress.total == len(newer)
    whole = [s for s in gets if "range" not in s.headers]
    assert len(whole) == 1 and whole[0].status == 200
    assert not list((tmp_path / "out" / "data").glob("*.syncops-partial"))


@pytest.mark.parametrize("backend", CLOUD)
def test_a_replaced_object_that_fails_its_sha256_is_not_written(
    make_datastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
):
    ds = make_datastore(backend)
    publish_with_sha256(ds, monkeypatch, tmp_path / "source")
    newer = os.urandom(len(BIG))
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(
            Fault(
                is_get_of(KEY),
                status=FORWARD,
                headers=starts_at(3 * PART),
                before=lambda: ds.raw.put(ds.full(KEY), newer),
            )
        )
        report = hydrate_through(ds, proxy, monkeypatch, tmp_path / "out", Counting())
    # The index's sha256 is the old bytes': neither version is mixed in, the new one is not taken.
    assert report.exit_code == 4
    assert [p["key"] for p in report.problems] == [KEY]
    assert not (tmp_path / "out" / KEY).exists()
    assert not list((tmp_path / "out" / "data").glob("*.syncops-partial"))


@pytest.mark.parametrize("backend", CLOUD)
def test_objects_below_the_threshold_take_one_plain_get(
    make_datastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
):
    ds = make_datastore(backend)
    small = os.urandom(2 * PART - 1)
    ds.seed({"data/small.bin": small})
    with Proxy(ds.endpoint) as proxy:
        report = hydrate_through(ds, proxy, monkeypatch, tmp_path / "out")
        gets = object_gets(proxy, "data/small.bin")
    assert report.exit_code == 0
    assert (tmp_path / "out" / "data/small.bin").read_bytes() == small
    assert len(gets) == 1 and "range" not in gets[0].headers


@pytest.mark.parametrize("backend", CLOUD)
def test_a_part_corrupted_on_the_wire_is_caught_by_the_stores_checksum(
    make_datastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
):
    """No sha256 in the entry: the whole object's S3 ETag MD5 or GCS crc32c, computed in order over the
    parts, catches one flipped byte in one part; the object is read again and arrives exact."""
    ds = make_datastore(backend)
    ds.seed({KEY: BIG})
    corrupted = {"left": 1}

    def flip(method: str, path: str, status: int, body: bytes) -> bytes:
        if not is_get_of(KEY)(method, path) or status != 206 or not corrupted["left"]:
            return body
        corrupted["left"] -= 1
        return bytes([body[0] ^ 0xFF]) + body[1:]

    with Proxy(ds.endpoint) as proxy:
        proxy.state.rewrites.append(flip)
        report = hydrate_through(ds, proxy, monkeypatch, tmp_path / "out", Counting())
        gets = object_gets(proxy)
    assert report.exit_code == 0, report.problems
    assert corrupted["left"] == 0
    assert (tmp_path / "out" / KEY).read_bytes() == BIG
    # Read again whole, checked as it streams (a second failure is then a body failure on its budget).
    assert len(gets) == PARTS + 1


def test_the_etag_check_hashes_md5_only_for_an_etag_that_is_one():
    """An ETag of a multipart upload ("…-N") is no MD5 of the body: told so before the bytes, the S3
    download's checker skips the MD5 pass; a plain one is hashed and compared as before."""
    import hashlib
    import io

    from syncops.stores.s3 import _Md5Writer

    body = b"some bytes" * 1000
    plain = _Md5Writer(io.BytesIO())
    plain.expect_version(f'"{hashlib.md5(body).hexdigest()}"')
    plain.write(body)
    assert plain.hexdigest() == hashlib.md5(body).hexdigest()

    multipart = _Md5Writer(io.BytesIO())
    multipart.expect_version('"b75e036ab323b2f2dfef0bc509d8bb5f-21"')
    multipart.write(body)
    assert multipart.hexdigest() == ""

    unknown_kms = _Md5Writer(io.BytesIO(), etag_is_md5=False)
    unknown_kms.expect_version(f'"{hashlib.md5(body).hexdigest()}"')
    unknown_kms.write(body)
    assert unknown_kms.hexdigest() == ""
