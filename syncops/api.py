"""The Python API: what the ``syncops`` command does, for automation scripts and Pulumi programs.

Each function takes the datastore URL(s) (and the local directory) as the command does, keyword
options named after its flags, and returns the :class:`~syncops.report.Report` the command renders
(``report.to_json()`` is its ``--json`` object). The command line is a thin shell over these functions,
and so are the post-deploy step of ``pulumi up`` and ``syncops up``.

Failures raise :class:`~syncops.errors.SyncopsError` subclasses whose ``exit_code`` is the command's:
:class:`~syncops.errors.BadInput` (2), :class:`~syncops.errors.AccessDenied` (3),
:class:`~syncops.errors.StoreError` (4, remote or local I/O), :class:`~syncops.errors.CorruptIndex` (6).
A command that ran to its end without fully succeeding raises, with ``check=True`` (the default),
:class:`~syncops.errors.Conflicts` (7), :class:`~syncops.errors.VerifyProblems` (5) or
:class:`~syncops.errors.IncompleteTransfer` (4), each carrying the report in ``.report``; with
``check=False`` the report comes back and its ``exit_code`` says the same. A script that ignores a
report is exactly how an environment comes up silently empty, hence the default.

Nothing here imports an SDK or pulumi until a function runs, and only the backend a URL needs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from syncops.errors import (
    BadInput,
    Conflicts,
    IncompleteTransfer,
    ReportedFailure,
    StoreError,
    SyncopsError,
    VerifyProblems,
)
from syncops.report import Report
from syncops.stores.base import DatastoreUrl
from syncops.stores.settings import StoreSettings

if TYPE_CHECKING:
    from syncops.progress import Progress
    from syncops.stores.base import ObjectStore

__all__ = ["bootstrap", "discover", "hydrate", "push", "seed", "status", "verify"]

#: Transfers in flight at once, by default (``--concurrency``).
DEFAULT_CONCURRENCY = 32

#: A datastore: ``s3://bucket[/prefix]``, ``gs://bucket[/prefix]`` or ``file:///absolute/path``.
Url = str | DatastoreUrl
Directory = str | os.PathLike[str]


def _parse(url: Url) -> DatastoreUrl:
    return url if isinstance(url, DatastoreUrl) else DatastoreUrl.parse(str(url))


@contextmanager
def _store(
    url: Url, endpoint_url: str | None, settings: StoreSettings | None, concurrency: int = DEFAULT_CONCURRENCY
) -> Iterator[ObjectStore]:
    from syncops.redact import remember
    from syncops.stores import open_store
    from syncops.validate import check_store_endpoint

    remember(endpoint_url)  # its password is hidden wherever a message repeats it
    if settings is not None:
        remember(settings.aws_endpoint)
    parsed = _parse(url)
    check_store_endpoint(parsed.scheme, endpoint_url or (settings.aws_endpoint if settings else None))
    store = open_store(parsed, endpoint_url=endpoint_url, concurrency=concurrency, settings=settings)
    try:
        yield store
    finally:
        store.close()


def _progress(progress: Progress | bool) -> Progress:
    """``True`` draws a bar on stderr when it is a terminal, ``False`` nothing; or the caller's own sink."""
    from syncops.progress import NoProgress, for_stderr

    if progress is True:
        return for_stderr()
    if progress is False:
        return NoProgress()
    return progress


def _run(action: Callable[[], Report], check: bool) -> Report:
    """Run one engine call: a local I/O failure becomes a :class:`StoreError` (exit 4), and with
    ``check`` a report with a non-zero exit code becomes its typed exception."""
    try:
        report = action()
    except OSError as exc:
        # The local side (a full disk, a permission, a file replaced by a directory).
        where = f" {exc.filename}" if exc.filename else ""
        raise StoreError(f"local file system error{where}: {exc.strerror or exc}") from None
    if check and report.exit_code:
        raise _failure(report)
    return report


def _failure(report: Report) -> SyncopsError:
    if report.exit_code == Conflicts.exit_code and report.conflicts:
        keys = ", ".join(c["key"] for c in report.conflicts[:5])
        more = f" and {len(report.conflicts) - 5} more" if len(report.conflicts) > 5 else ""
        return Conflicts(f"{report.url}: {len(report.conflicts)} conflicts ({keys}{more}); nothing lost", report)
    if report.exit_code == VerifyProblems.exit_code:
        kinds = sorted({p.get("kind", "") for p in report.problems})
        return VerifyProblems(f"{report.url}: {len(report.problems)} problems ({', '.join(kinds)})", report)
    if report.exit_code == IncompleteTransfer.exit_code:
        keys = ", ".join(p.get("key", "") for p in report.problems[:5])
        return IncompleteTransfer(f"{report.url}: {len(report.problems)} keys not transferred ({keys})", report)
    failure = ReportedFailure(f"{report.url}: {report.status} (exit code {report.exit_code})", report)
    failure.exit_code = report.exit_code
    return failure


