"""``syncops seed SRC DST`` (SPEC §3 "seed", issue 13 item 1), through the command line against two
buckets on SeaweedFS, two on fake-gcs-server, and across S3 → GCS → ``file://``.

What is counted at the loopback proxy is the proof: a same-provider seed sends copy requests and no
object GET or PUT of data (S3 ``CopyObject`` is a PUT carrying ``x-amz-copy-source``; GCS ``rewrite``
is a POST to ``…/rewriteTo/…``); a rerun copies nothing; a killed seed rerun copies only the rest.
Races and kills are lined up at the proxy (a request held until the test lets it go), never timed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from syncops import index as idx
from tests import wire
from tests.conftest import CliResult, Datastore, run_cli, syncops_command
from tests.proxy import FORWARD, RESET, Fault, Held, Proxy, Seen, kill

INDEX = ".datastore-index.json"
DATA = {
    "data/models/a.json": b'{"a": 1}',
    "data/models/b.json": b"[2, 3]",
    "data/raw/c.bin": bytes(range(256)) * 40,
    "notes.txt": b"hello",
}
#: Never data: internal files and a namespace subtree of its own (SPEC §2).
NOT_DATA = {
    ".lock": b"",
    "data/_catalog.db": b"sqlite",
    "_control/state": b"{}",
    "team-b/.namespace.json": b"{}",
    "team-b/other.json": b"{}",
}
MANY = {f"part/{i:02d}.bin": bytes([i]) * (2048 + i) for i in range(10)}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seed_cli(src: Datastore, dst: Datastore, *flags: str, env: dict[str, str] | None = None) -> CliResult:
    return run_cli("seed", src.url, dst.url, "--json", *flags, env=env if env is not None else both(src, dst))


def both(src: Datastore, dst: Datastore, **extra: str) -> dict[str, str]:
    """One environment reaching both datastores (S3 keys and endpoint, GCS emulator)."""
    return {**src.env, **dst.env, **extra}


def ok(result: CliResult) -> dict[str, Any]:
    assert result.code == 0, result.stderr or result.stdout
    return result.json


def objects(ds: Datastore) -> dict[str, bytes]:
    """Every object of a datastore but its index, by key relative to the prefix."""
    out = {}
    for full in ds.raw.keys():
        key = full[len(ds.prefix) + 1 :] if ds.prefix else full
        if key not in (INDEX, ".datastore.lock"):
            data = ds.raw.get(full)
            assert data is not None
            out[key] = data
    return out


def assert_seeded(dst: Datastore, files: dict[str, bytes], *, sha256: bool) -> dict[str, Any]:
    """DST holds exactly ``files`` and an index listing each with its size (and sha256 when expected)."""
    assert objects(dst) == files
    published = dst.index()
    assert published is not None and published["version"] == 1
    entries = published["entries"]
    assert sorted(entries) == sorted(files)
    for key, data in files.items():
        assert entries[key]["size"] == len(data)
        if sha256:
            assert entries[key]["sha256"] == sha(data)
    return published


def is_s3_copy(seen: Seen) -> bool:
    return seen.method == "PUT" and "x-amz-copy-source" in seen.headers


def is_gcs_rewrite(seen: Seen) -> bool:
    return seen.method == "POST" and "/rewriteTo/" in seen.path


def s3_copy_fault(**options: Any) -> Fault:
    return Fault(lambda method, path: method == "PUT", headers=lambda h: "x-amz-copy-source" in h, **options)


def bucket_of(backend: str, seen: Seen) -> str:
    """The bucket a request was for (S3 path-style; GCS JSON API, the destination of a rewrite)."""
    path = seen.path.split("?")[0]
    if backend == "s3":
        return path.lstrip("/").split("/", 1)[0]
    if "/rewriteTo/b/" in path:
        return path.split("/rewriteTo/b/", 1)[1].split("/", 1)[0]
    return path.split("/b/", 1)[1].split("/", 1)[0]


# -- same provider: server-side -----------------------------------------------------------------------


def test_s3_to_s3_is_copied_server_side_no_object_bytes_cross_the_proxy(
    make_datastore: Callable[..., Datastore],
) -> None:
    src = make_datastore("s3", prefix="env/prod")
    dst = make_datastore("s3", prefix="env/dev")
    src.seed({**DATA, **NOT_DATA})  # no index: seed lists it, filters it in memory, publishes nothing there
    src_before = {key: src.raw.version(key) for key in src.raw.keys()}

    with Proxy(src.endpoint) as proxy:
        report = ok(seed_cli(src, dst, env=wire.proxied_env("s3", both(src, dst), proxy)))
        seen = proxy.seen

    assert (report["status"], report["copy_mode"], report["copied"], report["skipped"]) == (
        "seeded",
        "server-side",
        len(DATA),
        0,
    )
    assert report["index_written"] is True and report["bytes"] == sum(map(len, DATA.values()))
    # On the wire: one CopyObject per data key, into DST, naming the SRC object; the only other write is
    # DST's index, create-only; no object GET, no PUT with a body of data, nothing written to SRC.
    copies = [s for s in seen if is_s3_copy(s)]
    assert sorted(s.headers["x-amz-copy-source"] for s in copies) == sorted(f"{src.bucket}/{src.full(k)}" for k in DATA)
    assert {bucket_of("s3", s) for s in copies} == {dst.bucket}
    assert all(s.headers.get("if-none-match") == "*" for s in copies)
    kinds = [(wire.request_kind("s3", s.method, s.path), s) for s in seen if not is_s3_copy(s)]
    assert [k for k, _ in kinds if k == wire.OBJECT_GET] == []
    puts = [s for k, s in kinds if k in (wire.OBJECT_PUT, wire.INDEX_PUT)]
    assert [(bucket_of("s3", s), wire.request_kind("s3", s.method, s.path)) for s in puts] == [
        (dst.bucket, wire.INDEX_PUT)
    ]
    assert puts[0].headers.get("if-none-match") == "*"
    assert not [s for s in seen if s.method == "HEAD"], "a fresh destination needs no HEAD"
    assert all(s.method == "GET" for s in seen if bucket_of("s3", s) == src.bucket)
    budget = Counter(
        (bucket_of("s3", s), "copy" if is_s3_copy(s) else wire.request_kind("s3", s.method, s.path)) for s in seen
    )
    assert budget == {
        # each side's layout is read first: a GET of _index/_meta.json (404: a monolith)
        (src.bucket, wire.META_GET): 1,
        (dst.bucket, wire.META_GET): 1,
        (src.bucket, wire.INDEX_GET): 1,  # 404: no index, so SRC is listed (and nothing published there)
        (src.bucket, wire.LIST): 1,
        (dst.bucket, wire.INDEX_GET): 1,
        (dst.bucket, wire.LIST): 1,
        (dst.bucket, "copy"): len(DATA),
        (dst.bucket, wire.INDEX_PUT): 1,
    }

    published = assert_seeded(dst, DATA, sha256=False)  # no byte was read here: no sha256 to claim
    assert all("sha256" not in e for e in published["entries"].values())
    assert {key: src.raw.version(key) for key in src.raw.keys()} == src_before
    assert src.index() is None


def test_s3_rerun_copies_nothing_and_leaves_the_index_alone(make_datastore: Callable[..., Datastore]) -> None:
    src, dst = make_datastore("s3"), make_datastore("s3")
    src.seed(DATA)
    ok(seed_cli(src, dst))
    version = dst.index_version()

    with Proxy(src.endpoint) as proxy:
        again = ok(seed_cli(src, dst, env=wire.proxied_env("s3", both(src, dst), proxy)))
        seen = proxy.seen

    assert (again["status"], again["copied"], again["skipped"], again["index_written"]) == (
        "unchanged",
        0,
        len(DATA),
        False,
    )
    assert [s for s in seen if s.method in ("PUT", "POST")] == []
    # Identity is proved, never assumed from the size: one HEAD per key on each side.
    assert sum(1 for s in seen if s.method == "HEAD") == 2 * len(DATA)
    assert dst.index_version() == version


def test_s3_objects_above_the_copy_limit_go_by_upload_part_copy(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above 5 GiB CopyObject is refused by S3; the limit is lowered here so a 12 MiB object takes the
    UploadPartCopy path, still with no byte through the machine and the condition on the completion."""
    from syncops.seed import seed
    from syncops.stores import open_store, s3

    monkeypatch.setattr(s3, "COPY_OBJECT_LIMIT", 5 * 1024 * 1024)
    monkeypatch.setattr(s3, "COPY_PART_SIZE", 5 * 1024 * 1024)
    big = bytes(range(256)) * (48 * 1024)  # 12 MiB: parts of 5, 5 and 2 MiB
    src, dst = make_datastore("s3"), make_datastore("s3")
    src.seed({"big.bin": big, "small.txt": b"small"})

    with Proxy(src.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        report = seed(open_store(src.url), open_store(dst.url))
        seen = proxy.seen

    assert (report.status, report.copied, report.copy_mode) == ("seeded", 2, "server-side")
    part_copies = [s for s in seen if is_s3_copy(s) and "partNumber=" in s.path]
    assert sorted(s.headers["x-amz-copy-source-range"] for s in part_copies) == [
        "bytes=0-5242879",
        "bytes=10485760-12582911",
        "bytes=5242880-10485759",
    ]
    completes = [s for s in seen if s.method == "POST" and "uploadId=" in s.path]
    assert len(completes) == 1 and completes[0].headers.get("if-none-match") == "*"
    assert [wire.request_kind("s3", s.method, s.path) for s in seen if s.method == "GET"].count(wire.OBJECT_GET) == 0
    assert assert_seeded(dst, {"big.bin": big, "small.txt": b"small"}, sha256=False)


def rewrite_unfinished_once() -> Callable[[str, str, int, bytes], bytes]:
    """A proxy rewrite: the first rewrite answers "not done yet, continue with this token", as GCS does
    for big objects or a change of location; the client must call again with the token."""
    state = {"left": 1}

    def rewrite(method: str, path: str, status: int, body: bytes) -> bytes:
        if method == "POST" and "/rewriteTo/" in path and status == 200 and state["left"]:
            state["left"] -= 1
            answer = json.loads(body)
            answer.update(done=False, rewriteToken="continue-here", totalBytesRewritten="0")
            answer.pop("resource", None)
            return json.dumps(answer).encode()
        return body

    return rewrite


def test_gcs_to_gcs_is_rewritten_server_side_and_a_rewrite_is_repeated_until_done(
    make_datastore: Callable[..., Datastore],
) -> None:
    src = make_datastore("gcs", prefix="env/prod")
    dst = make_datastore("gcs")
    src.seed({**DATA, **NOT_DATA})
    with Proxy(src.endpoint) as proxy:
        proxy.state.rewrites.append(rewrite_unfinished_once())
        report = ok(seed_cli(src, dst, env=wire.proxied_env("gcs", both(src, dst), proxy)))
        seen = proxy.seen

    assert (report["status"], report["copy_mode"], report["copied"]) == ("seeded", "server-side", len(DATA))
    rewrites = [s for s in seen if is_gcs_rewrite(s)]
    assert len(rewrites) == len(DATA) + 1, "one key's rewrite took a second call"
    continued = [s for s in rewrites if "rewriteToken=continue-here" in s.path]
    assert len(continued) == 1
    assert all("ifGenerationMatch=0" in s.path for s in rewrites)
    kinds = [wire.request_kind("gcs", s.method, s.path, s.body) for s in seen if not is_gcs_rewrite(s)]
    assert kinds.count(wire.OBJECT_GET) == 0 and kinds.count(wire.OBJECT_PUT) == 0
    # each side's layout first (a GET of _index/_meta.json, 404), then its index
    assert Counter(kinds) == {wire.META_GET: 2, wire.INDEX_GET: 2, wire.LIST: 2, wire.INDEX_PUT: 1}
    assert_seeded(dst, DATA, sha256=False)
    assert src.index() is None


# -- across providers: streamed -------------------------------------------------------------------------


def test_s3_to_gcs_to_file_streams_verified_bytes_and_indexes_their_sha256(
    make_datastore: Callable[..., Datastore],
) -> None:
    s3_src, gcs_mid, local = make_datastore("s3", prefix="env/prod"), make_datastore("gcs"), make_datastore("file")
    s3_src.seed({**DATA, **NOT_DATA})

    with Proxy(gcs_mid.endpoint) as gcs_proxy:
        first = ok(seed_cli(s3_src, gcs_mid, env=wire.proxied_env("gcs", both(s3_src, gcs_mid), gcs_proxy)))
        uploads = [s for s in gcs_proxy.seen if wire.request_kind("gcs", s.method, s.path, s.body) == wire.OBJECT_PUT]
    assert (first["copy_mode"], first["copied"]) == ("streamed", len(DATA))
    assert len(uploads) == len(DATA) and all("ifGenerationMatch=0" in s.path for s in uploads)
    assert_seeded(gcs_mid, DATA, sha256=True)

    second = ok(seed_cli(gcs_mid, local))
    assert (second["copy_mode"], second["copied"], second["status"]) == ("streamed", len(DATA), "seeded")
    published = assert_seeded(local, DATA, sha256=True)
    assert published["entries"] == gcs_mid.index()["entries"]  # type: ignore[index]

    back = make_datastore("s3")  # and home again: file:// -> S3
    ok(seed_cli(local, back))
    assert_seeded(back, DATA, sha256=True)


def test_a_streamed_object_whose_bytes_do_not_match_the_source_sha256_is_not_copied(
    make_datastore: Callable[..., Datastore],
) -> None:
    src, dst = make_datastore("file"), make_datastore("s3")
    src.seed(DATA)
    entries = {
        k: {"key": k, "size": len(v), "lastModified": "2026-05-04T12:00:00.000Z", "sha256": sha(v)}
        for k, v in DATA.items()
    }
    entries["notes.txt"]["sha256"] = sha(b"other")  # the index promises bytes the object does not hold
    src.seed({INDEX: json.dumps({"version": 1, "lastPulled": None, "entries": entries}).encode()})

    result = seed_cli(src, dst)

    assert result.code == 4, result.stderr
    assert [p["key"] for p in result.json["problems"]] == ["notes.txt"]
    good = {k: v for k, v in DATA.items() if k != "notes.txt"}
    published = assert_seeded(dst, good, sha256=True)
    assert published["entries"]["data/models/a.json"]["lastModified"] == "2026-05-04T12:00:00.000Z"


# -- resumable ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), [("s3", "s3"), ("s3", "gcs")], ids=["server-side", "streamed"])
def test_a_killed_seed_rerun_copies_only_what_is_missing(
    make_datastore: Callable[..., Datastore], tmp_path: Path, source: str, target: str
) -> None:
    src, dst = make_datastore(source), make_datastore(target)
    src.seed(MANY)
    held = Held()
    if target == "s3":
        hold = s3_copy_fault(status=RESET, skip=3, times=None, before=held.hold)
        landed = lambda proxy: sum(1 for s in proxy.seen if is_s3_copy(s) and s.status == 200)  # noqa: E731
        copies = lambda seen: [s for s in seen if is_s3_copy(s)]  # noqa: E731
    else:
        hold = Fault(
            wire.is_write("gcs"),
            body=lambda b: INDEX.encode() not in b,
            status=RESET,
            skip=3,
            times=None,
            before=held.hold,
        )
        landed = lambda proxy: wire.count("gcs", proxy, wire.OBJECT_PUT, 200)  # noqa: E731
        copies = lambda seen: [  # noqa: E731
            s for s in seen if wire.request_kind("gcs", s.method, s.path, s.body) == wire.OBJECT_PUT
        ]
    with Proxy(dst.endpoint) as proxy, held:  # held copies are reset when released (at the end)
        env = wire.proxied_env(target, both(src, dst), proxy)
        proxy.add_fault(hold)
        proc = subprocess.Popen(
            [*syncops_command(), "seed", src.url, dst.url, "--concurrency", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Both workers wait on a held copy, so the three before them have landed: kill the seed there.
        held.wait_for(2, proc)
        kill(proc)
        assert landed(proxy) == 3
        proxy.state.faults.remove(hold)
        first = objects(dst)
        assert len(first) == 3 and dst.index() is None

        proxy.reset_counts()
        rerun = ok(run_cli("seed", src.url, dst.url, "--json", env=env))
        rerun_copies = copies(proxy.seen)

    assert (rerun["copied"], rerun["skipped"], rerun["status"]) == (len(MANY) - 3, 3, "seeded")
    assert len(rerun_copies) == len(MANY) - 3, "only the missing objects were copied"
    published = assert_seeded(dst, MANY, sha256=False)
    # sha256 where it is known: of the bytes streamed here; the objects found there were not read again.
    hashed = {k for k, e in published["entries"].items() if "sha256" in e}
    assert hashed == (set() if target == source else set(MANY) - set(first))


# -- what is copied -------------------------------------------------------------------------------------


def test_include_and_exclude_narrow_the_copy_set_and_the_index(make_datastore: Callable[..., Datastore]) -> None:
    src, dst = make_datastore("s3"), make_datastore("s3")
    src.seed({**DATA, "data/raw/tmp.partial": b"x", "logs/today.log": b"log"})

    report = ok(seed_cli(src, dst, "--include", "data/*", "--include", "notes.txt", "--exclude", "*.partial"))

    assert report["copied"] == len(DATA)
    assert_seeded(dst, DATA, sha256=False)
    nothing = make_datastore("s3")
    empty = ok(seed_cli(src, nothing, "--include", "nowhere/*"))
    assert (empty["status"], empty["copied"], empty["index_written"]) == ("empty", 0, False)
    assert any("--include/--exclude" in w for w in empty["warnings"])
    assert nothing.raw.keys() == []


@pytest.mark.parametrize("backend", ["file", "s3", "gcs"])
def test_dry_run_lists_what_would_be_copied_and_writes_nothing(
    make_datastore: Callable[..., Datastore], backend: str
) -> None:
    src, dst = make_datastore(backend), make_datastore(backend)
    src.seed(DATA)
    dst.seed({"notes.txt": b"hello"})  # already there, identical

    report = ok(seed_cli(src, dst, "--dry-run"))

    assert report["dry_run"] is True and report["status"] == "planned"
    assert report["to_copy"] == sorted(k for k in DATA if k != "notes.txt")
    assert report["skipped"] == 1 and report["conflicts"] == []
    assert objects(dst) == {"notes.txt": b"hello"} and dst.index() is None
    assert src.index() is None


# -- an existing destination ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_a_different_destination_index_is_not_replaced_without_force(
    make_datastore: Callable[..., Datastore], backend: str
) -> None:
    src, dst = make_datastore(backend), make_datastore(backend)
    src.seed(DATA)
    dst.seed({"notes.txt": b"another environment's notes", "kept.txt": b"theirs"})
    ok(run_cli("discover", dst.url, "--json", env=dst.env))
    index_before, version_before = dst.index(), dst.index_version()

    refused = seed_cli(src, dst)

    assert refused.code == 7, refused.stderr
    assert [c["key"] for c in refused.json["conflicts"]] == ["notes.txt"]
    assert refused.json["conflicts"][0]["destination"].startswith("object of 27 bytes")
    assert (refused.json["copied"], refused.json["index_written"]) == (0, False)
    assert dst.index_version() == version_before and dst.index() == index_before
    assert objects(dst) == {"notes.txt": b"another environment's notes", "kept.txt": b"theirs"}
    human = run_cli("seed", src.url, dst.url, env=both(src, dst))
    assert human.code == 7 and '"notes.txt": source 5 bytes, destination object of 27 bytes' in human.stderr

    forced = ok(seed_cli(src, dst, "--force"))

    assert forced["copied"] == len(DATA) and forced["index_written"] is True
    # The source's data over the conflicting key; what only the destination held is kept and indexed.
    assert objects(dst) == {**DATA, "kept.txt": b"theirs"}
    assert sorted(dst.index()["entries"]) == sorted([*DATA, "kept.txt"])  # type: ignore[index]


def test_a_destination_object_written_during_the_seed_is_never_overwritten(
    make_datastore: Callable[..., Datastore],
) -> None:
    """Create-only copies: another writer creates a key between the plan and its copy (lined up at the
    proxy); that copy loses with 412, the key is listed, every other key is seeded and indexed."""
    src, dst = make_datastore("s3"), make_datastore("s3")
    src.seed(DATA)
    with Proxy(src.endpoint) as proxy:
        proxy.add_fault(
            Fault(
                lambda method, path: method == "PUT",
                headers=lambda h: h.get("x-amz-copy-source", "").endswith("/notes.txt"),
                status=FORWARD,
                before=lambda: dst.raw.put("notes.txt", b"written by another peer"),
            )
        )
        result = seed_cli(src, dst, env=wire.proxied_env("s3", both(src, dst), proxy))

    assert result.code == 7, result.stderr
    assert [c["key"] for c in result.json["conflicts"]] == ["notes.txt"]
    assert dst.raw.get("notes.txt") == b"written by another peer"
    others = {k: v for k, v in DATA.items() if k != "notes.txt"}
    assert sorted(dst.index()["entries"]) == sorted(others)  # type: ignore[index]
    assert result.json["copied"] == len(others)


def test_a_rewrite_refused_by_its_generation_condition_is_a_conflict(
    make_datastore: Callable[..., Datastore],
) -> None:
    """fake-gcs-server ignores ``ifGenerationMatch`` on rewrite (measured): GCS's 412 is injected at
    the proxy to show that a create-only rewrite that loses is listed, never retried over the object."""
    src, dst = make_datastore("gcs"), make_datastore("gcs")
    src.seed(DATA)
    with Proxy(src.endpoint) as proxy:
        proxy.add_fault(
            Fault(
                lambda method, path: "/rewriteTo/" in path and path.split("?")[0].endswith("/o/notes.txt"),
                status=412,
                before=lambda: dst.raw.put("notes.txt", b"written by another peer"),
            )
        )
        result = seed_cli(src, dst, env=wire.proxied_env("gcs", both(src, dst), proxy))

    assert result.code == 7, result.stderr
    assert [c["key"] for c in result.json["conflicts"]] == ["notes.txt"]
    assert dst.raw.get("notes.txt") == b"written by another peer"
    assert "notes.txt" not in dst.index()["entries"]  # type: ignore[index]


# -- bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        ("s3://bucket/env", "s3://bucket/env"),
        ("s3://bucket/env", "s3://bucket/env/dev"),
        ("s3://bucket/env/dev", "s3://bucket/env"),
        ("s3://bucket", "s3://bucket/env"),
        ("gs://bucket/a", "gs://bucket/a/b"),
        ("file:///tmp/syncops-seed/a", "file:///tmp/syncops-seed/a/b"),
    ],
)
def test_a_source_equal_to_or_nested_in_the_destination_is_bad_input(src: str, dst: str) -> None:
    for first, second in ((src, dst), (dst, src)):
        result = run_cli("seed", first, second, "--json")
        assert result.code == 2, result.stderr
        assert "one is inside the other" in result.json["error"]


