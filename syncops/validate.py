"""Input checked before anything is built from it: datastore URL text, bucket names, S3 endpoints, paths.

Each check exists because the unchecked input did harm further down:

* ``urlsplit`` silently deletes tabs and newlines, so ``s3://prod<TAB>-data`` targeted ``prod-data``;
* a bucket name no provider allows came back, one round trip later, as "bucket does not exist"
  (exit 4, a remote failure) instead of the usage error it is (exit 2);
* a malformed endpoint (a port above 65535, a space, an unclosed ``[``) reaches the Rust S3 client,
  which panics: a traceback, not an exit code;
* a ``file:///`` datastore or a local directory of ``/`` slipped through a string-prefix overlap
  check (``"/" + os.sep`` is ``"//"``, a prefix of nothing).

Pure functions of their arguments (and, for the endpoint, of the environment the S3 client reads).
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
from collections.abc import Mapping

from syncops.errors import BadInput
from syncops.redact import redact

#: C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators (which end a line
#: for ``str.splitlines`` and some terminals).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")

_S3_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_S3_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
#: Suffixes S3 keeps for names it hands out itself. No bucket can be *created* with them, but an
#: access point alias (``-s3alias``) or a directory bucket (``--x-s3``) is addressed like a bucket,
#: so they are refused only when creating.
_S3_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_GCS_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*[a-z0-9]")
#: "google" and the close misspelling GCS documents as an example.
_GCS_FORBIDDEN = ("google", "g00gle")
_IP_SHAPED = re.compile(r"[0-9]+(\.[0-9]+){3}")

_ENDPOINT = re.compile(r"(?P<scheme>https?)://(?P<authority>[^/?#]*)(?P<rest>.*)", re.DOTALL)
_USERINFO = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")
_HOST_PORT = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]*)(?::(?P<port>[0-9]{1,5}))?")


def shown(text: str) -> str:
    """``text`` quoted for a one-line message: control characters escaped, passwords hidden."""
    return redact(repr(text))


def text_problem(text: str) -> str | None:
    """Why a URL's text cannot be taken as it is (what urlsplit would silently drop), or None."""
    found = _CONTROL.search(text)
    if found:
        return f"it contains the control character {found.group()!r} at position {found.start()}"
    if text != text.strip():
        return "it has leading or trailing whitespace"
    return None


def surrogate_problem(text: str) -> str | None:
    """Bytes that are not UTF-8 (given on a command line) arrive as lone surrogates; no key can hold them."""
    return "it is not valid UTF-8" if _SURROGATE.search(text) else None


def bucket_name_problem(scheme: str, name: str, *, creating: bool = False) -> str | None:
    """Why ``name`` cannot be an S3 (``s3``) or GCS (``gs``) bucket, or None when it can.

    The providers' documented rules. ``creating`` adds the rules that only matter when a bucket is
    made (S3's reserved suffixes and its ``.-``/``-.`` rule); without it, names an existing bucket,
    access point alias or directory bucket can have are let through.
    """
    if scheme == "s3":
        if not _S3_NAME.fullmatch(name):
            return "3-63 characters: lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
        if ".." in name or (creating and (".-" in name or "-." in name)):
            return "no '..', '.-' or '-.'" if creating else "no '..'"
        if name.startswith(_S3_RESERVED_PREFIXES) or (creating and name.endswith(_S3_RESERVED_SUFFIXES)):
            return (
                "reserved prefix or suffix (xn--, sthree-, amzn-s3-demo-, -s3alias, --ol-s3, .mrap, --x-s3, --table-s3)"
            )
    elif scheme == "gs":
        if len(name) < 3 or not _GCS_NAME.fullmatch(name):
            return (
                "3-63 characters: lowercase letters, digits, '-', '_' and '.', "
                "starting and ending with a letter or digit"
            )
        parts = name.split(".")
        if len(name) > (222 if len(parts) > 1 else 63) or any(not 0 < len(p) <= 63 for p in parts):
            return "at most 63 characters (222 with dots, each dot-separated part 1-63)"
        if name.startswith("goog") or any(word in name for word in _GCS_FORBIDDEN):
            return "may not start with 'goog' or contain 'google'"
    else:
        raise ValueError(f"no bucket naming rules for scheme {scheme!r}")
    if _IP_SHAPED.fullmatch(name) or _is_ip(name):
        return "may not look like an IP address"
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def endpoint_problem(text: str) -> str | None:
    """Why ``text`` is not an endpoint URL the S3 clients (boto3 and the Rust one) can use, or None.

    Accepted: ``http(s)://[user[:password]@]host[:port][/]`` with a DNS name, an IPv4 address or a
    bracketed IPv6 address; nothing after the authority but one ``/``.
    """
    problem = text_problem(text)
    if problem is not None:
        return problem
    found = _ENDPOINT.fullmatch(text)
    if found is None:
        return "expected http://host[:port] or https://host[:port]"
    authority, rest = found.group("authority"), found.group("rest")
    if rest not in ("", "/"):
        return f"no path, query or fragment is allowed after the host (found {rest[:40]!r})"
    userinfo, at, host_port = authority.rpartition("@")
    if at and not _USERINFO.fullmatch(userinfo):
        return "the user:password part has characters that must be percent-encoded"
    parts = _HOST_PORT.fullmatch(host_port)
    if parts is None:
        return "expected host[:port] after the scheme"
    port = parts.group("port")
    if port is not None and not 0 < int(port) < 65536:
        return f"port {port} is outside 1-65535"
    return _host_problem(parts.group("host"))


