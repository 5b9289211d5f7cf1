"""The GCS media GETs read an answer's headers with a lean parser of their own (not the email
package's): it must read what ``http.client``'s own parser reads, within the same bounds."""

from __future__ import annotations

import http.client
import io

import pytest

from syncops.stores import httpconn
from syncops.stores.httpconn import read_headers

BLOCKS = {
    "a media GET": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nX-Goog-Generation: 1764000000000000\r\n"
        b"x-goog-hash: crc32c=n03x6A==\r\nx-goog-hash: md5=XrY7u+Ae7tCTyyK7j1rNww==\r\nContent-Length: 11\r\n\r\n"
    ),
    "names in any case, odd spacing": b'HTTP/1.1 200 OK\r\ncontent-RANGE:bytes 0-9/100\r\nETag:   "x"  \r\n\r\n',
    "a bare LF": b"HTTP/1.1 200 OK\nContent-Length: 0\nConnection: close\n\n",
    "no headers": b"HTTP/1.1 200 OK\r\n\r\n",
}


@pytest.mark.parametrize("name", list(BLOCKS))
def test_the_lean_parser_reads_what_the_standard_library_reads(name: str):
    raw = BLOCKS[name]
    ours, theirs = io.BytesIO(raw), io.BytesIO(raw)
    ours.readline(), theirs.readline()  # the status line
    lean, standard = read_headers(ours), http.client.parse_headers(theirs)
    assert [(k.lower(), v) for k, v in standard.items()] == lean.items()
    for header, _ in standard.items():
        assert lean.get(header.upper()) == standard.get(header)
        assert lean.get_all(header.swapcase()) == standard.get_all(header)
    assert lean.get("absent", "default") == standard.get("absent", "default") == "default"
    assert lean.get_all("absent") is standard.get_all("absent") is None
    assert ours.tell() == theirs.tell(), "both stop right after the blank line"


def test_a_folded_header_continues_the_one_before():
    lean = read_headers(io.BytesIO(b"X-Long: one\r\n\ttwo\r\n three\r\nNext: n\r\n\r\n"))
    assert lean.items() == [("x-long", "one two three"), ("next", "n")]


def test_the_header_bounds_are_the_standard_librarys_100_lines_with_the_blank_one_and_64_kib_a_line():
    def block(count: int) -> bytes:
        return b"".join(b"X-%d: v\r\n" % i for i in range(count)) + b"\r\n"

    assert len(http.client.parse_headers(io.BytesIO(block(99))).items()) == 99
    assert len(read_headers(io.BytesIO(block(99))).items()) == 99
    long = b"X-Long: " + b"v" * 65536 + b"\r\n\r\n"
    for raw, error in ((block(100), http.client.HTTPException), (long, http.client.LineTooLong)):
        with pytest.raises(error):
            http.client.parse_headers(io.BytesIO(raw))
        with pytest.raises(error):
            read_headers(io.BytesIO(raw))


def test_a_line_that_is_no_header_is_skipped_and_the_headers_after_it_are_kept():
    lean = read_headers(io.BytesIO(b" stray continuation\r\nbogus line\r\nContent-Length: 3\r\n\r\n"))
    assert lean.items() == [("content-length", "3")]


class _Socket:
    """What HTTPResponse asks of a socket: a file to read the answer from."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self._raw)


ANSWERS = {
    "a sized body": b"HTTP/1.1 200 OK\r\nx-goog-hash: crc32c=a\r\nx-goog-hash: md5=b\r\nContent-Length: 5\r\n\r\nhello",
    "a chunked body": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "close after": b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno",
    "a 100 Continue first": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "HTTP/1.0, no length": b"HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nuntil the end",
}


@pytest.mark.parametrize("name", list(ANSWERS))
def test_the_connections_answers_read_as_the_standard_librarys_do(name: str):
    assert httpconn.TimedConnection.response_class is httpconn.Response
    raw = ANSWERS[name]
    ours, theirs = httpconn.Response(_Socket(raw), method="GET"), http.client.HTTPResponse(_Socket(raw), method="GET")
    ours.begin(), theirs.begin()
    assert isinstance(ours.headers, httpconn.Headers), "read by the lean parser"
    assert (ours.status, ours.reason, ours.version, ours.will_close, ours.chunked, ours.length) == (
        theirs.status,
        theirs.reason,
        theirs.version,
        theirs.will_close,
        theirs.chunked,
        theirs.length,
    )
    for header, _ in theirs.getheaders():
        assert ours.getheader(header) == theirs.getheader(header)
    assert ours.read() == theirs.read()
