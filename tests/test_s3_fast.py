"""The S3 fast paths of issue 12 (syncops/stores/s3_fast.py) keep the promises of the boto3 paths.

* A listing page parsed in one XML pass gives exactly what botocore's parser gives (keys URL-decoded
  as botocore decodes them, sizes, timestamps), and fields a page lacks come back missing, so the
  lister refuses the page instead of inventing values.
* Small uploads go through obstore with their condition (create-only, on-version) and read the body
  once: the sha256 push records is of the bytes sent, and a lost race is PreconditionFailed.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus

import pytest

from syncops.errors import PreconditionFailed
from syncops.localfs import HashingReader
from syncops.stores.base import DatastoreUrl
from syncops.stores.s3 import S3Store
from syncops.stores.s3_fast import parse_listing_page
from tests import wire
from tests.conftest import Datastore
from tests.proxy import Proxy

_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _page(keys: list[str], *, encoded: bool, truncated: bool, token: str | None) -> bytes:
    items = "".join(
        f"<Contents><Key>{quote(key, safe='/') if encoded else key}</Key>"
        f"<LastModified>2026-05-04T11:59:00.{n:03d}Z</LastModified><ETag>&quot;e{n}&quot;</ETag>"
        f"<Size>{n * 10}</Size><StorageClass>STANDARD</StorageClass></Contents>"
        for n, key in enumerate(keys)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{_NS}"><Name>b</Name><Prefix></Prefix>'
        f"<KeyCount>{len(keys)}</KeyCount><MaxKeys>1000</MaxKeys>"
        f"{'<EncodingType>url</EncodingType>' if encoded else ''}"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{items}"
        f"{f'<NextContinuationToken>{token}</NextContinuationToken>' if token is not None else ''}"
        "</ListBucketResult>"
    ).encode()


def _botocore_parse(body: bytes) -> dict[str, Any]:
    from botocore.loaders import Loader
    from botocore.model import ServiceModel
    from botocore.parsers import RestXMLParser

    model = ServiceModel(Loader().load_service_model("s3", "service-2"), "s3")
    shape = model.operation_model("ListObjectsV2").output_shape
    return RestXMLParser().parse({"body": body, "headers": {}, "status_code": 200}, shape)


@pytest.mark.parametrize("encoded", [True, False])
def test_a_listing_page_parses_as_botocore_parses_it(encoded: bool):
    keys = ["data/a b.json", "data/plus+sign", "ümlaut/é", "amp&ersand", "pct%41", "x<y>z"]
    body = _page(keys if encoded else [k.replace("&", "&amp;").replace("<", "&lt;") for k in keys], encoded=encoded,
                 truncated=True, token="tok-1")  # fmt: skip
    page = parse_listing_page(body)
    reference = _botocore_parse(body)
    expected_keys = [unquote_plus(c["Key"]) if encoded else c["Key"] for c in reference["Contents"]]
    assert [key for key, _, _ in page.objects] == expected_keys == keys
    assert [size for _, size, _ in page.objects] == [c["Size"] for c in reference["Contents"]]
    assert [moment for _, _, moment in page.objects] == [c["LastModified"] for c in reference["Contents"]]
    assert page.objects[1][2] == datetime(2026, 5, 4, 11, 59, 0, 1000, tzinfo=timezone.utc)
    assert (page.truncated, page.token) == (reference["IsTruncated"], reference["NextContinuationToken"])


def test_a_page_without_a_token_or_with_broken_objects_keeps_them_missing():
    body = _page(["a"], encoded=False, truncated=True, token=None)
    body = body.replace(b"<Size>0</Size>", b"<Size>lots</Size>").replace(b"2026-05-04T11:59:00.000Z", b"yesterday")
    page = parse_listing_page(body)
    assert (page.truncated, page.token) == (True, None)
    assert page.objects == [("a", None, None)]


def test_small_uploads_keep_their_condition_and_are_read_once(make_datastore, tmp_path: Path):
    ds: Datastore = make_datastore("s3")
    data = os.urandom(70_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with Proxy(ds.endpoint) as proxy:
        store = S3Store(DatastoreUrl.parse(ds.url), endpoint_url=proxy.endpoint)
        with open(path, "rb") as f:
            body = HashingReader(f.fileno(), len(data))
            token = store.upload("f.bin", body, if_absent=True)
            assert body.sha256() == hashlib.sha256(data).hexdigest()
        with open(path, "rb") as f, pytest.raises(PreconditionFailed):
            store.upload("f.bin", HashingReader(f.fileno(), len(data)), if_absent=True)
        with open(path, "rb") as f:
            newer = store.upload("f.bin", HashingReader(f.fileno(), len(data)), if_token=token)
        with open(path, "rb") as f, pytest.raises(PreconditionFailed):
            store.upload("f.bin", HashingReader(f.fileno(), len(data)), if_token='"0123456789abcdef0123456789abcdef"')
        puts = [s for s in proxy.seen if s.method == "PUT"]
        assert [(s.status, "if-none-match" in s.headers, s.headers.get("if-match")) for s in puts] == [
            (200, True, None),
            (412, True, None),
            (200, False, token),
            (412, False, '"0123456789abcdef0123456789abcdef"'),
        ]
        assert wire.count("s3", proxy, wire.LIST) == 0
    assert newer == token  # same bytes, same MD5 ETag
    assert ds.raw.get(ds.full("f.bin")) == data
