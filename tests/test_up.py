"""``syncops up``: the Automation API path with an injected stack (the Pulumi CLI cannot be installed
here), bootstrapping from real S3/GCS servers, and the missing-CLI exit through the real command.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import CommandError, OutputValue
from pulumi.automation._cmd import CommandResult

from syncops.errors import BadInput
from syncops.provision.failure import PostDeployFailed
from syncops.provision.post_deploy import DiscoveryProvider
from syncops.provision.up import DeployFailed, up
from tests.conftest import Datastore, clean_environment, run_cli

ROOT = Path(__file__).resolve().parent.parent
CLOUDS = {"s3": "aws", "gcs": "gcp"}
DATA = {"models/a.json": b'{"a": 1}', "models/b.json": b"[1, 2]", "notes.txt": b"hello"}


@dataclass
class InjectedStack:
    """Stands in for ``pulumi.automation.Stack``: prints engine lines and returns the stack's outputs.

    With ``datastore`` set, ``up`` runs the program's real post-deploy provider against it, as
    ``pulumi up`` would, and reports its outputs the way the program exports them.
    """

    name: str = "dev"
    datastore: Datastore | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None
    runs: int = 0

    def up(self, *, on_output: Callable[[str], Any] | None = None, on_error: Callable[[str], Any] | None = None) -> Any:
        self.runs += 1
        assert on_output is not None and on_error is not None
        on_output("Updating (dev):")
        on_output(" +  syncops:aws:DatastoreBucket datastore creating")
        if self.error is not None:
            on_error("error: update failed")
            raise self.error
        outputs = dict(self.outputs)
        if self.datastore is not None:
            ds = self.datastore
            outs = DiscoveryProvider().create({"cloud": CLOUDS[ds.kind], "bucket": ds.bucket, "prefix": ds.prefix}).outs
            assert outs is not None
            outputs.update(datastoreUrl=ds.url, indexStatus=outs["index_status"], indexEntries=outs["index_entries"])
        on_output("Resources: 9 created")
        return type("UpResult", (), {"outputs": {k: OutputValue(v, False) for k, v in outputs.items()}})()


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_up_deploys_then_bootstraps_from_the_stacks_datastore_url(
    kind: str, make_datastore: Callable[..., Datastore], tmp_path: Path
) -> None:
    ds = make_datastore(kind, prefix="env/dev")
    ds.seed(DATA)
    stack = InjectedStack(datastore=ds)
    lines: list[str] = []

    report = up(stack=stack, target=tmp_path / "cache", emit=lines.append)

    assert stack.runs == 1
    assert "Resources: 9 created" in lines
    assert any("index discovered (3 entries)" in line for line in lines)
    # The post-deploy step published the index; bootstrap found it and wrote nothing remotely.
    assert report.status == "found"
    assert report.index_written is False
    assert report.pulled == 3 and report.entries == 3
    for key, data in DATA.items():
        assert (tmp_path / "cache" / key).read_bytes() == data
    assert (tmp_path / "cache" / ".datastore-index.json").is_file()


def test_bootstrap_after_up_leaves_the_published_index_untouched(
    make_datastore: Callable[..., Datastore], tmp_path: Path
) -> None:
    ds = make_datastore("s3")
    ds.seed(DATA)
    up(stack=InjectedStack(datastore=ds), target=tmp_path / "first", emit=lambda line: None)
    version = ds.index_version()

    report = up(stack=InjectedStack(datastore=ds), target=tmp_path / "second", emit=lambda line: None)

    assert report.status == "found" and report.pulled == 3
    assert ds.index_version() == version


def test_engine_output_is_streamed_to_stderr(
    make_datastore: Callable[..., Datastore], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = make_datastore("s3")
    ds.seed(DATA)

    up(stack=InjectedStack(datastore=ds), target=tmp_path / "cache")

    captured = capsys.readouterr()
    assert "Updating (dev):" in captured.err
    assert "error: update failed" not in captured.err
    assert "Resources: 9 created" in captured.err
    assert captured.out == ""


def test_streamed_engine_lines_never_show_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider's line may quote an endpoint with a password, or a secret key: both are masked."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-never-shown")

    class Leaky(InjectedStack):
        def up(self, *, on_output: Any = None, on_error: Any = None) -> Any:
            on_output("dial tcp http://admin:hunter2pw@10.0.0.1:9000/bucket: connection refused")
            on_error("error: signing with wJalrXUtnFEMI-never-shown failed")
            return super().up(on_output=on_output, on_error=on_error)

    with pytest.raises(BadInput):
        up(stack=Leaky(outputs={"bucketName": "b"}), target=tmp_path)

    err = capsys.readouterr().err
    assert "hunter2pw" not in err and "wJalrXUtnFEMI-never-shown" not in err
    assert "http://***@10.0.0.1:9000/bucket: connection refused" in err
    assert "error: signing with *** failed" in err


def test_stack_without_datastore_url_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="has no `datastoreUrl` output") as error:
        up(stack=InjectedStack(outputs={"bucketName": "b"}), target=tmp_path, emit=lambda line: None)
    assert error.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_failed_post_deploy_exits_with_syncops_own_code_and_message(tmp_path: Path) -> None:
    denied = (
        "error: Exception: syncops discovery of s3://acme-dev failed (syncops exit code 3): access denied "
        "(AccessDenied): get s3://acme-dev/.datastore-index.json; credentials from environment\n  more"
    )
    stack = InjectedStack(error=CommandError(CommandResult(stdout="Updating (dev):", stderr=denied, code=255)))

    with pytest.raises(DeployFailed) as failed:
        up(stack=stack, target=tmp_path / "cache", emit=lambda line: None)

    assert failed.value.exit_code == 3
    assert "access denied (AccessDenied): get s3://acme-dev/.datastore-index.json" in str(failed.value)
    assert "more" not in str(failed.value)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("exit_code", [3, 4, 6])
def test_the_step_and_syncops_up_share_one_failure_format(exit_code: int, tmp_path: Path) -> None:
    """What the post-deploy step raises is what `syncops up` parses: a message over two lines comes back whole."""
    raised = PostDeployFailed("gs://acme-dev/env/dev", "index is corrupt:\nnot JSON at byte 0", exit_code)
    engine_output = f"error: Exception: {raised}\n    at the dynamic provider\n"
    stack = InjectedStack(error=CommandError(CommandResult(stdout="", stderr=engine_output, code=255)))

    with pytest.raises(DeployFailed) as failed:
        up(stack=stack, target=tmp_path / "cache", emit=lambda line: None)

    assert failed.value.exit_code == exit_code
    assert str(failed.value) == f"pulumi up of stack 'dev' failed: {raised}"
    assert "index is corrupt: not JSON at byte 0" in str(failed.value)
    assert "dynamic provider" not in str(failed.value)
    found = PostDeployFailed.find(engine_output)
    assert found is not None and (found.url, found.message, found.exit_code) == (
        raised.url,
        raised.message,
        raised.exit_code,
    )


def test_any_other_failed_deploy_exits_4_and_never_bootstraps(tmp_path: Path) -> None:
    stack = InjectedStack(error=CommandError(CommandResult(stdout="", stderr="error: quota exceeded", code=255)))

    with pytest.raises(DeployFailed, match="pulumi up of stack 'dev' failed") as failed:
        up(stack=stack, target=tmp_path / "cache", emit=lambda line: None)

    assert failed.value.exit_code == 4
    assert not (tmp_path / "cache").exists()


def _without_pulumi(tmp_path: Path) -> dict[str, str]:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    return {**clean_environment(), "PATH": str(empty_bin)}


def test_missing_pulumi_cli_exits_2_with_how_to_install(tmp_path: Path) -> None:
    env = _without_pulumi(tmp_path)

    result = run_cli("up", "--cwd", str(ROOT), "--stack", "dev", "--dir", str(tmp_path / "cache"), env=env)

    assert result.code == 2, result.stderr
    assert "the Pulumi CLI (`pulumi`) was not found on PATH" in result.stderr
    assert "https://get.pulumi.com" in result.stderr
    assert not (tmp_path / "cache").exists()


def test_missing_pulumi_cli_with_json_prints_one_error_object(tmp_path: Path) -> None:
    result = run_cli("up", "--cwd", str(ROOT), "--json", env=_without_pulumi(tmp_path))

    assert result.code == 2
    assert result.json["status"] == "error" and result.json["exit_code"] == 2
    assert "get.pulumi.com" in result.json["error"]


def test_up_outside_a_pulumi_project_exits_2(tmp_path: Path) -> None:
    result = run_cli("up", "--cwd", str(tmp_path), env=_without_pulumi(tmp_path))

    assert result.code == 2
    assert "is not a Pulumi project (no Pulumi.yaml)" in result.stderr


#: The modules of syncops/provision/ that must import without the Pulumi SDK: `syncops up` reports a
#: missing SDK or CLI with its own message, never an ImportError.
PULUMI_FREE_PROVISION = ("syncops.provision", "syncops.provision.failure", "syncops.provision.up")


def test_engine_never_imports_pulumi() -> None:
    """`syncops bootstrap` must run where the Pulumi SDK is absent: only provision/ may use it, and
    `syncops up`'s own module imports it only when a real stack is selected."""
    script = (
        "import importlib, pkgutil, sys\n"
        "sys.modules['pulumi'] = None  # any `import pulumi` now raises ImportError\n"
        "import syncops\n"
        f"pulumi_free = {PULUMI_FREE_PROVISION!r}\n"
        "for module in pkgutil.walk_packages(syncops.__path__, 'syncops.'):\n"
        "    if module.name.startswith('syncops.provision') and module.name not in pulumi_free:\n"
        "        continue\n"
        "    if module.name == 'syncops.__main__':\n"
        "        continue\n"
        "    importlib.import_module(module.name)\n"
        "    print(module.name)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)

    assert proc.returncode == 0, proc.stderr
    imported = proc.stdout.split()
    assert {"syncops.cli", "syncops.discover", "syncops.hydrate", "syncops.stores.s3", *PULUMI_FREE_PROVISION} <= set(
        imported
    )
