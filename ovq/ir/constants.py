"""Constant payloads: views onto a memory-mapped ``.bin`` until changed, then owned bytes.

A :class:`ConstData` never copies weights it was read with: it keeps the open
:class:`BinFile` and the byte range. Reading values maps the range (zero copy);
replacing values (:meth:`ConstData.from_array`) creates a new object that owns its
bytes, so the file view stays untouched (copy on write). The writer streams unchanged
ranges file-to-file without mapping them, which keeps peak memory low.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ovq.ir.element_types import (
    ElementType,
    decode_strings,
    element_type,
    element_type_from_numpy,
    encode_strings,
    pack_bits,
    unpack_bits,
)


class BinFile:
    """An open, read-only ``.bin`` weights file, memory-mapped lazily.

    The file descriptor stays open for the life of the object so that the mapping and
    positional reads remain valid even if the path is replaced or unlinked (ovq writes
    outputs by rename, so a model may be saved over its own source).
    """

    def __init__(self, path: str | os.PathLike[str], *, unlink_after_open: bool = False):
        from ovq.errors import IRError
        from ovq.files import open_input

        self.path = Path(path)
        self.fd = open_input(self.path, IRError, "weights file")  # refuses FIFOs, devices, folders
        self.size = os.fstat(self.fd).st_size
        self._map: mmap.mmap | None = None
        if unlink_after_open:
            os.unlink(self.path)

    @property
    def buffer(self) -> memoryview:
        """A read-only memoryview of the whole file (mapped on first use)."""
        if self.size == 0:
            return memoryview(b"")
        if self._map is None:
            self._map = mmap.mmap(self.fd, self.size, access=mmap.ACCESS_READ)
        return memoryview(self._map)

    def drop_pages(self) -> None:
        """Drop the mapped pages from the resident set; the mapping and its views stay valid.

        ``madvise(MADV_DONTNEED)`` on this read-only shared file mapping only drops the
        page-table entries: the data stays in the page cache (or on disk) and is read back
        on the next access, so views taken earlier keep their values. It lowers the
        process's resident set before a memory-hungry step such as compiling a model
        (the weights read so far count in it in full). No-op when unmapped.
        """
        if self._map is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)

    def pread_into(self, buf: bytearray | memoryview, offset: int) -> int:
        """Read ``len(buf)`` bytes at ``offset`` without mapping; returns bytes read."""
        return os.preadv(self.fd, [buf], offset)

    def close(self) -> None:
        """Release the mapping and the descriptor (views taken earlier become invalid)."""
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                # Live numpy views still reference the mapping; the OS frees it with them.
                pass
            self._map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        try:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


@dataclass(eq=False, slots=True)
class ConstData:
    """The payload of one Const op.

    Attributes:
        element_type: IR element type of the values.
        shape: Static shape.
        bin: Source file when the bytes still live there, else ``None``.
        offset: Byte offset into ``bin``.
        size: Byte size of the payload.
        owned: The bytes, when they do not come from a file.
    """

    element_type: ElementType
    shape: tuple[int, ...]
    bin: BinFile | None = None
    offset: int = 0
    size: int = 0
    owned: bytes | None = field(default=None, repr=False)

    @property
    def in_file(self) -> bool:
        """True while the payload is still a view onto the source ``.bin``."""
        return self.owned is None

    def raw(self) -> memoryview:
        """The payload bytes exactly as stored in IR (zero copy where possible)."""
        if self.owned is not None:
            return memoryview(self.owned)
        if self.size == 0:
            return memoryview(b"")
        assert self.bin is not None
        return self.bin.buffer[self.offset : self.offset + self.size]

    def value(self) -> np.ndarray:
        """The values as a read-only numpy array of ``shape``.

        Plain types are zero-copy views. Sub-byte types are unpacked to one ``uint8``
        (``int8`` for ``i4``) per element; ``bf16`` and 8-bit floats are returned as raw
        unsigned integers of the same width; strings as an array of ``str``.
        """
        et = self.element_type
        if et.name == "string":
            return np.array(decode_strings(self.raw()), dtype=object).reshape(self.shape)
        count = int(np.prod(self.shape, dtype=np.int64))
        raw = np.frombuffer(self.raw(), dtype=np.uint8)
        if et.packed:
            values = unpack_bits(raw, et, count)
        else:
            assert et.numpy is not None
            values = raw.view(et.numpy)[:count]
        values = values.reshape(self.shape)
        values.flags.writeable = False
        return values

    @classmethod
    def from_array(
        cls, values: np.ndarray | list, element_type_name: str | None = None
    ) -> ConstData:
        """Build an owned payload from values (``element_type_name`` overrides the dtype).

        For packed types pass one integer per element; for ``bf16`` / 8-bit floats pass
        the raw unsigned integers; for ``string`` pass ``str`` values.
        """
        arr = np.asarray(values)
        et = element_type(element_type_name) if element_type_name else element_type_from_numpy(arr.dtype)
        shape = tuple(int(d) for d in arr.shape)
        if et.name == "string":
            data = encode_strings([str(v) for v in arr.reshape(-1)])
        elif et.packed:
            data = pack_bits(arr, et)
        else:
            assert et.numpy is not None
            data = np.ascontiguousarray(arr, dtype=et.numpy).astype(et.numpy.newbyteorder("<")).tobytes()
        return cls(element_type=et, shape=shape, owned=data, size=len(data))
