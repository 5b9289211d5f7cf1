"""status (SPEC §3): the plan of both directions between a datastore and a directory, writing nothing.

Discovery runs read-only here: a datastore without an index is listed and planned against, but no
index is published, and the local base is not touched either.
"""

from __future__ import annotations

from pathlib import Path

from syncops.discover import discover
from syncops.errors import BadInput
from syncops.report import Report
from syncops.stores.base import ObjectStore
from syncops.workdir import plan_report, refuse_overlap, survey


def status(store: ObjectStore, directory: Path) -> Report:
    """What hydrate and push would do now: to fetch, to upload, local changes, conflicts, stale."""
    refuse_overlap(store.url, directory)
    if directory.exists() and not directory.is_dir():
        raise BadInput(f"{directory} is not a directory")
    discovery = discover(store, publish=False)
    warnings = list(discovery.warnings)
    return plan_report(store.url, discovery, survey(store.url, directory, discovery.index, warnings), warnings)
