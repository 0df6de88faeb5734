"""Errors of the protocol layer; `inferstack.api.errors.to_problem` turns each into its answer."""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class: a request the protocol layer refuses."""


class InferRequestError(ProtocolError):
    """The body is JSON but not a valid infer request (a missing or mistyped field): 422, naming `field`."""

    def __init__(self, field: str, detail: str) -> None:
        self.field, self.detail = field, detail
        super().__init__(f"{field}: {detail}")


class BinaryDataError(ProtocolError):
    """The binary data extension's sizes do not add up (a declared size that does not match the bytes): 400."""


class UnsupportedEncodingError(ProtocolError):
    """A `Content-Encoding` this API does not decode: 415."""


class DecodedTooLargeError(ProtocolError):
    """A compressed body that decompresses past the limit: 413."""
