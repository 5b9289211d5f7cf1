"""Faults on the wire (SPEC §3 discover 6): transient ones are retried on every kind of request and end
in exactly the result a clean run gives; persistent ones exit 4, write nothing and are never read as
"empty"; 401/403 exit 3 at once, without retries.

Faults are injected by the loopback proxy in front of SeaweedFS (S3) and fake-gcs-server (GCS).
Persistent-failure runs lower the retry budget through the documented knobs (``AWS_MAX_ATTEMPTS``,
``SYNCOPS_GCS_RETRY_TIMEOUT``) so they fail in seconds; transient runs keep the product defaults.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import wire
from tests.conftest import Datastore, run_cli
from tests.expect import assert_hydrated, assert_index_is, data_files
from tests.proxy import FORWARD, RESET, Fault, Proxy
from tests.servers import ACCESS_KEY

CLOUD = ("s3", "gcs")

FILES = {
    "data/models/a.json": b'{"a": 1}\n',
    "data/models/b.json": b'{"b": [1, 2, 3]}\n',
    "data/raw/blob.bin": bytes(range(256)) * 1024,  # 256 KiB: cut mid-stream below
    "data/raw/other.bin": b"\x00\xff" * 70_000,
    "top.csv": b"x,y\n1,2\n",
    "empty.txt": b"",
}

#: Fail fast: a persistent outage must end in seconds, not the production minute.
FAST_RETRIES = {"AWS_MAX_ATTEMPTS": "3", "SYNCOPS_GCS_RETRY_TIMEOUT": "2"}


def faults(proxy: Proxy, match: Callable[[str, str], bool], *statuses: int, cut: int | None = None) -> list[Fault]:
    """One single-shot fault per status, consumed by consecutive matching requests."""
    added = []
    for status in statuses:
        if status == FORWARD:
            added.append(proxy.add_fault(Fault(match, status=FORWARD, cut=cut)))
        else:
            added.append(proxy.add_fault(Fault(match, status=status)))
    return added


def big_object_get(backend: str) -> Callable[[str, str], bool]:
    return lambda method, path: wire.is_object_get(backend)(method, path) and ".bin" in path


@pytest.mark.parametrize(
    "backend,plane", [("s3", "obstore"), ("s3", "boto3"), ("gcs", "")], ids=["s3", "s3-boto3-downloads", "gcs"]
)
def test_transient_faults_on_every_read_end_in_the_clean_result(
    make_datastore, tmp_path: Path, backend: str, plane: str
):
    """503/500/429, resets and bodies cut mid-stream on the index GET, the listing, object GETs and
    the create-only index PUT: bootstrap still publishes the exact index and hydrates every byte.
    S3 downloads are checked on both data planes (obstore by default, boto3 as the fallback)."""
    ds = make_datastore(backend, prefix="env/prod")
    ds.seed(FILES)
    target = tmp_path / "cache"
    with Proxy(ds.endpoint) as proxy:
        injected = [
            *faults(proxy, wire.is_index_get(backend), 503, RESET),
            *faults(proxy, wire.is_index_get(backend), FORWARD, cut=10),  # the 404's body, broken off
            *faults(proxy, wire.is_list(backend), 500, 429),
            *faults(proxy, wire.is_list(backend), FORWARD, cut=100),
            *faults(proxy, wire.is_object_get(backend), 503, 500, 429, RESET),
            # Two bodies broken off after 1000 bytes (only the big objects have that many).
            *faults(proxy, big_object_get(backend), FORWARD, FORWARD, cut=1000),
        ]
        # The index write is the only write bootstrap makes.
        injected += faults(proxy, wire.is_write(backend), 503, RESET)
        env = wire.proxied_env(backend, ds.env, proxy, **({"SYNCOPS_S3_DATA_PLANE": plane} if plane else {}))
        result = run_cli("bootstrap", ds.url, str(target), "--json", env=env)

        assert result.code == 0, result.stderr
        assert [f.hits for f in injected] == [1] * len(injected), "every fault was hit once"
        report = result.json
        assert (report["status"], report["index_written"], report["entries"]) == ("discovered", True, len(FILES))
        assert (report["pulled"], report["stale"], report["bytes"]) == (len(FILES), 0, sum(map(len, FILES.values())))
        assert_index_is(ds, FILES)
        assert_hydrated(target, FILES)
        # Each failed attempt was repeated, no more: one good index GET (404), listing, PUT, and one
        # good GET per object.
        # The 404 whose body broke off: S3 needs that body (the error code) and asks again; GCS
        # takes the 404 status line as the answer.
        assert wire.count(backend, proxy, wire.INDEX_GET, 404) == (1 if backend == "s3" else 0)
        assert wire.count(backend, proxy, wire.INDEX_GET) == (4 if backend == "s3" else 3)
        assert wire.count(backend, proxy, wire.LIST, 200) == 1
        assert wire.count(backend, proxy, wire.INDEX_PUT, 200) == 1
        assert wire.count(backend, proxy, wire.OBJECT_GET, 200) == len(FILES)
        assert wire.count(backend, proxy, wire.OBJECT_GET) == len(FILES) + 6


@pytest.mark.parametrize("backend", CLOUD)
def test_a_body_that_ends_early_on_a_clean_close_is_read_again(make_datastore, tmp_path: Path, backend: str):
    """A server that closes the connection cleanly (no reset, no error) before Content-Length bytes came:
    the short body is never taken for the object; it is read again and every file is whole."""
    ds = make_datastore(backend)
    ds.seed(FILES)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    target = tmp_path / "cache"
    with Proxy(ds.endpoint) as proxy:
        injected = [
            proxy.add_fault(Fault(big_object_get(backend), status=FORWARD, cut=1000, quietly=True)) for _ in range(2)
        ]
        result = run_cli("hydrate", ds.url, str(target), "--json", env=wire.proxied_env(backend, ds.env, proxy))

        assert result.code == 0, result.stderr
        assert [f.hits for f in injected] == [1, 1]
        assert wire.count(backend, proxy, wire.OBJECT_GET) == len(FILES) + 2
    assert result.json["pulled"] == len(FILES)
    assert_hydrated(target, FILES)


@pytest.mark.parametrize("backend", CLOUD)
def test_transient_faults_on_writes_end_in_the_clean_result(make_datastore, tmp_path: Path, backend: str):
    """push through faulted uploads and a conditional index write whose success response is lost:
    every object arrives byte for byte and the index holds remote ∪ local entries."""
    ds = make_datastore(backend)
    remote = {"remote/kept.json": b'{"kept": true}'}
    ds.seed(remote)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    source = tmp_path / "src"
    for key, data in FILES.items():
        (source / key).parent.mkdir(parents=True, exist_ok=True)
        (source / key).write_bytes(data)
    with Proxy(ds.endpoint) as proxy:
        injected = faults(proxy, wire.is_write(backend), 503, 500, RESET, 429)
        injected += faults(proxy, wire.is_index_get(backend), FORWARD, cut=20)  # the index's body broken off
        # Then the index write lands but its answer is lost: the retry meets 412, re-reads, re-merges.
        lost = proxy.add_fault(Fault(wire.is_write(backend), status=FORWARD, drop_response=True, skip=len(FILES)))
        result = run_cli("push", ds.url, str(source), "--json", env=wire.proxied_env(backend, ds.env, proxy))

        assert result.code == 0, result.stderr
        assert [f.hits for f in [*injected, lost]] == [1] * 6
        assert wire.count(backend, proxy, wire.INDEX_PUT) >= 2
    assert result.json["pushed"] == len(FILES)
    for key, data in FILES.items():
        assert ds.raw.get(key) == data
    published = ds.index()
    assert published is not None and sorted(published["entries"]) == sorted([*FILES, *remote])
    for key, data in FILES.items():
        assert published["entries"][key]["size"] == len(data)


@pytest.mark.parametrize("backend", CLOUD)
def test_a_create_only_write_whose_answer_is_lost_is_adopted_not_repeated(make_datastore, backend: str):
    """The index PUT lands but the client sees a reset: its retry meets 412 and adopts what is there."""
    ds = make_datastore(backend)
    ds.seed(FILES)
    with Proxy(ds.endpoint) as proxy:
        lost = proxy.add_fault(wire.index_write_fault(backend, status=FORWARD, drop_response=True))
        result = run_cli("discover", ds.url, "--json", env=wire.proxied_env(backend, ds.env, proxy))
        assert result.code == 0, result.stderr
        assert lost.hits == 1
        assert wire.count(backend, proxy, wire.INDEX_PUT, 412) == 1, "retried under the same condition"
    assert (result.json["status"], result.json["entries"]) == ("adopted", len(FILES))
    assert_index_is(ds, FILES)


@pytest.mark.parametrize("backend", CLOUD)
def test_faults_on_later_listing_pages_are_retried(make_datastore, backend: str):
    """A listing of more than one page survives a 503 and a reset on its second page."""
    ds = make_datastore(backend)
    keys = [f"many/{i:05d}.txt" for i in range(1005)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: ds.raw.put(k, k.encode()), keys))
    with Proxy(ds.endpoint) as proxy:
        injected = [
            proxy.add_fault(Fault(wire.is_list(backend), status=503, skip=1)),
            proxy.add_fault(Fault(wire.is_list(backend), status=RESET, skip=1)),
        ]
        result = run_cli("discover", ds.url, "--json", env=wire.proxied_env(backend, ds.env, proxy))
        assert result.code == 0, result.stderr
        assert [f.hits for f in injected] == [1, 1]
        assert wire.count(backend, proxy, wire.LIST, 200) == 2  # two pages, each answered once
    assert (result.json["status"], result.json["entries"]) == ("discovered", len(keys))
    assert_index_is(ds, keys)


def _seed_indexed(ds: Datastore) -> None:
    ds.seed(FILES)
    assert run_cli("discover", ds.url, env=ds.env).code == 0


PERSISTENT = {
    # target request kind, statuses: (whether the bucket is indexed first)
    "index-get-503": (wire.INDEX_GET, 503, False),
    "index-get-reset": (wire.INDEX_GET, RESET, False),
    "list-503": (wire.LIST, 503, False),
    "list-429": (wire.LIST, 429, False),
    "index-put-500": (wire.INDEX_PUT, 500, False),
    "object-get-503": (wire.OBJECT_GET, 503, True),
}


@pytest.mark.parametrize("case", sorted(PERSISTENT))
@pytest.mark.parametrize("backend", CLOUD)
def test_a_persistent_failure_exits_4_writes_nothing_and_is_never_empty(
    make_datastore, tmp_path: Path, backend: str, case: str
):
    kind, status, indexed = PERSISTENT[case]
    ds = make_datastore(backend)
    if indexed:
        _seed_indexed(ds)
    else:
        ds.seed(FILES)
    version_before = ds.index_version()
    matcher = {
        wire.INDEX_GET: wire.is_index_get(backend),
        wire.LIST: wire.is_list(backend),
        wire.OBJECT_GET: wire.is_object_get(backend),
        wire.INDEX_PUT: wire.is_write(backend),
    }[kind]
    target = tmp_path / "cache"
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(Fault(matcher, status=status, times=None))
        env = wire.proxied_env(backend, ds.env, proxy, **FAST_RETRIES)
        result = run_cli("bootstrap", ds.url, str(target), "--json", env=env)

        assert result.code == 4, (result.stdout, result.stderr)
        report = result.json
        assert report["status"] == "error" and report["exit_code"] == 4
        # (the failing object may be the one named empty.txt: its name is not a verdict)
        assert "empty" not in (result.stdout + result.stderr).replace("empty.txt", "")
        # Every failing request was retried: exactly AWS_MAX_ATTEMPTS times on S3, until the deadline on GCS.
        tries = Counter(s.path for k, s in wire.kinds(backend, proxy) if k == kind)
        assert tries and all((n == 3) if backend == "s3" else (n >= 2) for n in tries.values()), tries
        if kind in (wire.INDEX_GET, wire.LIST):
            assert wire.count(backend, proxy, wire.INDEX_PUT) == 0
    # Nothing written: remote index as before, no data (and no local index) at the target.
    assert ds.index_version() == version_before
    assert not target.exists() or data_files(target) == {}
    assert not (target / ".datastore-index.json").exists()


@pytest.mark.parametrize(
    "backend,where",
    [("s3", "wrong-secret"), ("s3", wire.LIST), ("gcs", wire.INDEX_GET), ("gcs", wire.LIST)],
)
def test_access_denied_exits_3_at_once_without_retries(make_datastore, tmp_path: Path, backend: str, where: str):
    ds = make_datastore(backend)
    ds.seed(FILES)
    with Proxy(ds.endpoint) as proxy:
        env = wire.proxied_env(backend, ds.env, proxy)
        if where == "wrong-secret":
            env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"  # SeaweedFS itself answers 403
        else:
            matcher = wire.is_index_get(backend) if where == wire.INDEX_GET else wire.is_list(backend)
            proxy.add_fault(Fault(matcher, status=403, times=None))
        result = run_cli("bootstrap", ds.url, str(tmp_path / "cache"), env=env)

        assert result.code == 3, result.stderr
        assert [s.status for s in proxy.seen].count(403) == 1, "a 403 is never retried"
        assert wire.count(backend, proxy, wire.INDEX_PUT) == 0
        # With a wrong secret the first request is denied: the GET of _index/_meta.json (issue 11).
        denied = {wire.LIST: wire.LIST, "wrong-secret": wire.META_GET}.get(where, wire.INDEX_GET)
        assert wire.count(backend, proxy, denied) == 1
    message = result.stderr
    assert "access denied" in message
    if backend == "s3":
        assert "environment variables" in message
        assert ("s3:ListBucket" if where == wire.LIST else "s3:GetObject") in message
        assert ACCESS_KEY not in message and "not-the-secret" not in message
    else:
        assert "anonymous" in message
        assert ("storage.objects.list" if where == wire.LIST else "storage.objects.get") in message
    assert ds.index() is None
