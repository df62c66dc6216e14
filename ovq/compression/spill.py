"""A scratch weights file the compressed constants stream into.

Compressed weights are appended to an unlinked temporary file as they are produced and
referenced by :class:`~ovq.ir.constants.ConstData` views (``bin`` = this file), exactly
like weights read from a model's ``.bin``: they never accumulate in the process's
memory, and the IR writer copies them file to file (``copy_file_range``) into the output.
"""

from __future__ import annotations

import mmap
import os
import tempfile

from ovq.ir.constants import BinFile, ConstData
from ovq.ir.element_types import element_type


class SpillFile(BinFile):
    """An append-only, unlinked ``.bin`` whose ranges back compressed constants."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        fd, path = tempfile.mkstemp(prefix=".ovq-compress-", suffix=".bin", dir=folder)
        self._wfd = fd
        super().__init__(path, unlink_after_open=True)
        self._mapped = 0
        self._old_maps: list[mmap.mmap] = []

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; return the offset it was written at."""
        view = memoryview(data).cast("B")
        offset = pos = self.size
        while len(view):
            n = os.pwrite(self._wfd, view, pos)
            view = view[n:]
            pos += n
        self.size = pos
        return offset

    def const(self, offset: int, element_type_name: str, shape: tuple[int, ...]) -> ConstData:
        """A constant viewing the bytes written from ``offset`` to the end of the file."""
        return ConstData(element_type=element_type(element_type_name), shape=tuple(int(d) for d in shape),
                         bin=self, offset=offset, size=self.size - offset)

    def append(self, data: bytes | bytearray | memoryview, element_type_name: str,
               shape: tuple[int, ...]) -> ConstData:
        """Write ``data`` at the end of the file; return a constant viewing it."""
        return self.const(self.write(data), element_type_name, shape)

    @property
    def buffer(self) -> memoryview:
        """A read-only view of everything written so far (remapped as the file grows)."""
        if self.size == 0:
            return memoryview(b"")
        if self._map is None or self._mapped < self.size:
            if self._map is not None:
                self._old_maps.append(self._map)  # views taken earlier stay valid
            self._map = mmap.mmap(self.fd, self.size, access=mmap.ACCESS_READ)
            self._mapped = self.size
        return memoryview(self._map)

    def close(self) -> None:
        if self._wfd >= 0:
            os.close(self._wfd)
            self._wfd = -1
        super().close()

    def __del__(self) -> None:
        try:
            if self._wfd >= 0:
                os.close(self._wfd)
                self._wfd = -1
        except Exception:  # pragma: no cover - interpreter shutdown
            pass
        super().__del__()
