"""POT-style JSON: comments and trailing commas accepted, positions in errors, one reader."""

from __future__ import annotations

import pytest

from ovq import lenient_json
from ovq.errors import PotConfigError


def test_comments_and_trailing_commas_outside_strings():
    text = '{"a": [1, 2,], // c\n "b": "x // not a comment, /* nor this */",\n /* c */ "c": {"d": 1,},}'
    assert lenient_json.loads(text, "t.json", PotConfigError) == {
        "a": [1, 2], "b": "x // not a comment, /* nor this */", "c": {"d": 1}}


@pytest.mark.parametrize("text, message", [
    ('{"a": 1,\n "b" 2}', r"t.json:2:6: invalid JSON: Expecting ':'"),
    ('{"a": 1, "a": 2}', r"t.json: key 'a' appears twice in one object"),
    ('{"a": 1 /* open', r"t.json:1: a /\* comment is never closed"),
])
def test_errors_name_the_position(text, message):
    with pytest.raises(PotConfigError, match=message):
        lenient_json.loads(text, "t.json", PotConfigError)


def test_read_refuses_non_regular_files():
    with pytest.raises(PotConfigError, match=r"/dev/zero: is a device"):
        lenient_json.read("/dev/zero", PotConfigError)
