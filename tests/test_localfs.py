"""write_under (SPEC §3 hydrate): a file is created whole or not at all, never through a symlink.

Each promise runs twice: with the file written unnamed (``O_TMPFILE``, linked at its name when whole)
and with the fallback for filesystems without it (a temp name renamed over the final one).
"""

from __future__ import annotations

import errno
import os
import stat
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
