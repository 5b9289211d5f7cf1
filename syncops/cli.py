"""The ``syncops`` command line: parse, call one engine function, render, map errors to exit codes.

Exit codes (SPEC §4): 0 success; 2 usage or bad input; 3 access denied; 4 remote or network failure
after retries (or a key that could not be brought); 5 verify found problems; 6 corrupt remote index;
7 conflicts (listed; nothing lost). Human output goes to stderr;
``--json`` prints exactly one JSON object on stdout, errors included.

Every message printed (the error line, the ``--json`` error object, warnings, problem details)
goes through :func:`one_line`: secrets hidden by :func:`syncops.redact.redact`, line breaks folded
and control characters escaped, so a hostile server's error text can neither leak a password nor
drive the terminal, and an error is always exactly one line.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from syncops import __version__, api, timeouts
from syncops.errors import BadInput, CorruptIndex, StoreError, SyncopsError, Unavailable
from syncops.keys import escape_key
from syncops.localfs import remove_partial_files
from syncops.redact import redact
from syncops.report import Report, human_size

_STATUS_TEXT = {
    "found": "index found, used as it is; nothing written",
    "discovered": "no index: built one from the listing and published it",
    "adopted": "no index: another peer published one first; adopted it, nothing written",
    "empty": "no index and no data objects: the datastore is empty; nothing written",
    "rebuilt": "index rebuilt from the listing and published",
    "ok": "index and listing agree",
    "problems": "index and listing disagree",
    "repaired": "index and listing disagreed: published the index rebuilt from the listing",
}


_LINE_BREAKS = re.compile("\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """A message as the CLI prints it: secrets hidden, line breaks folded, control characters escaped."""
    text = _LINE_BREAKS.sub(" | ", redact(text))
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def _say(text: str) -> None:
    click.echo(text, err=True)


#: How many keys of one list a person is shown before "... and N more".
_SHOW = 20


def _render_list(title: str, keys: list[str]) -> None:
    if not keys:
        return
    _say(f"{title} ({len(keys)}):")
    for key in keys[:_SHOW]:
        _say(f"  {escape_key(key)}")
    if len(keys) > _SHOW:
        _say(f"  ... and {len(keys) - _SHOW} more (--json lists them all)")


_SEED_STATUS_TEXT = {
    "seeded": "seeded; index published",
    "unchanged": "already seeded: every entry is there and indexed; nothing written",
    "empty": "nothing to seed (the source holds no matching data); nothing written",
    "conflicts": "not seeded: the destination holds other content for some keys; its index is unchanged",
    "planned": "seed plan (nothing copied or written)",
}


def _render_seed(report: Report) -> None:
    status = _SEED_STATUS_TEXT.get(report.status, report.status)
    _say(f"{report.source} -> {report.url}: {status} ({report.entries} entries)")
    if report.dry_run:
        _say(f"plan: {len(report.to_copy or [])} to copy ({report.copy_mode}), {report.skipped} already there")
        _render_list("to copy", report.to_copy or [])
    elif report.status != "conflicts":
        _say(
            f"seed: {report.copied} copied ({report.copy_mode}), {report.skipped} already there, "
            f"{report.stale} gone from the source, {human_size(report.bytes or 0)}"
        )
    if report.conflicts:
        _say(f"conflicts ({len(report.conflicts)}): the destination holds other content")
        for item in report.conflicts[:_SHOW]:
            _say(
                f"  {escape_key(item['key'])}: source {item['source']}, destination {item['destination']} "
                f"({item['reason']})"
            )
        if len(report.conflicts) > _SHOW:
            _say(f"  ... and {len(report.conflicts) - _SHOW} more (--json lists them all)")
        _say("  `syncops seed --force` copies the source's objects and entries over them")
    for problem in report.problems:
        _say(f"problem: {problem.get('kind')}: {escape_key(problem.get('key', ''))} ({problem.get('detail', '')})")
    for warning in report.warnings:
        _say(f"warning: {warning}")


def _render_human(report: Report) -> None:
    if report.source is not None:
        _render_seed(report)
        return
    status = _STATUS_TEXT.get(report.status, report.status)
    if report.status == "discovered" and not report.index_written:
        status = "no index: planned against the listing (nothing published)"
    _say(f"{report.url}: {status} ({report.entries} entries)")
    if report.dry_run:
        _say(
            "plan (nothing transferred or written): "
            + ", ".join(
                f"{count} {what}"
                for count, what in (
                    (None if report.to_fetch is None else len(report.to_fetch), "to fetch"),
                    (None if report.to_upload is None else len(report.to_upload), "to upload"),
                    (None if report.local_changes is None else len(report.local_changes), "local changes"),
                    (len(report.conflicts or []), "conflicts"),
                    (report.stale, "removed remotely"),
                )
                if count is not None
            )
        )
        _render_list("to fetch", report.to_fetch or [])
        _render_list("to upload", report.to_upload or [])
    if report.pulled is not None and not report.dry_run:
        _say(
            f"hydrate: {report.pulled} pulled, {report.skipped} already present, {report.stale} stale, "
            f"{human_size(report.bytes or 0)} downloaded"
        )
    if report.pushed is not None:
        written = "index published" if report.index_written else "index unchanged"
        _say(f"push: {report.pushed} uploaded, {human_size(report.bytes or 0)}; {written}")
    _render_list("local changes kept (push uploads them)", report.local_changes or [])
    if report.conflicts:
        _say(f"conflicts ({len(report.conflicts)}): changed on both sides since the last sync; nothing moved")
        for item in report.conflicts[:_SHOW]:
            _say(f"  {escape_key(item['key'])}: local {item['local']}, remote {item['remote']}")
        if len(report.conflicts) > _SHOW:
            _say(f"  ... and {len(report.conflicts) - _SHOW} more (--json lists them all)")
        _say("  resolve with `syncops hydrate --force` (take remote, keep local beside it) or `push --force`")
    for problem in report.problems:
        detail = f" ({one_line(problem['detail'])})" if problem.get("detail") else ""
        _say(f"problem: {problem.get('kind')}: {escape_key(problem.get('key', ''))}{detail}")
    for warning in report.warnings:
        _say(f"warning: {one_line(warning)}")


def _report_json(report: Report) -> dict[str, Any]:
    """``report.to_json()`` with its free-text fields (warnings, problem details) made safe to print."""
    out = report.to_json()
    out["warnings"] = [one_line(str(w)) for w in out.get("warnings", [])]
    out["problems"] = [
        {**p, "detail": one_line(str(p["detail"]))} if "detail" in p else p for p in out.get("problems", [])
    ]
    return out


def _failure(who: str, url: str | None, as_json: bool, message: str, exit_code: int, hint: str = "") -> tuple[str, str]:
    """What a failure prints: the JSON object for stdout ('' without --json) and the line for stderr."""
    message = one_line(message)
    shown_url = None if url is None else redact(url)
    document = {"url": shown_url, "status": "error", "error": message, "exit_code": exit_code}
    return (json.dumps(document) if as_json else ""), f"{who}: error: {message}{one_line(hint)}"


def _fail(who: str, url: str | None, as_json: bool, message: str, exit_code: int, hint: str = "") -> NoReturn:
    """Report a failure: one line on stderr (and one JSON object on stdout with --json), then exit."""
    out, err = _failure(who, url, as_json, message, exit_code, hint)
    if out:
        click.echo(out)
    _say(err)
    sys.exit(exit_code)


class _Deadline:
    """The command's overall deadline (syncops/timeouts.py): when it passes, the failure is printed
    like any other (one line; one JSON object with --json) and the process ends with exit 4 at once.

    Stopping at once is safe at any moment: files are written to temporary names and renamed when
    whole (the temporary files of this process are removed first), uploads are journaled and
    conditional, so running the command again continues where it stopped.
    """

    def __init__(self, seconds: float, who: str, url: str, as_json: bool) -> None:
        self._timer: threading.Timer | None = None
        if seconds > 0:
            message = (
                f"deadline passed: stopped after {seconds:g} s (--deadline / SYNCOPS_DEADLINE); files already "
                "completed are kept, nothing partial is left at a target path; run it again to continue"
            )
            self._output = _failure(who, url, as_json, message, Unavailable.exit_code)
            self._timer = threading.Timer(seconds, self._expire)
            self._timer.daemon = True

    def _expire(self) -> None:
        remove_partial_files()
        out, err = self._output
        if out:
            os.write(1, (out + "\n").encode())
        os.write(2, (err + "\n").encode())
        os._exit(Unavailable.exit_code)

    def __enter__(self) -> _Deadline:
        if self._timer is not None:
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _run(command: str, url: str, as_json: bool, action: Callable[[], Report], deadline: float) -> None:
    """Run one engine call within ``deadline`` seconds (0: none); every failure becomes one clear line
    and its documented exit code."""
    try:
        try:
            with _Deadline(deadline, f"syncops {command}", url, as_json):
                report = action()
        except OSError as exc:
            # The local side (a full disk, a permission, a file replaced by a directory): a failure
            # to report in one line with its own exit code, not a traceback.
            where = f" {exc.filename}" if exc.filename else ""
            raise StoreError(f"local file system error{where}: {exc.strerror or exc}") from None
    except SyncopsError as exc:
        hint = ""
        if isinstance(exc, CorruptIndex):
            hint = f"; hint: `syncops discover {url} --rebuild` replaces it with one built from a listing"
        _fail(f"syncops {command}", url, as_json, str(exc), exc.exit_code, hint)
    except Exception as exc:
        # A bug, or an SDK error no backend translated: still one line and a documented exit code
        # (SPEC §4: never a traceback), with enough to report it.
        _fail(f"syncops {command}", url, as_json, f"unexpected error ({type(exc).__name__}): {exc}", 4)
    except BaseException as exc:
        # A panic in the Rust S3 client arrives as pyo3's PanicException, a BaseException.
        if type(exc).__name__ != "PanicException":
            raise
        _fail(f"syncops {command}", url, as_json, f"unexpected error in the S3 data plane: {exc}", 4)
    if as_json:
        click.echo(json.dumps(_report_json(report)))
    else:
        _render_human(report)
    if report.exit_code:
        sys.exit(report.exit_code)


def _progress(as_json: bool) -> Any:
    from syncops.progress import for_stderr

    return for_stderr(enabled=not as_json)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
deadline_option = click.option(
    "--deadline",
    type=click.FloatRange(min=0, max=timeouts.LONGEST),
    envvar="SYNCOPS_DEADLINE",
    default=timeouts.DEADLINE,
    show_default=True,
    metavar="SECONDS",
    help="Stop with exit 4 when the command has run this long (0: no deadline). Env: SYNCOPS_DEADLINE.",
    callback=lambda _ctx, _param, value: _finite(value),
)


def _finite(value: float) -> float:
    if value != value:  # nan passes click's range check
        raise click.BadParameter("expected a number of seconds, not nan")
    return value
endpoint_option = click.option(
    "--endpoint-url",
    envvar=None,
    default=None,
    metavar="URL",
    help="S3 endpoint (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS).",
)
dir_argument = click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
concurrency_option = click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=1024),
    default=32,
    show_default=True,
    help="Transfers (downloads or uploads) in flight at once.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncops")
def cli() -> None:
    """Make a datastore bucket usable: discover its index, hydrate a local cache, push changes."""


@cli.command()
@click.argument("url")
@click.option("--rebuild", is_flag=True, help="Re-list and replace the index, whatever its state.")
@endpoint_option
@json_option
@deadline_option
def discover(url: str, rebuild: bool, endpoint_url: str | None, as_json: bool, deadline: float) -> None:
    """Make URL's .datastore-index.json valid, building it from a listing when absent."""

    _run("discover", url, as_json, lambda: api.discover(url, rebuild=rebuild, endpoint_url=endpoint_url), deadline)


