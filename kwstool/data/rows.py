"""One split's rows in their final order, written to its ``.npy`` files chunk by chunk.

Every row (label, file line, and where its audio comes from: a WAV to decode, a slice of a noise
recording, or an array already in memory) is known before any audio is written. The writer then
fills :data:`WRITE_CHUNK` rows at a time in one reused buffer (WAVs decoded in a thread pool),
appends them to ``{split}_audio.npy`` and their features to ``{split}_features.npy``, so resident
memory stays O(chunk) whatever the number of clips. The files get their ``.npy`` headers from
``np.lib.format.open_memmap`` at the final size; the rows are written with plain file writes,
not through the mapping (pages written through a mapping count in the process's resident memory
until it is closed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from kwstool.core.contract import CLIP_SAMPLES, SHAPE
from kwstool.errors import KwsError

WRITE_CHUNK = 2048  # rows per write (one features.compute call, one progress step)
DECODE_CHUNK = 64  # files per decode task


@dataclass(frozen=True, eq=False)
class NoiseSlice:
    """A 1 s slice of a noise recording at ``offset``, scaled by ``gain``."""

    noise: np.ndarray
    offset: int
    gain: float

    def audio(self) -> np.ndarray:
        seg = self.noise[self.offset : self.offset + CLIP_SAMPLES].astype(np.float32)
        out: np.ndarray = np.clip(np.round(seg * self.gain), -32768, 32767).astype(np.int16)
        return out


Source = Path | NoiseSlice | np.ndarray  # where a row's audio comes from


@dataclass
class Rows:
    """A split's rows in the stored order: labels, file lines, where each row's audio is."""

    labels: np.ndarray  # int16 (N,)
    lines: list[str]
    sources: list[Source]

    def __len__(self) -> int:
        return len(self.lines)


class Split:
    """Rows of one split while they are collected, in any order."""

    def __init__(self) -> None:
        self.labels: list[int] = []
        self.lines: list[str] = []
        self.sources: list[Source] = []

    def add(self, label: int, line: str, source: Source) -> None:
        self.labels.append(label)
        self.lines.append(line)
        self.sources.append(source)

    def rows(self) -> Rows:
        """The rows sorted by (label, line), the order the folder stores them in."""
        order = sorted(range(len(self.labels)), key=lambda i: (self.labels[i], self.lines[i]))
        return Rows(
            np.array([self.labels[i] for i in order], dtype=np.int16),
            [self.lines[i] for i in order],
            [self.sources[i] for i in order],
        )


def _fill(sources: Sequence[Source], out: np.ndarray) -> None:
    """Audio of ``sources`` into the rows of ``out``."""
    from kwstool.data.takes import read_clip

    for i, src in enumerate(sources):
        if isinstance(src, Path):
            try:
                out[i] = read_clip(src)[0]
            except KwsError as exc:
                raise KwsError(
                    f"{exc} (it was readable earlier in this prepare, so it changed while "
                    f"prepare ran: re-run `kwstool prepare`)"
                ) from None
        elif isinstance(src, NoiseSlice):
            out[i] = src.audio()
        else:
            out[i] = src


def fill(sources: Sequence[Source], out: np.ndarray, pool: ThreadPoolExecutor) -> None:
    """:func:`_fill` in :data:`DECODE_CHUNK` pieces on ``pool``."""
    starts = range(0, len(sources), DECODE_CHUNK)
    parts = [(sources[i : i + DECODE_CHUNK], out[i : i + DECODE_CHUNK]) for i in starts]
    list(pool.map(lambda p: _fill(*p), parts))


@contextmanager
def npy_rows(path: Path, dtype: Any, shape: tuple[int, ...]) -> Iterator[IO[bytes]]:
    """``path`` as an .npy of ``shape`` (the header np.save writes), open at its first row.

    Raises OSError when fewer or more bytes than the shape holds were written.
    """
    m = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    start, end = int(m.offset), int(m.offset) + m.nbytes
    del m
    with open(path, "r+b") as fh:
        fh.seek(start)
        yield fh
        if fh.tell() != end:
            raise OSError(f"{path}: wrote {fh.tell() - start} of {end - start} data bytes")


def workers() -> int:
    return max(1, min(8, (os.cpu_count() or 1) * 2))


def write_split(
    rows: Rows, audio_path: Path, features_path: Path, advance: Callable[[int], None]
) -> None:
    """Write ``rows``' audio and features into the two files (temporary paths: the caller
    renames them), ``WRITE_CHUNK`` rows at a time; ``advance(n)`` after each chunk."""
    from kwstool.core.frontend import compute

    n = len(rows)
    buf = np.empty((min(n, WRITE_CHUNK), CLIP_SAMPLES), np.int16)
    with (
        npy_rows(audio_path, np.int16, (n, CLIP_SAMPLES)) as fa,
        npy_rows(features_path, np.int8, (n, *SHAPE)) as ff,
        ThreadPoolExecutor(workers()) as pool,
    ):
        for start in range(0, n, WRITE_CHUNK):
            part = buf[: min(WRITE_CHUNK, n - start)]
            fill(rows.sources[start : start + len(part)], part, pool)
            fa.write(part.data)
            ff.write(np.ascontiguousarray(compute(part)).data)
            advance(len(part))