def _host_problem(host: str) -> str | None:
    if not host:
        return "no host name"
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host!r} is not an IPv6 address"
        return None
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return f"{host!r} is not a host name (letters, digits, '-' and '_' in dot-separated labels)"
    if labels[-1].isdigit():
        # URL parsers read a name ending in a number as an IPv4 address, and fail on a bad one.
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return f"{host!r} is not an IPv4 address"
    return None


def check_store_endpoint(scheme: str, explicit: str | None, environ: Mapping[str, str] | None = None) -> None:
    """Refuse (exit 2) a malformed endpoint before any client is made: for ``gs://`` the emulator URL in
    ``STORAGE_EMULATOR_HOST``; for ``s3://`` the endpoint in effect, as the S3 backend picks it:
    ``--endpoint-url``, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL`` (an empty variable
    counts as unset).
    """
    env = os.environ if environ is None else environ
    if scheme == "gs":
        # google-cloud-storage takes the emulator's whole URL, scheme included, from this variable.
        emulator = env.get("STORAGE_EMULATOR_HOST")
        problem = endpoint_problem(emulator) if emulator else None
        if problem is not None:
            raise BadInput(f"bad GCS emulator STORAGE_EMULATOR_HOST={shown(emulator or '')}: {problem}")
        return
    if scheme != "s3":
        return
    for source, value in (
        ("--endpoint-url", explicit),
        ("AWS_ENDPOINT_URL_S3", env.get("AWS_ENDPOINT_URL_S3")),
        ("AWS_ENDPOINT_URL", env.get("AWS_ENDPOINT_URL")),
    ):
        if value:
            problem = endpoint_problem(value)
            if problem is not None:
                raise BadInput(f"bad S3 endpoint {source}={shown(value)}: {problem}")
            return


def file_root_problem(path: str) -> str | None:
    """Why a ``file://`` path cannot be a datastore root: control characters, or the file system root."""
    found = _CONTROL.search(path)
    if found:
        return f"the path contains the control character {found.group()!r}"
    if not _parts(posixpath.normpath(path)):
        return "the file system root cannot be a datastore"
    return None


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def paths_overlap(a: str, b: str) -> bool:
    """True when one of two absolute POSIX paths is the other or lies inside it (the root contains all).

    Compared segment by segment after ``posixpath.normpath``, so ``/`` (and ``//``) contain every
    path, ``/data`` contains ``/data/cache`` but not ``/database``. Pure: no file system access, so
    pass ``os.path.realpath`` results to see through symlinks.
    """
    if not (a.startswith("/") and b.startswith("/")):
        raise ValueError(f"paths_overlap needs absolute paths, got {a!r} and {b!r}")
    left, right = _parts(posixpath.normpath(a)), _parts(posixpath.normpath(b))
    shorter = min(len(left), len(right))
    return left[:shorter] == right[:shorter]


def check_local_overlap(root: str, directory: str | os.PathLike[str]) -> None:
    """Refuse (exit 2) a local directory that is, contains or lies inside a ``file://`` datastore root."""
    if paths_overlap(os.path.realpath(root), os.path.realpath(directory)):
        raise BadInput(f"{directory} and the datastore file://{root} overlap: use a directory outside the datastore")