def transfer_options(func: Callable[..., None]) -> Callable[..., None]:
    """URL, DIR, --concurrency, --endpoint-url, --json and --deadline: what every transfer command takes."""
    arguments = (click.argument("url"), dir_argument, concurrency_option, endpoint_option, json_option, deadline_option)
    for decorator in reversed(arguments):
        func = decorator(func)
    return func


def _transfer(
    command: str,
    engine: Callable[..., Report],
    url: str,
    directory: Path,
    concurrency: int,
    endpoint_url: str | None,
    as_json: bool,
    deadline: float,
    **options: bool,
) -> None:
    """Run hydrate, push or bootstrap between URL and DIR with a bounded pool and a progress bar on a
    terminal; the report is rendered whatever its exit code (``check=False``)."""

    def action() -> Report:
        return engine(
            url,
            directory,
            concurrency=concurrency,
            endpoint_url=endpoint_url,
            progress=_progress(as_json),
            check=False,
            **options,
        )

    _run(command, url, as_json, action, deadline)


dry_run_option = click.option("--dry-run", is_flag=True, help="Print the plan for this direction; write nothing.")


@cli.command()
@transfer_options
@click.option(
    "--force", is_flag=True, help="On a conflict take the remote side; the local file is kept as NAME.conflict-TIME."
)
@dry_run_option
def hydrate(
    url: str,
    directory: Path,
    concurrency: int,
    endpoint_url: str | None,
    as_json: bool,
    deadline: float,
    force: bool,
    dry_run: bool,
) -> None:
    """Bring DIR up to date from URL (discovering the index first when the bucket has none)."""
    options = {"force": force, "dry_run": dry_run}
    _transfer("hydrate", api.hydrate, url, directory, concurrency, endpoint_url, as_json, deadline, **options)


