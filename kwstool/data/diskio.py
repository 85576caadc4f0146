"""Files on disk for the download and the extraction: byte-progress bars, sha256, free space."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kwstool.core.console import make_console
from kwstool.errors import KwsError

CHUNK = 1 << 20  # bytes per read while streaming


# --- progress ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _bytes_progress(
    enabled: bool, description: str, total: int | None, completed: int = 0
) -> Iterator[Any]:
    """Yield ``advance(n)``: a Rich byte-progress bar on stderr, or a no-op when disabled."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=make_console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total, completed=completed)
        yield lambda n: bar.advance(task, n)


# --- hashing and disk --------------------------------------------------------------------------
def sha256_file(path: Path, progress: bool = False) -> str:
    h = hashlib.sha256()
    with (
        open(path, "rb") as fh,
        _bytes_progress(progress, f"verify {path.name}", path.stat().st_size) as advance,
    ):
        while block := fh.read(CHUNK):
            h.update(block)
            advance(len(block))
    return h.hexdigest()


def check_free_space(folder: Path, needed: int, what: str, option: str = "--download-dir") -> None:
    """Raise when ``folder``'s file system has less than ``needed`` bytes (+64 MiB) free; the
    message names ``option``, the option that chose the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    margin = 64 << 20
    if needed + margin > free:
        raise KwsError(
            f"{folder}: {what} needs {_gib(needed)} but only {_gib(free)} is free; "
            f"free some space or choose another folder with {option}"
        )


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"
