"""Textual pipelines: ``fold-constants,fuse-batchnorm,embed-preprocessing{input=x;mean=1,2,3}``.

Grammar: passes separated by commas at the top level; each pass may carry options in
braces, separated by semicolons, as ``key=value`` (values may contain commas).
:func:`format_pipeline` is the inverse of :func:`parse_pipeline`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ovq.pipeline.base import Pass, PassError, get_pass


def split_spec(spec: str) -> list[tuple[str, dict[str, str]]]:
    """Split a pipeline spec into ``(name, {option: text})`` items, without resolving names."""
    items: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(spec)
    while i < n:
        while i < n and spec[i] in " ,\n\t":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and spec[i] not in ",{":
            if spec[i] == "}":
                raise PassError(f"pipeline {spec!r}: unexpected '}}' at position {i}")
            i += 1
        name = spec[start:i].strip()
        options: dict[str, str] = {}
        if i < n and spec[i] == "{":
            close = spec.find("}", i)
            if close < 0:
                raise PassError(f"pipeline {spec!r}: '{{' at position {i} is never closed")
            body = spec[i + 1 : close]
            for part in body.split(";"):
                if not part.strip():
                    continue
                if "=" not in part:
                    raise PassError(f"pipeline {spec!r}: option {part.strip()!r} of {name!r} needs key=value")
                key, value = part.split("=", 1)
                options[key.strip()] = value.strip()
            i = close + 1
            while i < n and spec[i] == " ":
                i += 1
            if i < n and spec[i] != ",":
                raise PassError(f"pipeline {spec!r}: expected ',' after the options of {name!r}")
        if not name:
            raise PassError(f"pipeline {spec!r}: empty pass name at position {start}")
        items.append((name, options))
    return items


def parse_pipeline(spec: str | Sequence[Pass]) -> list[Pass]:
    """Resolve a spec (or a list of pass objects, returned as is) into pass instances."""
    if not isinstance(spec, str):
        return list(spec)
    return [get_pass(name).from_options(options) for name, options in split_spec(spec)]


def format_pipeline(passes: Sequence[Pass]) -> str:
    """The spec text of ``passes`` (round-trips through :func:`parse_pipeline`)."""
    return ",".join(p.spec() for p in passes)
