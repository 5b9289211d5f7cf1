"""The Python API (issue 13 item 5): ``import syncops`` offers what the command line does, returns the
reports the command renders, raises typed exceptions carrying the documented exit codes, is typed,
costs nothing to import, and is what the command line, the post-deploy step and ``syncops up`` call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import syncops
from syncops.report import Report
from tests import wire
from tests.conftest import Datastore, run_cli
from tests.proxy import Fault, Proxy

ROOT = Path(__file__).resolve().parent.parent
DATA = {"models/a.json": b'{"a": 1}', "models/b.json": b"[1, 2]", "notes.txt": b"hello"}
SDKS = ("boto3", "botocore", "obstore", "google.cloud.storage", "pulumi", "click", "rich", "syncops.api")


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "warnings"}


def test_importing_syncops_loads_no_sdk_and_a_file_datastore_never_does(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "models").mkdir(parents=True)
    (store / "models" / "a.json").write_bytes(b"{}")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["pulumi"] = None  # any import of pulumi now fails
        import syncops
        loaded = [m for m in {SDKS!r} if sys.modules.get(m) is not None]
        assert not loaded, loaded
        report = syncops.bootstrap("file://{store}", "{tmp_path / "cache"}")
        assert (report.status, report.pulled) == ("discovered", 1), report
        loaded = [m for m in {SDKS!r} if sys.modules.get(m) is not None and m != "syncops.api"]
        assert not loaded, loaded
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_the_api_functions_stay_functions_once_the_engine_modules_are_loaded() -> None:
    import syncops.discover  # noqa: F401 - the engine module of the same name
    from syncops.discover import discover as engine_discover
    from syncops.push import push as engine_push

    for name in ("bootstrap", "discover", "hydrate", "push", "seed", "status", "verify"):
        assert callable(getattr(syncops, name)) and getattr(syncops, name).__module__ == "syncops.api", name
    assert engine_discover.__module__ == "syncops.discover" and engine_push.__module__ == "syncops.push"
    assert sys.modules["syncops.discover"].__name__ == "syncops.discover"


@pytest.mark.parametrize("kind", ["file", "s3", "gcs"])
def test_every_command_through_the_api_returns_the_report_the_cli_prints(
    kind: str, make_datastore: Callable[..., Datastore], tmp_path: Path
) -> None:
    ds = make_datastore(kind)
    ds.seed(DATA)
    cache = tmp_path / "cache"

    discovered = syncops.discover(ds.url)
    assert isinstance(discovered, Report)
    assert (discovered.status, discovered.entries, discovered.index_written) == ("discovered", 3, True)
    assert syncops.discover(ds.url).to_json() == run_cli("discover", ds.url, "--json", env=ds.env).json

    pulled = syncops.bootstrap(ds.url, cache)
    assert (pulled.status, pulled.pulled, pulled.skipped) == ("found", 3, 0)
    again = syncops.hydrate(str(ds.url), str(cache), concurrency=4)
    assert again.to_json() == run_cli("hydrate", ds.url, str(cache), "--json", env=ds.env).json
    (cache / "mine.txt").write_bytes(b"mine")
    plan = syncops.status(ds.url, cache)
    assert (plan.to_upload, plan.dry_run) == (["mine.txt"], True)
    assert comparable(plan.to_json()) == comparable(run_cli("status", ds.url, str(cache), "--json", env=ds.env).json)
    assert syncops.push(ds.url, cache, dry_run=True).to_upload == ["mine.txt"]
    pushed = syncops.push(ds.url, cache)
    assert (pushed.pushed, pushed.entries, pushed.index_written) == (1, 4, True)
    assert syncops.verify(ds.url).status == "ok"

    other = make_datastore(kind)
    seeded = syncops.seed(ds.url, other.url, exclude=["notes.txt"])
    assert (seeded.status, seeded.copied, seeded.source) == ("seeded", 3, str(ds.url))
    assert sorted(other.index()["entries"]) == ["mine.txt", "models/a.json", "models/b.json"]  # type: ignore[index]


def test_errors_are_typed_and_carry_the_documented_exit_code(
    make_datastore: Callable[..., Datastore], tmp_path: Path
) -> None:
    with pytest.raises(syncops.BadInput) as bad:
        syncops.discover("ftp://host/x")
    assert bad.value.exit_code == 2
    with pytest.raises(syncops.BadInput):
        syncops.seed("s3://bucket/env", "s3://bucket/env/dev")
    with pytest.raises(syncops.BadInput):
        syncops.hydrate(f"file://{tmp_path}/store", tmp_path / "cache", concurrency=0)

    corrupt = make_datastore("file")
    corrupt.seed({".datastore-index.json": b"{oops"})
    with pytest.raises(syncops.CorruptIndex) as broken:
        syncops.bootstrap(corrupt.url, tmp_path / "cache")
    assert broken.value.exit_code == 6

    with pytest.raises(syncops.StoreError) as missing:
        syncops.discover(f"file://{tmp_path}/absent")
    assert missing.value.exit_code == 4
    assert isinstance(missing.value, syncops.SyncopsError)


def test_access_denied_is_exit_3(make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch) -> None:
    ds = make_datastore("gcs")
    ds.seed(DATA)
    with Proxy(ds.endpoint) as proxy:
        proxy.add_fault(Fault(lambda method, path: True, status=403, times=None))
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        with pytest.raises(syncops.AccessDenied) as denied:
            syncops.discover(ds.url)
    assert denied.value.exit_code == 3 and ds.bucket in str(denied.value)


def test_outcomes_that_are_not_success_raise_with_their_report_unless_check_is_false(
    make_datastore: Callable[..., Datastore], tmp_path: Path
) -> None:
    ds = make_datastore("file")
    ds.seed(DATA)
    cache = tmp_path / "cache"
    syncops.bootstrap(ds.url, cache)
    (cache / "notes.txt").write_bytes(b"changed here")
    ds.seed({"notes.txt": b"changed there"})
    syncops.verify(ds.url, repair=True)  # the index learns the remote change

    with pytest.raises(syncops.Conflicts) as conflicts:
        syncops.hydrate(ds.url, cache)
    assert conflicts.value.exit_code == 7
    assert [c["key"] for c in conflicts.value.report.conflicts or []] == ["notes.txt"]
    assert "notes.txt" in str(conflicts.value)
    unchecked = syncops.hydrate(ds.url, cache, check=False)
    assert unchecked.exit_code == 7 and unchecked.conflicts == conflicts.value.report.conflicts

    ds.seed({"unindexed.txt": b"x"})
    with pytest.raises(syncops.VerifyProblems) as problems:
        syncops.verify(ds.url)
    assert problems.value.exit_code == 5
    assert [(p["kind"], p["key"]) for p in problems.value.report.problems] == [("unindexed-object", "unindexed.txt")]

    other = make_datastore("file")
    other.seed({"notes.txt": b"somebody else's"})
    with pytest.raises(syncops.Conflicts) as seeded:
        syncops.seed(ds.url, other.url)
    assert seeded.value.report.source == ds.url and seeded.value.report.index_written is False


def test_a_progress_sink_sees_the_bytes(make_datastore: Callable[..., Datastore], tmp_path: Path) -> None:
    ds = make_datastore("file")
    ds.seed(DATA)

    class Recorder:
        def __init__(self) -> None:
            self.started: list[tuple[str, int, int]] = []
            self.advanced = 0

        def start(self, description: str, files: int, total_bytes: int) -> None:
            self.started.append((description, files, total_bytes))

        def advance(self, nbytes: int) -> None:
            self.advanced += nbytes

        def stop(self) -> None:
            pass

    recorder = Recorder()
    syncops.seed(ds.url, make_datastore("file").url, progress=recorder)
    total = sum(map(len, DATA.values()))
    assert recorder.started == [("seeding", 3, total)] and recorder.advanced == total


def test_the_package_ships_its_type_marker(tmp_path: Path) -> None:
    """PEP 561: the wheel carries ``syncops/py.typed``, so callers' type checkers read the API's hints."""
    import shutil
    import zipfile

    source = tmp_path / "source"
    shutil.copytree(ROOT / "syncops", source / "syncops", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("syncops-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "syncops/py.typed" in names and "syncops/api.py" in names


def test_the_api_is_typed_for_its_callers(tmp_path: Path) -> None:
    script = tmp_path / "automation.py"
    script.write_text(
        textwrap.dedent(
            """
            import syncops

            report: syncops.Report = syncops.seed("s3://a", "gs://b", include=["data/*"], force=True)
            count: int | None = report.copied
            try:
                syncops.hydrate("s3://a", "cache", concurrency=8, check=True)
            except syncops.Conflicts as exc:
                print(exc.report.conflicts, exc.exit_code)
            syncops.hydrate("s3://a", concurrency="many")
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--ignore-missing-imports", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(ROOT)},  # the editable install's import hook is opaque to mypy
    )
    errors = [line for line in proc.stdout.splitlines() if line.startswith("automation.py") and ": error:" in line]
    assert [e.split(": error:")[0].rsplit(":", 1)[1] for e in errors] == ["10", "10"], proc.stdout
    assert 'Missing positional argument "directory"' in proc.stdout
    assert 'Argument "concurrency" to "hydrate" has incompatible type "str"' in proc.stdout