def discover(
    url: Url, *, rebuild: bool = False, endpoint_url: str | None = None, settings: StoreSettings | None = None
) -> Report:
    """``syncops discover URL [--rebuild]``: make the datastore's index valid (SPEC §3)."""

    def action() -> Report:
        from syncops.discover import discover_outcome

        with _store(url, endpoint_url, settings) as store:
            result = discover_outcome(store, rebuild=rebuild)
            return Report(
                url=str(store.url),
                status=result.status,
                entries=result.entries,
                index_written=result.index_written,
                warnings=result.warnings,
            )

    return _run(action, check=True)


def _transfer(
    engine: Callable[..., Report],
    url: Url,
    directory: Directory,
    concurrency: int,
    force: bool,
    dry_run: bool,
    endpoint_url: str | None,
    settings: StoreSettings | None,
    progress: Progress | bool,
    check: bool,
) -> Report:
    """Run hydrate's or push's engine between ``url`` and ``directory`` (one store, closed after)."""

    def action() -> Report:
        with _store(url, endpoint_url, settings, concurrency) as store:
            return engine(
                store,
                Path(directory),
                concurrency=concurrency,
                progress=_progress(progress),
                force=force,
                dry_run=dry_run,
            )

    return _run(action, check)


def hydrate(
    url: Url,
    directory: Directory,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    force: bool = False,
    dry_run: bool = False,
    endpoint_url: str | None = None,
    settings: StoreSettings | None = None,
    progress: Progress | bool = False,
    check: bool = True,
) -> Report:
    """``syncops hydrate URL DIR``: discovery, then bring ``directory`` up to date (never writes remotely)."""
    from syncops.hydrate import hydrate as run

    return _transfer(run, url, directory, concurrency, force, dry_run, endpoint_url, settings, progress, check)


def bootstrap(
    url: Url,
    directory: Directory,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    endpoint_url: str | None = None,
    settings: StoreSettings | None = None,
    progress: Progress | bool = False,
    check: bool = True,
) -> Report:
    """``syncops bootstrap URL DIR``: discover, then hydrate ``directory`` (the post-deploy step)."""
    return hydrate(
        url,
        directory,
        concurrency=concurrency,
        endpoint_url=endpoint_url,
        settings=settings,
        progress=progress,
        check=check,
    )


def push(
    url: Url,
    directory: Directory,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    force: bool = False,
    dry_run: bool = False,
    endpoint_url: str | None = None,
    settings: StoreSettings | None = None,
    progress: Progress | bool = False,
    check: bool = True,
) -> Report:
    """``syncops push URL DIR``: upload what changed locally and publish the merged index (never deletes)."""
    from syncops.push import push as run

    return _transfer(run, url, directory, concurrency, force, dry_run, endpoint_url, settings, progress, check)


def status(
    url: Url,
    directory: Directory,
    *,
    endpoint_url: str | None = None,
    settings: StoreSettings | None = None,
    check: bool = True,
) -> Report:
    """``syncops status URL DIR``: the plan of both directions; writes nothing anywhere."""

    def action() -> Report:
        from syncops.status import status as run

        with _store(url, endpoint_url, settings) as store:
            return run(store, Path(directory))

    return _run(action, check)


def verify(
    url: Url,
    *,
    repair: bool = False,
    endpoint_url: str | None = None,
    settings: StoreSettings | None = None,
    check: bool = True,
) -> Report:
    """``syncops verify URL [--repair]``: compare the index with a listing (read-only unless ``repair``)."""

    def action() -> Report:
        from syncops.verify import verify as run

        with _store(url, endpoint_url, settings) as store:
            return run(store, repair=repair)

    return _run(action, check)


def seed(
    source: Url,
    destination: Url,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    force: bool = False,
    dry_run: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    endpoint_url: str | None = None,
    settings: StoreSettings | None = None,
    source_settings: StoreSettings | None = None,
    progress: Progress | bool = False,
    check: bool = True,
) -> Report:
    """``syncops seed SRC DST``: copy the source's data into the destination and publish its index.

    ``endpoint_url`` applies to whichever side is ``s3://``. ``settings`` reach the destination and, unless
    ``source_settings`` are given, the source too (one identity: server-side copies need it on both).
    """
    if isinstance(include, str) or isinstance(exclude, str):
        raise BadInput("include and exclude are lists of glob patterns, not one string")

    def action() -> Report:
        from syncops.seed import refuse_nesting
        from syncops.seed import seed as run

        src_url, dst_url = _parse(source), _parse(destination)
        refuse_nesting(src_url, dst_url)  # before any store is opened: bad input needs no credentials
        if endpoint_url is not None and "s3" not in (src_url.scheme, dst_url.scheme):
            raise BadInput("--endpoint-url applies to s3:// datastores only (GCS emulators: STORAGE_EMULATOR_HOST)")

        def endpoint(url: DatastoreUrl) -> str | None:
            return endpoint_url if url.scheme == "s3" else None

        with (
            _store(src_url, endpoint(src_url), source_settings or settings, concurrency) as src,
            _store(dst_url, endpoint(dst_url), settings, concurrency) as dst,
        ):
            return run(
                src,
                dst,
                include=list(include),
                exclude=list(exclude),
                force=force,
                dry_run=dry_run,
                concurrency=concurrency,
                progress=_progress(progress),
            )

    return _run(action, check)
