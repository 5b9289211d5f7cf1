"""The command line's contract (SPEC §4): usage errors, --json on failure, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Datastore, run_cli


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["discover", "ftp://host/x"], "expected s3://bucket[/prefix]"),
        (["discover", "s3://"], "no bucket name"),
        (["discover", "file://relative/path"], "file:///absolute/path"),
        (["discover", "s3://bucket/a/../b"], "'..'"),
        (["hydrate", "file:///tmp/x"], "Missing argument 'DIR'"),
        (["hydrate", "file:///tmp/x", "/tmp/y", "--concurrency", "0"], "--concurrency"),
        (["hydrate", "file:///tmp/x", "/tmp/y", "--concurrency", "many"], "--concurrency"),
        (["discover", "file:///tmp/x", "--bogus"], "No such option"),
        (["frobnicate"], "No such command"),
        (["discover", "gs://bucket", "--endpoint-url", "http://127.0.0.1:1"], "s3:// datastores only"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args, needle):
    result = run_cli(*args)
    assert result.code == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_url_with_json_prints_one_error_object():
    result = run_cli("discover", "nope://x", "--json")
    assert result.code == 2
    payload = json.loads(result.stdout)
    assert payload["status"] == "error"
    assert payload["exit_code"] == 2
    assert "bad datastore URL" in payload["error"]


def test_missing_local_datastore_is_a_failure_not_empty(tmp_path: Path):
    result = run_cli("bootstrap", f"file://{tmp_path}/absent", str(tmp_path / "cache"), "--json")
    assert result.code == 4
    assert result.json["status"] == "error"
    assert "does not exist" in result.json["error"]


def test_corrupt_index_exits_6_naming_the_object(datastore: Datastore, tmp_path: Path):
    datastore.seed({"a.txt": b"a", ".datastore-index.json": b'{"version": 1, "entries": "oops"}'})
    result = run_cli("bootstrap", datastore.url, str(tmp_path / "cache"), "--json", env=datastore.env)
    assert result.code == 6
    assert f"{datastore.url.rstrip('/')}/.datastore-index.json" in result.json["error"]
    assert "--rebuild" in result.stderr
    assert not (tmp_path / "cache" / "a.txt").exists()


def test_target_that_is_a_file_is_bad_input(tmp_path: Path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "a.txt").write_text("a")
    target = tmp_path / "file"
    target.write_text("in the way")
    result = run_cli("hydrate", f"file://{store}", str(target))
    assert result.code == 2
    assert target.read_text() == "in the way"


def test_human_output_goes_to_stderr_and_json_to_stdout(tmp_path: Path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "a.txt").write_text("a")
    human = run_cli("bootstrap", f"file://{store}", str(tmp_path / "c1"))
    assert human.code == 0
    assert human.stdout == ""
    assert "built one from the listing" in human.stderr
    assert "1 pulled" in human.stderr
    as_json = run_cli("bootstrap", f"file://{store}", str(tmp_path / "c2"), "--json")
    assert len(as_json.stdout.strip().splitlines()) == 1
    assert set(as_json.json) == {
        "url", "status", "entries", "index_written", "pulled", "skipped", "stale", "bytes", "problems", "warnings",
        "local_changes", "conflicts",
    }  # fmt: skip


def test_help_and_version():
    assert run_cli("--help").code == 0
    version = run_cli("--version")
    assert version.code == 0
    assert "syncops" in version.stdout


def run_with_terminal_stderr(*args: str) -> tuple[int, str]:
    """Run syncops with stderr on a pseudo-terminal, as a person at a shell would."""
    import os
    import pty
    import subprocess

    from tests.conftest import clean_environment, syncops_command

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*syncops_command(), *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env={**clean_environment(), "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(slave)
    captured = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        captured += chunk
    os.close(master)
    proc.wait(timeout=60)
    return proc.returncode, captured.decode(errors="replace")


def test_progress_bar_on_a_terminal_only(tmp_path: Path):
    store = tmp_path / "store"
    store.mkdir()
    for i in range(40):
        (store / f"f{i:02d}.bin").write_bytes(bytes([i]) * 2000)
    code, terminal = run_with_terminal_stderr("hydrate", f"file://{store}", str(tmp_path / "tty"))
    assert code == 0
    assert "hydrating 40 files" in terminal
    assert "80.0/80.0 kB" in terminal

    code, quiet = run_with_terminal_stderr("hydrate", f"file://{store}", str(tmp_path / "json"), "--json")
    assert code == 0
    assert "hydrating" not in quiet

    piped = run_cli("hydrate", f"file://{store}", str(tmp_path / "pipe"))
    assert piped.code == 0
    assert "hydrating" not in piped.stderr
    assert "40 pulled" in piped.stderr
