"""Long test streams with known keyword times, built reproducibly from prepared clips.

:func:`build_stream` lays background noise end to end (random recording, offset and level per
noise segment) and inserts words at known times: each word is a clip of the chosen split, cut
to its speech (energy above a fraction of the clip's peak), varied (gain from the SNR drawn
against the local noise level, a small speed/pitch change by resampling) and placed after a
gap drawn from ``gap_s``. The positive stream mixes keywords and ``_unknown_`` words; the
negative stream has ``_unknown_`` words only. The same design and seed give the same samples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kwstool.core.audio import speech_span
from kwstool.core.contract import SAMPLE_RATE
from kwstool.core.labels import SILENCE, UNKNOWN
from kwstool.errors import KwsError

#: Speech extent: 10 ms frames whose RMS exceeds this fraction of the clip's loudest frame.
SPEECH_FRACTION = 0.1
#: Loudest RMS level of an inserted word (dBFS): near-field speech peaks about 10 dB above it.
MAX_SPEECH_DBFS = -15.0


@dataclass(frozen=True)
class StreamDesign:
    """How a test stream is made (stored with every result, so it can be rebuilt)."""

    seed: int = 0
    hours: float = 1.0  # positive stream
    negative_hours: float = 1.0  # noise + unknown words only
    split: str = "test"
    gap_s: tuple[float, float] = (1.5, 3.0)
    snr_db: tuple[float, float] = (5.0, 25.0)
    noise_dbfs: tuple[float, float] = (-50.0, -25.0)
    unknown_share: float = 0.2  # of the words of the positive stream
    speed: tuple[float, float] = (0.92, 1.08)
    noise_segment_s: float = 20.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Word:
    """A word placed in a stream: samples [start, end) hold its speech."""

    label: str
    start: int
    end: int
    clip: int
    gain_db: float
    snr_db: float
    speed: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "start_ms": self.start * 1000 // SAMPLE_RATE,
            "end_ms": self.end * 1000 // SAMPLE_RATE,
            "clip": self.clip,
            "gain_db": round(self.gain_db, 2),
            "snr_db": round(self.snr_db, 2),
            "speed": round(self.speed, 4),
        }


@dataclass
class Stream:
    samples: np.ndarray  # int16
    words: list[Word] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return len(self.samples) / SAMPLE_RATE / 3600


def speech_extent(clip: np.ndarray) -> tuple[int, int]:
    """[start, end) samples of the speech in a clip (frames above SPEECH_FRACTION of the peak);
    the whole clip when nothing stands out."""
    start, end = speech_span(clip, -20 * math.log10(SPEECH_FRACTION))
    return (start, end) if end > start else (0, len(clip))


def _vary(clip: np.ndarray, speed: float) -> np.ndarray:
    """Resample so the word plays ``speed`` times faster (pitch moves with it)."""
    from scipy.signal import resample_poly

    up = 100
    down = round(up * speed)
    out: np.ndarray = resample_poly(np.asarray(clip, np.float64), up, down)
    return out


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def _noise_track(
    noise: list[np.ndarray], total: int, design: StreamDesign, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """float32 noise of ``total`` samples and its RMS level per sample segment."""
    out = np.zeros(total, np.float32)
    seg = int(design.noise_segment_s * SAMPLE_RATE)
    levels = np.zeros(-(-total // seg), np.float32)
    for k, pos in enumerate(range(0, total, seg)):
        n = min(seg, total - pos)
        rec = noise[int(rng.integers(len(noise)))]
        start = int(rng.integers(max(1, len(rec) - n))) if len(rec) > n else 0
        piece = np.resize(rec[start:], n).astype(np.float32)  # loops a short recording
        level = 32768.0 * 10 ** (rng.uniform(*design.noise_dbfs) / 20)
        piece *= level / max(_rms(piece), 1.0)
        out[pos : pos + n] = piece
        levels[k] = level
    return out, levels


def build_stream(
    clips: np.ndarray,
    labels: list[str],
    noise: list[np.ndarray],
    hours: float,
    design: StreamDesign,
    rng: np.random.Generator,
    keywords: bool = True,
) -> Stream:
    """One stream of ``hours`` from int16 ``clips`` ``(N, samples)`` with label names ``labels``.

    ``keywords=False`` builds the negative stream (``_unknown_`` words only).
    """
    total = int(hours * 3600 * SAMPLE_RATE)
    if not noise:
        raise KwsError(
            "no background noise to build the stream on; prepare data with a "
            "_background_noise_ folder or pass --noise FOLDER"
        )
    unknown = [i for i, lab in enumerate(labels) if lab == UNKNOWN]
    words = [i for i, lab in enumerate(labels) if lab not in (UNKNOWN, SILENCE)]
    if keywords and not words:
        raise KwsError(f"the {design.split} split holds no keyword clips; choose another split")
    track, levels = _noise_track(noise, total, design, rng)
    seg = int(design.noise_segment_s * SAMPLE_RATE)
    placed: list[Word] = []
    pos = int(rng.uniform(*design.gap_s) * SAMPLE_RATE)
    while keywords or unknown:  # a negative stream without unknown words is noise only
        use_unknown = not keywords or (unknown and rng.random() < design.unknown_share)
        pool = unknown if use_unknown else words
        if not pool:
            pool = words if use_unknown else unknown
        idx = pool[int(rng.integers(len(pool)))]
        a, b = speech_extent(clips[idx])
        speed = float(rng.uniform(*design.speed))
        word = _vary(clips[idx][a:b], speed)
        if pos + len(word) >= total:
            break
        snr = float(rng.uniform(*design.snr_db))
        level = float(levels[min(pos // seg, len(levels) - 1)])
        # the word's level follows the SNR over the local noise, capped at MAX_SPEECH_DBFS so
        # a loud noise segment with a high SNR does not clip the word (then the SNR is lower)
        target = min(level * 10 ** (snr / 20), 32768.0 * 10 ** (MAX_SPEECH_DBFS / 20))
        gain = target / max(_rms(word), 1.0)
        track[pos : pos + len(word)] += (word * gain).astype(np.float32)
        placed.append(
            Word(
                labels[idx],
                pos,
                pos + len(word),
                idx,
                20 * math.log10(gain),
                snr,
                speed,
            )
        )
        pos += len(word) + int(rng.uniform(*design.gap_s) * SAMPLE_RATE)
    samples = np.clip(np.round(track), -32768, 32767).astype(np.int16)
    return Stream(samples, placed)


def build_streams(
    clips: np.ndarray, labels: list[str], noise: list[np.ndarray], design: StreamDesign
) -> tuple[Stream, Stream]:
    """The positive and the negative stream of ``design`` (seeded: same design, same streams)."""
    pos_rng, neg_rng = (np.random.default_rng([design.seed, k]) for k in (1, 2))
    positive = build_stream(clips, labels, noise, design.hours, design, pos_rng, True)
    negative = (
        build_stream(clips, labels, noise, design.negative_hours, design, neg_rng, False)
        if design.negative_hours > 0
        else Stream(np.zeros(0, np.int16))
    )
    return positive, negative