@cli.command()
@transfer_options
@click.option("--force", is_flag=True, help="On a conflict upload the local file over the remote one.")
@dry_run_option
def push(
    url: str,
    directory: Path,
    concurrency: int,
    endpoint_url: str | None,
    as_json: bool,
    deadline: float,
    force: bool,
    dry_run: bool,
) -> None:
    """Upload files changed in DIR since the last sync and publish the merged index (never deletes)."""
    options = {"force": force, "dry_run": dry_run}
    _transfer("push", api.push, url, directory, concurrency, endpoint_url, as_json, deadline, **options)


@cli.command()
@click.argument("url")
@dir_argument
@endpoint_option
@json_option
@deadline_option
def status(url: str, directory: Path, endpoint_url: str | None, as_json: bool, deadline: float) -> None:
    """Print what hydrate and push would do between URL and DIR; writes nothing anywhere."""

    _run("status", url, as_json, lambda: api.status(url, directory, endpoint_url=endpoint_url, check=False), deadline)


@cli.command()
@transfer_options
def bootstrap(
    url: str, directory: Path, concurrency: int, endpoint_url: str | None, as_json: bool, deadline: float
) -> None:
    """The post-deploy step: discover, then hydrate DIR."""
    _transfer("bootstrap", api.bootstrap, url, directory, concurrency, endpoint_url, as_json, deadline)


