"""Output folders: checked before any work starts, locked while written, write errors as one line.

* :func:`check_writable` -- the folder (or the nearest existing folder above it) is a writable
  folder, not a file; the error names the option that chose it (``--out``, ``--data-dir``, ...).
* :func:`folder_lock` -- an exclusive lock per folder (``fcntl.flock`` on ``FOLDER/.kwstool.lock``,
  released by the OS when the process ends, however it ends). A second writer is refused with
  "FOLDER is in use by process N (COMMAND)"; a process may take the same lock again (nested
  stages).
* :func:`write_errors` -- an ``OSError`` while writing there (disk full, read-only) becomes a
  one-line KwsError naming the folder and the fix.
* :func:`writes_to` -- the three around a library function whose argument names the folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from kwstool.errors import KwsError

LOCK_FILE = ".kwstool.lock"
#: Folders this process holds the lock of, with a count (the same lock taken again is free).
_HELD: dict[Path, int] = {}
#: OSErrors that are the user's environment (space, permissions), not a bug.
_ENV_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG}

P = ParamSpec("P")
R = TypeVar("R")


def check_writable(folder: str | os.PathLike[str], option: str) -> None:
    """KwsError unless ``folder`` is (or can be made, as a subfolder of) a writable folder."""
    path = Path(folder)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise KwsError(f"{option} {path}: {probe} is a file, not a folder; choose a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise KwsError(f"{option} {path}: {probe} is not writable; choose a folder you can write")


@contextlib.contextmanager
def write_errors(folder: str | os.PathLike[str], option: str) -> Iterator[None]:
    """Turn a disk-full or permission ``OSError`` inside the block into a one-line KwsError."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _ENV_ERRNOS:
            raise
        where = exc.filename or folder
        fix = (
            "free some space"
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
            else "make it writable"
        )
        raise KwsError(
            f"{where}: cannot write ({exc.strerror}); {fix} or choose another {option}"
        ) from None


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], command: str, option: str) -> Iterator[None]:
    """Hold the lock of ``folder`` (created if needed; removed again if the lock was all it
    ever held) for the block; refuse with a one-line KwsError while another process holds it."""
    path = Path(folder).resolve()
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield
        finally:
            _HELD[path] -= 1
        return
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    fd = _acquire(path, command, option)
    _HELD[path] = 1
    try:
        yield
    finally:
        del _HELD[path]
        with contextlib.suppress(OSError):
            os.unlink(path / LOCK_FILE)  # still holding it: a waiting open sees a new file
        os.close(fd)
        with contextlib.suppress(OSError):
            for folder in created:
                folder.rmdir()  # only when nothing else was written there


def _acquire(path: Path, command: str, option: str) -> int:
    lock = path / LOCK_FILE
    while True:
        try:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise KwsError(
                f"{option} {path}: cannot write there ({exc.strerror}); choose another folder"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise KwsError(
                f"{path} is in use by process {holder}; wait for it to finish, or choose "
                f"another {option}"
            ) from None
        try:  # the holder before us may have removed the file we opened: lock the new one
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} ({command})".encode(), 0)
            return fd
        os.close(fd)


def writes_to(
    param: str,
    option: str,
    command: str,
    folder_of: Callable[[dict[str, Any]], Path] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a library function that writes into the folder named by its argument
    ``param`` (a run folder, or a ``.tflite`` in one): check it, lock it, and report write
    errors as one line naming ``option``. ``folder_of(arguments)``: the folder this process
    writes, when it is not the argument itself (a multi-worker run's non-chief workers)."""

    def deco(fn: Callable[P, R]) -> Callable[P, R]:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            folder = Path(bound.arguments[param])
            if folder.suffix == ".tflite":
                folder = folder.parent
            if folder_of is not None:
                folder = folder_of(dict(bound.arguments))
            check_writable(folder, option)
            with folder_lock(folder, command, option), write_errors(folder, option):
                return fn(*args, **kwargs)

        return wrapper

    return deco
