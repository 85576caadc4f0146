"""Finding spoken words in audio by energy, checking a take, and cutting it to one clip.

Shared by ``kwstool record`` and ``kwstool synth``. Energy is the RMS of each 20 ms frame (the
front end's stride) in dB relative to full scale (dBFS). A frame is *active* when it is
``REL_DB`` above the recording's noise floor and above ``ABS_DB``; active runs closer than
``GAP_MS`` are one word, runs shorter than ``MIN_WORD_MS`` are clicks. The noise floor is the
10th-percentile frame, but never below ``FLOOR_DB``: in a session joined from separate clips
(digital silence between takes, as editors make) that frame is exact zero, and a floor there
would make every clip's own quiet background a word.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwstool.core.audio import LONG_TOLERANCE, fit_length, load_audio
from kwstool.core.contract import CLIP_SAMPLES, SAMPLE_RATE, STRIDE_SAMPLES
from kwstool.errors import KwsError

REL_DB = 15.0  # active: this far above the noise floor
ABS_DB = -60.0  # ... and above this level
FLOOR_DB = -70.0  # the noise floor is never taken lower than this
GAP_MS = 300  # pauses shorter than this stay inside one word ("hey ... lamp")
MIN_WORD_MS = 100
QUIET_DB = -35.0  # a take whose peak stays below this is too quiet to learn from
FULL_SCALE = 32767
CLIPPED_SAMPLES = 3  # this many samples at full scale: the take is clipped
SPEAKER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.-]*")


def frame_db(x: np.ndarray) -> np.ndarray:
    """RMS of each 20 ms frame of int16 ``x`` in dBFS (at least -120)."""
    n = len(x) // STRIDE_SAMPLES
    if n == 0:
        return np.zeros(0)
    frames = x[: n * STRIDE_SAMPLES].astype(np.float64).reshape(n, STRIDE_SAMPLES) / 32768.0
    rms = np.sqrt(np.mean(frames**2, axis=1))
    db: np.ndarray = 20.0 * np.log10(np.maximum(rms, 1e-6))
    return db


def peak_db(x: np.ndarray) -> float:
    peak = int(np.max(np.abs(x.astype(np.int32)))) if len(x) else 0
    return 20.0 * float(np.log10(max(peak, 1) / 32768.0))


def noise_floor(db: np.ndarray) -> float:
    """The background level of frames ``db`` (dBFS), see the module doc."""
    return max(float(np.percentile(db, 10)), FLOOR_DB)


def find_words(x: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) sample ranges of the words in ``x`` (see module docs)."""
    db = frame_db(x)
    if len(db) == 0:
        return []
    threshold = max(noise_floor(db) + REL_DB, ABS_DB)
    active = np.flatnonzero(db > threshold)
    if len(active) == 0:
        return []
    gap = GAP_MS * SAMPLE_RATE // 1000 // STRIDE_SAMPLES
    runs: list[list[int]] = [[int(active[0]), int(active[0])]]
    for f in active[1:]:
        if f - runs[-1][1] <= gap:
            runs[-1][1] = int(f)
        else:
            runs.append([int(f), int(f)])
    shortest = MIN_WORD_MS * SAMPLE_RATE // 1000 // STRIDE_SAMPLES
    return [
        (a * STRIDE_SAMPLES, (b + 1) * STRIDE_SAMPLES) for a, b in runs if b - a + 1 >= shortest
    ]


def centre_clip(x: np.ndarray, start: int, end: int) -> np.ndarray:
    """One clip of ``x`` centred on ``[start, end)``, zero-padded beyond the ends of ``x``."""
    first = (start + end) // 2 - CLIP_SAMPLES // 2
    out = np.zeros(CLIP_SAMPLES, np.int16)
    lo, hi = max(first, 0), min(first + CLIP_SAMPLES, len(x))
    if hi > lo:
        out[lo - first : hi - first] = x[lo:hi]
    return out


