"""``service.api.json_body.parse_json``: the same Python objects as ``json.loads`` (the oracle), and a
malformed body fails as the ``json.JSONDecodeError`` FastAPI turns into a 422 at the same position."""

import json

import pytest

from service.api.json_body import parse_json


@pytest.mark.parametrize("document", [
    b'{"model": "mnist", "scale": 255, "pixels": [0, 17, 255]}',
    b'{"pixels": [0.1, 0.30000000000000004, 1e-7, 5e-324, 1.7976931348623157e308, -0.0]}',
    b"123456789012345678901234567890",
    b' {"x" : [ true , false , null ], "y": {"z": []} } ',
    b'"\\u00e9\\ud83d\\ude00 caf\xc3\xa9"',
    b"[[[1, 2], [3, 4]], [[5, 6], [7, 8]]]",
])
def test_parses_like_the_standard_library(document):
    got, want = parse_json(document), json.loads(document)
    assert got == want
    assert json.dumps(got) == json.dumps(want)          # same types and float values, element for element


def test_nan_and_infinity_tokens_are_parsed_and_left_to_the_finiteness_rules():
    got = parse_json(b"[NaN, Infinity, -Infinity, 1e999]")
    assert got[0] != got[0] and got[1:] == [float("inf"), float("-inf"), float("inf")]


@pytest.mark.parametrize("document", [b'{"a" 1}', b"[1,]", b'{"a": 1}x', b"\n\n  [1, 2,, 3]"])
def test_malformed_json_fails_at_the_standard_librarys_position(document):
    with pytest.raises(json.JSONDecodeError) as ours:
        parse_json(document)
    with pytest.raises(json.JSONDecodeError) as oracle:
        json.loads(document)
    assert ours.value.pos == oracle.value.pos, (ours.value, oracle.value)


@pytest.mark.parametrize("document", [b'{"model": "mnist", "pixels": [0, 1', b"", b"\xff\xfe", b"{"])
def test_truncated_or_undecodable_bodies_fail_within_the_document(document):
    with pytest.raises(json.JSONDecodeError) as err:
        parse_json(document)
    assert 0 <= err.value.pos <= len(document)
