"""Compressed bodies: gzip and deflate requests decoded under a cap, and the response encoding a client asked for.

Decoding is incremental (`zlib.decompressobj` with `max_length`), so a small body that expands without bound (a
"zip bomb") costs at most `limit` bytes before it is refused with a 413. API Gateway decodes `Content-Encoding:
gzip|deflate|identity` request bodies itself and compresses responses for clients that send `Accept-Encoding`
once a REST API sets `minimumCompressionSize`; the local gateway does the same with these functions, and the
functions and the heavy container decode a body that still arrives compressed (a direct invocation, a test event),
telling one apart by its magic bytes, so that a body API Gateway already decoded is never decoded twice.
"""

from __future__ import annotations

import gzip
import zlib

from inferstack.protocol.exceptions import BinaryDataError, DecodedTooLargeError, UnsupportedEncodingError

#: The codings API Gateway decodes in requests and produces in responses.
SUPPORTED = ("gzip", "deflate", "identity")
_CHUNK = 64 * 1024


def _coding(content_encoding: str | None) -> str:
    coding = (content_encoding or "identity").strip().lower()
    if coding == "x-gzip":
        return "gzip"
    if coding not in SUPPORTED:
        raise UnsupportedEncodingError(f"Content-Encoding {content_encoding!r} is not supported; send gzip, "
                                       "deflate or identity")
    return coding


def is_compressed(raw: bytes | memoryview, content_encoding: str | None) -> bool:
    """Does `raw` carry the magic bytes of its declared coding (gzip's 1f 8b, a zlib header)?"""
    coding = _coding(content_encoding)
    head = bytes(raw[:2])
    if coding == "gzip":
        return head == b"\x1f\x8b"
    if coding == "deflate" and len(head) == 2:
        return head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    return False


def decompress(raw: bytes | memoryview, content_encoding: str | None, limit: int) -> bytes:
    """The decoded body; `DecodedTooLargeError` once it passes `limit` bytes (nothing more is decoded)."""
    coding = _coding(content_encoding)
    if coding == "identity":
        return bytes(raw)
    # gzip: one or more members (wbits 31); deflate: the zlib format (RFC 9110's "deflate"), or a raw deflate
    # stream, which some clients send instead
    wbits = 31 if coding == "gzip" else (15 if is_compressed(raw, "deflate") else -15)
    out = bytearray()
    data = bytes(raw)
    try:
        while data:
            engine = zlib.decompressobj(wbits)
            pending = data
            while pending:
                out += engine.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    raise DecodedTooLargeError(f"The body decompresses to more than {limit} bytes, the limit")
                pending = engine.unconsumed_tail
            out += engine.flush(limit + 1 - len(out))
            if len(out) > limit:
                raise DecodedTooLargeError(f"The body decompresses to more than {limit} bytes, the limit")
            if not engine.eof:
                raise BinaryDataError(f"The {coding} body is truncated")
            data = engine.unused_data if coding == "gzip" else b""
    except zlib.error as exc:
        raise BinaryDataError(f"The body is not valid {coding} data: {exc}") from None
    return bytes(out)


def decode_body(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """A request body as a handler must read it: decoded if it still carries its declared coding (API Gateway
    decodes before the function sees it; a direct call may not have), else as it is."""
    if content_encoding and _coding(content_encoding) != "identity" and is_compressed(raw, content_encoding):
        return decompress(raw, content_encoding, limit)
    return raw


def _weights(accept_encoding: str) -> list[tuple[str, float]]:
    out = []
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name.strip():
            out.append((name.strip().lower(), q))
    return out


def response_coding(accept_encoding: str | None) -> str | None:
    """The coding to compress a response with, as API Gateway chooses it: the client's highest-priority coding
    (the first among equals) if it is gzip or deflate; nothing when that coding is another one."""
    if not accept_encoding:
        return None
    ranked = [(name, q) for name, q in _weights(accept_encoding) if q > 0]
    if not ranked:
        return None
    best = max(q for _, q in ranked)
    name = next(n for n, q in ranked if q == best)
    name = "gzip" if name in ("x-gzip", "*") else name
    return name if name in ("gzip", "deflate") else None


def compress(body: bytes, coding: str) -> bytes:
    if coding == "gzip":
        return gzip.compress(body, compresslevel=6, mtime=0)
    if coding == "deflate":
        return zlib.compress(body, 6)
    raise UnsupportedEncodingError(f"cannot encode {coding!r}")
