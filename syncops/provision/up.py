"""``syncops up``: ``pulumi up`` through the Automation API, then bootstrap from the stack's datastore.

This is the environment-bootstrap path of SPEC §1: one command that provisions (or confirms) the
bucket, lets the program's post-deploy step make the index valid, and fills a local directory from
the ``datastoreUrl`` the stack reports. A failed deployment fails the command; it never goes on to
bootstrap from a stack that did not finish.

pulumi is imported only when a real stack has to be selected, so the engine and the rest of the
command line keep working without it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from syncops import api
from syncops.api import DEFAULT_CONCURRENCY
from syncops.errors import BadInput, SyncopsError
from syncops.progress import Progress
from syncops.provision.failure import PostDeployFailed
from syncops.redact import redact
from syncops.report import Report

INSTALL_HINT = (
    "install it with `curl -fsSL https://get.pulumi.com | sh` (or `brew install pulumi`; see "
    "https://www.pulumi.com/docs/install/) and put it on PATH, or run your own `pulumi up` and then "
    "`syncops bootstrap URL DIR`"
)
_PROJECT_FILES = ("Pulumi.yaml", "Pulumi.yml")


class PulumiMissing(BadInput):
    """The Pulumi CLI (or the Python SDK) is not installed; exit 2 with how to install it."""


class DeployFailed(SyncopsError):
    """``pulumi up`` failed; the exit code is the post-deploy step's own when it was the cause."""

    def __init__(self, message: str, exit_code: int = 4) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class StackLike(Protocol):
    """What ``syncops up`` needs of a stack: ``pulumi.automation.Stack`` or a test's stand-in."""

    @property
    def name(self) -> str: ...

    def up(self, *, on_output: Callable[[str], Any] | None = ..., on_error: Callable[[str], Any] | None = ...) -> Any:
        """Run the update; the result's ``outputs`` maps names to values (or ``OutputValue``s)."""
        ...


def _stderr(line: str) -> None:
    """A line of Pulumi's output, passed on with secrets hidden (a provider may quote an endpoint URL)."""
    print(redact(line), file=sys.stderr, flush=True)


def select_or_create_stack(stack_name: str | None, work_dir: Path) -> StackLike:
    """The stack ``stack_name`` of the Pulumi project in ``work_dir`` (the current stack when None)."""
    if not any((work_dir / name).is_file() for name in _PROJECT_FILES):
        raise BadInput(
            f"{work_dir.resolve()} is not a Pulumi project (no Pulumi.yaml): pass --cwd with the project directory"
        )
    if shutil.which("pulumi") is None:
        raise PulumiMissing(f"the Pulumi CLI (`pulumi`) was not found on PATH: {INSTALL_HINT}")
    try:
        from pulumi import automation as auto
    except ImportError:
        raise PulumiMissing(
            "`syncops up` needs the Pulumi SDK: install syncops with its `pulumi` extra (pip install 'syncops[pulumi]')"
        ) from None
    try:
        if stack_name is None:
            current = auto.LocalWorkspace(work_dir=str(work_dir)).stack()
            if current is None:
                raise BadInput(f"no stack is selected in {work_dir}: pass --stack NAME")
            stack_name = current.name
        return auto.create_or_select_stack(stack_name, work_dir=str(work_dir))
    except FileNotFoundError as exc:
        raise PulumiMissing(f"the Pulumi CLI could not be run ({exc}): {INSTALL_HINT}") from None
    except auto.CommandError as exc:
        raise DeployFailed(f"cannot select or create stack {stack_name!r} in {work_dir}: {exc}") from None


def _deploy_error(stack_name: str, exc: Exception) -> DeployFailed:
    # The post-deploy step's own failure, when it was the cause, so `syncops up` exits as discover would.
    failure = PostDeployFailed.find(str(exc))
    if failure is not None:
        return DeployFailed(f"pulumi up of stack {stack_name!r} failed: {failure}", failure.exit_code)
    return DeployFailed(f"pulumi up of stack {stack_name!r} failed (the engine's output is above)")


def _output(outputs: Mapping[str, Any], name: str) -> Any:
    value = outputs.get(name)
    return getattr(value, "value", value)


def run_stack(stack: StackLike, emit: Callable[[str], Any] = _stderr) -> Mapping[str, Any]:
    """``pulumi up`` with the engine's output streamed line by line; the stack's outputs."""
    try:
        from pulumi.automation import CommandError
    except ImportError:  # an injected stack needs no SDK
        CommandError = ()  # type: ignore[assignment,misc]  # noqa: N806 - stands in for the class
    try:
        result = stack.up(on_output=emit, on_error=emit)
    except FileNotFoundError as exc:
        raise PulumiMissing(f"the Pulumi CLI could not be run ({exc}): {INSTALL_HINT}") from None
    except CommandError as exc:
        raise _deploy_error(stack.name, exc) from None
    return result.outputs


def up(
    *,
    stack_name: str | None = None,
    work_dir: Path = Path("."),
    target: Path = Path("datastore"),
    stack: StackLike | None = None,
    emit: Callable[[str], Any] = _stderr,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
) -> Report:
    """Deploy the stack (``stack`` when given, else selected or created in ``work_dir``), then bootstrap
    ``target`` from its ``datastoreUrl`` output."""
    if stack is None:
        stack = select_or_create_stack(stack_name, work_dir)
    emit(f"syncops up: running `pulumi up` for stack {stack.name}")
    outputs = run_stack(stack, emit)
    url = _output(outputs, "datastoreUrl")
    if not isinstance(url, str) or not url:
        raise BadInput(f"stack {stack.name!r} has no `datastoreUrl` output: is {work_dir} the syncops Pulumi project?")
    status = _output(outputs, "indexStatus")
    entries = _output(outputs, "indexEntries")
    emit(f"syncops up: stack {stack.name}: datastore {url}, index {status} ({entries} entries); bootstrapping {target}")
    return api.bootstrap(url, target, concurrency=concurrency, progress=progress or False, check=False)