@cli.command()
@click.argument("url")
@click.option("--repair", is_flag=True, help="Publish the index rebuilt from the listing when problems are found.")
@endpoint_option
@json_option
@deadline_option
def verify(url: str, repair: bool, endpoint_url: str | None, as_json: bool, deadline: float) -> None:
    """Compare URL's index with a listing; exit 5 listing each problem (read-only unless --repair)."""

    def action() -> Report:
        return api.verify(url, repair=repair, endpoint_url=endpoint_url, check=False)

    _run("verify", url, as_json, action, deadline)


@cli.command()
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Seed only keys matching GLOB (shell-style, whole key, '*' also matches '/'); repeatable.",
)
@click.option("--exclude", multiple=True, metavar="GLOB", help="Leave out keys matching GLOB; repeatable.")
@click.option("--force", is_flag=True, help="Copy over destination objects and index entries that hold other content.")
@click.option("--dry-run", is_flag=True, help="Print what would be copied; write nothing.")
@concurrency_option
@endpoint_option
@json_option
@deadline_option
def seed(
    source: str,
    destination: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    force: bool,
    dry_run: bool,
    concurrency: int,
    endpoint_url: str | None,
    as_json: bool,
    deadline: float,
) -> None:
    """Copy SRC's data into DST and publish DST's index (SRC is only read; server-side when it can be)."""

    def action() -> Report:
        return api.seed(
            source,
            destination,
            include=include,
            exclude=exclude,
            force=force,
            dry_run=dry_run,
            concurrency=concurrency,
            endpoint_url=endpoint_url,
            progress=_progress(as_json),
            check=False,
        )

    _run("seed", destination, as_json, action, deadline)


@cli.command()
@click.option("--stack", "stack_name", metavar="NAME", help="Stack to select or create [default: the current stack].")
@click.option(
    "--cwd",
    "work_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The Pulumi project directory.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("datastore"),
    show_default=True,
    help="Local directory to bootstrap into.",
)
@concurrency_option
@json_option
@deadline_option
def up(
    stack_name: str | None, work_dir: Path, directory: Path, concurrency: int, as_json: bool, deadline: float
) -> None:
    """Run `pulumi up` for the stack (Automation API), then bootstrap DIR from its datastoreUrl."""

    def action() -> Report:
        from syncops.provision.up import up as run

        return run(
            stack_name=stack_name,
            work_dir=work_dir,
            target=directory,
            concurrency=concurrency,
            progress=_progress(as_json),
        )

    _run("up", stack_name or str(work_dir), as_json, action, deadline)


def _wants_json(args: list[str]) -> bool:
    options = args[: args.index("--")] if "--" in args else args
    return "--json" in options


def main(args: list[str] | None = None) -> None:
    """The console script: click parses, and its usage errors also end in one line (exit 2).

    click's own report of a usage error is several lines and ignores ``--json``; SPEC §4 wants one
    clear line, and with ``--json`` one JSON object on stdout, for any bad input.
    """
    argv = sys.argv[1:] if args is None else args
    try:
        code = cli.main(args=argv, prog_name="syncops", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()  # plain `syncops`: the help text, as click prints it
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        context = getattr(exc, "ctx", None)
        where = context.command_path if context is not None else "syncops"
        _fail(where, None, _wants_json(argv), exc.format_message(), BadInput.exit_code, f" (see `{where} --help`)")
    except click.Abort:
        _say("syncops: aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
