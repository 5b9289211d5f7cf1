"""Crashes (SPEC §3 hydrate, push): a process killed with SIGKILL half-way leaves nothing half-done.

* hydrate: every download goes to a file with no name (``O_TMPFILE``; elsewhere a temp file beside
  its final path) that gets its name only when complete, so after a kill every file at a final path
  is whole, nothing partial is left anywhere, and the rerun downloads only what is missing.
* push: the index is written last, in one conditional PUT, so a push killed during its uploads
  leaves the remote index exactly as it was (valid); the rerun publishes everything.

The kill is lined up at the proxy, not timed: the first transfers pass, every later one is held
there before it is answered, and the process is killed once both of its workers wait on a held
request. Then exactly the transfers before them are complete, and each worker has a file open that
has no name yet (hydrate) or an upload in flight (push).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from syncops import index as idx
from syncops import localfs
from syncops.localfs import PARTIAL_SUFFIX
from tests import wire
from tests.conftest import run_cli, syncops_command
from tests.expect import assert_hydrated, assert_index_after_push, data_files
from tests.proxy import RESET, Fault, Held, Proxy, kill

FILES = {f"data/chunk-{i:02d}.bin": bytes([i]) * (96 * 1024 + i) for i in range(10)}
#: Transfers let through before the proxy starts holding them.
DONE_BEFORE = 4


#: Workers of the killed process: both end up waiting on a held request.
WORKERS = 2


def partial_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"*{PARTIAL_SUFFIX}")]


def writing_under(pid: int, root: Path) -> bool:
    """Whether process ``pid`` has a file under ``root`` open that has no final name yet: an unnamed
    ``O_TMPFILE`` file (``/proc`` shows it as ``DIR/#INODE (deleted)``) or a temp file."""
    fds = Path(f"/proc/{pid}/fd")
    root = Path(os.path.realpath(root))  # /proc shows resolved paths
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith(f"{root}/") and (target.endswith(" (deleted)") or target.endswith(PARTIAL_SUFFIX)):
            return True
    return False


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_hydrate_killed_half_way_leaves_no_partial_file_and_the_rerun_fetches_only_the_rest(
    make_datastore, tmp_path: Path, backend: str
):
    ds = make_datastore(backend)
    ds.seed(FILES)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    target = tmp_path / "cache"
    held = Held()
    with Proxy(ds.endpoint) as proxy, held:
        # The held GETs are reset when released (at the end): they never reach the server, and no
        # late answer is counted among the rerun's.
        hold = proxy.add_fault(
            Fault(wire.is_object_get(backend), status=RESET, times=None, skip=DONE_BEFORE, before=held.hold)
        )
        env = wire.proxied_env(backend, ds.env, proxy)
        proc = subprocess.Popen(
            [*syncops_command(), "hydrate", ds.url, str(target), "--concurrency", str(WORKERS)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Half-way: both workers wait on a held GET, each with its unnamed (or temp) file open; every
        # download before those is complete, and named.
        held.wait_for(WORKERS, proc)
        assert writing_under(proc.pid, target)
        kill(proc)

        # Nothing partial at a final path: every file there is whole and exact; no local index yet.
        done = data_files(target)
        partial = {k for k in done if k.endswith(PARTIAL_SUFFIX)}
        if localfs._UNNAMED_FLAGS is not None:
            assert not partial, "a file with no name yet leaves nothing behind"
        whole = {k: v for k, v in done.items() if k not in partial}
        assert len(whole) == DONE_BEFORE
        assert all(FILES[k] == v for k, v in whole.items())
        assert not (target / ".datastore-index.json").exists()

        proxy.state.faults.remove(hold)
        proxy.reset_counts()
        rerun = run_cli("hydrate", ds.url, str(target), "--json", env=env)
        assert rerun.code == 0, rerun.stderr
        missing = len(FILES) - len(whole)
        assert (rerun.json["pulled"], rerun.json["skipped"]) == (missing, len(whole))
        assert wire.count(backend, proxy, wire.OBJECT_GET) == missing, "only the missing files were fetched"
    # The temp files a kill leaves behind are never taken for data; the cache is otherwise exact.
    for path in partial_files(target):
        path.unlink()
    assert_hydrated(target, FILES)


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_push_killed_half_way_leaves_the_remote_index_valid_and_unchanged(make_datastore, tmp_path: Path, backend: str):
    ds = make_datastore(backend)
    remote = {"remote/kept.json": b'{"kept": 1}'}
    ds.seed(remote)
    assert run_cli("discover", ds.url, env=ds.env).code == 0
    index_before, version_before = ds.raw.get(ds.full(".datastore-index.json")), ds.index_version()
    source = tmp_path / "src"
    for key, data in FILES.items():
        (source / key).parent.mkdir(parents=True, exist_ok=True)
        (source / key).write_bytes(data)
    held = Held()
    with Proxy(ds.endpoint) as proxy, held:
        # Held uploads are reset when released (at the end): they never reach the server.
        proxy.add_fault(Fault(wire.is_write(backend), status=RESET, times=None, skip=DONE_BEFORE, before=held.hold))
        env = wire.proxied_env(backend, ds.env, proxy)
        proc = subprocess.Popen(
            [*syncops_command(), "push", ds.url, str(source), "--concurrency", str(WORKERS)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        held.wait_for(WORKERS, proc)  # both workers mid-upload; the uploads before them are done
        kill(proc)
        assert wire.count(backend, proxy, wire.OBJECT_PUT, 200) == DONE_BEFORE
        assert wire.count(backend, proxy, wire.INDEX_PUT) == 0

    # The index is untouched and valid; the uploaded objects are merely unindexed (verify says so).
    assert ds.index_version() == version_before
    assert ds.raw.get(ds.full(".datastore-index.json")) == index_before
    assert sorted(idx.parse(index_before or b"").entries) == sorted(remote)
    check = run_cli("verify", ds.url, "--json", env=ds.env)
    assert check.code == 5
    assert {p["kind"] for p in check.json["problems"]} == {"unindexed-object"}

    rerun = run_cli("push", ds.url, str(source), "--json", env=ds.env)
    assert rerun.code == 0, rerun.stderr
    assert_index_after_push(ds, remote, FILES)
