"""Getting a dataset archive onto disk: HTTP download and safe tar extraction.

Download (:func:`download`)
    * streams to ``<name>.part`` beside the target and renames it into place only once the whole
      body arrived and its checksum matched, so the final name always means "complete, verified";
    * resumes: a ``.part`` left by an interrupted run (or a connection dropped mid-body, which is
      retried a few times) continues with an HTTP ``Range`` request; a server that ignores the
      range simply sends the whole file again;
    * verifies sha256: against ``sha256=`` when given, else against the official checksum when
      the file name is a known Speech Commands archive (read from the installed
      tensorflow-datasets' ``speech_commands/checksums.tsv``, with the published values as a
      fallback); a mismatch deletes the download and raises;
    * checks free disk space before it starts, and shows a Rich progress bar.

Extraction (:func:`extract_tar`)
    Every member is checked before anything is written: absolute paths, ``..`` components,
    symbolic and hard links, device files and FIFOs are rejected with a :class:`KwsError` that
    names the member. Regular files are written by this module (never by ``tarfile.extract``)
    into a temporary folder beside the target, which is renamed onto the target when the whole
    archive went through; a failure removes the temporary folder, so nothing is ever written
    outside the target and no half-extracted target exists.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import importlib.util
import json
import os
import shutil
import ssl
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kwstool import __version__
from kwstool.core.console import make_console
from kwstool.errors import KwsError

CHUNK = 1 << 20  # bytes per read while streaming
USER_AGENT = f"kwstool/{__version__} (python urllib)"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
MARKER = ".kwstool-extracted.json"  # written inside an extracted folder, last


@dataclass(frozen=True)
class KnownArchive:
    """A published archive: its file name, size in bytes (None if unknown) and sha256."""

    name: str
    size: int | None
    sha256: str
    url: str


# Published values (facts, used when tensorflow-datasets' checksum file cannot be read).
# v0.02 and the v0.02 test set: tensorflow_datasets/datasets/speech_commands/checksums.tsv.
# v0.01: the sha256 published with torchaudio's SPEECHCOMMANDS dataset (size not published).
_FALLBACK_KNOWN = {
    "speech_commands_v0.02.tar.gz": KnownArchive(
        "speech_commands_v0.02.tar.gz",
        2428923189,
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
    ),
    "speech_commands_test_set_v0.02.tar.gz": KnownArchive(
        "speech_commands_test_set_v0.02.tar.gz",
        112563277,
        "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfe9acd51df",
        "http://download.tensorflow.org/data/speech_commands_test_set_v0.02.tar.gz",
    ),
    "speech_commands_v0.01.tar.gz": KnownArchive(
        "speech_commands_v0.01.tar.gz",
        None,
        "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
        "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
    ),
}


def _tfds_checksums_file() -> Path | None:
    """The speech_commands checksums.tsv of the installed tensorflow-datasets, without importing
    it (importing tensorflow_datasets pulls in TensorFlow, which takes seconds)."""
    try:
        spec = importlib.util.find_spec("tensorflow_datasets")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        p = Path(root) / "datasets" / "speech_commands" / "checksums.tsv"
        if p.is_file():
            return p
    return None


def known_archives() -> dict[str, KnownArchive]:
    """Official Speech Commands archives by file name: TFDS's checksum file over the fallbacks."""
    known = dict(_FALLBACK_KNOWN)
    tsv = _tfds_checksums_file()
    if tsv is not None:
        for line in tsv.read_text().splitlines():
            parts = line.strip().split("\t")
            if len(parts) >= 3 and not line.startswith("#"):
                url, size, sha = parts[0], parts[1], parts[2]
                name = parts[3] if len(parts) > 3 else url.rsplit("/", 1)[-1]
                known[name] = KnownArchive(name, int(size), sha.lower(), url)
    return known


def archive_name(url_or_path: str) -> str:
    """File name of an archive URL or path (query strings dropped)."""
    path = urllib.parse.urlparse(url_or_path).path if is_url(url_or_path) else url_or_path
    return PurePosixPath(path.replace("\\", "/")).name


def archive_stem(name: str) -> str:
    """``speech_commands_v0.02.tar.gz`` -> ``speech_commands_v0.02``."""
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


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


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Raise when ``folder``'s file system has less than ``needed`` bytes (+64 MiB) free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    margin = 64 << 20
    if needed + margin > free:
        raise KwsError(
            f"{folder}: {what} needs {_gib(needed)} but only {_gib(free)} is free; "
            f"free some space or choose another folder with --download-dir"
        )


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


# --- download ----------------------------------------------------------------------------------
@dataclass
class DownloadResult:
    path: Path
    sha256: str
    size: int
    verified: bool  # True when a known or given checksum was matched
    downloaded: bool  # False when a complete, verified file was already there
    resumed_from: int = 0  # bytes of an earlier .part that were kept


class _Interrupted(Exception):  # noqa: N818  (private control-flow signal, not an error)
    """The connection ended before the announced body length arrived."""


