"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every writer goes through :func:`atomic_path`: the content is written under a temporary name in
the target's own folder (``.<name>.<pid>.<random>.tmp``), flushed and fsynced, renamed over the
target with ``os.replace`` and the folder is fsynced. A process killed before the rename leaves
the target as it was plus a temporary file that no reader takes for a model file (the names
end in ``.tmp``); :func:`remove_stale_temporaries` removes those of dead processes.

This module imports nothing from ``zoo``.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> atomic_write_text(folder / "a.json", "{}").read_text()
    '{}'
    >>> with atomic_path(folder / "b.bin") as temporary:
    ...     _ = temporary.write_bytes(b"data")
    >>> sorted(p.name for p in folder.iterdir())
    ['a.json', 'b.bin']
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Iterator

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "commit",
    "exchange",
    "fsync_dir",
    "fsync_file",
    "is_temporary",
    "lock_exclusively",
    "pid_alive",
    "remove_stale_temporaries",
    "temporary_name",
    "umask",
]

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def temporary_name(path: str | os.PathLike) -> Path:
    """A fresh temporary path next to ``path``: ``.<name>.<pid>.<random>.tmp`` (hidden, ``.tmp``).

    Example:
        >>> temporary_name("runs/x/model.safetensors").name.startswith(".model.safetensors.")
        True
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like a temporary file of :func:`atomic_path`.

    Example:
        >>> is_temporary(temporary_name("a.json")), is_temporary("a.json")
        (True, False)
    """
    return _TEMPORARY.match(Path(path).name) is not None


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's data to the disk.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "notes.txt"
        >>> _ = path.write_text("kept")
        >>> fsync_file(path)
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make renames and removals in the folder ``path`` durable (a no-op where unsupported).

    Example:
        >>> import tempfile
        >>> fsync_dir(tempfile.mkdtemp())
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def umask() -> int:
    """The process umask, read without changing it (Linux), else the common 0o022.

    Example:
        >>> 0 <= umask() <= 0o777
        True
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it over ``path`` atomically.

    Write the whole content to the yielded path inside the ``with`` block (any writer that takes
    a file name will do). On leaving the block the file is fsynced, given the permissions of a
    freshly created file (``0o666`` less the umask), renamed over ``path`` and the folder is
    fsynced. On an exception the temporary file is removed and ``path`` is untouched.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "w.bin"
        >>> with atomic_path(target) as temporary:
        ...     _ = temporary.write_bytes(b"new")
        >>> target.read_bytes()
        b'new'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    try:
        yield temporary
        if not temporary.is_file():
            raise FileNotFoundError(f"Nothing was written to the temporary file for {str(path)!r}.")
        fsync_file(temporary)
        commit(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def commit(temporary: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename a written and fsynced ``temporary`` file over ``path`` (permissions: 0o666 less the
    umask). The caller fsyncs the folder once all of its renames are done (:func:`fsync_dir`).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> temporary = temporary_name(folder / "notes.txt")
        >>> _ = temporary.write_text("done")
        >>> commit(temporary, folder / "notes.txt"); fsync_dir(folder)
        >>> (folder / "notes.txt").read_text()
        'done'
    """
    os.chmod(temporary, 0o666 & ~umask())
    os.replace(temporary, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`); return ``path``.

    Example:
        >>> import tempfile
        >>> atomic_write_bytes(Path(tempfile.mkdtemp()) / "blob.bin", b"\\x00\\x01").read_bytes()
        b'\\x00\\x01'
    """
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`); return ``path``.

    Example:
        >>> import tempfile
        >>> atomic_write_text(Path(tempfile.mkdtemp()) / "a.txt", "hi").read_text()
        'hi'
    """
    return atomic_write_bytes(path, text.encode(encoding))


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths (folders too) in one atomic step; ``False`` where the system can't.

    Linux' ``renameat2(RENAME_EXCHANGE)``: a reader sees ``b`` either as it was or as ``a`` was,
    never missing. Returns ``False`` (nothing changed) on systems or filesystems without it.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = atomic_write_text(folder / "a", "A"), atomic_write_text(folder / "b", "B")
        >>> swapped = exchange(folder / "a", folder / "b")
        >>> (folder / "b").read_text() == ("A" if swapped else "B")
        True
    """
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        fsync_dir(Path(b).parent)
        if Path(a).parent != Path(b).parent:
            fsync_dir(Path(a).parent)
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine.

    Example:
        >>> pid_alive(os.getpid()), pid_alive(0)
        (True, False)
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files of :func:`atomic_path` left in ``folder`` by processes that died.

    Temporary files of live processes (a write in progress) are kept. Returns what was removed.

    Example:
        >>> import tempfile
        >>> remove_stale_temporaries(tempfile.mkdtemp())
        []
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and not pid_alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def lock_exclusively(path: str | os.PathLike, *, wait: bool = False) -> int:
    """Take an exclusive lock on the file or folder ``path`` and return the open descriptor.

    The lock is an ``fcntl.flock``: closing the descriptor releases it, and the kernel releases it
    when the holder's process ends, however it ends. A file is created if missing. Without
    ``wait``, a lock held elsewhere raises ``BlockingIOError`` at once; with it, the call waits.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> fd = lock_exclusively(folder)
        >>> try:
        ...     lock_exclusively(folder)  # another descriptor, even in this process
        ... except BlockingIOError:
        ...     print("held")
        held
        >>> os.close(fd)
    """
    path = Path(path)
    fd = os.open(path, os.O_RDONLY) if path.is_dir() else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if sys.platform == "win32":  # pragma: no cover
            import msvcrt

            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
            except OSError as error:
                raise BlockingIOError(error.errno, f"{str(path)!r} is locked by another process") from error
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd
