"""Every kind of malformed JSON body is a `MalformedJsonError` (a 400), never another exception."""

from __future__ import annotations

import json

import pytest

from inferstack.api.errors import to_problem
from inferstack.api.jsonbody import (
    MAX_JSON_DEPTH,
    CostlyJsonError,
    MalformedJsonError,
    check_cost,
    depth_exceeds,
    parse_json,
)

MALFORMED = {
    "nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "nested past the limit": (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested too deeply"),
    "objects nested past the limit": (b'{"a":' * 70 + b"1" + b"}" * 70, "nested too deeply"),
    "integer of 5000 digits": (b'{"inputs": [[' + b"9" * 5000 + b"]]}", "more than 4300 digits"),
    "invalid UTF-8": (b'{"inputs": "\xff\xfe\xfd"}', "not valid UTF-8"),
    "UTF-8 encoded surrogate": (b'{"inputs": "\xed\xa0\x80"}', "not valid UTF-8"),
    "truncated UTF-16": (b"\xff\xfe[\x00\x00", "not valid UTF-8 (or UTF-16/32)"),
    "UTF-16 with a lone surrogate": (b"\xff\xfe[\x00\x00\xd8]\x00", "not valid UTF-8 (or UTF-16/32)"),
    "escaped lone surrogate": (b'{"inputs": {"text": ["\\ud800"]}}', "lone UTF-16 surrogate"),
    "not JSON": (b"<html>hello</html>", "not valid JSON: Expecting value at line 1 column 1"),
    "empty": (b"", "not valid JSON"),
    "truncated": (b'{"inputs": [[1, 2', "not valid JSON"),
    "trailing garbage": (b'{"inputs": []} x', "not valid JSON: Extra data"),
}


@pytest.mark.parametrize("body, detail", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bodies_are_a_400_naming_the_problem(body: bytes, detail: str) -> None:
    with pytest.raises(MalformedJsonError) as info:
        parse_json(body)
    assert detail in info.value.detail
    problem = to_problem(info.value)
    assert problem.status == 400 and problem.type.slug == "malformed-json"
    assert "sys.set_int_max_str_digits" not in problem.detail  # Python's own message names its internals


@pytest.mark.parametrize("document", [
    {"inputs": {"features": [[5.1, 3.5, 1.4, 0.2]] * 100}},
    {"inputs": {"text": ["[[[[[[[[" * 20, "\\\"]]]]]" * 20, 'quote " and [ bracket']}},
    {"a": "\U0001F600 paired surrogates are text"},
    [[[[[[[[[[1]]]]]]]]]],
])
def test_well_formed_bodies_parse_as_the_standard_library_does(document: object) -> None:
    raw = json.dumps(document).encode()
    assert parse_json(raw) == json.loads(raw)
    assert parse_json(json.dumps(document).encode("utf-16")) == json.loads(raw)  # RFC 4627's encodings too


def test_the_depth_limit_is_exact_and_ignores_brackets_in_strings() -> None:
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert not depth_exceeds(at_limit.encode())
    assert depth_exceeds(("[" + at_limit + "]").encode())
    in_strings = json.dumps([["[" * 500, "{" * 500, "\\" * 3 + '"[[[['] for _ in range(100)]).encode()
    assert not depth_exceeds(in_strings)
    mixed = ('{"a": [' * 40 + "1" + "]}" * 40).encode()  # 80 levels, arrays and objects alternating
    assert depth_exceeds(mixed) and not depth_exceeds(mixed, 80)


def test_costly_bodies_are_refused_before_parsing_and_full_size_real_ones_are_not() -> None:
    mb = 1024 * 1024
    iris = json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2]] * (4 * mb // 19)}).encode()  # 4 MB of floats
    pixels = json.dumps({"inputs": [[0, 3, 16, 9, 12, 0, 1, 7] * 8] * (4 * mb // 200)}).encode()  # 4 MB of ints
    for body in (iris, pixels):
        check_cost(body)
    for costly in (b'{"inputs": [' + b",".join([b"[]"] * (2 * mb // 3)) + b"]}",
                   b"[" + b",".join([b'{"a":1}'] * (mb // 8)) + b"]"):
        with pytest.raises(CostlyJsonError) as info:
            parse_json(costly)
        assert to_problem(info.value).status == 413
