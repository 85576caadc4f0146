"""`kwstool prepare`: audio sources -> speaker-disjoint splits -> cached int8 features.

Sources (one ``source`` string, detected in this order)
    ``tfds`` / ``tfds:speech_commands``
        TensorFlow Datasets' ``speech_commands`` builder (Speech Commands v0.02; TFDS downloads
        and verifies it into its own data folder: ``~/tensorflow_datasets`` or $TFDS_DATA_DIR,
        ``<download_dir>/tfds`` when ``download_dir`` is given). Its train/validation/test
        splits (official lists + canonical test set) are kept; only the ten commands are
        labelled there, so ``words`` must come from them. TFDS's ``_silence_`` examples are
        already 1 s noise slices; the train ones also fill ``background_noise.npz``.
    an ``http(s)://`` URL or a local path of a ``.tar.gz`` / ``.tgz`` / ``.tar`` archive
        e.g. ``http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz`` (or v0.01, or
        the v0.02 test set). Downloaded (resumable, checksum-verified, see :mod:`kwstool.download`)
        into ``download_dir`` (default ``./data/downloads``) and safely extracted beside it.
    a folder
        * an extracted Speech Commands archive: word folders + ``_background_noise_/``, with or
          without ``validation_list.txt`` / ``testing_list.txt``;
        * the canonical test-set layout: word folders + ``_silence_/`` + ``_unknown_/``;
        * a folder-per-label tree of your own recordings (any WAV rate/bit depth/channel count
          :func:`kwstool.audio.load_wav` accepts), optionally with ``_background_noise_/``,
          ``_silence_/`` and ``_unknown_/`` folders that are used the same way.

Labels
    ``["_silence_", "_unknown_", *words]`` in that order (label index = position), ``words``
    in the order given (default: yes, no, up, down, left, right, on, off, stop, go).
    * a clip in a folder named after a word has that word's label (``<word>/**/*.wav``);
    * ``_unknown_`` examples are drawn from every other folder (and ``_unknown_/``);
    * ``_silence_`` examples are ``_silence_/`` clips, then 1 s slices of the
      ``_background_noise_`` recordings, each slice scaled by a gain drawn log-uniformly from
      0.1 to 100 (capped below clipping) so silence spans quiet rooms to loud noise, like the
      canonical test set's ``_silence_`` clips.
    Per split, ``ceil(share/100 * n_known)`` examples of each are taken (TensorFlow
    speech_commands' convention; default 10 %), fewer when the pool runs out. A split without
    any keyword clip (small sets) takes ``n_known`` as the keyword count it should have had
    (all keywords * its percentage) and warns. Draws are deterministic: candidates are ranked
    by ``sha1("<seed>:<path>")``; a clip that fails to decode is replaced by the next one.

Splits (train / validation / test), speaker-disjoint
    * ``validation_list.txt`` / ``testing_list.txt`` at the source root decide when present
      (paths relative to the root, as in the official archive); all other clips are train;
    * otherwise the official hash rule (TF speech_commands ``which_set``) on the speaker id:
      ``sha1(speaker)`` as an integer modulo ``2**27``, scaled to a percentage; below
      ``validation_pct`` -> validation, below ``validation_pct + testing_pct`` -> test.
    The speaker id of a clip is
      1. the file-name part before ``_nohash_`` (official naming ``<speaker>_nohash_<n>.wav``);
         in a ``_unknown_`` folder a leading ``<word>_`` is dropped, as the canonical test set
         names those clips ``<word>_<speaker>_nohash_<n>.wav``;
      2. else, for a clip in a subfolder of its label folder (``hey_lamp/alice/01.wav``), the
         subfolder name (``alice``);
      3. else the file name without extension: each such file counts as its own speaker, so
         name your files ``<speaker>_nohash_<n>.wav`` (or use speaker subfolders) to keep
         speakers out of two splits.
    The canonical test-set layout holds only speakers of the official test band (10-20 %), so
    there the percentage is first stretched, ``(p - 10) * 10 mod 100``, to yield three splits.
    Background-noise recordings are split by time: the first part of each recording feeds
    train's silence, the next ``validation_pct`` % validation's, the last ``testing_pct`` % test's.

Output (``data_dir``; default ``./data/<source name>``: the folder's name, the archive's name
without extension, or ``speech_commands_tfds``; e.g. ``./data/speech_commands_mini``)
    per split ``{split}_features.npy`` int8 (N, 49, 40), ``{split}_audio.npy`` int16 (N, 16000),
    ``{split}_labels.npy`` int16 (N,), ``{split}_files.txt`` (source path relative to the source
    root, or ``#silence:<noise file>@<offset>`` for slices); ``background_noise.npz`` (int16
    16 kHz, one array per recording, keyed by file stem); ``manifest.json`` last, atomically
    (see docs/ARCHITECTURE.md). The manifest's ``inputs_hash`` covers the input files (paths,
    sizes, mtimes; for archives their checksum), every parameter, the feature parameters and the
    kwstool version: a re-run with the same hash returns at once, anything changed rebuilds.
    Unreadable clips are skipped and listed under ``skipped``.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from kwstool import __version__
from kwstool.core.contract import CLIP_SAMPLES, NUM_CHANNELS, NUM_FRAMES, SHAPE
from kwstool.core.labels import (
    BACKGROUND_NOISE,
    DEFAULT_WORDS,
    SILENCE,
    SPEECH_COMMANDS_WORDS,
    UNKNOWN,
)
from kwstool.core import tfenv
from kwstool.core.console import make_console
from kwstool.errors import KwsError

FORMAT = 1
RULES_VERSION = 1  # bump when selection/split rules change: invalidates every cached prepare
SPLITS = ("train", "validation", "test")
TFDS_SOURCES = ("tfds", "tfds:speech_commands")
TFDS_SOURCE = "tfds:speech_commands"
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # TF speech_commands' constant for the split hash
OFFICIAL_VALIDATION_PCT = 10.0  # the percentages the official lists and test set were made with
OFFICIAL_TESTING_PCT = 10.0
SILENCE_GAIN_RANGE = (0.1, 100.0)
DEFAULT_ROOT = Path("data")
DECODE_CHUNK = 64  # files per decode task
FEATURE_BATCH = 2048  # clips per features.compute call (one progress step)


# --- results -------------------------------------------------------------------------------------
@dataclass
class PrepareResult:
    """What :func:`prepare` did; ``to_dict()`` is what ``kwstool prepare --json`` prints."""

    data_dir: Path
    source: str
    source_kind: str
    words: list[str]
    labels: list[str]
    splits: dict  # {split: {"count": n, "per_class": {label: n}}}
    skipped: list[dict]
    warnings: list[str]
    inputs_hash: str
    cached: bool  # True: the existing prepared data matched and nothing was done
    seconds: float
    clips_found: int  # clips in the source (noise recordings not counted)
    clips_decoded: int  # clips read this run (0 when cached)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data_dir"] = str(self.data_dir)
        return d


@dataclass
class SplitData:
    features: np.ndarray  # int8 (N, 49, 40)
    audio: np.ndarray  # int16 (N, 16000)
    labels: np.ndarray  # int16 (N,)
    files: list[str]


class PreparedData:
    """A prepared data folder (read by train and evaluate); arrays load on first use."""

    def __init__(self, path: Path, manifest: dict, mmap: bool = False):
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
            mode = "r" if self._mmap else None
            arrays = {}
            for part in ("features", "audio", "labels"):
                f = self.path / f"{name}_{part}.npy"
                try:
                    arrays[part] = np.load(f, mmap_mode=mode, allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise KwsError(f"{f}: cannot read prepared data ({exc}); re-run "
                                   f"`kwstool prepare --force --data-dir {self.path}`") from None
            files = (self.path / f"{name}_files.txt").read_text(encoding="utf-8").splitlines()
            n = self.manifest["splits"][name]["count"]
            shapes = {k: v.shape for k, v in arrays.items()}
            if (shapes["features"][1:] != SHAPE or shapes["audio"][1:] != (CLIP_SAMPLES,)
                    or {shapes["features"][0], shapes["audio"][0], shapes["labels"][0],
                        len(files)} != {n}):
                raise KwsError(f"{self.path}: {name} arrays {shapes} / {len(files)} files do not "
                               f"match the manifest count {n}; re-run `kwstool prepare --force "
                               f"--data-dir {self.path}`")
            self._splits[name] = SplitData(arrays["features"], arrays["audio"], arrays["labels"],
                                           files)
        return self._splits[name]

    @property
    def background_noise(self) -> dict[str, np.ndarray]:
        if self._noise is None:
            f = self.path / "background_noise.npz"
            with np.load(f, allow_pickle=False) as z:
                self._noise = {k: z[k] for k in z.files}
        return self._noise


def load_prepared(path: str | os.PathLike, mmap: bool = False,
                  check_features: bool = True) -> PreparedData:
    """Open a folder written by :func:`prepare`.

    ``mmap=True`` memory-maps the arrays instead of reading them. With ``check_features`` the
    stored feature parameters must equal :data:`kwstool.features.FEATURE_PARAMS`.
    """
    p = Path(path)
    mf = p / "manifest.json"
    if not mf.is_file():
        raise KwsError(f"{p}: no manifest.json, so no complete prepared data here; run "
                       f"`kwstool prepare --data-dir {p}` first")
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KwsError(f"{mf}: unreadable ({exc}); re-run `kwstool prepare --force`") from None
    if manifest.get("format") != FORMAT:
        raise KwsError(f"{mf}: prepared-data format {manifest.get('format')} is not {FORMAT}; "
                       f"re-run `kwstool prepare --force --data-dir {p}`")
    if check_features:
        from kwstool.core.frontend import FEATURE_PARAMS

        if manifest.get("features") != FEATURE_PARAMS:
            raise KwsError(f"{mf}: features were computed with other front-end parameters; "
                           f"re-run `kwstool prepare --force --data-dir {p}`")
    return PreparedData(p, manifest, mmap=mmap)


# --- speakers and splits -------------------------------------------------------------------------
_NOHASH = re.compile(r"_nohash_.*$")


def _strip_wav(name: str) -> str:
    while name.lower().endswith(".wav"):
        name = name[:-4]
    return name


def speaker_of(rel: str) -> str:
    """Speaker id of a clip from its path relative to the source root (see module docs)."""
    parts = rel.split("/")
    base = parts[-1]
    if "_nohash_" in base:
        speaker = _NOHASH.sub("", base)
        if parts[0] == UNKNOWN and "_" in speaker:
            speaker = speaker.rsplit("_", 1)[1]
        return speaker
    if len(parts) > 2:
        return parts[1]
    return _strip_wav(base)


def hash_percentage(speaker: str) -> float:
    """TF speech_commands' stable hash of a speaker id, as a percentage in [0, 100]."""
    h = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    return (h % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)


