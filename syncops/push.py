"""push (SPEC §3): upload the local changes and publish the merged index.

Discovery first, so a bucket that holds data but no index keeps every remote entry. The planner
(:mod:`syncops.plan`) says what changed locally since the base; only that is uploaded, and each data
object is written **on the version in the base** (S3 ``If-Match`` / ``If-None-Match: *``, GCS
``ifGenerationMatch``), so an untouched stale copy never overwrites newer data and two peers pushing
one key cannot interleave: the loser gets 412 and reports a conflict. Files are opened without
following links and hashed in the pass that uploads them; the entry records the bytes sent. The index is
then written wherever it lives (:mod:`syncops.indexview`: the monolith, plus the dirty shards in
dual-write mode; the dirty shards and then ``_meta.json`` in shard-first mode) with an
optimistic-concurrency condition, re-read and re-merged on a lost race. Uploads and index write wait
for swamp's lock, and hold it when the datastore uses swamp's layout (:mod:`syncops.writelock`).
push never deletes remote objects.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from syncops import index as idx
from syncops import indexview
from syncops.discover import discover, entries_from_listing
from syncops.errors import BadInput, ConditionUnsupported, NotFound, PreconditionFailed
from syncops.keys import escape_key
from syncops.layout import refuse_unwritable
from syncops.localfs import HashingReader, NotRegularFile, open_file_under
from syncops.plan import Action, Change
from syncops.progress import NoProgress, Progress
from syncops.report import Report
from syncops.stores.base import ObjectStore
from syncops.workdir import (
    CONFLICT_EXIT,
    DEFAULT_CONCURRENCY,
    BaseUpdate,
    Survey,
    local_digests,
    plan_report,
    refuse_overlap,
    survey,
    write_base,
)
from syncops.writelock import WriteLock


@dataclass
class _Uploaded:
    key: str
    entry: idx.Entry | None = None  # what was published for the key (None: nothing)
    token: str = ""
    mtime_ns: int = 0
    conflict: dict[str, str] | None = None
    warning: str | None = None


def _listed(store: ObjectStore) -> idx.Index:
    """When the index is gone: the listing's entries, never an empty base.

    Merging into an empty index after someone removed the index would publish only this push's
    files and hide every other object from the next hydrate.
    """
    return idx.Index(entries=entries_from_listing(store.list()).entries)


class _Uploader:
    """Uploads one key on the version the base records for it (or unconditionally when forced)."""

    def __init__(self, store: ObjectStore, seen: Survey, forced: set[str], progress: Progress) -> None:
        self.store = store
        self.seen = seen
        self.forced = forced
        self.progress = progress

    def _condition(self, key: str) -> tuple[bool, str | None]:
        """(create-only, on-version) for ``key``: what the remote must still be for this write to land."""
        previous = self.seen.base.get(key)
        if previous is None:
            return True, None  # new to the base: only if nobody created it meanwhile
        if previous.version is not None:
            return False, previous.version
        # A base written without version tokens (an older syncops, swamp): the remote entry is the one
        # the base knew (the planner said so), so the object's current version is the one to hold to.
        try:
            return False, self.store.head(key).token
        except NotFound:
            return True, None

    def _finished_earlier(self, key: str) -> _Uploaded | None:
        """A push killed after uploading this very file (same size and mtime as its journal says) left
        its bytes in the store: when the object's MD5 is the file's, take it as uploaded."""
        journal = self.seen.pending.get(key)
        if journal is None or journal != self.seen.local.get(key):
            return None
        try:
            head = self.store.head(key)
            sha256, md5 = local_digests(self.seen.directory, key)
        except (NotFound, FileNotFoundError, NotRegularFile, NotADirectoryError):
            return None
        previous = self.seen.base.get(key)
        if head.md5 != md5 or (previous is not None and previous.version == head.token):
            return None
        entry = idx.Entry(key=key, size=journal.size, last_modified=idx.now_timestamp(), sha256=sha256)
        return _Uploaded(key, entry, head.token, journal.mtime_ns)

    def __call__(self, key: str) -> _Uploaded:
        if key not in self.forced:
            earlier = self._finished_earlier(key)
            if earlier is not None:
                return earlier
        directory = self.seen.directory
        try:
            with open_file_under(directory, key) as (fd, before):
                body = HashingReader(fd, before.st_size)
                if key in self.forced:
                    if_absent, if_token = False, None
                else:
                    if_absent, if_token = self._condition(key)
                unconditional = False
                try:
                    token = self.store.upload(key, body, if_absent=if_absent, if_token=if_token)
                except (PreconditionFailed, NotFound):
                    return self._lost_race(key)
                except ConditionUnsupported:
                    # The backend refuses conditions outright: write as an older store would, and say so.
                    body.seek(0)
                    token = self.store.upload(key, body)
                    unconditional = True
                digest = body.sha256()
                after = os.fstat(fd)
        except FileNotFoundError:
            return _Uploaded(key, warning=f"{escape_key(key)} vanished locally before its upload: not pushed")
        except (NotRegularFile, NotADirectoryError) as exc:
            return _Uploaded(key, warning=f"{escape_key(key)} is no longer a regular file ({exc.strerror}): not pushed")
        self.progress.advance(body.size)
        result = _Uploaded(
            key,
            idx.Entry(key=key, size=body.size, last_modified=idx.now_timestamp(), sha256=digest),
            token,
            before.st_mtime_ns,
        )
        if unconditional:
            result.warning = (
                f"{escape_key(key)}: the backend does not support conditional writes; uploaded unconditionally"
            )
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            result.warning = (
                f"{escape_key(key)} changed while it was uploaded: the {body.size} bytes read were pushed; "
                "push again to send the rest"
            )
            result.mtime_ns = -1  # never equal to the file's mtime: the next push sees a change
        return result

    def _lost_race(self, key: str) -> _Uploaded:
        """The object is not at the version the base knew. If it already holds exactly this file (a push
        killed between its uploads and its index write), finish that push; otherwise it is a conflict."""
        try:
            head = self.store.head(key)
            sha256, md5 = local_digests(self.seen.directory, key)
        except (NotFound, FileNotFoundError, NotRegularFile, NotADirectoryError):
            head = None
        if head is not None and head.md5 is not None and head.md5 == md5:
            local = self.seen.local[key]
            entry = idx.Entry(key=key, size=local.size, last_modified=idx.now_timestamp(), sha256=sha256)
            return _Uploaded(key, entry, head.token, local.mtime_ns)
        decision = self.seen.plan.decisions[key]
        return _Uploaded(
            key,
            conflict={
                "key": key,
                "local": (decision.local or Change.MODIFIED).value,
                "remote": "modified",
            },
        )


def push(
    store: ObjectStore,
    source: Path,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> Report:
    refuse_overlap(store.url, source)
    if not source.is_dir():
        raise BadInput(f"{source} is not a directory")
    progress = progress or NoProgress()
    discovery = discover(store, publish=not dry_run)
    warnings = list(discovery.warnings)
    seen = survey(store.url, source, discovery.index, warnings)
    plan = seen.plan
    if dry_run:
        report = plan_report(store.url, discovery, seen, warnings)
        report.to_fetch = None  # one direction: push's
        report.local_changes = None
        return report

    conflicts = plan.keys("push", Action.CONFLICT)
    forced = set(conflicts) if force else set()
    changed = sorted([*plan.keys("push", Action.UPLOAD), *forced])
    view = discovery.view or indexview.read(store)
    # Before a single upload: a key this layout cannot index (shard-first: no partition) is refused.
    refuse_unwritable(view.layout, changed, store.url.object_url)
    published = discovery.index
    index_written = discovery.index_written
    results: list[_Uploaded] = []
    if changed:
        # The journal first: a push killed from here on is finished by the next one, not re-sent.
        write_base(source, store.url, seen.base.values(), discovery.index, {k: seen.local[k] for k in changed})
        with WriteLock(store, take=view.uses_swamp_layout) as lock:
            if lock.held:
                view = indexview.refresh(store, view)  # what another writer committed while we waited
            progress.start("pushing", len(changed), sum(seen.local[k].size for k in changed))
            try:
                with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="syncops-push") as pool:
                    results = list(pool.map(_Uploader(store, seen, forced, progress), changed))
            finally:
                progress.stop()
            uploaded = {r.key: r.entry for r in results if r.entry is not None}
            if uploaded:
                _, published = indexview.commit(
                    store, view, uploaded, warnings, lock=lock, when_absent=lambda: _listed(store)
                )
                index_written = True
        warnings.extend(lock.warnings)

    conflict_items = [plan.decisions[k].conflict() for k in conflicts if k not in forced]
    base = BaseUpdate(seen)
    for key in plan.keys("push", Action.ADOPT):
        base.adopt(seen, key)
    for key in plan.keys("push", Action.FORGET):
        base.forget(key)
    for result in results:
        if result.warning:
            warnings.append(result.warning)
        if result.conflict is not None:
            conflict_items.append(result.conflict)
    for result in results:
        if result.entry is not None:
            base.record(
                replace(published.entries[result.key]),
                version=result.token,
                sha256=result.entry.sha256,
                mtime_ns=result.mtime_ns,
            )
    write_base(source, store.url, base.entries(), published)
    conflict_items.sort(key=lambda c: c["key"])
    return Report(
        url=str(store.url),
        status=discovery.status,
        entries=len(published),
        index_written=index_written,
        pushed=sum(1 for r in results if r.entry is not None),
        bytes=sum(r.entry.size for r in results if r.entry is not None),
        conflicts=conflict_items,
        warnings=warnings,
        exit_code=CONFLICT_EXIT if conflict_items else 0,
    )