def test_the_cli_the_post_deploy_step_and_up_call_the_api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_datastore: Callable[..., Datastore]
) -> None:
    from click.testing import CliRunner

    from syncops import api
    from syncops.cli import cli
    from syncops.provision.post_deploy import DiscoveryProvider
    from syncops.provision.up import up

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def recording(name: str) -> Callable[..., Report]:
        real = getattr(api, name)

        def call(*args: Any, **kwargs: Any) -> Report:
            calls.append((name, args, kwargs))
            return real(*args, **kwargs)

        return call

    for name in ("discover", "bootstrap", "seed"):
        monkeypatch.setattr(api, name, recording(name))
    ds = make_datastore("s3")
    ds.seed(DATA)

    outs = DiscoveryProvider().create({"cloud": "aws", "bucket": ds.bucket, "prefix": ""}).outs
    assert outs is not None and outs["index_status"] == "discovered"
    (tmp_path / "copy").mkdir()
    result = CliRunner().invoke(cli, ["seed", ds.url, f"file://{tmp_path}/copy", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["copied"] == 3

    class Stack:
        name = "dev"

        def up(self, **_: Any) -> Any:
            return type("UpResult", (), {"outputs": {"datastoreUrl": ds.url}})()

    report = up(stack=Stack(), target=tmp_path / "cache", emit=lambda _: None)
    assert report.pulled == 3
    assert [name for name, _, _ in calls] == ["discover", "seed", "bootstrap"]
    assert calls[1][1] == (ds.url, f"file://{tmp_path}/copy") and calls[1][2]["check"] is False


def test_gcs_api_seed_counts_on_the_wire(
    make_datastore: Callable[..., Datastore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's seed is the command's: the same requests (one rewrite per key, one index write)."""
    src, dst = make_datastore("gcs"), make_datastore("gcs")
    src.seed(DATA)
    with Proxy(src.endpoint) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        report = syncops.seed(src.url, dst.url)
        kinds = [wire.request_kind("gcs", s.method, s.path, s.body) for s in proxy.seen if "/rewriteTo/" not in s.path]
        rewrites = sum(1 for s in proxy.seen if "/rewriteTo/" in s.path)
    assert (report.copied, rewrites) == (3, 3)
    assert kinds.count(wire.OBJECT_GET) == kinds.count(wire.OBJECT_PUT) == 0 and kinds.count(wire.INDEX_PUT) == 1