def test_band_percentage(speaker: str) -> float:
    """Hash percentage for the canonical test layout: the official test band stretched to 0-100.

    The canonical test set holds only speakers whose official percentage lies in the test band
    [10, 20) (that is how it was made), so the plain rule would put every clip in ``test``.
    ``(p - 10) * 10 mod 100`` spreads that band evenly, keeping the split stable per speaker.
    """
    p = hash_percentage(speaker)
    return ((p - OFFICIAL_VALIDATION_PCT) * 100.0 / OFFICIAL_TESTING_PCT) % 100.0


def which_split(speaker: str, validation_pct: float, testing_pct: float,
                test_layout: bool = False) -> str:
    """Split of one speaker id: TF speech_commands' ``which_set`` rule (see module docs)."""
    pct = test_band_percentage(speaker) if test_layout else hash_percentage(speaker)
    if pct < validation_pct:
        return "validation"
    if pct < validation_pct + testing_pct:
        return "test"
    return "train"


def _rank(seed: int, name: str) -> bytes:
    """Deterministic draw order of a candidate."""
    return hashlib.sha1(f"{seed}:{name}".encode("utf-8")).digest()


# --- scanning a folder source --------------------------------------------------------------------
@dataclass
class _Clip:
    rel: str  # posix path relative to the source root
    folder: str  # top-level folder (label folder)
    size: int
    mtime_ns: int
    split: str = "train"


