"""JSON as POT writes it: ``//`` and ``/* */`` comments and trailing commas allowed.

POT reads its configs (and its hardware configs) with ``jstyleson``, and the hardware
configs it shipped carry comments and trailing commas, so every JSON file a user hands
ovq in a POT role goes through :func:`read`. Duplicate keys in one object are refused
(``json`` would silently keep the last one).
"""

from __future__ import annotations

import json
import os
from typing import Any

from ovq.errors import OvqError
from ovq.files import MAX_CONFIG_BYTES, read_input


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def loads(text: str, label: str, error: type[OvqError]) -> Any:
    """Parse lenient JSON ``text``; problems raise ``error`` as ``LABEL:LINE:COLUMN: ...``."""
    try:
        return json.loads(strip_comments(text, label, error), object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise error(f"{label}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except _DuplicateKey as exc:
        raise error(f"{label}: key {exc.args[0]!r} appears twice in one object") from None


def read(path: str | os.PathLike[str], error: type[OvqError], *, label: str | None = None,
         what: str = "JSON file") -> Any:
    """Read and parse a lenient JSON file (a regular file of at most 16 MiB, UTF-8)."""
    label = label if label is not None else str(path)
    data = read_input(path, error, limit=MAX_CONFIG_BYTES, what=what)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{label}: not UTF-8 text: {exc}") from None
    return loads(text, label, error)


def strip_comments(text: str, label: str, error: type[OvqError]) -> str:
    """Blank out ``//`` and ``/* */`` comments and trailing commas, keeping lines and columns."""
    out = list(text)
    i, n = 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            in_string = ch != '"'
        elif ch == '"':
            in_string = True
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                line = text.count("\n", 0, i) + 1
                raise error(f"{label}:{line}: a /* comment is never closed")
            out[i:end + 2] = [c if c == "\n" else " " for c in text[i:end + 2]]
            i = end + 2
            continue
        i += 1
    # Trailing commas: a ',' followed (across blanks) by '}' or ']', outside strings.
    blanked = "".join(out)
    in_string = False
    i = 0
    while i < n:
        ch = blanked[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            in_string = ch != '"'
        elif ch == '"':
            in_string = True
        elif ch == ",":
            j = i + 1
            while j < n and blanked[j] in " \t\r\n":
                j += 1
            if j < n and blanked[j] in "}]":
                out[i] = " "
        i += 1
    return "".join(out)
