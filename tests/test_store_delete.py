"""The two contract additions of issue 11, on each backend against the real servers: a conditional
``delete`` (used only to release syncops's own lock) and the object's last-modified time on ``get``
and ``head`` (what a lock's staleness is measured from). And the ``file://`` flock no longer sits on
swamp's lock key.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from syncops.errors import NotFound, PreconditionFailed
from syncops.stores import open_store
from tests import wire
from tests.conftest import Datastore
from tests.proxy import Proxy

KEY = ".datastore.lock"


def test_delete_removes_the_object_at_the_version_read(datastore: Datastore):
    store = datastore.store()
    token = store.put(KEY, b'{"holder": "me@here", "ttlMs": 30000}', if_absent=True)
    store.delete(KEY, if_token=store.get(KEY).token)
    with pytest.raises(NotFound):
        store.get(KEY)
    assert token


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_delete_refuses_an_object_rewritten_since_it_was_read(make_datastore, backend: str):
    datastore = make_datastore(backend)
    store = datastore.store()
    store.put(KEY, b'{"holder": "me@here", "ttlMs": 30000, "nonce": "1"}', if_absent=True)
    read = store.get(KEY)
    datastore.raw.put(datastore.full(KEY), b'{"holder": "other@there", "ttlMs": 30000, "nonce": "2"}')
    with pytest.raises(PreconditionFailed):
        store.delete(KEY, if_token=read.token)
    assert b"other@there" in (datastore.raw.get(datastore.full(KEY)) or b"")


def test_gcs_delete_sends_the_generation_it_read(make_datastore, monkeypatch: pytest.MonkeyPatch):
    """fake-gcs-server ignores ``ifGenerationMatch`` on DELETE (it deletes anyway; real GCS answers
    412), so on GCS what is proven is that the precondition travels with the request."""
    ds = make_datastore("gcs")
    store = ds.store()
    store.put(KEY, b"{}", if_absent=True)
    token = store.get(KEY).token
    with Proxy(ds.endpoint) as proxy:
        env = wire.proxied_env("gcs", ds.env, proxy)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", env["STORAGE_EMULATOR_HOST"])
        open_store(ds.url).delete(KEY, if_token=token)
        [seen] = [s for s in proxy.seen if s.method == "DELETE"]
    assert f"ifGenerationMatch={token}" in seen.path


def test_get_and_head_report_the_objects_last_modified_time(datastore: Datastore):
    store = datastore.store()
    before = datetime.now(timezone.utc) - timedelta(seconds=2)  # S3 keeps whole seconds
    store.put(KEY, b"{}", if_absent=True)
    after = datetime.now(timezone.utc) + timedelta(seconds=2)
    blob, head = store.get(KEY), store.head(KEY)
    for moment in (blob.last_modified, head.last_modified):
        assert moment is not None and before <= moment <= after


def test_file_conditional_writes_never_touch_the_lock_key(make_datastore):
    ds = make_datastore("file")
    store = ds.store()
    store.put(".datastore-index.json", b"{}", if_absent=True)
    store.put(".datastore-index.json", b"{ }", if_token=store.get(".datastore-index.json").token)
    assert ds.raw.get(KEY) is None
    assert (ds.raw.root / "_control/syncops.flock").is_file()  # type: ignore[attr-defined]