@dataclass
class _Scan:
    root: Path
    kind: str  # "speech_commands" | "test_layout" | "folders"
    clips: list[_Clip]
    noise: list[_Clip]
    lists: dict  # {"validation": set, "test": set} when list files are present, else {}
    list_stats: list  # [(name, size, mtime_ns)] of the list files


def _is_wav(name: str) -> bool:
    return name.lower().endswith(".wav") and not name.startswith(".")


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
            elif _is_wav(e.name) and e.is_file():
                yield Path(e.path).relative_to(root).as_posix(), e.stat()


def scan_folder(root: Path) -> _Scan:
    """List every clip and noise recording under ``root`` (sorted, with sizes and mtimes)."""
    if not root.is_dir():
        raise KwsError(f"{root}: not a folder")
    top = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    clips: list[_Clip] = []
    noise: list[_Clip] = []
    for d in top:
        for rel, st in _walk_wavs(d, root):
            c = _Clip(rel, d.name, st.st_size, st.st_mtime_ns)
            (noise if d.name == BACKGROUND_NOISE else clips).append(c)
    clips.sort(key=lambda c: c.rel)
    noise.sort(key=lambda c: c.rel)
    lists: dict = {}
    list_stats = []
    for split, fname in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        f = root / fname
        if f.is_file():
            st = f.stat()
            list_stats.append((fname, st.st_size, st.st_mtime_ns))
            lists[split] = {ln.strip() for ln in f.read_text(encoding="utf-8").splitlines()
                            if ln.strip()}
    names = {d.name for d in top}
    if SILENCE in names and UNKNOWN in names:
        kind = "test_layout"
    elif lists or (BACKGROUND_NOISE in names and len(names & SPEECH_COMMANDS_WORDS) >= 10):
        kind = "speech_commands"
    else:
        kind = "folders"
    if not clips:
        raise KwsError(f"{root}: no .wav files in its subfolders; expected one folder per label "
                       f"(e.g. {root}/yes/*.wav)")
    return _Scan(root, kind, clips, noise, lists, list_stats)


def _assign_splits(scan: _Scan, validation_pct: float, testing_pct: float) -> str:
    if scan.lists:
        val, test = scan.lists.get("validation", set()), scan.lists.get("test", set())
        for c in scan.clips:
            c.split = "validation" if c.rel in val else "test" if c.rel in test else "train"
        return "lists"
    cache: dict[str, str] = {}
    for c in scan.clips:
        spk = speaker_of(c.rel)
        if spk not in cache:
            cache[spk] = which_split(spk, validation_pct, testing_pct,
                                     test_layout=scan.kind == "test_layout")
        c.split = cache[spk]
    return "test_band_hash" if scan.kind == "test_layout" else "hash"