def _expected_checksum(name: str, sha256: str | None) -> tuple[str | None, int | None]:
    if sha256:
        sha = sha256.strip().lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise KwsError(f"--sha256 {sha256!r} is not a sha256 hex digest (64 hex digits)")
        return sha, None
    known = known_archives().get(name)
    return (known.sha256, known.size) if known else (None, None)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_sidecar(path: Path) -> str | None:
    """The sha256 recorded when ``path`` was verified, if size and mtime still match."""
    try:
        rec = json.loads(_sidecar(path).read_text())
        st = path.stat()
        if rec["size"] == st.st_size and rec["mtime_ns"] == st.st_mtime_ns:
            return str(rec["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_sidecar(path: Path, sha: str) -> None:
    from kwstool.fileio import write_json

    st = path.stat()
    write_json(_sidecar(path), {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns})


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


class _RestartFromZero(Exception):  # noqa: N818  (private control-flow signal, not an error)
    """The kept .part cannot be resumed (the server refused its range): start over."""


def _hash_prefix(part: Path) -> hashlib._Hash:
    h = hashlib.sha256()
    if part.exists():
        with open(part, "rb") as fh:
            while block := fh.read(CHUNK):
                h.update(block)
    return h


def _fetch_into(
    url: str, part: Path, offset: int, expected_size: int | None, timeout: float, progress: bool
) -> tuple[hashlib._Hash, int]:
    """One HTTP request appending to ``part`` from ``offset``.

    Returns the sha256 of the whole file and how many bytes of the earlier ``part`` were kept
    (0 when the server ignored the range and sent everything).

    Raises :class:`_Interrupted` when the body ends early, :class:`_RestartFromZero` when the
    server refuses the range of a bogus ``.part``.
    """
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # range not satisfiable: .part complete or bogus
            announced = (exc.headers.get("Content-Range") or "").rsplit("/", 1)[-1]
            if offset == expected_size or (announced.isdigit() and offset == int(announced)):
                return _hash_prefix(part), offset
            raise _RestartFromZero() from None
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
            raise _Interrupted()
    return hasher, kept


def download(
    url: str,
    dest_dir: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
) -> DownloadResult:
    """Download ``url`` into ``dest_dir`` (resumable, verified); return the final path.

    ``sha256`` overrides the known checksum; a file name that is not a known official archive
    and no ``sha256`` means the download is not verified (``verified`` is False).
    ``retries`` is how many times a dropped connection is resumed within this call; after that
    the ``.part`` file stays and the next call resumes it.
    """
    if not is_url(url):
        raise KwsError(f"{url}: not an http(s) URL")
    name = archive_name(url)
    if not name:
        raise KwsError(f"{url}: URL does not end in a file name; give the archive's URL")
    dest_dir = Path(dest_dir)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KwsError(
            f"{dest_dir}: cannot create the download folder ({exc.strerror}); "
            f"choose another with --download-dir"
        ) from None
    final = dest_dir / name
    part = dest_dir / (name + ".part")
    expected, expected_size = _expected_checksum(name, sha256)

    if final.exists():  # a finished download: trust the sidecar, else re-verify once
        have = _read_sidecar(final) or sha256_file(final, progress)
        if expected is None or have == expected:
            _write_sidecar(final, have)
            return DownloadResult(final, have, final.stat().st_size, expected is not None, False)
        final.unlink()  # a stale or foreign file under the official name: fetch it again

    resumed_from = part.stat().st_size if part.exists() else 0
    attempt = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        try:
            hasher, kept = _fetch_into(url, part, offset, expected_size, timeout, progress)
            resumed_from = min(resumed_from, kept)
            break
        except _RestartFromZero:
            part.unlink(missing_ok=True)
            resumed_from = 0
        except (
            _Interrupted,
            http.client.HTTPException,
            ConnectionError,
            TimeoutError,
            ssl.SSLError,
            urllib.error.URLError,
        ) as exc:
            attempt += 1
            got_bytes = part.stat().st_size if part.exists() else 0
            if isinstance(exc, urllib.error.URLError) and not got_bytes and attempt > retries:
                raise KwsError(
                    f"{url}: cannot connect ({exc.reason}); check the network, or "
                    f"download the archive yourself and pass its path as "
                    f"--source"
                ) from None
            if attempt > retries:
                raise KwsError(
                    f"{url}: download interrupted at {got_bytes} bytes after {retries} "
                    f"retries; re-run to resume from {part}"
                ) from None
            time.sleep(min(0.2 * attempt, 2.0))
        except OSError as exc:  # local trouble (disk full, permissions), not the network
            raise KwsError(
                f"{part}: cannot write the download ({exc.strerror or exc}); free "
                f"some space or choose another folder with --download-dir"
            ) from None

    got = hasher.hexdigest()
    size = part.stat().st_size
    if expected is not None and got != expected:
        part.unlink()
        raise KwsError(
            f"{url}: downloaded {name} has sha256 {got}, expected {expected}; the download was "
            f"deleted; re-run to fetch it again, or pass --sha256 if you host a different file"
        )
    os.replace(part, final)
    _write_sidecar(final, got)
    return DownloadResult(final, got, size, expected is not None, True, resumed_from)


def verify_local(path: Path, sha256: str | None = None, progress: bool = True) -> tuple[str, bool]:
    """sha256 of a local archive and whether it matched the given or known checksum.

    Raises when a checksum is expected and differs.
    """
    expected, expected_size = _expected_checksum(path.name, sha256)
    if expected_size is not None and path.stat().st_size != expected_size:
        raise KwsError(
            f"{path}: {path.stat().st_size} bytes, but the official {path.name} has "
            f"{expected_size}; the file is incomplete or different: download it again"
        )
    got = sha256_file(path, progress)
    if expected is not None and got != expected:
        raise KwsError(
            f"{path}: sha256 {got} does not match the expected {expected}; the file "
            f"is damaged or different: download it again, or pass --sha256"
        )
    return got, expected is not None


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
            last = 0
            try:
                tar = tarfile.open(fileobj=raw, mode="r:*")  # noqa: SIM115  (`with tar:` below)
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise KwsError(
                    f"{archive}: not a readable tar archive ({exc}); download it again"
                ) from None
            with tar:
                try:
                    for member in tar:
                        problem = _member_problem(member)
                        if problem:
                            raise KwsError(
                                f"{archive}: member {member.name!r} {problem}; refusing "
                                f"to extract this archive (nothing was kept)"
                            )
                        parts = _relative_parts(member.name)
                        if not parts:
                            continue
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
