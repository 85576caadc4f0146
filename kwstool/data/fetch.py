"""One HTTP request of a download (:func:`fetch_into`): a ``Range`` request that appends to the
``.part`` file, hashing as it goes; the download loop of :mod:`kwstool.data.download` retries it.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kwstool import __version__
from kwstool.data.diskio import CHUNK, _bytes_progress, check_free_space
from kwstool.errors import KwsError

USER_AGENT = f"kwstool/{__version__} (python urllib)"


class Interrupted(Exception):  # noqa: N818  (control-flow signal, not an error)
    """The connection ended before the announced body length arrived."""


def _open(url: str, offset: int, timeout: float) -> Any:  # urlopen is typed as returning Any
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _total_from(resp: Any, offset: int) -> int | None:
    """Full file size from a 200 (Content-Length) or 206 (Content-Range) response."""
    if resp.status == 206:
        content_range = resp.headers.get("Content-Range", "")
        total = content_range.rsplit("/", 1)[-1] if "/" in content_range else "*"
        return int(total) if total.isdigit() else None
    length = resp.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


class RestartFromZero(Exception):  # noqa: N818  (control-flow signal, not an error)
    """The kept .part cannot be resumed (the server refused its range): start over."""


def _hash_prefix(part: Path) -> hashlib._Hash:
    h = hashlib.sha256()
    if part.exists():
        with open(part, "rb") as fh:
            while block := fh.read(CHUNK):
                h.update(block)
    return h


def fetch_into(
    url: str, part: Path, offset: int, expected_size: int | None, timeout: float, progress: bool
) -> tuple[hashlib._Hash, int]:
    """One HTTP request appending to ``part`` from ``offset``.

    Returns the sha256 of the whole file and how many bytes of the earlier ``part`` were kept
    (0 when the server ignored the range and sent everything).

    Raises :class:`Interrupted` when the body ends early, :class:`RestartFromZero` when the
    server refuses the range of a bogus ``.part``.
    """
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # range not satisfiable: .part complete or bogus
            announced = (exc.headers.get("Content-Range") or "").rsplit("/", 1)[-1]
            if offset == expected_size or (announced.isdigit() and offset == int(announced)):
                return _hash_prefix(part), offset
            raise RestartFromZero() from None
        raise KwsError(f"{url}: HTTP {exc.code} {exc.reason}; check the URL") from None
    with resp:
        if offset and resp.status != 206:  # the server ignored Range: it sends everything
            offset = 0
        kept = offset
        name = part.name[: -len(".part")]
        total = _total_from(resp, offset)
        if expected_size is not None and total is not None and total != expected_size:
            raise KwsError(
                f"{url}: server sends {total} bytes but the official {name} has "
                f"{expected_size}; use the official URL or pass --sha256 for your file"
            )
        if total is not None:
            check_free_space(part.parent, total - offset, f"downloading {name}")
        hasher = _hash_prefix(part) if offset else hashlib.sha256()
        with (
            open(part, "ab" if offset else "wb") as out,
            _bytes_progress(progress, f"download {name}", total, offset) as advance,
        ):
            while block := resp.read(CHUNK):
                out.write(block)
                hasher.update(block)
                offset += len(block)
                advance(len(block))
        if total is not None and offset < total:
            raise Interrupted()
    return hasher, kept
