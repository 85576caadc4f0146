"""The one place the streaming stage touches ``kwstool._native`` (the firmware's C, host-built).

Everything here runs the firmware's own C: the front end (``kws_frontend`` through
``_native.stream_uint16``), the score mapping (``kws_recognizer_score`` through
``_native.scores_u8``) and the recognizer (``kws_recognizer`` through ``_native.recognize``).
Nothing is reimplemented in Python.

Today's bindings are batch calls with fresh state, so the frame-by-frame objects are built on
them:

* :class:`FeatureStream` keeps the recent audio and recomputes the features of the newest
  window from a fresh front end started ``WARMUP_S`` seconds earlier (stride-aligned); the
  front end's noise estimate and gain control forget their start within that time, so the
  frames equal the continuous stream's (checked by ``tests/stream``; until ``WARMUP_S`` of
  audio exist it *is* the continuous stream).
* :class:`Recognizer` replays ``_native.recognize`` over the results so far and reports
  whether the newest one is a detection: by construction the same answer as the batch replay.

When ``kwstool._native.FeatureStream`` / ``_native.Recognizer`` (the native streaming bindings,
branch ``fwloop``) are merged, these two classes become thin wrappers of them; no caller
changes. Per-label thresholds (``KWS_RECOGNIZER_THRESHOLDS``) are likewise emulated on the
single-threshold binding: one C run per keyword with the other labels ignored, merged in time
with the suppression rule (:func:`recognize`). It can differ from the native per-label
recognizer in one corner: a detection dropped in the merge still starts that keyword's own
suppression time in its run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kwstool import _native
from kwstool.core.contract import (
    NUM_CHANNELS,
    NUM_FRAMES,
    SAMPLE_RATE,
    STRIDE_SAMPLES,
    WINDOW_SAMPLES,
)
from kwstool.core.frontend import compute_raw, to_int8
from kwstool.core.labels import is_filler
from kwstool.errors import KwsError

#: Seconds of audio the fallback feature stream recomputes before the newest window.
WARMUP_S = 30
#: Results the fallback recognizer keeps for its replay (the oldest half goes when full).
MAX_HISTORY = 36000


def frames_in(samples: int) -> int:
    """Frames the front end completes from ``samples`` samples of a stream."""
    return 0 if samples < WINDOW_SAMPLES else 1 + (samples - WINDOW_SAMPLES) // STRIDE_SAMPLES


def frames_needed(frame: int, samples: int) -> int:
    """Samples still to feed, after ``samples``, until frame ``frame`` (1-based) completes."""
    return max(1, WINDOW_SAMPLES + STRIDE_SAMPLES * (frame - 1) - samples)


def frame_time_ms(k: int | np.ndarray) -> Any:
    """Audio time (ms) when frame ``k`` (1-based) completes: 480 + 320 (k - 1) samples."""
    return (WINDOW_SAMPLES + STRIDE_SAMPLES * (np.asarray(k) - 1)) * 1000 // SAMPLE_RATE


def stream_features(samples: np.ndarray) -> np.ndarray:
    """int8 features ``(frames, 40)`` of one continuous stream (one front-end state)."""
    return to_int8(compute_raw(np.asarray(samples, np.int16)))


def scores_u8(raw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 model outputs -> 0..255 recognizer scores (``kws_recognizer_score``), same shape."""
    r = np.ascontiguousarray(raw, dtype=np.int8)
    out = np.empty(r.shape, np.uint8)
    _native.scores_u8(r.tobytes(), float(scale), int(zero_point), out)
    return out


@dataclass(frozen=True)
class RecognizerSettings:
    """The recognizer configuration, one threshold per label (0..255)."""

    labels: tuple[str, ...]
    average_window_ms: int
    suppression_ms: int
    minimum_count: int
    thresholds: tuple[int, ...]

    @classmethod
    def build(cls, labels: Sequence[str], recognizer: dict[str, Any]) -> RecognizerSettings:
        """From an export-style dict: ``threshold`` for all labels, ``thresholds`` per label."""
        base = int(recognizer["threshold"])
        per = dict(recognizer.get("thresholds") or {})
        unknown = sorted(set(per) - set(labels))
        if unknown:
            raise KwsError(
                f"thresholds for labels the model does not have: {', '.join(unknown)};"
                f" the model's labels are {', '.join(labels)}"
            )
        thresholds = tuple(int(per.get(lab, base)) for lab in labels)
        if any(not 0 <= t <= 255 for t in thresholds):
            raise KwsError(f"recognizer thresholds must be 0..255, got {thresholds}")
        return cls(
            tuple(labels),
            int(recognizer["average_window_ms"]),
            int(recognizer["suppression_ms"]),
            int(recognizer["minimum_count"]),
            thresholds,
        )

    @property
    def ignore_mask(self) -> int:
        return sum(1 << i for i, lab in enumerate(self.labels) if is_filler(lab))

    def with_threshold(self, threshold: int) -> RecognizerSettings:
        return RecognizerSettings(
            self.labels,
            self.average_window_ms,
            self.suppression_ms,
            self.minimum_count,
            (int(threshold),) * len(self.labels),
        )

    def with_suppression(self, suppression_ms: int) -> RecognizerSettings:
        return RecognizerSettings(
            self.labels,
            self.average_window_ms,
            int(suppression_ms),
            self.minimum_count,
            self.thresholds,
        )

    def keyword_floor(self) -> int:
        """The lowest threshold of a reportable label."""
        keys = [t for t, lab in zip(self.thresholds, self.labels) if not is_filler(lab)]
        return min(keys) if keys else 255


