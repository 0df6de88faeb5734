"""Request decoding under a cap, and the response coding API Gateway would choose."""

from __future__ import annotations

import gzip
import zlib

import pytest

from inferstack.protocol.compression import compress, decode_body, decompress, is_compressed, response_coding
from inferstack.protocol.exceptions import BinaryDataError, DecodedTooLargeError, UnsupportedEncodingError

BODY = b'{"inputs": [1, 2, 3]}' * 50


def _raw_deflate(data: bytes) -> bytes:
    engine = zlib.compressobj(wbits=-15)
    return engine.compress(data) + engine.flush()


@pytest.mark.parametrize(("coding", "data"), [
    ("gzip", gzip.compress(BODY)), ("x-gzip", gzip.compress(BODY)), ("deflate", zlib.compress(BODY)),
    ("deflate", _raw_deflate(BODY)),  # raw deflate, as some clients send it
    ("identity", BODY), ("GZIP", gzip.compress(BODY))], ids=["gzip", "x-gzip", "zlib", "raw-deflate", "identity",
                                                             "upper-case"])
def test_codings_decode(coding: str, data: bytes) -> None:
    assert decompress(data, coding, 10_000) == BODY


def test_concatenated_gzip_members_decode_whole() -> None:
    assert decompress(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", 100) == b"abcd"


def test_a_bomb_stops_at_the_limit() -> None:
    # GIVEN 100 MB of zeros in about 100 KB
    bomb = gzip.compress(b"\0" * 100_000_000)
    # WHEN decoded with a 1 MB limit THEN it is refused without inflating it all
    with pytest.raises(DecodedTooLargeError):
        decompress(bomb, "gzip", 1_000_000)
    assert decompress(gzip.compress(b"\0" * 1000), "gzip", 1000) == b"\0" * 1000  # exactly the limit is fine


def test_bad_and_unknown_codings() -> None:
    with pytest.raises(UnsupportedEncodingError):
        decompress(BODY, "br", 10_000)
    with pytest.raises(BinaryDataError, match="not valid gzip"):
        decompress(b"\x1f\x8bnot gzip at all", "gzip", 10_000)
    with pytest.raises(BinaryDataError, match="truncated"):
        decompress(gzip.compress(BODY)[:-12], "gzip", 10_000)


def test_a_body_api_gateway_already_decoded_is_left_alone() -> None:
    # API Gateway decodes before the function; the header stays. JSON never starts with a gzip or zlib header.
    assert not is_compressed(BODY, "gzip") and not is_compressed(BODY, "deflate")
    assert decode_body(BODY, "gzip", 10) == BODY
    assert decode_body(gzip.compress(BODY), "gzip", 10_000) == BODY


@pytest.mark.parametrize(("accept", "coding"), [
    (None, None), ("gzip", "gzip"), ("deflate, gzip", "deflate"), ("gzip;q=0.5, deflate", "deflate"),
    ("br, gzip", None),  # the highest-priority coding must be one API Gateway produces
    ("identity", None), ("gzip;q=0", None), ("*", "gzip"), ("gzip, deflate, br, zstd", "gzip")])
def test_response_coding_is_api_gateways_choice(accept: str | None, coding: str | None) -> None:
    assert response_coding(accept) == coding


def test_compress_round_trips() -> None:
    assert gzip.decompress(compress(BODY, "gzip")) == BODY
    assert zlib.decompress(compress(BODY, "deflate")) == BODY