def test_a_source_without_access_exits_3_naming_the_source(make_datastore: Callable[..., Datastore]) -> None:
    src, dst = make_datastore("s3"), make_datastore("s3")
    src.seed(DATA)
    with Proxy(src.endpoint) as proxy:
        proxy.add_fault(Fault(lambda method, path: path.startswith(f"/{src.bucket}"), status=403, times=None))
        result = seed_cli(src, dst, env=wire.proxied_env("s3", both(src, dst), proxy))
        touched = {bucket_of("s3", s) for s in proxy.seen}

    assert result.code == 3, result.stderr
    assert f"s3://{src.bucket}/" in result.json["error"] and "access denied" in result.json["error"]
    assert touched == {src.bucket}, "the destination is not touched before the source is read"
    assert dst.raw.keys() == []


def test_a_corrupt_source_index_exits_6_and_nothing_is_copied(make_datastore: Callable[..., Datastore]) -> None:
    src, dst = make_datastore("gcs"), make_datastore("gcs")
    src.seed({**DATA, INDEX: b"{not json"})
    result = seed_cli(src, dst)
    assert result.code == 6 and f"{src.url}/{INDEX}" in result.json["error"]
    assert dst.raw.keys() == []


def test_seed_without_a_copy_set_writes_nothing(make_datastore: Callable[..., Datastore]) -> None:
    src, dst = make_datastore("file"), make_datastore("file")
    src.seed(NOT_DATA)
    report = ok(seed_cli(src, dst))
    assert (report["status"], report["copied"], report["index_written"]) == ("empty", 0, False)
    assert dst.raw.keys() == []


def test_the_seeded_index_is_what_discover_and_hydrate_use(
    make_datastore: Callable[..., Datastore], tmp_path: Path
) -> None:
    src, dst = make_datastore("gcs"), make_datastore("s3")
    src.seed(DATA)
    ok(seed_cli(src, dst))
    found = ok(run_cli("discover", dst.url, "--json", env=dst.env))
    assert (found["status"], found["entries"]) == ("found", len(DATA))
    pulled = ok(run_cli("hydrate", dst.url, str(tmp_path / "cache"), "--json", env=dst.env))
    assert pulled["pulled"] == len(DATA)
    base = idx.parse((tmp_path / "cache" / INDEX).read_bytes())
    assert {k: e.sha256 for k, e in base.entries.items()} == {k: sha(v) for k, v in DATA.items()}
