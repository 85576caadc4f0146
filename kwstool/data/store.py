"""Prepared-data folders: the result types, reading (:func:`load_prepared`) and writing.

The folder format is described in :mod:`kwstool.data.prepared` and docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kwstool.core.console import make_console
from kwstool.core.contract import CLIP_SAMPLES, NUM_CHANNELS, NUM_FRAMES, SHAPE
from kwstool.core.labels import SILENCE, UNKNOWN
from kwstool.data.rows import Rows, write_split
from kwstool.errors import KwsError

FORMAT = 1
SPLITS = ("train", "validation", "test")


# --- results -------------------------------------------------------------------------------------
@dataclass
class PrepareResult:
    """What :func:`prepare` did; ``to_dict()`` is what ``kwstool prepare --json`` prints."""

    data_dir: Path
    source: str
    source_kind: str
    words: list[str]
    labels: list[str]
    splits: dict[str, Any]  # {split: {"count": n, "per_class": {label: n}}}
    skipped: list[dict[str, Any]]
    warnings: list[str]
    inputs_hash: str
    cached: bool  # True: the existing prepared data matched and nothing was done
    seconds: float
    clips_found: int  # clips in the source (noise recordings not counted)
    clips_decoded: int  # clips read this run (0 when cached)
    sources: dict[str, Any] | None = None  # merged prepares: the manifest's per-source record
    # {word: {split: {"real": n, "synthetic": n}}} (older manifests: None)
    keyword_clips: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["data_dir"] = str(self.data_dir)
        if self.sources is None:  # one source: the same record as before merging existed
            del d["sources"]
        if self.keyword_clips is None:
            del d["keyword_clips"]
        return d


@dataclass
class SplitData:
    features: np.ndarray  # int8 (N, 49, 40)
    audio: np.ndarray  # int16 (N, 16000)
    labels: np.ndarray  # int16 (N,)
    files: list[str]


class PreparedData:
    """A prepared data folder (read by train and evaluate); arrays load on first use."""

    def __init__(self, path: Path, manifest: dict[str, Any], mmap: bool = False):
        self.path = path
        self.manifest = manifest
        self.labels: list[str] = list(manifest["labels"])
        self.words: list[str] = list(manifest["words"])
        self._mmap = mmap
        self._splits: dict[str, SplitData] = {}
        self._noise: dict[str, np.ndarray] | None = None

    def split(self, name: str) -> SplitData:
        if name not in SPLITS:
            raise KwsError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        if name not in self._splits:
            mode: Literal["r"] | None = "r" if self._mmap else None
            arrays = {}
            for part in ("features", "audio", "labels"):
                f = self.path / f"{name}_{part}.npy"
                try:
                    arrays[part] = np.load(f, mmap_mode=mode, allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise KwsError(
                        f"{f}: cannot read prepared data ({exc}); re-run "
                        f"`kwstool prepare --force --data-dir {self.path}`"
                    ) from None
            files = (self.path / f"{name}_files.txt").read_text(encoding="utf-8").splitlines()
            n = self.manifest["splits"][name]["count"]
            shapes = {k: v.shape for k, v in arrays.items()}
            if (
                shapes["features"][1:] != SHAPE
                or shapes["audio"][1:] != (CLIP_SAMPLES,)
                or {shapes["features"][0], shapes["audio"][0], shapes["labels"][0], len(files)}
                != {n}
            ):
                raise KwsError(
                    f"{self.path}: {name} arrays {shapes} / {len(files)} files do not "
                    f"match the manifest count {n}; re-run `kwstool prepare --force "
                    f"--data-dir {self.path}`"
                )
            self._splits[name] = SplitData(
                arrays["features"], arrays["audio"], arrays["labels"], files
            )
        return self._splits[name]

    @property
    def background_noise(self) -> dict[str, np.ndarray]:
        if self._noise is None:
            f = self.path / "background_noise.npz"
            with np.load(f, allow_pickle=False) as z:
                self._noise = {k: z[k] for k in z.files}
        return self._noise


def load_prepared(
    path: str | os.PathLike[str], mmap: bool = False, check_features: bool = True
) -> PreparedData:
    """Open a folder written by :func:`prepare`.

    ``mmap=True`` memory-maps the arrays instead of reading them. With ``check_features`` the
    stored feature parameters must equal :data:`kwstool.features.FEATURE_PARAMS`.
    """
    p = Path(path)
    mf = p / "manifest.json"
    if not mf.is_file():
        raise KwsError(
            f"{p}: no manifest.json, so no complete prepared data here; run "
            f"`kwstool prepare --data-dir {p}` first"
        )
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KwsError(f"{mf}: unreadable ({exc}); re-run `kwstool prepare --force`") from None
    if manifest.get("format") != FORMAT:
        raise KwsError(
            f"{mf}: prepared-data format {manifest.get('format')} is not {FORMAT}; "
            f"re-run `kwstool prepare --force --data-dir {p}`"
        )
    if check_features:
        from kwstool.core.frontend import FEATURE_PARAMS

        if manifest.get("features") != FEATURE_PARAMS:
            raise KwsError(
                f"{mf}: features were computed with other front-end parameters; "
                f"re-run `kwstool prepare --force --data-dir {p}`"
            )
    return PreparedData(p, manifest, mmap=mmap)


# --- progress -------------------------------------------------------------------------------------
class Progress:
    """Rich progress bars on stderr, or nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._bar = None

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        if not self.enabled or total == 0:
            yield lambda n: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=make_console(stderr=True),
        ) as bar:
            t = bar.add_task(description, total=total)
            yield lambda n: bar.advance(t, n)


