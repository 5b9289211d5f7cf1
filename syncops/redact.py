"""Secrets out of every message: one function, :func:`redact`, applied to whatever the CLI prints.

SDK messages quote the URL they failed on, and an endpoint may carry ``user:password@`` (botocore:
``Could not connect to the endpoint URL: "http://user:pw@host/..."``; the Rust client alike). A
message is built far from the place that knows which parts are secret, so the CLI passes every line
it prints (the error line, the ``--json`` error object, warnings) through here instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

MASK = "***"

#: ``scheme://userinfo@``: the userinfo runs to the last ``@`` before the host's end (a password
#: may itself hold an ``@``), and never across whitespace, quotes or the start of a path.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#\"'<>`]*@")

#: Variables whose whole value is a secret.
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
#: Variables holding a URL that may carry a password.
URL_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "STORAGE_EMULATOR_HOST",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)
#: Shorter values are not searched for on their own (a two-letter password would mangle every
#: message); inside a URL they are still hidden by the userinfo rule.
MIN_SECRET_LENGTH = 4

_remembered: set[str] = set()


def remember(url: str | None) -> None:
    """Also hide the password of ``url`` (e.g. ``--endpoint-url``) wherever it shows up alone."""
    if url:
        _remembered.update(_url_secrets(url))


def _url_secrets(url: str) -> Iterable[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return ()
    if not password:
        return ()
    return {password, unquote(password)}


def _secrets() -> set[str]:
    found = {os.environ.get(name, "") for name in SECRET_VARIABLES}
    for name in URL_VARIABLES:
        found.update(_url_secrets(os.environ.get(name, "")))
    found.update(_remembered)
    return {value for value in found if len(value) >= MIN_SECRET_LENGTH}


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL and every known secret value masked."""
    text = _USERINFO.sub(lambda found: f"{found.group('scheme')}{MASK}@", text)
    for secret in sorted(_secrets(), key=len, reverse=True):  # longest first: one may contain another
        text = text.replace(secret, MASK)
    return text
