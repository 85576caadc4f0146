"""Training windows cut from synthetic continuous streams: what the model sees on the board.

A model trained only on isolated, centred 1 s clips is not confident or stable over the sliding
windows of a live stream, and is confident too often on other words (issue "a model that works
in a live stream"). :class:`StreamWindows` builds, every epoch, short streams from the training
speakers' clips -- keywords at random offsets, words back to back, other words, partial words at
the window edges, silence and background noise -- runs the C front end *continuously* over each
stream (its running noise estimate and gain control included, as on the board) and cuts labelled
49-frame windows out of the feature sequence.

Labels come from how much of a word's voiced span (energy-based, :func:`voiced_span`) a window
holds (``coverage``):

* a keyword with coverage >= ``full`` -> that keyword (two different whole keywords: skipped);
* a keyword with coverage in [``partial``, ``full``) -> ambiguous, the window is not used;
* otherwise, any word (keyword fragment below ``partial``, or another word) with coverage >=
  ``fragment`` -> ``_unknown_``: a fragment or another word must not fire;
* nothing voiced -> ``_silence_``.

The windows are returned as int8 features with their label indices; ``kwstool train`` mixes them
into each epoch next to the augmented clips. With a ``teacher`` that reads audio
(:mod:`kwstool.model.teachers`) a third array holds its distribution of each window, computed on
the stream the window was cut from (:func:`window_starts`), for a ``teacher_share`` of the
streams (its cost per epoch scales with it); the windows of the other streams get NaN rows,
which keep their labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kwstool.core.audio import speech_span
from kwstool.core.contract import (
    NUM_CHANNELS,
    NUM_FRAMES,
    SAMPLE_RATE,
    STRIDE_SAMPLES,
    WINDOW_SAMPLES,
)
from kwstool.core.frontend import compute_raw, to_int8
from kwstool.core.labels import SILENCE, UNKNOWN, is_filler
from kwstool.model.augment import read_rows


def voiced_span(clip: np.ndarray, floor_db: float = 30.0) -> tuple[int, int]:
    """(start, end) samples of the loud part of a clip: 10 ms frames within ``floor_db`` of the
    loudest frame (and above a small absolute floor). A silent clip gives (0, 0)."""
    return speech_span(clip, floor_db, min_rms=30.0)


@dataclass(frozen=True)
class WindowConfig:
    """How streams are built and windows labelled (see the module documentation)."""

    stream_seconds: float = 20.0
    keyword_share: float = 0.5  # of the words placed in a stream
    gap_seconds: tuple[float, float] = (0.05, 1.2)  # pause between words (back to back ... apart)
    noise_volume: tuple[float, float] = (0.0, 0.15)
    speech_gain: tuple[float, float] = (0.5, 1.5)
    full: float = 0.95
    partial: float = 0.45
    fragment: float = 0.15
    keyword_windows: int = 6  # windows cut around each keyword (at random offsets)
    random_windows_per_second: float = 2.0


@dataclass
class _Event:
    start: int  # voiced span in stream samples
    end: int
    label: int


@dataclass
class StreamWindows:
    """Per-epoch windows from synthetic streams of the training clips (call with the epoch rng).

    ``audio`` int16 ``(N, clip)`` and ``labels`` ``(N,)`` are a training split; ``label_names``
    its labels; ``noise`` the background-noise recordings (int16 arrays); ``count`` the windows
    to return per call (about; balanced between keyword and other windows).
    """

    audio: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    noise: list[np.ndarray]
    count: int
    config: WindowConfig = field(default_factory=WindowConfig)
    teacher: Any = None  # kwstool.model.teachers.AudioTeacher: (stream, starts) -> distributions
    teacher_share: float = 1.0  # of the streams whose windows the teacher sees (others: NaN rows)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, np.int64)
        self.silence = self.label_names.index(SILENCE) if SILENCE in self.label_names else -1
        self.unknown = self.label_names.index(UNKNOWN) if UNKNOWN in self.label_names else -1
        keyword = np.array([not is_filler(n) for n in self.label_names])
        self.spans = _spans(self.audio)
        self.noise = [np.asarray(r, np.float32).reshape(-1) for r in self.noise if np.size(r)]
        voiced = np.array([e > s for s, e in self.spans], dtype=bool)
        self.keyword_idx = np.flatnonzero(keyword[self.labels] & voiced)
        self.other_idx = np.flatnonzero(
            ~keyword[self.labels] & (self.labels != self.silence) & voiced
        )
        if len(self.keyword_idx) == 0:
            raise ValueError("stream windows need voiced keyword clips in the training split")

    @property
    def per_epoch(self) -> int:
        return self.count

    def __call__(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        feats: list[np.ndarray] = []
        labels: list[int] = []
        soft: list[np.ndarray] = []
        while len(labels) < self.count:
            stream, events = self.stream(rng, self.config)
            frames = to_int8(compute_raw(stream))
            f, lab, ends = self._windows(frames, events, rng)
            feats.extend(f)
            labels.extend(lab)
            if self.teacher is not None and ends:
                if rng.random() < self.teacher_share:
                    soft.append(self.teacher(stream, window_starts(np.asarray(ends))))
                else:
                    soft.append(np.full((len(ends), len(self.label_names)), np.nan, np.float32))
        if not labels:
            x, y = np.empty((0, NUM_FRAMES, NUM_CHANNELS), np.int8), np.empty(0, np.int64)
        else:
            x, y = np.stack(feats[: self.count]), np.asarray(labels[: self.count], np.int64)
        if self.teacher is None:
            return x, y
        width = len(self.label_names)
        p = np.concatenate(soft)[: self.count] if soft else np.empty((0, width), np.float32)
        return x, y, p

    # --- stream ----------------------------------------------------------------------------------
    def _pick(self, rng: np.random.Generator, keyword_share: float) -> int:
        pool = (
            self.keyword_idx
            if (rng.random() < keyword_share or len(self.other_idx) == 0)
            else self.other_idx
        )
        return int(pool[rng.integers(len(pool))])

    def stream(self, rng: np.random.Generator, c: WindowConfig) -> tuple[np.ndarray, list[_Event]]:
        """One synthetic stream of ``c`` (int16 samples) and the words placed in it."""
        length = int(c.stream_seconds * SAMPLE_RATE)
        x = np.zeros(length, np.float32)
        events: list[_Event] = []
        t = int(rng.uniform(0, c.gap_seconds[1]) * SAMPLE_RATE)
        margin = SAMPLE_RATE // 20  # 50 ms of the clip around its voiced span
        while True:
            i = self._pick(rng, c.keyword_share)
            s, e = self.spans[i]
            a, b = max(0, s - margin), min(self.audio.shape[1], e + margin)
            if t + (b - a) >= length:
                break
            gain = rng.uniform(*c.speech_gain)
            clip = read_rows(self.audio, np.array([i]))[0, a:b]  # not through the map: see _spans
            x[t : t + b - a] += gain * clip.astype(np.float32)
            events.append(_Event(t + s - a, t + e - a, int(self.labels[i])))
            t += (b - a) + int(rng.uniform(*c.gap_seconds) * SAMPLE_RATE)
        self._add_noise(x, rng)
        return np.clip(np.rint(x), -32768, 32767).astype(np.int16), events

    def _add_noise(self, x: np.ndarray, rng: np.random.Generator) -> None:
        if not self.noise:
            return
        rec = self.noise[rng.integers(len(self.noise))]
        if len(rec) < len(x):
            rec = np.tile(rec, len(x) // len(rec) + 1)
        start = int(rng.integers(0, len(rec) - len(x) + 1))
        x += rng.uniform(*self.config.noise_volume) * rec[start : start + len(x)]

    # --- windows ---------------------------------------------------------------------------------
    def _windows(
        self, frames: np.ndarray, events: list[_Event], rng: np.random.Generator
    ) -> tuple[list[np.ndarray], list[int], list[int]]:
        """Features, labels and last frames of the labelled windows of a stream."""
        feats, labels, kept = [], [], []
        for end in self._window_ends(len(frames), events, rng):
            label = self.label_of(end, events)
            if label is not None:
                feats.append(frames[end - NUM_FRAMES + 1 : end + 1])
                labels.append(label)
                kept.append(int(end))
        return feats, labels, kept

    def _window_ends(
        self, n_frames: int, events: list[_Event], rng: np.random.Generator
    ) -> list[int]:
        """Last frame index of each window: around every keyword (at random offsets that hold
        the whole word, or cut it at an edge) plus uniformly random positions."""
        c = self.config
        lo = NUM_FRAMES - 1
        ends = []
        for ev in events:
            if is_filler(self.label_names[ev.label]):
                continue
            first = _frame_ending_after(ev.end)  # first window end holding the word's end
            for _ in range(c.keyword_windows):
                ends.append(first + int(rng.integers(-12, NUM_FRAMES - 8)))
        seconds = n_frames * STRIDE_SAMPLES / SAMPLE_RATE
        ends += list(rng.integers(lo, n_frames, size=int(seconds * c.random_windows_per_second)))
        return [e for e in ends if lo <= e < n_frames]

    def label_of(self, end: int, events: list[_Event]) -> int | None:
        """Label of the window whose last frame is ``end`` (None: ambiguous, not used)."""
        c = self.config
        w0 = (end - NUM_FRAMES + 1) * STRIDE_SAMPLES
        w1 = end * STRIDE_SAMPLES + WINDOW_SAMPLES
        whole: set[int] = set()
        other = False
        for ev in events:
            if ev.end <= w0 or ev.start >= w1:
                continue
            cover = (min(ev.end, w1) - max(ev.start, w0)) / max(1, ev.end - ev.start)
            keyword = not is_filler(self.label_names[ev.label])
            if keyword and cover >= c.full:
                whole.add(ev.label)
            elif keyword and cover >= c.partial:
                return None
            elif cover >= c.fragment:
                other = True
        if len(whole) > 1:
            return None
        if whole:
            return whole.pop()
        if other:
            return self.unknown if self.unknown >= 0 else None
        return self.silence if self.silence >= 0 else None


def _spans(audio: np.ndarray, chunk: int = 512) -> list[tuple[int, int]]:
    """:func:`voiced_span` of every row, ``chunk`` rows at a time with
    :func:`~kwstool.model.augment.read_rows`: a memory-mapped training split is read with plain
    file reads, so its audio is not made resident in this process (2.6 GB at 85k clips)."""
    out: list[tuple[int, int]] = []
    for start in range(0, len(audio), chunk):
        idx = np.arange(start, min(start + chunk, len(audio)))
        out += [voiced_span(a) for a in read_rows(audio, idx)]
    return out


def window_starts(ends: np.ndarray) -> np.ndarray:
    """First stream sample of the windows whose last frames are ``ends``."""
    return (np.asarray(ends, np.int64) - NUM_FRAMES + 1) * STRIDE_SAMPLES


def _frame_ending_after(sample: int) -> int:
    """Index of the first frame whose window ends at or after ``sample``."""
    return max(0, -(-(sample - WINDOW_SAMPLES) // STRIDE_SAMPLES))
