"""Sources of clips: scanning a folder tree, hashing its inputs, resolving a --source string.

A folder is listed once (:func:`scan_folder`); archives and URLs are downloaded and extracted by
:mod:`kwstool.data.download` first (:func:`resolve`). TFDS is read by :mod:`kwstool.data.tfds`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kwstool.core.audio import is_audio_file
from kwstool.core.labels import BACKGROUND_NOISE, SILENCE, SPEECH_COMMANDS_WORDS, UNKNOWN
from kwstool.errors import KwsError

TFDS_SOURCES = ("tfds", "tfds:speech_commands")
TFDS_SOURCE = "tfds:speech_commands"
DEFAULT_ROOT = Path("data")


@dataclass
class Clip:
    rel: str  # posix path relative to the source root
    folder: str  # top-level folder (label folder)
    size: int
    mtime_ns: int
    split: str = "train"
    source: str = ""  # source name in a merged prepare ("" for one source)
    path: Path | None = None  # where to read it when ``rel`` is not under the scan's root

    def file(self, root: Path) -> Path:
        return self.path if self.path is not None else root / self.rel

    def noise_key(self) -> str:
        """Key of a noise recording in ``background_noise.npz``."""
        stem = Path(self.rel.split(":", 1)[-1]).stem
        return f"{self.source}_{stem}" if self.source else stem


@dataclass
class Scan:
    root: Path
    kind: str  # "speech_commands" | "test_layout" | "folders"
    clips: list[Clip]
    noise: list[Clip]
    lists: dict[str, Any]  # {"validation": set, "test": set} when list files are present, else {}
    list_stats: list[Any]  # [(name, size, mtime_ns)] of the list files


def _walk_wavs(folder: Path, root: Path) -> Iterator[tuple[str, os.stat_result]]:
    stack = [folder]
    seen: set[Path] = set()  # real paths visited: a symlink loop is walked once
    while stack:
        d = stack.pop()
        real = d.resolve()
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            raise KwsError(f"{d}: cannot list folder ({exc.strerror}); check permissions") from None
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                stack.append(Path(e.path))
            elif is_audio_file(e.name) and e.is_file():
                yield Path(e.path).relative_to(root).as_posix(), e.stat()


def scan_folder(root: Path) -> Scan:
    """List every clip and noise recording under ``root`` (sorted, with sizes and mtimes)."""
    if not root.is_dir():
        raise KwsError(f"{root}: not a folder")
    top = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    clips: list[Clip] = []
    noise: list[Clip] = []
    for d in top:
        for rel, st in _walk_wavs(d, root):
            c = Clip(rel, d.name, st.st_size, st.st_mtime_ns)
            (noise if d.name == BACKGROUND_NOISE else clips).append(c)
    clips.sort(key=lambda c: c.rel)
    noise.sort(key=lambda c: c.rel)
    lists: dict[str, Any] = {}
    list_stats = []
    for split, fname in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        f = root / fname
        if f.is_file():
            st = f.stat()
            list_stats.append((fname, st.st_size, st.st_mtime_ns))
            lists[split] = {
                ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()
            }
    names = {d.name for d in top}
    if SILENCE in names and UNKNOWN in names:
        kind = "test_layout"
    elif lists or (BACKGROUND_NOISE in names and len(names & SPEECH_COMMANDS_WORDS) >= 10):
        kind = "speech_commands"
    else:
        kind = "folders"
    if not clips:
        raise KwsError(
            f"{root}: no audio files (.wav, .flac, .ogg, .mp3) in its subfolders; expected "
            f"one folder per label (e.g. {root}/yes/*.wav)"
        )
    return Scan(root, kind, clips, noise, lists, list_stats)


def hash_inputs(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def folder_inputs(scan: Scan) -> dict[str, Any]:
    return {
        "clips": [(c.rel, c.size, c.mtime_ns) for c in scan.clips],
        "noise": [(c.rel, c.size, c.mtime_ns) for c in scan.noise],
        "lists": scan.list_stats,
    }


def listing(folder: Path) -> list[Any]:
    """(relative path, size, mtime) of every file under ``folder`` (for TFDS's data folder)."""
    out = []
    if folder.is_dir():
        for dirpath, _, files in os.walk(folder):
            for f in files:
                p = Path(dirpath, f)
                st = p.stat()
                out.append((p.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns))
    return sorted(out)


@dataclass
class Resolved:
    kind: str  # "tfds" | "archive" | "folder"
    source: str  # as recorded in the manifest (URL, absolute path or tfds:speech_commands)
    name: str  # for the default data dir
    root: Path | None = None  # dataset folder (after download/extraction)
    archive: dict[str, Any] | None = None  # archive identity for the inputs hash


def _default_download_dir() -> Path:
    return DEFAULT_ROOT / "downloads"


def resolve(source: str, download_dir: Path | None, sha256: str | None, progress: bool) -> Resolved:
    from kwstool.data import download as dl

    s = str(source).strip()
    if s.lower() in TFDS_SOURCES:
        return Resolved("tfds", TFDS_SOURCE, "speech_commands_tfds")
    if dl.is_url(s):
        name = dl.archive_name(s)
        if not dl.is_archive_name(name):
            raise KwsError(
                f"{s}: URL must point at a .tar.gz/.tgz/.tar archive such as "
                f"http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
            )
        ddir = Path(download_dir) if download_dir else _default_download_dir()
        res = dl.download(s, ddir, sha256=sha256, progress=progress)
        stem = dl.archive_stem(name)
        root, rec = dl.ensure_extracted(
            res.path, ddir / stem, progress=progress, checked=(res.sha256, res.verified)
        )
        return Resolved(
            "archive",
            s,
            stem,
            root,
            {"name": name, "sha256": rec["sha256"], "verified": rec["verified"]},
        )
    p = Path(s).expanduser()
    if not p.exists():
        raise KwsError(
            f"{s}: no such file or folder; give a folder of WAVs, a .tar.gz archive, "
            f"an http(s) URL, or 'tfds'"
        )
    if p.is_file():
        if not dl.is_archive_name(p.name):
            raise KwsError(
                f"{p}: not a .tar.gz/.tgz/.tar archive or a folder; point --source at "
                f"the folder holding one subfolder per label"
            )
        stem = dl.archive_stem(p.name)
        ddir = Path(download_dir) if download_dir else _default_download_dir()
        root, rec = dl.ensure_extracted(p.resolve(), ddir / stem, sha256=sha256, progress=progress)
        return Resolved(
            "archive",
            str(p.resolve()),
            stem,
            root,
            {"name": p.name, "sha256": rec["sha256"], "verified": rec["verified"]},
        )
    p = p.resolve()
    return Resolved("folder", str(p), p.name, p)
