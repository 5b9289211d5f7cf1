"""S3 conditional uploads through obstore (Rust ``object_store``), and listings parsed without boto3's
per-object cost.

Why: a boto3 ``put_object`` costs about 2.3 ms of Python CPU per call (request building, signing,
checksums, response parsing), so a push of thousands of small files is CPU-bound on the SDK. obstore
signs and sends in Rust with the GIL released, through the same client (credentials, endpoint,
connection pool, timeouts) as the downloads of :mod:`syncops.stores.s3_data`.

What stays with boto3 (the caller decides, see ``S3Store.upload``):

* bodies above :data:`FAST_PUT_LIMIT`: obstore sends a *conditional* put as one request with the
  whole body in memory (its multipart path takes no condition), while boto3's own multipart upload
  carries the condition on CompleteMultipartUpload and reads the file part by part;
* keys obstore's path type refuses (it rejects some characters and ``.`` segments instead of
  sending them), and buckets in another region (boto3 follows S3's redirects).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_plus
from xml.etree import ElementTree

from syncops import retry
from syncops.errors import StoreError
from syncops.stores.base import UploadBody
from syncops.stores.s3_data import DenyMessage, translate

#: Bodies up to this size go through obstore, read whole into memory once (32 uploads in flight hold
#: at most 256 MiB); larger ones stream from the file through boto3's multipart upload.
FAST_PUT_LIMIT = 8 * 1024 * 1024



class UnsendableKey(StoreError):
    """obstore's path type refuses this key (it would not be sent as given); boto3 sends it."""


class ObstoreUploader:
    """PutObject with ``If-None-Match: *`` or ``If-Match: <etag>`` through one obstore S3 client."""

    def __init__(
        self,
        store: Any,
        *,
        attempts: int,
        where: Callable[[str], str],
        denied: DenyMessage,
    ) -> None:
        self._store = store
        self._attempts = attempts
        self._policy = retry.RetryPolicy(attempts=attempts)
        self._where = where
        self._denied = denied

    def upload(
        self,
        path: str,
        key: str,
        body: UploadBody,
        *,
        if_absent: bool,
        if_token: str | None,
        content_type: str = "application/octet-stream",
    ) -> str:
        """Send ``body`` (read here once, whole: each byte hashed once) to ``path``; the new ETag.

        Transient failures are retried within the same attempt budget as boto3's calls, each time
        with the same bytes (never a second read of the file). A retried create-only put whose first
        attempt landed although its answer was lost comes back as :class:`PreconditionFailed`; push
        then finds its own bytes there (MD5) and takes them as uploaded.
        """
        data = body.read()
        if len(data) != body.size:
            raise OSError(f"read {len(data)} of {body.size} bytes")
        return self.put(path, key, data, if_absent=if_absent, if_token=if_token, content_type=content_type)

    def put(
        self,
        path: str,
        key: str,
        data: bytes,
        *,
        if_absent: bool,
        if_token: str | None,
        content_type: str = "application/octet-stream",
    ) -> str:
        import obstore

        mode: Any = "create" if if_absent else {"e_tag": if_token} if if_token is not None else "overwrite"
        where = self._where(key)

        def send() -> str:
            try:
                result = obstore.put(
                    self._store, path, data, mode=mode, use_multipart=False, attributes={"Content-Type": content_type}
                )
            except ValueError as exc:
                if "parse path" in str(exc):
                    raise UnsendableKey(f"PutObject {where}: {exc}") from None
                raise
            return str(result["e_tag"] or "")

        def judge(exc: Exception) -> tuple[Exception, retry.Decision]:
            return translate(exc, "PutObject", where, key, denied=self._denied, attempts=self._attempts)

        try:
            return self._policy.call(send, lambda exc: judge(exc)[1], what=f"PutObject {where}")
        except UnsendableKey:
            raise
        except Exception as exc:
            raise judge(exc)[0] from None


# -- listings ----------------------------------------------------------------------------------
#
# Why not obstore's ``list``: object_store pages on by the continuation token alone, so a page that
# says IsTruncated=true without a token ends its listing quietly, short, and a server that hands a
# token back again is asked for the same pages forever (measured through the loopback proxy). That
# is the silently-partial discovery of SPEC §3. So listings stay on boto3 (signing, retries, error
# answers, region redirects) page by page under PageTokens, and only the per-object parse, where
# boto3 spends ~80-150 µs per key (its shape-driven XML walk and a dateutil parse of every
# LastModified), is replaced by one pass over the page's XML.