# --- hashing inputs ------------------------------------------------------------------------------
def _hash(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _params_record(words, silence_share, unknown_share, validation_pct, testing_pct, seed) -> dict:
    from kwstool.core.frontend import FEATURE_PARAMS

    return {"format": FORMAT, "kwstool_version": __version__, "features": FEATURE_PARAMS,
            "words": list(words), "silence_share": silence_share, "unknown_share": unknown_share,
            "validation_pct": validation_pct, "testing_pct": testing_pct, "seed": seed,
            "silence_gain_range": list(SILENCE_GAIN_RANGE), "rules": RULES_VERSION}


def _folder_inputs(scan: _Scan) -> dict:
    return {"clips": [(c.rel, c.size, c.mtime_ns) for c in scan.clips],
            "noise": [(c.rel, c.size, c.mtime_ns) for c in scan.noise],
            "lists": scan.list_stats}


def _listing(folder: Path) -> list:
    """(relative path, size, mtime) of every file under ``folder`` (for TFDS's data folder)."""
    out = []
    if folder.is_dir():
        for dirpath, _, files in os.walk(folder):
            for f in files:
                p = Path(dirpath, f)
                st = p.stat()
                out.append((p.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns))
    return sorted(out)


# --- progress -------------------------------------------------------------------------------------
class _Progress:
    """Rich progress bars on stderr, or nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._bar = None

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        if not self.enabled or total == 0:
            yield lambda n: None
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        with Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(),
                      console=make_console(stderr=True)) as bar:
            t = bar.add_task(description, total=total)
            yield lambda n: bar.advance(t, n)


# --- decoding ------------------------------------------------------------------------------------
def _decode_all(paths: Sequence[Path], progress: _Progress, what: str = "decode clips"
                ) -> list[np.ndarray | str]:
    """Decode WAVs to (16000,) int16 in a thread pool; a failure gives its one-line reason."""
    from kwstool.core.audio import load_wav

    def work(chunk: Sequence[Path]) -> list:
        out = []
        for p in chunk:
            try:
                out.append(load_wav(p))
            except KwsError as exc:
                out.append(str(exc))
        return out

    chunks = [paths[i:i + DECODE_CHUNK] for i in range(0, len(paths), DECODE_CHUNK)]
    results: list = []
    workers = max(1, min(8, (os.cpu_count() or 1) * 2))
    with progress.task(what, len(paths)) as advance, ThreadPoolExecutor(workers) as pool:
        for part in pool.map(work, chunks):
            results.extend(part)
            advance(len(part))
    return results


def _features(audio: np.ndarray, progress: _Progress, label: str) -> np.ndarray:
    from kwstool.core.frontend import compute

    out = np.empty((len(audio), *SHAPE), dtype=np.int8)
    with progress.task(f"features {label}", len(audio)) as advance:
        for i in range(0, len(audio), FEATURE_BATCH):
            out[i:i + FEATURE_BATCH] = compute(audio[i:i + FEATURE_BATCH])
            advance(min(FEATURE_BATCH, len(audio) - i))
    return out


# --- silence slices ------------------------------------------------------------------------------
def _noise_range(length: int, split: str, validation_pct: float, testing_pct: float
                 ) -> tuple[int, int]:
    """Sample range of one noise recording reserved for ``split`` (train first, test last)."""
    a = int(length * (100.0 - validation_pct - testing_pct) / 100.0)
    b = int(length * (100.0 - testing_pct) / 100.0)
    return {"train": (0, a), "validation": (a, b), "test": (b, length)}[split]


def _slice_gain(seed: int, line: str, peak: int) -> float:
    """Log-uniform gain in SILENCE_GAIN_RANGE from the slice's name, capped below clipping."""
    u = int.from_bytes(_rank(seed, line)[:8], "big") / 2.0**64
    lo, hi = SILENCE_GAIN_RANGE
    gain = lo * (hi / lo) ** u
    return min(gain, 32767.0 / peak) if peak else gain


def _silence_slices(noise: dict[str, np.ndarray], count: int, split: str, split_index: int,
                    validation_pct: float, testing_pct: float, seed: int
                    ) -> tuple[list[str], np.ndarray]:
    """``count`` 1 s slices of the noise recordings from ``split``'s time range."""
    ranges = []
    for rel, x in noise.items():
        lo, hi = _noise_range(len(x), split, validation_pct, testing_pct)
        if hi - lo >= CLIP_SAMPLES:
            ranges.append((rel, x, lo, hi - lo - CLIP_SAMPLES + 1))
    if not ranges or count <= 0:
        return [], np.zeros((0, CLIP_SAMPLES), np.int16)
    rng = np.random.default_rng([seed, split_index, 7])
    weights = np.array([r[3] for r in ranges], dtype=np.float64)
    picks = rng.choice(len(ranges), size=count, p=weights / weights.sum())
    lines, out = [], np.empty((count, CLIP_SAMPLES), np.int16)
    for i, k in enumerate(picks):
        rel, x, lo, positions = ranges[k]
        offset = lo + int(rng.integers(positions))
        seg = x[offset:offset + CLIP_SAMPLES].astype(np.float32)
        line = f"#silence:{rel}@{offset}"
        gain = _slice_gain(seed, line, int(np.abs(seg).max()))
        out[i] = np.clip(np.round(seg * gain), -32768, 32767).astype(np.int16)
        lines.append(line)
    return lines, out


# --- selection -----------------------------------------------------------------------------------
def _parse_words(words: Iterable[str] | str | None) -> list[str]:
    if words is None:
        return list(DEFAULT_WORDS)
    if isinstance(words, str):
        words = words.split(",")
    out = [w.strip() for w in words if w.strip()]
    if not out:
        raise KwsError("--words is empty; give at least one keyword, e.g. --words yes,no")
    for w in out:
        if w.startswith("_"):
            raise KwsError(f"--words: {w!r} is reserved (names starting with '_' are special "
                           f"folders); pick another keyword")
        if "/" in w or "\\" in w:
            raise KwsError(f"--words: {w!r} contains a path separator; give folder names")
    dup = sorted({w for w in out if out.count(w) > 1})
    if dup:
        raise KwsError(f"--words lists {', '.join(dup)} more than once")
    return out


def _check_params(silence_share: float, unknown_share: float, validation_pct: float,
                  testing_pct: float) -> None:
    for name, v in (("--silence-share", silence_share), ("--unknown-share", unknown_share)):
        if not (0 <= v <= 1000):
            raise KwsError(f"{name} {v} is out of range; give a percentage of the keyword "
                           f"count from 0 to 1000")
    for name, v in (("--validation-pct", validation_pct), ("--testing-pct", testing_pct)):
        if not (0 < v < 100):
            raise KwsError(f"{name} {v} is out of range; give a percentage above 0 and below 100")
    if validation_pct + testing_pct >= 100:
        raise KwsError(f"--validation-pct + --testing-pct is {validation_pct + testing_pct}; "
                       f"it must stay below 100 to leave clips for training")


def _share_count(share: float, known: int) -> int:
    return int(math.ceil(known * share / 100.0))


def _share_bases(known: dict[str, int], validation_pct: float, testing_pct: float,
                 warnings: list[str]) -> dict[str, float]:
    """Keyword count per split that the silence/unknown shares are taken of.

    Normally the split's own keyword count (TF's convention). A split that got no keyword clip
    at all (every keyword speaker hashed elsewhere, as in small sets) uses the keyword count it
    should have had, so it still gets silence/unknown examples instead of staying empty.
    """
    total = sum(known.values())
    nominal = {"train": 100.0 - validation_pct - testing_pct, "validation": validation_pct,
               "test": testing_pct}
    out: dict[str, float] = {}
    for s, n in known.items():
        if n == 0 and total:
            out[s] = total * nominal[s] / 100.0
            warnings.append(f"{s} has no keyword clips (no keyword speaker falls in it); it "
                            f"holds only {SILENCE}/{UNKNOWN} examples: add keyword recordings "
                            f"from more speakers")
        else:
            out[s] = n
    return out


class _Split:
    """Rows of one split while it is assembled: label index, file line, audio row."""

    def __init__(self):
        self.labels: list[int] = []
        self.lines: list[str] = []
        self.audio: list[np.ndarray] = []

    def add(self, label: int, line: str, audio: np.ndarray) -> None:
        self.labels.append(label)
        self.lines.append(line)
        self.audio.append(audio)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        order = sorted(range(len(self.labels)), key=lambda i: (self.labels[i], self.lines[i]))
        audio = np.empty((len(order), CLIP_SAMPLES), np.int16)
        for j, i in enumerate(order):
            audio[j] = self.audio[i]
        labels = np.array([self.labels[i] for i in order], dtype=np.int16)
        return audio, labels, [self.lines[i] for i in order]


# --- the folder pipeline -------------------------------------------------------------------------
@dataclass
class _Built:
    splits: dict  # {split: (audio, labels, lines)}
    noise: dict  # {name: int16 array}
    skipped: list
    warnings: list
    clips_found: int
    clips_decoded: int
    extra: dict = field(default_factory=dict)  # manifest extras (split rule, tfds info)


def _build_from_scan(scan: _Scan, words: list[str], silence_share: float, unknown_share: float,
                     validation_pct: float, testing_pct: float, seed: int, progress: _Progress
                     ) -> _Built:
    labels = [SILENCE, UNKNOWN, *words]
    index = {w: i for i, w in enumerate(labels)}
    folders = sorted({c.folder for c in scan.clips})
    for w in words:
        if w not in folders:
            shown = ", ".join(f for f in folders if not f.startswith("_"))
            raise KwsError(f"word {w!r} has no clips in {scan.root} (no {w}/ folder with .wav "
                           f"files); its label folders are: {shown}; fix --words")
    rule = _assign_splits(scan, validation_pct, testing_pct)
    warnings: list[str] = []
    if rule == "lists" and (validation_pct, testing_pct) != (10, 10):
        warnings.append("validation_list.txt/testing_list.txt decide the splits; "
                        "--validation-pct/--testing-pct are ignored")

    # Candidates per split: keywords (all), unknown and _silence_ clips (ranked pools).
    known = {s: [] for s in SPLITS}
    unknown_pool = {s: [] for s in SPLITS}
    silence_pool = {s: [] for s in SPLITS}
    for c in scan.clips:
        if c.folder in index and c.folder not in (SILENCE, UNKNOWN):
            known[c.split].append(c)
        elif c.folder == SILENCE:
            silence_pool[c.split].append(c)
        else:
            unknown_pool[c.split].append(c)
    for pools in (unknown_pool, silence_pool):
        for s in SPLITS:
            pools[s].sort(key=lambda c: _rank(seed, c.rel))

    # Decode keywords + the first `need` of each pool; refill from the pools when clips fail.
    decoded: dict[str, np.ndarray] = {}
    skipped: list[dict] = []
    base = _share_bases({s: len(known[s]) for s in SPLITS}, validation_pct, testing_pct,
                        warnings)
    want_unknown = {s: _share_count(unknown_share, base[s]) for s in SPLITS}
    want_silence = {s: _share_count(silence_share, base[s]) for s in SPLITS}
    taken = {("u", s): 0 for s in SPLITS} | {("s", s): 0 for s in SPLITS}
    good = {("u", s): [] for s in SPLITS} | {("s", s): [] for s in SPLITS}
    jobs: list[_Clip] = [c for s in SPLITS for c in known[s]]
    pool_of = {("u", s): (unknown_pool[s], want_unknown[s]) for s in SPLITS}
    pool_of |= {("s", s): (silence_pool[s], want_silence[s]) for s in SPLITS}
    first = True
    while True:
        batch_pool: list[tuple[tuple, _Clip]] = []
        for key, (pool, want) in pool_of.items():
            missing = want - len(good[key])
            more = pool[taken[key]:taken[key] + max(0, missing)]
            taken[key] += len(more)
            batch_pool += [(key, c) for c in more]
        batch = (jobs if first else []) + [c for _, c in batch_pool]
        if not batch:
            break
        results = _decode_all([scan.root / c.rel for c in batch], progress)
        for c, r in zip(batch, results):
            if isinstance(r, str):
                skipped.append({"file": c.rel, "reason": r})
            else:
                decoded[c.rel] = r
        for key, c in batch_pool:
            if c.rel in decoded:
                good[key].append(c)
        first = False
    clips_decoded = len(decoded) + len(skipped)

    noise: dict[str, np.ndarray] = {}
    if scan.noise:
        from kwstool.core.audio import load_wav

        for c in scan.noise:
            try:
                noise[c.rel] = load_wav(scan.root / c.rel, clip_samples=None)
            except KwsError as exc:
                skipped.append({"file": c.rel, "reason": str(exc)})

    out: dict[str, tuple] = {}
    for i, s in enumerate(SPLITS):
        rows = _Split()
        for c in known[s]:
            if c.rel in decoded:
                rows.add(index[c.folder], c.rel, decoded.pop(c.rel))
        for c in good[("u", s)]:
            rows.add(index[UNKNOWN], c.rel, decoded.pop(c.rel))
        for c in good[("s", s)]:
            rows.add(index[SILENCE], c.rel, decoded.pop(c.rel))
        short = want_silence[s] - len(good[("s", s)])
        lines, slices = _silence_slices(noise, short, s, i, validation_pct, testing_pct, seed)
        for line, a in zip(lines, slices):
            rows.add(index[SILENCE], line, a)
        out[s] = rows.arrays()
    skipped.sort(key=lambda d: d["file"])
    return _Built(out, {Path(k).stem: v for k, v in noise.items()}, skipped, warnings,
                  len(scan.clips), clips_decoded, {"split_rule": rule, "source_kind": scan.kind})


# --- TFDS ----------------------------------------------------------------------------------------
class _BottomK:
    """Keep the ``cap`` items with the smallest keys (all items when ``cap`` is None)."""

    def __init__(self, cap: int | None):
        self.cap = cap
        self._heap: list = []  # max-heap via negated rank bytes

    def offer(self, key: bytes, item) -> None:
        neg = bytes(255 - b for b in key)
        if self.cap is None or len(self._heap) < self.cap:
            heapq.heappush(self._heap, (neg, item))
        elif neg > self._heap[0][0]:
            heapq.heapreplace(self._heap, (neg, item))

    def ranked(self) -> list:
        return [item for _, item in sorted(self._heap, key=lambda t: t[0], reverse=True)]


def _quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ info logs before importing TFDS."""
    tfenv.quiet()


def _build_from_tfds(words: list[str], silence_share: float, unknown_share: float, seed: int,
                     progress: _Progress, tfds_dir: Path | None) -> tuple[_Built, dict]:
    _quiet_tensorflow()
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise KwsError("--source tfds needs tensorflow-datasets (`pip install tensorflow-datasets`)"
                       "; or pass the archive URL/path as --source") from None
    builder = tfds.builder("speech_commands", data_dir=str(tfds_dir) if tfds_dir else None)
    try:
        builder.download_and_prepare()
    except Exception as exc:  # network, disk, TFDS errors: one line with the way out
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KwsError(f"TFDS speech_commands download/prepare failed ({msg}); check the network "
                       f"and disk, or use --source http://download.tensorflow.org/data/"
                       f"speech_commands_v0.02.tar.gz") from None
    names = list(builder.info.features["label"].names)
    missing = [w for w in words if w not in names]
    if missing:
        raise KwsError(f"word {missing[0]!r} is not labelled in TFDS speech_commands (it has only "
                       f"{', '.join(n for n in names if not n.startswith('_'))}); use --source "
                       f"http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz for "
                       f"other words")
    labels = [SILENCE, UNKNOWN, *words]
    index = {w: i for i, w in enumerate(labels)}
    from kwstool.core.audio import fit_length

    out: dict[str, tuple] = {}
    found = 0
    noise_parts: list[np.ndarray] = []
    warnings: list[str] = []
    for s in SPLITS:
        try:
            total = int(builder.info.splits[s].num_examples)
        except Exception:  # split sizes unknown (e.g. mocked metadata): keep every candidate
            total = 0
        cap_u = _share_count(unknown_share, total) if total else None
        cap_s = _share_count(silence_share, total) if total else None
        ds = builder.as_dataset(split=s, shuffle_files=False,
                                read_config=tfds.ReadConfig(add_tfds_id=True))
        rows = _Split()
        unk, sil = _BottomK(cap_u), _BottomK(cap_s)
        n_known = 0
        with progress.task(f"read tfds {s}", total) as advance:
            for ex in tfds.as_numpy(ds):
                found += 1
                advance(1)
                name = names[int(ex["label"])]
                line = "tfds:" + ex["tfds_id"].decode()
                audio = fit_length(np.asarray(ex["audio"], dtype=np.int16).reshape(-1))
                if name in index and name not in (SILENCE, UNKNOWN):
                    rows.add(index[name], line, audio)
                    n_known += 1
                elif name == SILENCE:
                    sil.offer(_rank(seed, line), (line, audio))
                else:
                    unk.offer(_rank(seed, line), (line, audio))
        for pool, label, share in ((unk, UNKNOWN, unknown_share), (sil, SILENCE, silence_share)):
            for line, audio in pool.ranked()[:_share_count(share, n_known)]:
                rows.add(index[label], line, audio)
        if s == "train":  # every kept train silence example feeds the noise bank
            noise_parts = [audio for _, audio in sil.ranked()]
        out[s] = rows.arrays()
    noise = {"tfds_train_silence": np.concatenate(noise_parts)} if noise_parts else {}
    if noise:
        warnings.append("background_noise.npz holds TFDS's train _silence_ examples "
                        "(TFDS does not keep the full noise recordings)")
    tfds_info = {"full_name": builder.info.full_name, "data_dir": str(builder.data_dir)}
    built = _Built(out, noise, [], warnings, found, found,
                   {"split_rule": "tfds", "source_kind": "tfds", "tfds": tfds_info})
    return built, tfds_info


# --- writing -------------------------------------------------------------------------------------
def _output_files() -> list[str]:
    files = ["background_noise.npz"]
    for s in SPLITS:
        files += [f"{s}_features.npy", f"{s}_audio.npy", f"{s}_labels.npy", f"{s}_files.txt"]
    return files


def _counts(labels: np.ndarray, names: list[str]) -> dict:
    per = np.bincount(labels.astype(np.int64), minlength=len(names)) if len(labels) else \
        np.zeros(len(names), np.int64)
    return {"count": int(len(labels)), "per_class": {n: int(per[i]) for i, n in enumerate(names)}}


def _write(data_dir: Path, built: _Built, labels: list[str], progress: _Progress) -> dict:
    """Write all arrays (each atomically); return the per-split counts. Manifest is separate."""
    from kwstool import fileio
    from kwstool.data.download import check_free_space

    rows = sum(len(built.splits[s][1]) for s in SPLITS)
    noise_bytes = sum(v.nbytes for v in built.noise.values())
    check_free_space(data_dir, rows * (CLIP_SAMPLES * 2 + NUM_FRAMES * NUM_CHANNELS + 2) + noise_bytes,
                     "writing the prepared data")
    splits = {}
    for s in SPLITS:
        audio, lab, lines = built.splits[s]
        feats = _features(audio, progress, s)
        fileio.save_npy(data_dir / f"{s}_features.npy", feats)
        fileio.save_npy(data_dir / f"{s}_audio.npy", audio)
        fileio.save_npy(data_dir / f"{s}_labels.npy", lab)
        fileio.write_text(data_dir / f"{s}_files.txt", "".join(f"{ln}\n" for ln in lines))
        splits[s] = _counts(lab, labels)
    with fileio.atomic_path(data_dir / "background_noise.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v, np.int16) for k, v in built.noise.items()})
    return splits


# --- source resolution ---------------------------------------------------------------------------
@dataclass
class _Resolved:
    kind: str  # "tfds" | "archive" | "folder"
    source: str  # as recorded in the manifest (URL, absolute path or tfds:speech_commands)
    name: str  # for the default data dir
    root: Path | None = None  # dataset folder (after download/extraction)
    archive: dict | None = None  # archive identity for the inputs hash


def _default_download_dir() -> Path:
    return DEFAULT_ROOT / "downloads"


def _resolve(source: str, download_dir: Path | None, sha256: str | None, progress: bool
             ) -> _Resolved:
    from kwstool.data import download as dl

    s = str(source).strip()
    if s.lower() in TFDS_SOURCES:
        return _Resolved("tfds", TFDS_SOURCE, "speech_commands_tfds")
    if dl.is_url(s):
        name = dl.archive_name(s)
        if not dl.is_archive_name(name):
            raise KwsError(f"{s}: URL must point at a .tar.gz/.tgz/.tar archive such as "
                           f"http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz")
        ddir = Path(download_dir) if download_dir else _default_download_dir()
        res = dl.download(s, ddir, sha256=sha256, progress=progress)
        stem = dl.archive_stem(name)
        root, rec = dl.ensure_extracted(res.path, ddir / stem, progress=progress,
                                        checked=(res.sha256, res.verified))
        return _Resolved("archive", s, stem, root,
                         {"name": name, "sha256": rec["sha256"], "verified": rec["verified"]})
    p = Path(s).expanduser()
    if not p.exists():
        raise KwsError(f"{s}: no such file or folder; give a folder of WAVs, a .tar.gz archive, "
                       f"an http(s) URL, or 'tfds'")
    if p.is_file():
        if not dl.is_archive_name(p.name):
            raise KwsError(f"{p}: not a .tar.gz/.tgz/.tar archive or a folder; point --source at "
                           f"the folder holding one subfolder per label")
        stem = dl.archive_stem(p.name)
        ddir = Path(download_dir) if download_dir else _default_download_dir()
        root, rec = dl.ensure_extracted(p.resolve(), ddir / stem, sha256=sha256, progress=progress)
        return _Resolved("archive", str(p.resolve()), stem, root,
                         {"name": p.name, "sha256": rec["sha256"], "verified": rec["verified"]})
    p = p.resolve()
    return _Resolved("folder", str(p), p.name, p)


# --- prepare -------------------------------------------------------------------------------------
def _cached(data_dir: Path, inputs_hash: str) -> dict | None:
    """The existing manifest when it matches ``inputs_hash`` and its files are all there."""
    mf = data_dir / "manifest.json"
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("inputs_hash") != inputs_hash or manifest.get("format") != FORMAT:
        return None
    sizes = manifest.get("file_sizes", {})
    for f in _output_files():
        try:
            if (data_dir / f).stat().st_size != sizes.get(f):
                return None
        except OSError:
            return None
    return manifest


def _result_from_manifest(data_dir: Path, manifest: dict, cached: bool, seconds: float,
                          decoded: int) -> PrepareResult:
    return PrepareResult(
        data_dir=data_dir, source=manifest["source"], source_kind=manifest["source_kind"],
        words=list(manifest["words"]), labels=list(manifest["labels"]),
        splits={s: {"count": manifest["splits"][s]["count"],
                    "per_class": {lab: manifest["splits"][s]["per_class"][lab]
                                  for lab in manifest["labels"]}} for s in SPLITS},
        skipped=list(manifest["skipped"]),
        warnings=list(manifest.get("warnings", [])), inputs_hash=manifest["inputs_hash"],
        cached=cached, seconds=round(seconds, 3), clips_found=int(manifest["clips_found"]),
        clips_decoded=decoded)


def _tfds_fast_hash(data_dir: Path, params: dict) -> str | None:
    """inputs_hash of an earlier TFDS prepare, from TFDS's files alone (no TensorFlow import)."""
    try:
        manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
        info = manifest["tfds"]
    except (OSError, ValueError, KeyError):
        return None
    return _hash({"params": params, "source": TFDS_SOURCE, "tfds": info,
                  "files": _listing(Path(info["data_dir"]))})


def prepare(source: str = "tfds", data_dir: str | os.PathLike | None = None, *,
            words: Iterable[str] | str | None = None, silence_share: float = 10.0,
            unknown_share: float = 10.0, validation_pct: float = 10.0, testing_pct: float = 10.0,
            seed: int = 0, download_dir: str | os.PathLike | None = None,
            sha256: str | None = None, force: bool = False, progress: bool = True
            ) -> PrepareResult:
    """Prepare ``source`` into ``data_dir`` (see the module documentation); return what was done.

    ``data_dir`` defaults to ``./data/<source name>``; ``download_dir`` (archives and their
    extraction) to ``./data/downloads``. ``force`` rebuilds even when the cache matches.
    """
    t0 = time.perf_counter()
    word_list = _parse_words(words)
    _check_params(silence_share, unknown_share, validation_pct, testing_pct)
    params = _params_record(word_list, silence_share, unknown_share, validation_pct, testing_pct,
                            seed)
    bars = _Progress(progress)
    resolved = _resolve(source, Path(download_dir) if download_dir else None, sha256, progress)
    out_dir = Path(data_dir) if data_dir else DEFAULT_ROOT / resolved.name
    labels = [SILENCE, UNKNOWN, *word_list]

    if resolved.kind == "tfds":
        fast = None if force else _tfds_fast_hash(out_dir, params)
        if fast and (hit := _cached(out_dir, fast)):
            return _result_from_manifest(out_dir, hit, True, time.perf_counter() - t0, 0)
        built, tfds_info = _build_from_tfds(word_list, silence_share, unknown_share, seed, bars,
                                            Path(download_dir) / "tfds" if download_dir else None)
        inputs_hash = _hash({"params": params, "source": TFDS_SOURCE, "tfds": tfds_info,
                             "files": _listing(Path(tfds_info["data_dir"]))})
    else:
        # An archive is identified by its checksum (no need to list its extracted tree).
        scan = None if resolved.kind == "archive" else scan_folder(resolved.root)
        inputs = resolved.archive if scan is None else _folder_inputs(scan)
        inputs_hash = _hash({"params": params, "source": resolved.source,
                             "source_kind": resolved.kind, "inputs": inputs})
        if not force and (hit := _cached(out_dir, inputs_hash)):
            return _result_from_manifest(out_dir, hit, True, time.perf_counter() - t0, 0)
        scan = scan or scan_folder(resolved.root)
        built = _build_from_scan(scan, word_list, silence_share, unknown_share, validation_pct,
                                 testing_pct, seed, bars)
        if resolved.archive:
            built.extra["archive"] = resolved.archive
            if not resolved.archive["verified"]:
                built.warnings.append(f"{resolved.archive['name']} is not a known official "
                                      f"archive and no --sha256 was given: not verified")

    per_word = {w: sum(int(np.sum(built.splits[s][1] == labels.index(w))) for s in SPLITS)
                for w in word_list}
    for w, n in per_word.items():  # a word whose clips were all unreadable
        if n == 0:
            bad = [d for d in built.skipped if d["file"].split("/")[0] == w]
            raise KwsError(f"word {w!r} has no readable clips ({len(bad)} skipped, e.g. "
                           f"{bad[0]['reason'] if bad else 'none'}); fix or replace its WAVs")
    for s in SPLITS:  # every split must hold something
        if len(built.splits[s][1]) == 0:
            raise KwsError(
                f"split {s!r} is empty: no speaker of {resolved.source} falls in it; add clips "
                f"from more speakers (name files <speaker>_nohash_<n>.wav) or change "
                f"--validation-pct/--testing-pct")
    for s in SPLITS:
        per = np.bincount(built.splits[s][1].astype(np.int64), minlength=len(labels))
        empty = [labels[i] for i in range(len(labels)) if per[i] == 0]
        if set(word_list) <= set(empty):  # already reported as a split without keyword clips
            empty = [e for e in empty if e not in word_list]
        if empty:
            built.warnings.append(f"{s} has no examples of {', '.join(empty)}")
    if not built.noise and resolved.kind != "tfds":
        built.warnings.append(f"no {BACKGROUND_NOISE}/ recordings in the source: no silence "
                              f"slices and no noise for augmentation")

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "manifest.json").unlink(missing_ok=True)  # invalid while files are replaced
        splits = _write(out_dir, built, labels, bars)
    except OSError as exc:
        raise KwsError(f"{out_dir}: cannot write the prepared data ({exc.strerror or exc}); "
                       f"free some space or choose another --data-dir") from None
    manifest = {
        "format": FORMAT, "kwstool_version": __version__, "source": resolved.source,
        "source_kind": built.extra.get("source_kind", resolved.kind), "words": word_list,
        "labels": labels, "features": params["features"], "splits": splits,
        "inputs_hash": inputs_hash, "skipped": built.skipped, "warnings": built.warnings,
        "params": {k: params[k] for k in ("silence_share", "unknown_share", "validation_pct",
                                          "testing_pct", "seed")},
        "split_rule": built.extra.get("split_rule"), "clips_found": built.clips_found,
        "background_noise": sorted(built.noise),
        "file_sizes": {f: (out_dir / f).stat().st_size for f in _output_files()},
    }
    for key in ("tfds", "archive"):
        if key in built.extra:
            manifest[key] = built.extra[key]
    from kwstool.fileio import write_json

    write_json(out_dir / "manifest.json", manifest)
    return _result_from_manifest(out_dir, manifest, False, time.perf_counter() - t0,
                                 built.clips_decoded)