@dataclass(frozen=True)
class Detection:
    """One detection: result ``index`` at ``time_ms``, ``label`` index, averaged ``score``."""

    index: int
    time_ms: int
    label: int
    score: int
    count: int


def _native_run(
    s: np.ndarray,
    t: np.ndarray,
    settings: RecognizerSettings,
    threshold: int,
    mask: int,
) -> list[Detection]:
    found = _native.recognize(
        s.tobytes(),
        t.tobytes(),
        len(settings.labels),
        settings.average_window_ms,
        threshold,
        settings.suppression_ms,
        settings.minimum_count,
        mask,
    )
    return [Detection(int(i), int(tm), int(lab), int(sc), int(c)) for i, tm, lab, sc, c in found]


def recognize(
    scores: np.ndarray, times: np.ndarray, settings: RecognizerSettings
) -> list[Detection]:
    """Detections of one fresh C recognizer over ``scores`` uint8 ``(T, labels)`` at ``times``.

    With one threshold for every keyword this is one call of the C recognizer. Per-label
    thresholds (until the native recognizer takes them) run it once per keyword with every
    other label ignored, then merge the detections in time, keeping one per suppression time.
    """
    s = np.ascontiguousarray(scores, dtype=np.uint8)
    t = np.ascontiguousarray(times, dtype=np.uint32)
    if s.ndim != 2 or s.shape[1] != len(settings.labels) or len(t) != len(s):
        raise ValueError(
            f"scores {s.shape} / times {t.shape} do not match {len(settings.labels)} labels"
        )
    if len(s) == 0:
        return []
    keys = [k for k, lab in enumerate(settings.labels) if not is_filler(lab)]
    if len({settings.thresholds[k] for k in keys}) <= 1:
        return _native_run(s, t, settings, settings.keyword_floor(), settings.ignore_mask)
    everyone = (1 << len(settings.labels)) - 1
    merged = sorted(
        (
            d
            for k in keys
            for d in _native_run(s, t, settings, settings.thresholds[k], everyone & ~(1 << k))
        ),
        key=lambda d: (d.index, d.label),
    )
    kept: list[Detection] = []
    for d in merged:
        if not kept or d.time_ms - kept[-1].time_ms >= settings.suppression_ms:
            kept.append(d)
    return kept


class Recognizer:
    """Frame-by-frame recognizer: :meth:`process` one result, get its detection or None."""

    def __init__(self, settings: RecognizerSettings) -> None:
        self.settings = settings
        self.reset()

    def reset(self) -> None:
        n = len(self.settings.labels)
        self._scores = np.empty((1024, n), np.uint8)
        self._times = np.empty(1024, np.uint32)
        self._count = 0

    def process(self, scores: np.ndarray, time_ms: int) -> Detection | None:
        if self._count == len(self._times):
            if self._count >= MAX_HISTORY:
                keep = self._count // 2
                self._scores[:keep] = self._scores[self._count - keep : self._count]
                self._times[:keep] = self._times[self._count - keep : self._count]
                self._count = keep
            else:
                self._scores = np.concatenate([self._scores, np.empty_like(self._scores)])
                self._times = np.concatenate([self._times, np.empty_like(self._times)])
        self._scores[self._count] = scores
        self._times[self._count] = time_ms
        self._count += 1
        found = recognize(self._scores[: self._count], self._times[: self._count], self.settings)
        if found and found[-1].index == self._count - 1:
            return found[-1]
        return None


class FeatureStream:
    """Samples in, the model's sliding 49 x 40 int8 window out (the firmware's feature provider).

    :meth:`feed` returns the frames completed by the new samples; :meth:`window` gives the
    newest 49 frames, oldest first, silence (-128) before the first frame.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._audio = np.zeros(0, np.int16)
        self._base = 0  # stream sample index of _audio[0] (a multiple of the stride)
        self.samples = 0

    @property
    def frames(self) -> int:
        return frames_in(self.samples)

    @property
    def time_ms(self) -> int:
        return self.samples * 1000 // SAMPLE_RATE

    def feed(self, samples: np.ndarray) -> int:
        before = self.frames
        self._audio = np.concatenate([self._audio, np.asarray(samples, np.int16)])
        self.samples += len(samples)
        keep = (WARMUP_S + 2) * SAMPLE_RATE
        if len(self._audio) > keep + 10 * SAMPLE_RATE:
            drop = (len(self._audio) - keep) // STRIDE_SAMPLES * STRIDE_SAMPLES
            self._audio = self._audio[drop:]
            self._base += drop
        return self.frames - before

    def window(self) -> np.ndarray:
        total = self.frames
        first = self._base // STRIDE_SAMPLES  # stream frame index of the recomputed first frame
        need_from = max(0, total - NUM_FRAMES) - first
        start = max(0, need_from - WARMUP_S * SAMPLE_RATE // STRIDE_SAMPLES)
        feats = stream_features(self._audio[start * STRIDE_SAMPLES :])
        out = np.full((NUM_FRAMES, NUM_CHANNELS), -128, np.int8)
        newest = feats[max(0, need_from - start) :]
        if len(newest):
            out[NUM_FRAMES - len(newest) :] = newest[-NUM_FRAMES:]
        return out
