"""Safe tar extraction (:func:`extract_tar`), once per archive (:func:`ensure_extracted`).

Every member is checked before anything is written: absolute paths, ``..`` components,
symbolic and hard links, device files and FIFOs are rejected with a :class:`KwsError` that
names the member. Regular files are written by this module (never by ``tarfile.extract``)
into a temporary folder beside the target, which is renamed onto the target when the whole
archive went through; a failure removes the temporary folder, so nothing is ever written
outside the target and no half-extracted target exists.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from kwstool.data.diskio import CHUNK, _bytes_progress, check_free_space
from kwstool.errors import KwsError

MARKER = ".kwstool-extracted.json"  # written inside an extracted folder, last


# --- safe extraction ---------------------------------------------------------------------------
def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` may not be extracted, or None when it is a plain file or folder."""
    name = member.name
    if not name or "\x00" in name:
        return "has an empty or invalid name"
    if member.issym() or member.islnk():
        return f"is a {'symbolic' if member.issym() else 'hard'} link (to {member.linkname!r})"
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        return "is a device file or FIFO"
    if not (member.isfile() or member.isdir()):
        return "is not a regular file or folder"
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        return "has an absolute path"
    if ".." in PurePosixPath(posix).parts:
        return "has a '..' path component"
    return None


def _relative_parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))


def _open_tar(raw: BinaryIO, archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=raw, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise KwsError(
            f"{archive}: not a readable tar archive ({exc}); download it again"
        ) from None


def _extract_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, archive: Path
) -> bool:
    """Write one checked member under ``root``; False when it names no path (``./``)."""
    problem = _member_problem(member)
    if problem:
        raise KwsError(
            f"{archive}: member {member.name!r} {problem}; refusing "
            f"to extract this archive (nothing was kept)"
        )
    parts = _relative_parts(member.name)
    if not parts:
        return False
    dest = root.joinpath(*parts)
    if root not in dest.resolve().parents:  # belt and braces
        raise KwsError(
            f"{archive}: member {member.name!r} would land outside "
            f"the target; refusing to extract this archive"
        )
    if member.isdir():
        dest.mkdir(parents=True, exist_ok=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(member)
        assert src is not None  # _member_problem refused non-files
        with src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
    return True


def _extract_members(
    tar: tarfile.TarFile,
    raw: BinaryIO,
    root: Path,
    archive: Path,
    target: Path,
    advance: Callable[[int], object],
) -> None:
    """Every member into ``root``, advancing the progress bar by the archive bytes read."""
    last = 0
    try:
        for member in tar:
            if not _extract_member(tar, member, root, archive):
                continue
            pos = raw.tell()
            advance(pos - last)
            last = pos
    except KwsError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise KwsError(
            f"{archive}: archive is truncated or damaged ({exc}); download it again"
        ) from None
    except OSError as exc:
        raise KwsError(
            f"{archive}: extraction into {target.parent} failed "
            f"({exc.strerror or exc}); check free space and "
            f"permissions"
        ) from None


def extract_tar(
    archive: str | os.PathLike[str], target: str | os.PathLike[str], *, progress: bool = True
) -> Path:
    """Safely extract ``archive`` (tar, tar.gz) into the folder ``target``; return ``target``.

    ``target`` must not exist yet (the caller decides whether to reuse an earlier extraction).
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise KwsError(f"{target}: already exists; remove it to extract {archive.name} again")
    size = archive.stat().st_size
    # WAV data hardly compresses: the extracted tree is about the archive's size; ask for 1.5x.
    check_free_space(target.parent, int(size * 1.5), f"extracting {archive.name}")
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    root = tmp.resolve()
    try:
        with (
            open(archive, "rb") as raw,
            _bytes_progress(progress, f"extract {archive.name}", size) as advance,
        ):
            tar = _open_tar(raw, archive)
            with tar:
                _extract_members(tar, raw, root, archive, target, advance)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def extracted_root(folder: Path) -> Path:
    """The dataset root inside an extracted archive: the folder itself, or its only subfolder
    when the archive wrapped everything in one top-level folder."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        inner = [p for p in entries[0].iterdir() if p.is_dir()]
        if inner:  # a wrapper folder holding label folders, not a single label folder of WAVs
            return entries[0]
    return folder


def ensure_extracted(
    archive: Path,
    extract_dir: Path,
    *,
    sha256: str | None = None,
    progress: bool = True,
    checked: tuple[str, bool] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Extract ``archive`` into ``extract_dir`` once; reuse it while the archive is unchanged.

    Returns the dataset root and the marker record (archive name, size, mtime, sha256,
    verified). A local archive is checksum-verified on first use; ``checked`` = (sha256,
    verified) skips that when the caller just downloaded and hashed it.
    """
    st = archive.stat()
    marker = extract_dir / MARKER
    if marker.is_file():
        try:
            rec = json.loads(marker.read_text())
            if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
                return extracted_root(extract_dir), rec
        except (OSError, ValueError):
            pass
    if checked is not None:
        sha, verified = checked
    else:
        from kwstool.data.download import verify_local

        sha, verified = verify_local(archive, sha256, progress)
    if extract_dir.exists():
        shutil.rmtree(extract_dir)
    extract_tar(archive, extract_dir, progress=progress)
    rec = {
        "archive": archive.name,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": sha,
        "verified": verified,
    }
    from kwstool.fileio import write_json

    write_json(marker, rec)
    return extracted_root(extract_dir), rec