#: Where :func:`lean_listing_page` leaves its parse in the ListObjectsV2 response.
LEAN_PAGE = "SyncopsListingPage"
_EMPTY_RESULT = b"<ListBucketResult></ListBucketResult>"


@dataclass(frozen=True)
class ListingPage:
    """What discovery needs of one ListObjectsV2 page: "more follows", the token, and the objects as
    (key, size, last modified); a field the page lacks or that does not parse is None."""

    truncated: bool
    token: str | None
    objects: list[tuple[str | None, int | None, datetime | None]]


_ANY_S3_BEFORE_PARSE = "before-parse.s3.*"


def register_lean_listing(client: Any) -> None:
    """Have ``client``'s ListObjectsV2 answers parsed by :func:`lean_listing_page`, ahead of botocore's
    own ``before-parse.s3.*`` handlers.

    botocore's handlers for every S3 operation run before those of one operation, and one of them
    (the check for an error inside a 200) parses the whole body with ElementTree: for a listing page
    that was a second parse of every page, about a quarter of a discovery's CPU time. Registered on
    the same event, ahead of them, the lean parse leaves them a body of a few bytes; a body it does
    not take (not XML, not a ListBucketResult: an ``<Error>`` in a 200) reaches them untouched.
    """
    from botocore.handlers import BUILTIN_HANDLERS, REGISTER_FIRST, REGISTER_LAST

    events = client.meta.events
    theirs = [spec for spec in BUILTIN_HANDLERS if spec[0] == _ANY_S3_BEFORE_PARSE]
    for spec in theirs:
        events.unregister(_ANY_S3_BEFORE_PARSE, spec[1])
    events.register_first(_ANY_S3_BEFORE_PARSE, lean_listing_page, unique_id="syncops-lean-listing")
    for spec in theirs:  # back in their own order and sections, after ours
        where = spec[2] if len(spec) > 2 else None
        register = {REGISTER_FIRST: events.register_first, REGISTER_LAST: events.register_last}.get(
            where, events.register
        )
        register(_ANY_S3_BEFORE_PARSE, spec[1])


def lean_listing_page(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], operation_model: Any = None, **_: Any
) -> None:
    """botocore ``before-parse`` hook: parse a successful page here, hand botocore an empty result.

    Error answers, 200s that carry an error and bodies that are not XML are left to botocore (its
    handlers that run next turn the last two into a 500, retried like any).
    """
    if operation_model is None or operation_model.name != "ListObjectsV2":
        return
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not body:
        return
    try:
        page = parse_listing_page(body)
    except (ElementTree.ParseError, NotAListing):
        return
    customized_response_dict[LEAN_PAGE] = page
    response_dict["body"] = _EMPTY_RESULT


class NotAListing(ValueError):
    """A 200 whose document is not a ListBucketResult (S3 can answer ``<Error>`` with a 200)."""


def parse_listing_page(body: bytes) -> ListingPage:
    """One ListObjectsV2 result document; keys URL-decoded when the page says ``EncodingType=url``
    (botocore asks for it, as it decodes them), timestamps parsed once per distinct value;
    :class:`NotAListing` for another document."""
    root = ElementTree.fromstring(body)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag[len(ns) :] != "ListBucketResult":
        raise NotAListing(root.tag)
    key_tag, size_tag, modified_tag = f"{ns}Key", f"{ns}Size", f"{ns}LastModified"
    encoded = root.findtext(f"{ns}EncodingType") == "url"
    moments: dict[str, datetime | None] = {}
    objects: list[tuple[str | None, int | None, datetime | None]] = []
    for item in root.iterfind(f"{ns}Contents"):
        key = item.findtext(key_tag)
        if key is not None and encoded:
            key = unquote_plus(key)
        size_text = item.findtext(size_tag)
        try:
            size = int(size_text) if size_text is not None else None
        except ValueError:
            size = None
        stamp = item.findtext(modified_tag)
        moment = moments.get(stamp) if stamp is not None else None
        if moment is None and stamp is not None and stamp not in moments:
            moment = moments[stamp] = _moment(stamp)
        objects.append((key, size, moment))
    truncated = (root.findtext(f"{ns}IsTruncated") or "").strip().lower() == "true"
    return ListingPage(truncated=truncated, token=root.findtext(f"{ns}NextContinuationToken"), objects=objects)


def _moment(text: str) -> datetime | None:
    """An S3 timestamp (ISO 8601, ``Z``); botocore's own parser for any other form it accepts."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            from botocore.utils import parse_timestamp

            moment = parse_timestamp(text)
        except (ValueError, TypeError, OverflowError):
            return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
