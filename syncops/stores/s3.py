"""S3 through boto3: the standard credential chain, botocore's ``standard`` retry mode on every call
(listing pages included), its paginator for listings, and ``If-None-Match`` / ``If-Match`` on
PutObject for conditional writes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from urllib3.exceptions import ProtocolError

from syncops.errors import (
    AccessDenied,
    ConditionUnsupported,
    NotFound,
    PreconditionFailed,
    StoreError,
    Unavailable,
)
from syncops.stores.base import Blob, DatastoreUrl, ObjectInfo

#: Attempts per request (first try included) under botocore's standard retry mode.
MAX_ATTEMPTS = 6
#: Whole re-reads of an object whose body broke off mid-stream (botocore retries only the request).
BODY_ATTEMPTS = 4
LIST_PAGE_SIZE = 1000
#: Objects above this go through s3transfer's multipart upload.
MULTIPART_THRESHOLD = 64 * 1024 * 1024

_DENIED_CODES = {
    "AccessDenied",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
    "AccountProblem",
    "401",
    "403",
}
_PERMISSIONS = {
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "ListObjectsV2": "s3:ListBucket",
}
_CREDENTIAL_METHODS = {
    "env": "environment variables (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
    "shared-credentials-file": "the shared credentials file",
    "config-file": "the AWS config file",
    "iam-role": "the instance role (EC2 instance metadata)",
    "container-role": "the container role (ECS/EKS credentials endpoint)",
    "assume-role": "an assumed role (AWS config profile)",
    "assume-role-with-web-identity": "a web-identity role (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "sso": "AWS SSO",
    "custom-process": "a credential_process",
}
_BODY_ERRORS = (ResponseStreamingError, ReadTimeoutError, BotoConnectionError, ProtocolError, ConnectionError)


def endpoint_from_environment() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


class S3Store:
    def __init__(self, url: DatastoreUrl, *, endpoint_url: str | None = None, concurrency: int = 32) -> None:
        self.url = url
        self.bucket = url.bucket
        self._session = boto3.session.Session()
        endpoint = endpoint_url or endpoint_from_environment()
        config = Config(
            retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            max_pool_connections=max(10, concurrency + 4),
            connect_timeout=10,
            read_timeout=60,
            # A custom endpoint (SeaweedFS, MinIO, a proxy) rarely resolves bucket subdomains.
            s3={"addressing_style": "path"} if endpoint else None,
        )
        self._client = self._session.client(
            "s3",
            endpoint_url=endpoint,
            region_name=self._session.region_name or "us-east-1",
            config=config,
        )

    # -- error translation ---------------------------------------------------------------------
    def credential_source(self) -> str:
        try:
            credentials = self._session.get_credentials()
        except BotoCoreError:
            return "unreadable AWS configuration"
        if credentials is None:
            return "no credentials found (anonymous)"
        source = _CREDENTIAL_METHODS.get(credentials.method, credentials.method)
        profile = self._session.profile_name
        if credentials.method in ("shared-credentials-file", "config-file", "assume-role", "sso") and profile:
            source += f", profile {profile!r}"
        return source

    def _translate(self, exc: Exception, operation: str, key: str | None) -> Exception:
        where = self.url.object_url(key) if key is not None else f"s3://{self.bucket}/{self.url.prefix}"
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return AccessDenied(
                f"access denied: {operation} {where}: no AWS credentials found "
                "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance role)"
            )
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "NotFound") or (status == 404 and code != "NoSuchBucket"):
                return NotFound(f"{where}: not found")
            if code == "NoSuchBucket":
                return StoreError(f"{operation} {where}: bucket {self.bucket!r} does not exist")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return PreconditionFailed(f"{operation} {where}: precondition failed ({code or status})")
            if code == "NotImplemented" or status == 501:
                return ConditionUnsupported(f"{operation} {where}: {code or status} {error.get('Message', '')}")
            if code in _DENIED_CODES or status in (401, 403):
                permission = _PERMISSIONS.get(operation, f"s3:{operation}")
                return AccessDenied(
                    f"access denied ({code or status}): {operation} {where}; credentials from "
                    f"{self.credential_source()}; the caller needs {permission} on it"
                )
            if status is not None and (status >= 500 or status == 429) or "Throttl" in code or "SlowDown" in code:
                return Unavailable(f"{operation} {where}: {code or status} after {MAX_ATTEMPTS} attempts")
            return StoreError(f"{operation} {where} failed: {code or status} {error.get('Message', '')}".rstrip())
        if isinstance(exc, (BotoCoreError, *_BODY_ERRORS)):
            return Unavailable(f"{operation} {where}: {exc} (after {MAX_ATTEMPTS} attempts)")
        return exc

    def _call(self, operation: str, key: str | None, **kwargs: Any) -> Any:
        method = {"GetObject": self._client.get_object, "PutObject": self._client.put_object}[operation]
        try:
            return method(Bucket=self.bucket, **kwargs)
        except Exception as exc:
            raise self._translate(exc, operation, key) from None

    # -- contract ------------------------------------------------------------------------------
    def get(self, key: str) -> Blob:
        for attempt in range(BODY_ATTEMPTS):
            response = self._call("GetObject", key, Key=self.url.full_key(key))
            try:
                data = response["Body"].read()
            except _BODY_ERRORS as exc:
                if attempt + 1 == BODY_ATTEMPTS:
                    raise self._translate(exc, "GetObject", key) from None
                time.sleep(0.2 * 2**attempt)
                continue
            return Blob(data=data, token=response["ETag"])
        raise AssertionError("unreachable")

    def put(self, key: str, data: bytes, *, if_absent: bool = False, if_token: str | None = None) -> str:
        conditions: dict[str, str] = {}
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        if if_token is not None:
            conditions["IfMatch"] = if_token
        response = self._call(
            "PutObject",
            key,
            Key=self.url.full_key(key),
            Body=data,
            ContentType="application/json" if key.endswith(".json") else "application/octet-stream",
            **conditions,
        )
        return str(response["ETag"])

    def list(self) -> Iterator[ObjectInfo]:
        prefix = f"{self.url.prefix}/" if self.url.prefix else ""
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE_SIZE})
        try:
            for page in pages:
                contents = page.get("Contents", ())
                page.clear()  # let the parsed page go as soon as its entries are yielded
                for item in contents:
                    yield ObjectInfo(
                        key=item["Key"][len(prefix) :], size=int(item["Size"]), last_modified=item["LastModified"]
                    )
        except Exception as exc:
            raise self._translate(exc, "ListObjectsV2", None) from None

    def download(self, key: str, out: BinaryIO) -> int:
        start = out.tell()
        for attempt in range(BODY_ATTEMPTS):
            response = self._call("GetObject", key, Key=self.url.full_key(key))
            try:
                written = 0
                for chunk in response["Body"].iter_chunks(1 << 20):
                    out.write(chunk)
                    written += len(chunk)
                return written
            except _BODY_ERRORS as exc:
                if attempt + 1 == BODY_ATTEMPTS:
                    raise self._translate(exc, "GetObject", key) from None
                out.seek(start)
                out.truncate()
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def upload(self, key: str, path: Path) -> None:
        size = path.stat().st_size
        if size <= MULTIPART_THRESHOLD:
            with open(path, "rb") as body:
                self._call("PutObject", key, Key=self.url.full_key(key), Body=body)
            return
        from boto3.s3.transfer import S3UploadFailedError, TransferConfig

        try:
            self._client.upload_file(
                str(path),
                self.bucket,
                self.url.full_key(key),
                Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, max_concurrency=4),
            )
        except S3UploadFailedError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
            raise self._translate(cause, "PutObject", key) from None
        except Exception as exc:
            raise self._translate(exc, "PutObject", key) from None

    def close(self) -> None:
        self._client.close()
