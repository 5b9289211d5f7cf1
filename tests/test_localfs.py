"""write_under (SPEC §3 hydrate): a file is created whole or not at all, never through a symlink.

Each promise runs twice: with the file written unnamed (``O_TMPFILE``, linked at its name when whole)
and with the fallback for filesystems without it (a temp name renamed over the final one).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from syncops import localfs
from syncops.localfs import PARTIAL_SUFFIX, NotRegularFile, write_under

MTIME_NS = 1_600_000_000_123_000_000


@pytest.fixture(params=["unnamed", "temp name"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "unnamed":
        if localfs._UNNAMED_FLAGS is None:
            pytest.fail("this machine has O_TMPFILE and /proc: the unnamed path must be the one in use")
    else:
        monkeypatch.setattr(localfs, "_UNNAMED_FLAGS", None)
    return str(request.param)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name.endswith(PARTIAL_SUFFIX))


def write(root: Path, key: str, data: bytes) -> os.stat_result:
    def fill(out):  # type: ignore[no-untyped-def]
        out.write(data)
        return len(data)

    written, info = write_under(root, key, fill, mtime_ns=MTIME_NS)
    assert written == len(data)
    return info


def test_a_new_file_appears_whole_with_its_mtime_and_the_umask_mode(tmp_path: Path, mode: str):
    seen_while_writing: list[bool] = []

    def fill(out):  # type: ignore[no-untyped-def]
        out.write(b"first half ")
        out.flush()
        seen_while_writing.append((tmp_path / "a" / "b.txt").exists())
        out.write(b"second half")
        return None

    old = os.umask(0o027)
    try:
        _, info = write_under(tmp_path, "a/b.txt", fill, mtime_ns=MTIME_NS)
    finally:
        os.umask(old)
    path = tmp_path / "a" / "b.txt"
    assert seen_while_writing == [False], "nothing at the final path until the file is whole"
    assert path.read_bytes() == b"first half second half"
    on_disk = path.stat()
    assert (on_disk.st_mtime_ns, on_disk.st_size, on_disk.st_ino) == (MTIME_NS, 22, info.st_ino)
    assert stat.S_IMODE(on_disk.st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_an_older_copy_is_replaced_whole(tmp_path: Path, mode: str):
    (tmp_path / "f.bin").write_bytes(b"old bytes")
    write(tmp_path, "f.bin", b"new")
    assert (tmp_path / "f.bin").read_bytes() == b"new"
    assert leftovers(tmp_path) == []


def test_a_symlink_at_the_name_is_replaced_never_written_through(tmp_path: Path, mode: str):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep me")
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.txt").symlink_to(outside)
    write(root, "f.txt", b"data")
    assert not (root / "f.txt").is_symlink()
    assert (root / "f.txt").read_bytes() == b"data"
    assert outside.read_bytes() == b"keep me"
    assert leftovers(root) == []


def test_a_fifo_at_the_name_is_replaced_without_blocking(tmp_path: Path, mode: str):
    os.mkfifo(tmp_path / "f.txt")
    write(tmp_path, "f.txt", b"data")
    assert stat.S_ISREG((tmp_path / "f.txt").lstat().st_mode)
    assert (tmp_path / "f.txt").read_bytes() == b"data"


def test_a_directory_at_the_name_is_refused_and_kept(tmp_path: Path, mode: str):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "inside.txt").write_bytes(b"x")
    with pytest.raises(NotRegularFile) as caught:
        write(tmp_path, "d", b"data")
    assert caught.value.errno == errno.EISDIR
    assert (tmp_path / "d" / "inside.txt").read_bytes() == b"x"
    assert leftovers(tmp_path) == []


def test_a_failed_fill_leaves_the_old_file_and_nothing_else(tmp_path: Path, mode: str):
    (tmp_path / "f.txt").write_bytes(b"old")

    def fill(out):  # type: ignore[no-untyped-def]
        out.write(b"half")
        raise RuntimeError("the download broke off")

    with pytest.raises(RuntimeError):
        write_under(tmp_path, "f.txt", fill)
    with pytest.raises(RuntimeError):
        write_under(tmp_path, "new.txt", fill)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
    assert (tmp_path / "f.txt").read_bytes() == b"old"


def test_a_symlinked_directory_on_the_way_is_never_followed(tmp_path: Path, mode: str):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "data").symlink_to(elsewhere)
    with pytest.raises(NotRegularFile):
        write(root, "data/f.txt", b"data")
    assert list(elsewhere.iterdir()) == []


def test_where_an_unnamed_file_cannot_be_linked_it_is_copied_to_a_temp_name_and_no_more_are_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    if localfs._UNNAMED_FLAGS is None:
        pytest.fail("this machine has O_TMPFILE and /proc: the unnamed path must be the one in use")
    monkeypatch.setattr(localfs, "_UNNAMED_FLAGS", localfs._UNNAMED_FLAGS)  # restored after the test
    monkeypatch.setattr(localfs, "_PROC_FD", str(tmp_path / "no-proc-here"))
    data = os.urandom(3 * localfs.CHUNK + 17)
    info = write(tmp_path, "big.bin", data)
    path = tmp_path / "big.bin"
    assert path.read_bytes() == data
    on_disk = path.stat()
    assert (on_disk.st_mtime_ns, on_disk.st_size, on_disk.st_ino) == (MTIME_NS, len(data), info.st_ino)
    assert localfs._UNNAMED_FLAGS is None, "the next files go straight to a temp name"
    write(tmp_path, "next.bin", b"next")
    assert (tmp_path / "next.bin").read_bytes() == b"next"
    assert leftovers(tmp_path) == []


def test_a_copy_fallback_that_fails_leaves_no_temp_file_and_no_registry_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(localfs, "_UNNAMED_FLAGS", localfs._UNNAMED_FLAGS)
    monkeypatch.setattr(localfs, "_PROC_FD", str(tmp_path / "no-proc-here"))

    def broken_read(*args: object) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(localfs.os, "pread", broken_read)
    with pytest.raises(OSError) as caught:
        write(tmp_path, "f.bin", b"data")
    assert caught.value.errno == errno.EIO
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert localfs._partials == set()
    assert localfs._links_in_flight == 0


def test_a_link_refused_by_the_disk_is_a_write_failure_not_a_reason_to_stop_unnamed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    if localfs._UNNAMED_FLAGS is None:
        pytest.fail("this machine has O_TMPFILE and /proc: the unnamed path must be the one in use")
    flags = localfs._UNNAMED_FLAGS
    (tmp_path / "f.bin").write_bytes(b"old")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(localfs.os, "link", full)
    for key in ("f.bin", "new.bin"):
        with pytest.raises(OSError) as caught:
            write(tmp_path, key, b"data")
        assert caught.value.errno == errno.ENOSPC
    assert localfs._UNNAMED_FLAGS == flags
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    assert (tmp_path / "f.bin").read_bytes() == b"old"
    assert localfs._links_in_flight == 0


class _WatchedCondition(threading.Condition):
    """A condition that says which threads waited on it, and signals each wait."""

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__(lock)
        self.waiters: list[str] = []
        self.waited = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiters.append(threading.current_thread().name)
        self.waited.set()
        return super().wait(timeout)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> _WatchedCondition:
    """The temp-file registry of a process of its own (the cleanup keeps its lock for good)."""
    lock = threading.Lock()
    settled = _WatchedCondition(lock)
    monkeypatch.setattr(localfs, "_partials", set())
    monkeypatch.setattr(localfs, "_partials_lock", lock)
    monkeypatch.setattr(localfs, "_links_settled", settled)
    monkeypatch.setattr(localfs, "_links_in_flight", 0)
    monkeypatch.setattr(localfs, "_stopping", False)
    return settled


def test_writers_link_at_once_and_the_deadline_cleanup_waits_for_links_begun_and_stops_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: _WatchedCondition
):
    """Two links in progress at the same moment (the lock is not held across a link); the deadline's
    cleanup waits for every link begun, the temp name's too, and removes that temp file once it is
    registered; a writer that comes to its link after the cleanup began never links."""
    if localfs._UNNAMED_FLAGS is None:
        pytest.fail("this machine has O_TMPFILE and /proc: the unnamed path must be the one in use")
    monkeypatch.setattr(localfs, "LINKS_SETTLE_SECONDS", 60.0)
    (tmp_path / "taken.bin").write_bytes(b"old")  # this name is taken: its writer links a temp name
    real_link = os.link
    both_linking = threading.Barrier(3)
    release, temp_linking, release_temp = threading.Event(), threading.Event(), threading.Event()
    links: list[str] = []

    def held_link(src: str, dst: str, **kwargs: object) -> None:
        links.append(dst)
        if len(links) <= 2:
            both_linking.wait(timeout=30)  # two writers inside a link at once
            assert release.wait(timeout=30)
        elif dst.endswith(PARTIAL_SUFFIX):
            temp_linking.set()
            assert release_temp.wait(timeout=30)
        real_link(src, dst, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(localfs.os, "link", held_link)
    errors: dict[str, BaseException] = {}

    def writer(key: str) -> None:
        try:
            write(tmp_path, key, key.encode())
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors[key] = exc

    first = [threading.Thread(target=writer, args=(k,), name=k, daemon=True) for k in ("new.bin", "taken.bin")]
    for thread in first:
        thread.start()
    both_linking.wait(timeout=30)
    assert localfs._links_in_flight == 2
    cleanup = threading.Thread(target=localfs.remove_partial_files, name="cleanup", daemon=True)
    cleanup.start()
    assert registry.waited.wait(timeout=30)
    assert registry.waiters == ["cleanup"], "the cleanup waits for the two links in progress"
    registry.waited.clear()
    late = threading.Thread(target=writer, args=("late.bin",), name="late", daemon=True)
    late.start()
    assert registry.waited.wait(timeout=30)
    assert registry.waiters == ["cleanup", "late"], "the late writer waits instead of linking"
    release.set()
    first[0].join(timeout=30)
    assert not first[0].is_alive() and (tmp_path / "new.bin").read_bytes() == b"new.bin"
    assert temp_linking.wait(timeout=30)  # the taken name's writer links a temp name, inside the same count
    assert cleanup.is_alive() and localfs._links_in_flight == 1, "the cleanup still waits for that link"
    release_temp.set()
    cleanup.join(timeout=30)
    assert not cleanup.is_alive()
    assert late.is_alive() and not (tmp_path / "late.bin").exists()
    assert len(links) == 3 and sorted(links[:2]) == ["new.bin", "taken.bin"] and links[2].endswith(PARTIAL_SUFFIX)
    # The temp name was registered before the cleanup went on, so the cleanup removed it (the writer's
    # rename then finds nothing and the older copy stays), unless that rename came first (whole).
    assert leftovers(tmp_path) == []
    assert (tmp_path / "taken.bin").read_bytes() in (b"old", b"taken.bin")
    assert set(errors) <= {"taken.bin"} and all(isinstance(e, FileNotFoundError) for e in errors.values())


def test_the_deadline_cleanup_waits_for_a_hung_link_only_so_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: _WatchedCondition
):
    """A link that never returns (a hung mount) does not keep the process from ending at its deadline."""
    monkeypatch.setattr(localfs, "LINKS_SETTLE_SECONDS", 0.2)
    hung, release = threading.Event(), threading.Event()

    def hanging_link(src: str, dst: str, **kwargs: object) -> None:
        hung.set()
        release.wait(timeout=60)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(localfs.os, "link", hanging_link)
    writer = threading.Thread(target=lambda: pytest.raises(OSError, write, tmp_path, "f.bin", b"x"), daemon=True)
    writer.start()
    assert hung.wait(timeout=30)
    cleanup = threading.Thread(target=localfs.remove_partial_files, daemon=True)
    cleanup.start()
    cleanup.join(timeout=30)
    assert not cleanup.is_alive(), "the cleanup gave up waiting and went on"
    assert localfs._links_in_flight == 1
    release.set()
