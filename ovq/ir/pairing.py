"""The ``.xml``/``.bin`` pairing record: which weights file an ovq-written ``.xml`` belongs to.

An ``.xml`` and its ``.bin`` are two files, replaced by two renames; a process killed
between them, or a user copying one file but not the other, leaves an ``.xml`` next to
a ``.bin`` it was not written with. OpenVINO then reads garbage offsets (``Axis
-4795593650133194612 out of the tensor rank range``). ovq's writer records the ``.bin``
in the ``.xml``'s model-level ``<rt_info>``::

    <ovq_weights value="size=1234 crc32=89abcdef xml=01234567" />

``size`` and ``crc32`` are the ``.bin``'s length and CRC-32 (of all of it up to 64 MiB,
of 256 evenly spread 64 KiB blocks beyond: :func:`bin_digest`); ``xml`` is the CRC-32 of
the ``.xml`` text without this line. The reader checks the ``.bin`` against the record and
refuses a mismatched pair. The ``xml`` digest tells a stale record apart: when another
tool (OpenVINO's ``save_model`` keeps model ``rt_info``) rewrote the ``.xml`` and carried
the record over, the digest no longer matches and the record is ignored.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from xml.etree.ElementTree import Element

from ovq.errors import IRError

TAG = "ovq_weights"
_CHUNK = 4 << 20
_LINE = re.compile(rb'\n\t\t<ovq_weights value="size=(\d+) crc32=([0-9a-f]{8}) xml=([0-9a-f]{8})" />\n')
_NET_END = b"</net>\n"


WHOLE_FILE_LIMIT = 64 << 20
"""A ``.bin`` up to this size is checksummed whole; a larger one by :data:`SAMPLES` blocks."""
SAMPLES = 256
_BLOCK = 64 << 10


def bin_digest(fd: int, size: int) -> int:
    """CRC-32 of a ``.bin``: of all of it up to 64 MiB, else of 256 blocks of 64 KiB
    spread evenly over it (first and last included), so the check reads at most 64 MiB.

    Two saves of different models differ in size or layout, which moves bytes in every
    block; the sampled form keeps the check at tens of milliseconds for a model of any size.
    """
    if size <= WHOLE_FILE_LIMIT:
        return _crc_range(fd, 0, size, 0)
    crc = 0
    step = (size - _BLOCK) / (SAMPLES - 1)
    for k in range(SAMPLES):
        crc = _crc_range(fd, int(k * step), _BLOCK, crc)
    return crc


def _crc_range(fd: int, start: int, length: int, crc: int) -> int:
    buf = bytearray(min(_CHUNK, max(length, 1)))
    view = memoryview(buf)
    pos, end = start, start + length
    while pos < end:
        n = os.preadv(fd, [view[: min(_CHUNK, end - pos)]], pos)
        if n <= 0:
            raise OSError(f"short read at byte {pos}")
        crc = zlib.crc32(view[:n], crc)
        pos += n
    return crc


def add_record(xml_text: bytes, bin_size: int, bin_crc: int) -> bytes:
    """``xml_text`` (as the writer renders it) with the pairing record in its model rt_info."""
    assert xml_text.endswith(_NET_END)
    head = xml_text[: -len(_NET_END)]
    if head.endswith(b"\n\t</rt_info>\n"):
        base = xml_text
    elif head.endswith(b"\n\t<rt_info />\n"):
        base = head[: -len(b"\t<rt_info />\n")] + b"\t<rt_info>\n\t</rt_info>\n" + _NET_END
    else:
        base = head + b"\t<rt_info>\n\t</rt_info>\n" + _NET_END
    line = f'\t\t<{TAG} value="size={bin_size} crc32={bin_crc:08x} xml={zlib.crc32(base):08x}" />\n'.encode()
    cut = len(base) - len(b"\t</rt_info>\n") - len(_NET_END)
    return base[:cut] + line + base[cut:]


def check_pair(xml_text: bytes, xml_path: Path, bin_path: Path, bin_fd: int | None, bin_size: int) -> bool:
    """Check the ``.bin`` against the record in ``xml_text``; True when a record was checked.

    Raises:
        IRError: the ``.xml`` records a ``.bin`` of another size or content (a mismatched
            pair), or its weights file is missing.
    """
    match = None
    for match in _LINE.finditer(xml_text):
        pass
    if match is None:
        return False
    rest = xml_text[: match.start() + 1] + xml_text[match.end():]
    if f"{zlib.crc32(rest):08x}".encode() != match.group(3):
        return False  # another tool rewrote the .xml and carried the record over: stale
    want_size, want_crc = int(match.group(1)), match.group(2).decode()
    if bin_fd is None:
        if want_size == 0:
            return True
        raise IRError(f"{xml_path}: weights file {bin_path.name} is missing")
    problem = None
    if bin_size != want_size:
        problem = f"it has {bin_size} bytes, the .xml was written with {want_size}"
    else:
        try:
            got = f"{bin_digest(bin_fd, bin_size):08x}"
        except OSError as exc:
            raise IRError(f"{bin_path}: cannot read weights: {exc}") from None
        if got != want_crc:
            problem = f"its CRC-32 is {got}, the .xml was written with {want_crc}"
    if problem:
        raise IRError(
            f"{xml_path}: {bin_path.name} is not the weights file this .xml was written with ({problem}): "
            "a mismatched pair (an interrupted save or a copied file); write the model again"
        )
    return True


def strip_record(rt_info: Element | None) -> Element | None:
    """Model rt_info without the pairing record (``None`` if nothing else was in it)."""
    if rt_info is None:
        return None
    records = [child for child in rt_info if child.tag == TAG]
    if not records:
        return rt_info
    for child in records:
        rt_info.remove(child)
    if len(rt_info) == 0 and not rt_info.attrib and not (rt_info.text or "").strip():
        return None
    return rt_info