# --- building and writing ---------------------------------------------------------------------
@dataclass
class Built:
    splits: dict[str, Rows]  # {split: its rows in the stored order}
    noise: dict[str, Any]  # {name: int16 array}
    skipped: list[Any]
    warnings: list[Any]
    clips_found: int
    clips_decoded: int
    extra: dict[str, Any] = field(default_factory=dict)  # manifest extras (split rule, tfds info)


def output_files() -> list[str]:
    files = ["background_noise.npz"]
    for s in SPLITS:
        files += [f"{s}_features.npy", f"{s}_audio.npy", f"{s}_labels.npy", f"{s}_files.txt"]
    return files


def _counts(labels: np.ndarray, names: list[str]) -> dict[str, Any]:
    per = (
        np.bincount(labels.astype(np.int64), minlength=len(names))
        if len(labels)
        else np.zeros(len(names), np.int64)
    )
    return {"count": len(labels), "per_class": {n: int(per[i]) for i, n in enumerate(names)}}


def write_prepared(
    data_dir: Path, built: Built, labels: list[str], progress: Progress
) -> dict[str, Any]:
    """Write all arrays (each atomically, audio and features streamed chunk by chunk, see
    :mod:`kwstool.data.rows`); return the per-split counts. Manifest is separate."""
    from kwstool import fileio
    from kwstool.data.download import check_free_space

    rows = sum(len(built.splits[s]) for s in SPLITS)
    noise_bytes = sum(v.nbytes for v in built.noise.values())
    check_free_space(
        data_dir,
        rows * (CLIP_SAMPLES * 2 + NUM_FRAMES * NUM_CHANNELS + 2) + noise_bytes,
        "writing the prepared data",
        "--data-dir",
    )
    splits = {}
    for s in SPLITS:
        split = built.splits[s]
        with (
            fileio.atomic_path(data_dir / f"{s}_features.npy") as features,
            fileio.atomic_path(data_dir / f"{s}_audio.npy") as audio,
            progress.task(f"write {s}", len(split)) as advance,
        ):
            write_split(split, audio, features, advance)
        fileio.save_npy(data_dir / f"{s}_labels.npy", split.labels)
        fileio.write_text(data_dir / f"{s}_files.txt", "".join(f"{ln}\n" for ln in split.lines))
        splits[s] = _counts(split.labels, labels)
    with fileio.atomic_path(data_dir / "background_noise.npz") as tmp, open(tmp, "wb") as fh:
        arrays: dict[str, Any] = {k: np.asarray(v, np.int16) for k, v in built.noise.items()}
        np.savez(fh, **arrays)
    return splits


# --- the cache --------------------------------------------------------------------------------
def cached_manifest(data_dir: Path, inputs_hash: str) -> dict[str, Any] | None:
    """The existing manifest when it matches ``inputs_hash`` and its files are all there."""
    mf = data_dir / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("inputs_hash") != inputs_hash or manifest.get("format") != FORMAT:
        return None
    sizes = manifest.get("file_sizes", {})
    for f in output_files():
        try:
            if (data_dir / f).stat().st_size != sizes.get(f):
                return None
        except OSError:
            return None
    return manifest


