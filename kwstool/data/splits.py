"""Speakers and splits: who spoke a clip, and which split a speaker belongs to.

See :mod:`kwstool.data.prepared` for the rules (TF speech_commands' ``which_set`` hash).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from kwstool.core.labels import UNKNOWN

if TYPE_CHECKING:
    from kwstool.data.sources import Clip, Scan

MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # TF speech_commands' constant for the split hash
OFFICIAL_VALIDATION_PCT = 10.0  # the percentages the official lists and test set were made with
OFFICIAL_TESTING_PCT = 10.0


_NOHASH = re.compile(r"_nohash_.*$")


def _strip_wav(name: str) -> str:
    """The file name without its audio suffix(es) (``a.wav`` and ``a.flac`` are speaker ``a``)."""
    from kwstool.core.audio import AUDIO_SUFFIXES

    while name.lower().endswith(AUDIO_SUFFIXES):
        name = name.rsplit(".", 1)[0]
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


def which_split(
    speaker: str, validation_pct: float, testing_pct: float, test_layout: bool = False
) -> str:
    """Split of one speaker id: TF speech_commands' ``which_set`` rule (see module docs)."""
    pct = test_band_percentage(speaker) if test_layout else hash_percentage(speaker)
    if pct < validation_pct:
        return "validation"
    if pct < validation_pct + testing_pct:
        return "test"
    return "train"


def assign_splits(scan: Scan, validation_pct: float, testing_pct: float) -> str:
    if scan.lists:
        val, test = scan.lists.get("validation", set()), scan.lists.get("test", set())
        for c in scan.clips:
            c.split = "validation" if c.rel in val else "test" if c.rel in test else "train"
        return "lists"
    cache: dict[str, str] = {}
    for c in scan.clips:
        spk = speaker_of(c.rel)
        if spk not in cache:
            cache[spk] = which_split(
                spk, validation_pct, testing_pct, test_layout=scan.kind == "test_layout"
            )
        c.split = cache[spk]
    return "test_band_hash" if scan.kind == "test_layout" else "hash"


def noise_range(
    length: int, split: str, validation_pct: float, testing_pct: float
) -> tuple[int, int]:
    """Sample range of one noise recording reserved for ``split`` (train first, test last)."""
    a = int(length * (100.0 - validation_pct - testing_pct) / 100.0)
    b = int(length * (100.0 - testing_pct) / 100.0)
    return {"train": (0, a), "validation": (a, b), "test": (b, length)}[split]


#: A word recorded by fewer speakers than this is split by take (see :func:`balance_words`).
MIN_SPEAKERS = 3


def _clip_speaker(c: Clip) -> str:
    """Speaker of a clip, also for a merged clip named ``NAME:rel``."""
    return speaker_of(c.rel.split(":", 1)[1] if c.source else c.rel)


def _split_takes(takes: list[Clip], validation_pct: float, testing_pct: float) -> None:
    """Takes of one word to splits by the hash of each file, most in train: validation gets
    its share but at least one take (from 2 takes), test too (from 3)."""
    n = len(takes)
    n_val = max(1, round(n * validation_pct / 100)) if n >= 2 else 0
    n_test = max(1, round(n * testing_pct / 100)) if n >= 3 else 0
    for i, c in enumerate(sorted(takes, key=lambda c: (hash_percentage(c.rel), c.rel))):
        c.split = "validation" if i < n_val else "test" if i < n_val + n_test else "train"


def balance_words(
    clips: list[Clip], words: list[str], validation_pct: float, testing_pct: float
) -> list[str]:
    """Make every split hold real clips of every word, whatever the number of speakers.

    ``clips`` are the real (not synthetic) clips with their speaker-hash split. A word spoken
    by fewer than :data:`MIN_SPEAKERS` speakers (one person recording their word) is split by
    take instead: train keeps most takes, validation and test get their share (at least one
    each). A word with more speakers whose validation or test got none (every speaker hashed
    elsewhere) gets the train speaker with the fewest takes moved there, with all of that
    speaker's clips, so speakers stay disjoint. Returns one line per word changed.
    """
    notes: list[str] = []
    for w in words:
        takes = [c for c in clips if c.folder == w]
        speakers = sorted({_clip_speaker(c) for c in takes})
        if not takes:
            continue
        if len(speakers) < MIN_SPEAKERS:
            _split_takes(takes, validation_pct, testing_pct)
            per = {s: sum(c.split == s for c in takes) for s in ("train", "validation", "test")}
            notes.append(
                f"{w}: {len(takes)} take(s) from {len(speakers)} speaker(s) "
                f"({', '.join(speakers)}), fewer than {MIN_SPEAKERS}: split by take, not by "
                f"speaker (train {per['train']}, validation {per['validation']}, test "
                f"{per['test']}); validation and test hear the same voice as train"
            )
            continue
        for split in ("validation", "test"):
            if any(c.split == split for c in takes):
                continue
            train = [c for c in takes if c.split == "train"]
            count: dict[str, int] = {}
            for c in train:
                count[_clip_speaker(c)] = count.get(_clip_speaker(c), 0) + 1
            if len(count) < 2:
                continue
            moved = min(count, key=lambda s: (count[s], hash_percentage(s), s))
            for c in clips:
                if _clip_speaker(c) == moved:
                    c.split = split
            notes.append(
                f"{w}: no speaker hashed into {split}; moved speaker {moved} "
                f"({count[moved]} take(s)) there from train"
            )
    return notes
