"""Selecting and decoding the clips of a scanned source into the rows of each split.

Keywords are all kept; ``_unknown_`` and ``_silence_`` examples are drawn per split by rank
(see :mod:`kwstool.data.prepared`); missing silence is filled with background-noise slices.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.contract import CLIP_SAMPLES
from kwstool.core.labels import SILENCE, UNKNOWN
from kwstool.data.rows import DECODE_CHUNK, NoiseSlice, Rows, Split, workers
from kwstool.data.sources import Clip, Scan
from kwstool.data.splits import noise_range
from kwstool.data.store import SPLITS, Built, Progress
from kwstool.errors import KwsError

SILENCE_GAIN_RANGE = (0.1, 100.0)


def rank(seed: int, name: str) -> bytes:
    """Deterministic draw order of a candidate."""
    return hashlib.sha1(f"{seed}:{name}".encode()).digest()


#: Verdict on one clip file: the one-line reason it is unreadable, or None and whether it is
#: longer than a clip (then centred on its loudest word, :func:`kwstool.data.takes.fit_clip`).
Verdict = tuple[str | None, bool]


def check_all(
    paths: Sequence[Path], progress: Progress, what: str = "check clips"
) -> list[Verdict]:
    """Decode clip files in a thread pool and keep only the verdicts (the audio is decoded
    again when it is written, see :mod:`rows`)."""
    from kwstool.data.takes import read_clip

    def work(chunk: Sequence[Path]) -> list[Verdict]:
        out: list[Verdict] = []
        for p in chunk:
            try:
                out.append((None, read_clip(p)[1]))
            except KwsError as exc:
                out.append((str(exc), False))
        return out

    chunks = [paths[i : i + DECODE_CHUNK] for i in range(0, len(paths), DECODE_CHUNK)]
    results: list[Verdict] = []
    with progress.task(what, len(paths)) as advance, ThreadPoolExecutor(workers()) as pool:
        for part in pool.map(work, chunks):
            results.extend(part)
            advance(len(part))
    return results


# --- silence slices ------------------------------------------------------------------------------
def _slice_gain(seed: int, line: str, peak: int) -> float:
    """Log-uniform gain in SILENCE_GAIN_RANGE from the slice's name, capped below clipping."""
    u = int.from_bytes(rank(seed, line)[:8], "big") / 2.0**64
    lo, hi = SILENCE_GAIN_RANGE
    gain: float = lo * (hi / lo) ** u
    return min(gain, 32767.0 / peak) if peak else gain


def silence_picks(
    noise: dict[str, np.ndarray],
    count: int,
    split: str,
    split_index: int,
    validation_pct: float,
    testing_pct: float,
    seed: int,
) -> list[tuple[str, NoiseSlice]]:
    """``count`` 1 s slices (file line, slice) of the noise recordings from ``split``'s time
    range; the audio is cut when the rows are written."""
    ranges = []
    for rel, x in noise.items():
        lo, hi = noise_range(len(x), split, validation_pct, testing_pct)
        if hi - lo >= CLIP_SAMPLES:
            ranges.append((rel, x, lo, hi - lo - CLIP_SAMPLES + 1))
    if not ranges or count <= 0:
        return []
    rng = np.random.default_rng([seed, split_index, 7])
    weights = np.array([r[3] for r in ranges], dtype=np.float64)
    picks = rng.choice(len(ranges), size=count, p=weights / weights.sum())
    out = []
    for k in picks:
        rel, x, lo, positions = ranges[k]
        offset = lo + int(rng.integers(positions))
        peak = int(np.abs(x[offset : offset + CLIP_SAMPLES].astype(np.float32)).max())
        line = f"#silence:{rel}@{offset}"
        out.append((line, NoiseSlice(x, offset, _slice_gain(seed, line, peak))))
    return out


# --- selection -----------------------------------------------------------------------------------
def share_count(share: float, known: float) -> int:
    return math.ceil(known * share / 100.0)


def share_bases(
    known: dict[str, int], validation_pct: float, testing_pct: float, warnings: list[str]
) -> dict[str, float]:
    """Keyword count per split that the silence/unknown shares are taken of.

    Normally the split's own keyword count (TF's convention). A split that got no keyword clip
    at all (every keyword speaker hashed elsewhere, as in small sets) uses the keyword count it
    should have had, so it still gets silence/unknown examples instead of staying empty.
    """
    total = sum(known.values())
    nominal = {
        "train": 100.0 - validation_pct - testing_pct,
        "validation": validation_pct,
        "test": testing_pct,
    }
    out: dict[str, float] = {}
    for s, n in known.items():
        if n == 0 and total:
            out[s] = total * nominal[s] / 100.0
            warnings.append(
                f"{s} has no keyword clips (no keyword speaker falls in it); it "
                f"holds only {SILENCE}/{UNKNOWN} examples: add keyword recordings "
                f"from more speakers"
            )
        else:
            out[s] = n
    return out


# --- the folder pipeline -------------------------------------------------------------------------
def _pools(
    scan: Scan, index: dict[str, int], seed: int
) -> tuple[dict[str, list[Clip]], dict[str, list[Clip]], dict[str, list[Clip]]]:
    """Keyword clips per split, and the ranked unknown and ``_silence_`` candidates."""
    known: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    unknown_pool: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    silence_pool: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    for c in scan.clips:
        if c.folder in index and c.folder not in (SILENCE, UNKNOWN):
            known[c.split].append(c)
        elif c.folder == SILENCE:
            silence_pool[c.split].append(c)
        else:
            unknown_pool[c.split].append(c)
    for pools in (unknown_pool, silence_pool):
        for s in SPLITS:
            pools[s].sort(key=lambda c: rank(seed, c.rel))
    return known, unknown_pool, silence_pool