def result_from_manifest(
    data_dir: Path, manifest: dict[str, Any], cached: bool, seconds: float, decoded: int
) -> PrepareResult:
    return PrepareResult(
        data_dir=data_dir,
        source=manifest["source"],
        source_kind=manifest["source_kind"],
        words=list(manifest["words"]),
        labels=list(manifest["labels"]),
        splits={
            s: {
                "count": manifest["splits"][s]["count"],
                "per_class": {
                    lab: manifest["splits"][s]["per_class"][lab] for lab in manifest["labels"]
                },
            }
            for s in SPLITS
        },
        skipped=list(manifest["skipped"]),
        warnings=list(manifest.get("warnings", [])),
        inputs_hash=manifest["inputs_hash"],
        cached=cached,
        seconds=round(seconds, 3),
        clips_found=int(manifest["clips_found"]),
        clips_decoded=decoded,
        sources=manifest.get("sources"),
        keyword_clips=manifest.get("keyword_clips"),
    )


def keyword_clips(
    built: Built, words: list[str], synthetic: set[str] | None = None
) -> dict[str, dict[str, dict[str, int]]]:
    """Real and synthetic clips of each word per split, from the rows' file lines (a merged
    line is ``NAME:path``; a source named in ``synthetic`` is synthetic)."""
    labels = {w: i for i, w in enumerate([SILENCE, UNKNOWN, *words])}
    out = {w: {s: {"real": 0, "synthetic": 0} for s in SPLITS} for w in words}
    for s in SPLITS:
        rows = built.splits[s]
        for w in words:
            for i in np.flatnonzero(rows.labels == labels[w]):
                name = rows.lines[int(i)].split(":", 1)[0] if synthetic else ""
                out[w][s]["synthetic" if name in (synthetic or set()) else "real"] += 1
    return out


def no_real_train(counts: dict[str, dict[str, dict[str, int]]]) -> list[str]:
    """The loud warning for every word whose train split holds no real recording."""
    return [
        f"NO REAL RECORDING OF {w!r} IN TRAIN (train has {c['train']['synthetic']} synthetic "
        f"clip(s) only): the model learns {w} from synthetic voices alone and validation/test "
        f"measure it on {sum(c[s]['real'] for s in SPLITS)} real clip(s); record takes of "
        f"{w} (`kwstool record`) and prepare again"
        for w, c in counts.items()
        if c["train"]["real"] == 0
    ]


def check_built(
    built: Built, words: list[str], labels: list[str], source: str, noise_expected: bool = True
) -> None:
    """Refuse a build that misses a word or a split; add warnings for empty classes."""
    for w in words:  # a word whose clips were all unreadable
        if not any(int(np.sum(built.splits[s].labels == labels.index(w))) for s in SPLITS):
            bad = [d for d in built.skipped if d["file"].split(":")[-1].split("/")[0] == w]
            raise KwsError(
                f"word {w!r} has no readable clips ({len(bad)} skipped, e.g. "
                f"{bad[0]['reason'] if bad else 'none'}); fix or replace its WAVs"
            )
    for s in SPLITS:  # every split must hold something
        if len(built.splits[s].labels) == 0:
            raise KwsError(
                f"split {s!r} is empty: no speaker of {source} falls in it; add clips "
                f"from more speakers (name files <speaker>_nohash_<n>.wav) or change "
                f"--validation-pct/--testing-pct"
            )
    for s in SPLITS:
        per = np.bincount(built.splits[s].labels.astype(np.int64), minlength=len(labels))
        empty = [labels[i] for i in range(len(labels)) if per[i] == 0]
        if set(words) <= set(empty):  # already reported as a split without keyword clips
            empty = [e for e in empty if e not in words]
        if empty:
            built.warnings.append(f"{s} has no examples of {', '.join(empty)}")
    if not built.noise and noise_expected:
        built.warnings.append(
            "no _background_noise_/ recordings in the source: no silence "
            "slices and no noise for augmentation"
        )


def write_all(
    out_dir: Path, built: Built, labels: list[str], progress: Progress, manifest: dict[str, Any]
) -> dict[str, Any]:
    """Write arrays, then ``manifest`` (completed with splits and sizes) last; return it."""
    from kwstool.fileio import remove_stale_temps, write_json

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "manifest.json").unlink(missing_ok=True)  # invalid while files are replaced
        remove_stale_temps(out_dir, [*output_files(), "manifest.json"])  # of a killed prepare
        splits = write_prepared(out_dir, built, labels, progress)
    except OSError as exc:
        raise KwsError(
            f"{out_dir}: cannot write the prepared data ({exc.strerror or exc}); "
            f"free some space or choose another --data-dir"
        ) from None
    manifest = dict(
        manifest,
        splits=splits,
        skipped=built.skipped,
        warnings=built.warnings,
        clips_found=built.clips_found,
        background_noise=sorted(built.noise),
        file_sizes={f: (out_dir / f).stat().st_size for f in output_files()},
    )
    write_json(out_dir / "manifest.json", manifest)
    return manifest
