"""Speakers and splits: who spoke a clip, and which split a speaker belongs to.

See :mod:`kwstool.data.prepared` for the rules (TF speech_commands' ``which_set`` hash).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from kwstool.core.labels import UNKNOWN

if TYPE_CHECKING:
    from kwstool.data.sources import Scan

MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # TF speech_commands' constant for the split hash
OFFICIAL_VALIDATION_PCT = 10.0  # the percentages the official lists and test set were made with
OFFICIAL_TESTING_PCT = 10.0


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
