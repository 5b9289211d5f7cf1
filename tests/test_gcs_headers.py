"""The GCS media GETs read an answer's headers with a lean parser of their own (not the email
package's): it must read what ``http.client``'s own parser reads, within the same bounds."""

from __future__ import annotations

import http.client
import io

import pytest

from syncops.stores.gcs_data import _read_headers

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
    lean, standard = _read_headers(ours), http.client.parse_headers(theirs)
    assert [(k.lower(), v) for k, v in standard.items()] == lean.items()
    for header, _ in standard.items():
        assert lean.get(header.upper()) == standard.get(header)
        assert lean.get_all(header.swapcase()) == standard.get_all(header)
    assert lean.get("absent", "default") == standard.get("absent", "default") == "default"
    assert lean.get_all("absent") is standard.get_all("absent") is None
    assert ours.tell() == theirs.tell(), "both stop right after the blank line"


def test_a_folded_header_continues_the_one_before():
    lean = _read_headers(io.BytesIO(b"X-Long: one\r\n\ttwo\r\n three\r\nNext: n\r\n\r\n"))
    assert lean.items() == [("x-long", "one two three"), ("next", "n")]


def test_more_than_100_headers_or_a_line_over_64_kib_is_refused_as_the_standard_library_does():
    many = b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n"
    long = b"X-Long: " + b"v" * 65536 + b"\r\n\r\n"
    for raw, error in ((many, http.client.HTTPException), (long, http.client.LineTooLong)):
        with pytest.raises(error):
            http.client.parse_headers(io.BytesIO(raw))
        with pytest.raises(error):
            _read_headers(io.BytesIO(raw))
