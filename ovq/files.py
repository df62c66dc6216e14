"""The files ovq reads and writes: what it accepts, how much it reads, where its temporaries go.

One owner for the rules listed in ``docs/reliability.md``:

- **Inputs** must be regular files (a symlink is followed to its target, which must be
  one). Device nodes, FIFOs, sockets and folders are refused before they are opened for
  reading, so ``/dev/zero`` or a FIFO never hangs or fills memory. Text formats ovq parses
  itself (IR ``.xml``, JSON/TOML configs) are read up to a cap; a bigger file is refused.
- **Outputs** are replaced atomically by rename, so the path must be absent or a regular
  file. A symlink is refused too: a rename would replace the link, not its target, and
  following it would write somewhere the command line does not name.
- **Temporaries** carry the host and the writing process's id in their name
  (``.NAME.ovq-HOST-PID-XXXX.tmp`` beside an output, ``ovq-HOST-PID-XXXX`` folders in the
  system temp folder). They are removed
  on every failure path; what a ``kill -9`` leaves behind is swept on the next run on the
  same host, once no process with that id is alive.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
import stat
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from ovq.errors import OvqError

MAX_XML_BYTES = 1 << 30
"""Largest IR ``.xml`` read (1 GiB; an ``.xml`` holds the graph, the weights are in the
``.bin``). ``OVQ_MAX_XML_BYTES`` overrides it."""

MAX_CONFIG_BYTES = 16 << 20
"""Largest JSON/TOML config or descriptor read (16 MiB)."""

MAX_XML_DEPTH = 256
"""Deepest element nesting accepted in an IR ``.xml`` (each nested Loop/If/TensorIterator
body adds 3 levels, <body><layers><layer>, to the 6 of a top-level port dimension)."""

_TEMP_FILE = re.compile(r"^\..+\.ovq-([0-9a-f]{8})-(\d+)-[A-Za-z0-9_]+\.tmp$")
_TEMP_DIR = re.compile(r"^ovq-([0-9a-f]{8})-(\d+)-[A-Za-z0-9_]+$")


@functools.lru_cache(maxsize=1)
def host_tag() -> str:
    """8 hex digits naming this machine in temporaries: a process id means nothing on
    another host sharing the folder (NFS), so only this host's temporaries are swept."""
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _ours_and_dead(match: re.Match[str] | None) -> bool:
    return match is not None and match.group(1) == host_tag() and not _alive(int(match.group(2)))


def max_xml_bytes() -> int:
    """The ``.xml`` size cap in effect (``OVQ_MAX_XML_BYTES`` or :data:`MAX_XML_BYTES`)."""
    text = os.environ.get("OVQ_MAX_XML_BYTES")
    if text:
        try:
            return max(1, int(text))
        except ValueError:
            raise OvqError(f"OVQ_MAX_XML_BYTES={text!r}: expected a number of bytes") from None
    return MAX_XML_BYTES


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_input(path: str | os.PathLike[str], error: type[OvqError], what: str = "file") -> os.stat_result:
    """Stat ``path`` (following symlinks) and refuse anything but an existing regular file.

    Raises:
        error: missing, unreadable or not a regular file, naming the path.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such {what}{_interrupted_save_hint(Path(path))}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        target = f" (a symlink to {os.path.realpath(path)})" if os.path.islink(path) else ""
        raise error(f"{path}{target}: is {_kind(st.st_mode)}; ovq reads only regular files")
    return st


def _interrupted_save_hint(path: Path) -> str:
    """A note when an ovq temporary for ``path`` lies beside it (a writer was killed)."""
    prefix = f".{path.name}.ovq-"
    try:
        left = sorted(e.name for e in os.scandir(path.parent or ".") if e.name.startswith(prefix)
                      and _TEMP_FILE.match(e.name))
    except OSError:
        return ""
    if not left:
        return ""
    match = _TEMP_FILE.match(left[0])
    assert match is not None
    if match.group(1) == host_tag() and _alive(int(match.group(2))):
        return f" (an ovq save is writing it now: {left[0]})"
    return f" (an interrupted ovq save left {left[0]} beside it: write the model again)"


def open_input(path: str | os.PathLike[str], error: type[OvqError], what: str = "file") -> int:
    """Open a regular file read-only and return its descriptor (checked again after opening).

    ``O_NONBLOCK`` makes the open itself return at once even if the path was swapped for
    a FIFO between the check and the open; the check on the open descriptor refuses it.
    """
    check_input(path, error, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"{path}: cannot open: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"{path}: is {_kind(mode)}; ovq reads only regular files")
    os.set_blocking(fd, True)
    return fd


def read_input(path: str | os.PathLike[str], error: type[OvqError], *, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Raises:
        error: not a regular file, unreadable, or larger than ``limit`` (checked on the
            bytes actually read, not only the size the file system reports).
    """
    fd = open_input(path, error, what)
    try:
        with os.fdopen(fd, "rb", closefd=True) as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(min(size, limit) + 1)  # a buffer of the file's size, not of the cap
            if size < len(data) <= limit:  # the file grew while being read
                data += f.read(limit + 1 - len(data))
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise error(f"{path}: larger than {limit} bytes, the most ovq reads for a {what}; refused")
    return data


def check_output(path: str | os.PathLike[str], error: type[OvqError]) -> None:
    """Refuse an output path that exists and is not a regular file (or is a symlink).

    Raises:
        error: ``path`` is a symlink, a folder, a device, a FIFO or a socket.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise error(f"{path}: cannot write: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise error(
            f"{path}: is a symlink (to {os.readlink(path)}); ovq replaces outputs atomically and "
            "does not write through links: write to the target path or remove the link"
        )
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: is {_kind(st.st_mode)}; ovq writes only regular files (it would be replaced)")


def temp_file(target: Path) -> tuple[int, str]:
    """Create the hidden temporary a write of ``target`` goes to first (beside it).

    Stale temporaries of dead ovq processes in that folder are swept first.
    Returns ``(fd, path)`` as :func:`tempfile.mkstemp`.
    """
    sweep_temp_files(target.parent)
    return tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.ovq-{host_tag()}-{os.getpid()}-", suffix=".tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def sweep_temp_files(folder: Path) -> list[Path]:
    """Remove ovq temporaries in ``folder`` written on this host by a process that is gone
    (and owned by this user); returns them."""
    removed = []
    uid = os.getuid()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not _ours_and_dead(_TEMP_FILE.match(entry.name)):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_uid == uid:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def sweep_temp_dirs(folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove ``ovq-HOST-PID-*`` folders (this host's, of dead processes, owned by this user)
    from the system temp folder (or ``folder``)."""
    root = Path(folder if folder is not None else tempfile.gettempdir())
    removed = []
    uid = os.getuid()
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if not _ours_and_dead(_TEMP_DIR.match(entry.name)):
            continue
        try:
            if entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_uid == uid:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


@functools.lru_cache(maxsize=1)
def _swept_once() -> None:
    sweep_temp_dirs()


@contextlib.contextmanager
def private_tempdir() -> Iterator[Path]:
    """A private temporary folder (``ovq-HOST-PID-XXXX``), removed on exit however it is left.

    The first use in a process sweeps what dead ovq processes left in the temp folder.
    """
    _swept_once()
    with tempfile.TemporaryDirectory(prefix=f"ovq-{host_tag()}-{os.getpid()}-") as tmp:
        yield Path(tmp)
