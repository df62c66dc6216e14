"""POT-style JSON: comments and trailing commas accepted, positions in errors, one reader."""

from __future__ import annotations

import os
import signal

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


def test_read_refuses_non_regular_files(tmp_path):
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)  # a FIFO, not /dev/zero: a regression blocks (and the alarm ends it) instead of eating memory
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("blocked on the FIFO"))
    signal.alarm(20)
    try:
        with pytest.raises(PotConfigError, match=r"config.json: is a FIFO \(named pipe\)"):
            lenient_json.read(fifo, PotConfigError)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
