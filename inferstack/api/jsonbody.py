"""Parse a JSON request body as a hostile client may send it: every way it can be malformed is a 400.

The standard library's `json.loads` is fast, but on its own it answers some malformed bodies with exceptions
that are not `JSONDecodeError`: `RecursionError` for arrays nested thousands deep, a bare `ValueError` for an
integer past Python's digit limit, `UnicodeDecodeError` for bytes that are not UTF-8 (or UTF-16/32). And what it
accepts may still break later steps: a body nested a few hundred levels deep parses, but pydantic's JSON parser
(the job worker's) stops at 200 levels and numpy at 64 dimensions; a `\\ud800` escape yields a string that
cannot be encoded as UTF-8 again (a tokenizer, DynamoDB, the response encoder fail on it).

`parse_json` turns each of those into a `MalformedJsonError` (problem+json 400 `malformed-json`) naming what is
wrong, without the parser's internals. Before parsing, it refuses (413) a body whose parsed form would cost far more
memory than the body itself (a 2 MB body of `[],[],...` builds 45 MB of empty lists): `check_cost`.

The depth check runs in C-speed passes over the bytes (`bytes.translate`, `bytes.replace`) and only for bodies
with more brackets than the limit, so a small body pays nothing for it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from inferstack.api import problems
from inferstack.api.problems import ProblemError

#: Deepest nesting of arrays and objects a body may have (numpy takes at most 64 dimensions; no input needs
#: more than a few levels around them).
MAX_JSON_DEPTH = 64
#: A body may cost at most this many times its size, plus the slack, in parsed objects: the process that parses it
#: holds some 4 more copies of it (the event, its base64 text, the bytes, the text), 10x in all.
PARSE_RATIO = 6
PARSE_SLACK_BYTES = 16 * 1024 * 1024
#: Python refuses to convert integers with more digits than this (`sys.get_int_max_str_digits`).
INT_MAX_DIGITS = 4300

_NOT_MARKS = bytes(b for b in range(256) if b not in b'[]{}"')
_SQUARE = bytes.maketrans(b"{}", b"[]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class JsonBodyError(ProblemError):
    """A request body this service does not parse."""


class MalformedJsonError(JsonBodyError):
    """A request body that is not JSON this service accepts (an HTTP 400)."""

    def __init__(self, detail: str) -> None:
        super().__init__(problems.MALFORMED_JSON, detail)


class CostlyJsonError(JsonBodyError):
    """A body whose parsed form would take far more memory than its size (an HTTP 413)."""

    def __init__(self, detail: str) -> None:
        super().__init__(problems.PAYLOAD_TOO_LARGE, detail)


def parse_cost(document: bytes) -> int:
    """Roughly the bytes of Python objects `json.loads` builds from `document`, from C-speed counts: an array
    takes some 72 bytes however short (`[]` is 2), an object some 240 and 48 a member, a string some 60, an element
    its 8-byte pointer and a float's 24 bytes (a small int is shared: the pointer only).
    Numbers alone stay under 10x their text; empty arrays and objects, or many tiny strings, go far past it."""
    return (72 * document.count(b"[") + 240 * document.count(b"{") + 30 * document.count(b'"')
            + 16 * document.count(b",") + 8 * document.count(b".") + 48 * document.count(b":"))


def check_cost(document: bytes, *, what: str = "The body") -> None:
    """A `CostlyJsonError` when parsing `document` would take more than `PARSE_RATIO` times its size plus
    `PARSE_SLACK_BYTES`: refused before anything is built from it."""
    cost, allowed = parse_cost(document), PARSE_RATIO * len(document) + PARSE_SLACK_BYTES
    if cost > allowed:
        raise CostlyJsonError(f"{what} would take about {cost >> 20} MB of memory to parse (its arrays, objects and "
                              f"strings are many for its {len(document)} bytes); at most {allowed >> 20} MB are "
                              "given to a body of this size: send fewer rows per request")


def _containers_deeper(value: Any, limit: int) -> bool:
    """Does parsed `value` hold arrays/objects more than `limit` deep? Level by level, without recursion."""
    level = [value] if type(value) in (list, dict) else []
    for _ in range(limit):
        if not level:
            return False
        deeper: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            deeper += [x for x in items if type(x) is list or type(x) is dict]
        level = deeper
    return bool(level)


def depth_exceeds(document: bytes, limit: int = MAX_JSON_DEPTH, value: Any = None) -> bool:
    """Is valid UTF-8 JSON `document` (parsed: `value`) nested deeper than `limit` arrays/objects?

    In C-speed passes that allocate no per-item objects: escaped backslashes and quotes are dropped, then
    everything but brackets and quotes, then the pairs of quotes with nothing between them (strings without
    brackets); each pass then removes the innermost bracket pairs, and `limit` passes empty a document no deeper
    than `limit`. Strings that hold brackets (rare) make it walk the parsed value instead."""
    if document.count(b"[") + document.count(b"{") <= limit:
        return False
    if b"\\" in document:
        document = document.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = document.translate(_SQUARE, _NOT_MARKS).replace(b'""', b"")
    if b'"' in brackets:
        return _containers_deeper(json.loads(document) if value is None else value, limit)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


def _lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_json(raw: bytes | str, *, what: str = "The body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value of `raw` (UTF-8, or UTF-16/32 as RFC 8259's predecessors allowed), or a
    `MalformedJsonError` saying what is wrong with it."""
    check_cost(raw.encode("utf-8") if isinstance(raw, str) else raw, what=what)
    try:
        if isinstance(raw, str):
            text, utf8 = raw, raw.encode("utf-8")
        else:
            encoding = json.detect_encoding(raw)
            text = raw.decode(encoding)
            utf8 = raw if encoding == "utf-8" else text.encode("utf-8")
        value = json.loads(text)
    except RecursionError:
        raise MalformedJsonError(f"{what} is nested too deeply: at most {max_depth} levels of arrays and "
                                 "objects") from None
    except UnicodeError as exc:
        reason = f"{exc.reason} at byte {exc.start}" if isinstance(exc, UnicodeDecodeError) else "invalid text"
        raise MalformedJsonError(f"{what} is not valid UTF-8 (or UTF-16/32) text: {reason}") from None
    except json.JSONDecodeError as exc:
        raise MalformedJsonError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column "
                                 f"{exc.colno}") from None
    except ValueError:  # int(): more digits than Python converts
        raise MalformedJsonError(f"{what} holds an integer of more than {INT_MAX_DIGITS} digits") from None
    if depth_exceeds(utf8, max_depth, value):
        raise MalformedJsonError(f"{what} is nested too deeply: at most {max_depth} levels of arrays and objects")
    if b"\\u" in utf8 and _SURROGATE_ESCAPE.search(utf8) and _lone_surrogate(value):
        raise MalformedJsonError(f"{what} holds a \\u escape of a lone UTF-16 surrogate (a string that is not "
                                 "text)")
    return value