def loudest_word(x: np.ndarray) -> tuple[int, int] | None:
    """The word of ``x`` with the most energy, or None when no word stands out."""
    words = find_words(x)
    if not words:
        return None
    return max(words, key=lambda w: float(np.sum(x[w[0] : w[1]].astype(np.float64) ** 2)))


def fit_clip(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """One clip of a recording: padded/cut as :func:`kwstool.core.audio.load_audio` does when it
    is (about) a clip long, else centred on its loudest word (on its loudest 20 ms frame when no
    word stands out); and whether it was re-centred."""
    if len(x) <= CLIP_SAMPLES + LONG_TOLERANCE:
        return fit_length(x), False
    span = loudest_word(x)
    if span is None:
        k = int(np.argmax(frame_db(x)))
        span = (k * STRIDE_SAMPLES, (k + 1) * STRIDE_SAMPLES)
    return centre_clip(x, *span), True


def read_clip(path: str | os.PathLike[str]) -> tuple[np.ndarray, bool]:
    """A clip file as one 1 s clip (:func:`fit_clip`: a longer one centred on its loudest word),
    and whether it was re-centred. KwsError naming the file when it cannot be read."""
    return fit_clip(load_audio(path, clip_samples=None))


def take_problem(word: np.ndarray) -> str | None:
    """Why the audio of one spoken word is unusable, or None when it is fine."""
    clipped = int(np.sum(np.abs(word.astype(np.int32)) >= FULL_SCALE))
    if clipped >= CLIPPED_SAMPLES:
        return (
            f"clipped ({clipped} samples at full scale): move back from the microphone "
            f"or turn its input gain down"
        )
    level = peak_db(word)
    if level < QUIET_DB:
        return f"too quiet (peak {level:.0f} dBFS): speak up or move closer to the microphone"
    seconds = len(word) / SAMPLE_RATE
    if len(word) > CLIP_SAMPLES:
        return f"too long ({seconds:.1f} s): say the word alone, within 1 s"
    return None


@dataclass
class Take:
    """One checked take: the 1 s clip, or the reason it was rejected."""

    clip: np.ndarray | None
    reason: str | None
    start: int = 0  # of the word in the analysed audio, in samples
    end: int = 0


def analyse_take(x: np.ndarray) -> Take:
    """The loudest word of a take (a few seconds of audio), checked and cut to 1 s."""
    span = loudest_word(x)
    if span is None:
        return Take(
            None,
            f"silent (peak {peak_db(x):.0f} dBFS, no word above the background): "
            f"speak after the countdown, check the microphone",
        )
    start, end = span
    reason = take_problem(x[start:end])
    clip = None if reason else centre_clip(x, start, end)
    return Take(clip, reason, start, end)


def check_speaker(speaker: str) -> str:
    if not SPEAKER_RE.fullmatch(speaker) or "_nohash_" in speaker:
        raise KwsError(
            f"--speaker {speaker!r}: use letters, digits, '-', '+' or '.' (it "
            f"becomes the file name prefix <speaker>_nohash_<n>.wav)"
        )
    return speaker


def ensure_writable(folder: Path, option: str = "--out") -> Path:
    """Create ``folder`` and prove a file can be written there, or raise one-line KwsError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".kwstool-write-test.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise KwsError(
            f"{folder}: cannot write there ({exc.strerror or exc}); choose another "
            f"{option} or fix its permissions"
        ) from None
    return folder


def next_index(folder: Path, speaker: str) -> int:
    """The K after the highest existing ``<speaker>_nohash_K.wav`` in ``folder`` (0 if none)."""
    pat = re.compile(rf"{re.escape(speaker)}_nohash_(\d+)\.wav$", re.IGNORECASE)
    found = [int(m.group(1)) for p in folder.glob("*.wav") if (m := pat.match(p.name))]
    return max(found) + 1 if found else 0
