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

Extraction (:func:`extract_tar`, in :mod:`kwstool.data.extract`)
    Every member is checked before anything is written: absolute paths, ``..`` components,
    symbolic and hard links, device files and FIFOs are rejected with a :class:`KwsError` that
    names the member. Regular files are written by this module (never by ``tarfile.extract``)
    into a temporary folder beside the target, which is renamed onto the target when the whole
    archive went through; a failure removes the temporary folder, so nothing is ever written
    outside the target and no half-extracted target exists.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kwstool.data.diskio import (
    CHUNK as CHUNK,
    check_free_space as check_free_space,
    sha256_file as sha256_file,
)
from kwstool.data.extract import (
    MARKER as MARKER,
    ensure_extracted as ensure_extracted,
    extract_tar as extract_tar,
    extracted_root as extracted_root,
)
from kwstool.data.fetch import USER_AGENT as USER_AGENT, Interrupted, RestartFromZero, fetch_into
from kwstool.errors import KwsError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


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


# --- download ----------------------------------------------------------------------------------
@dataclass
class DownloadResult:
    path: Path
    sha256: str
    size: int
    verified: bool  # True when a known or given checksum was matched
    downloaded: bool  # False when a complete, verified file was already there
    resumed_from: int = 0  # bytes of an earlier .part that were kept


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


def _dest_folder(url: str, dest_dir: str | os.PathLike[str]) -> tuple[str, Path]:
    """The archive's file name in ``url`` and the download folder, created."""
    if not is_url(url):
        raise KwsError(f"{url}: not an http(s) URL")
    name = archive_name(url)
    if not name:
        raise KwsError(f"{url}: URL does not end in a file name; give the archive's URL")
    folder = Path(dest_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KwsError(
            f"{folder}: cannot create the download folder ({exc.strerror}); "
            f"choose another with --download-dir"
        ) from None
    return name, folder


def _retry_or_raise(url: str, part: Path, exc: Exception, attempt: int, retries: int) -> None:
    """After a dropped connection: wait before the next attempt, or give up (KwsError)."""
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


def _fetch_resuming(
    url: str,
    part: Path,
    expected_size: int | None,
    timeout: float,
    progress: bool,
    retries: int,
) -> tuple[hashlib._Hash, int]:
    """Fetch ``url`` into ``part``, resuming dropped connections; (sha256, resumed from)."""
    resumed_from = part.stat().st_size if part.exists() else 0
    attempt = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        try:
            hasher, kept = fetch_into(url, part, offset, expected_size, timeout, progress)
            return hasher, min(resumed_from, kept)
        except RestartFromZero:
            part.unlink(missing_ok=True)
            resumed_from = 0
        except (
            Interrupted,
            http.client.HTTPException,
            ConnectionError,
            TimeoutError,
            ssl.SSLError,
            urllib.error.URLError,
        ) as exc:
            attempt += 1
            _retry_or_raise(url, part, exc, attempt, retries)
        except OSError as exc:  # local trouble (disk full, permissions), not the network
            raise KwsError(
                f"{part}: cannot write the download ({exc.strerror or exc}); free "
                f"some space or choose another folder with --download-dir"
            ) from None


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
    name, folder = _dest_folder(url, dest_dir)
    final = folder / name
    part = folder / (name + ".part")
    expected, expected_size = _expected_checksum(name, sha256)

    if final.exists():  # a finished download: trust the sidecar, else re-verify once
        have = _read_sidecar(final) or sha256_file(final, progress)
        if expected is None or have == expected:
            _write_sidecar(final, have)
            return DownloadResult(final, have, final.stat().st_size, expected is not None, False)
        final.unlink()  # a stale or foreign file under the official name: fetch it again

    hasher, resumed_from = _fetch_resuming(url, part, expected_size, timeout, progress, retries)
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