def _decode_selected(
    scan: Scan,
    jobs: list[Clip],
    pool_of: dict[tuple[str, str], tuple[list[Clip], int]],
    progress: Progress,
) -> tuple[set[str], dict[tuple[str, str], list[Clip]], list[dict[str, Any]], int]:
    """Check ``jobs`` + the first ``want`` of each pool decode; refill from the pools when clips
    fail. Returns the readable clips, the good ones of each pool, the skipped ones, and how many
    readable ones are longer than a clip (re-centred)."""
    readable: set[str] = set()
    recentred = 0
    skipped: list[dict[str, Any]] = []
    taken = {key: 0 for key in pool_of}
    good: dict[tuple[str, str], list[Clip]] = {key: [] for key in pool_of}
    first = True
    while True:
        batch_pool: list[tuple[tuple[str, str], Clip]] = []
        for key, (pool, want) in pool_of.items():
            missing = want - len(good[key])
            more = pool[taken[key] : taken[key] + max(0, missing)]
            taken[key] += len(more)
            batch_pool += [(key, c) for c in more]
        batch = (jobs if first else []) + [c for _, c in batch_pool]
        if not batch:
            break
        results = check_all([c.file(scan.root) for c in batch], progress)
        for c, (r, long) in zip(batch, results):
            if r is None:
                readable.add(c.rel)
                recentred += long
            else:
                skipped.append({"file": c.rel, "reason": r})
        for key, c in batch_pool:
            if c.rel in readable:
                good[key].append(c)
        first = False
    return readable, good, skipped, recentred


def _load_noise(scan: Scan, skipped: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    from kwstool.core.audio import load_audio

    noise: dict[str, np.ndarray] = {}
    for c in scan.noise:
        try:
            noise[c.noise_key()] = load_audio(c.file(scan.root), clip_samples=None)
        except KwsError as exc:
            skipped.append({"file": c.rel, "reason": str(exc)})
    return noise


def _noise_line(scan: Scan) -> dict[str, str]:
    """Noise key -> the name silence slices are recorded under (its path in the source)."""
    return {c.noise_key(): c.rel for c in scan.noise}


def _check_words(scan: Scan, words: list[str], where: str | None) -> None:
    """KwsError unless every word has a folder of clips."""
    folders = sorted({c.folder for c in scan.clips})
    for w in words:
        if w not in folders:
            shown = ", ".join(f for f in folders if not f.startswith("_"))
            raise KwsError(
                f"word {w!r} has no clips in {where or scan.root} (no {w}/ folder "
                f"with .wav files); its label folders are: {shown}; fix --words"
            )


def _rule_warnings(rule: str, validation_pct: float, testing_pct: float) -> list[str]:
    if rule == "lists" and (validation_pct, testing_pct) != (10, 10):
        return [
            "validation_list.txt/testing_list.txt decide the splits; "
            "--validation-pct/--testing-pct are ignored"
        ]
    return []


def build_from_scan(
    scan: Scan,
    words: list[str],
    silence_share: float,
    unknown_share: float,
    validation_pct: float,
    testing_pct: float,
    seed: int,
    progress: Progress,
    rule: str,
    unknown_min: int = 0,
    where: str | None = None,
) -> Built:
    """Rows of every split from a scan whose clips carry their split (see module docs)."""
    labels = [SILENCE, UNKNOWN, *words]
    index = {w: i for i, w in enumerate(labels)}
    _check_words(scan, words, where)
    warnings = _rule_warnings(rule, validation_pct, testing_pct)
    known, unknown_pool, silence_pool = _pools(scan, index, seed)
    base = share_bases({s: len(known[s]) for s in SPLITS}, validation_pct, testing_pct, warnings)
    want_unknown = {s: max(share_count(unknown_share, base[s]), unknown_min) for s in SPLITS}
    want_silence = {s: share_count(silence_share, base[s]) for s in SPLITS}
    pool_of = {("u", s): (unknown_pool[s], want_unknown[s]) for s in SPLITS}
    pool_of |= {("s", s): (silence_pool[s], want_silence[s]) for s in SPLITS}
    jobs = [c for s in SPLITS for c in known[s]]
    readable, good, skipped, recentred = _decode_selected(scan, jobs, pool_of, progress)
    if recentred:
        warnings.append(
            f"{recentred} clip(s) longer than 1 s were centred on their loudest word "
            f"(the energy detector of `kwstool record`)"
        )
    clips_decoded = len(readable) + len(skipped)
    noise = _load_noise(scan, skipped)
    named = {_noise_line(scan)[k]: v for k, v in noise.items()}
    out: dict[str, Rows] = {}
    for i, s in enumerate(SPLITS):
        rows = Split()
        for c in known[s]:
            if c.rel in readable:
                rows.add(index[c.folder], c.rel, c.file(scan.root))
        for key, label in ((("u", s), UNKNOWN), (("s", s), SILENCE)):
            for c in good[key]:
                rows.add(index[label], c.rel, c.file(scan.root))
        short = want_silence[s] - len(good[("s", s)])
        for line, src in silence_picks(named, short, s, i, validation_pct, testing_pct, seed):
            rows.add(index[SILENCE], line, src)
        out[s] = rows.rows()
    skipped.sort(key=lambda d: d["file"])
    return Built(
        out,
        noise,
        skipped,
        warnings,
        len(scan.clips),
        clips_decoded,
        {"split_rule": rule, "source_kind": scan.kind},
    )
