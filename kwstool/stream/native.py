"""The one place the streaming stage touches ``kwstool._native`` (the firmware's C, host-built).

Everything here runs the firmware's own C: the front end (``kws_frontend`` through
``_native.stream_uint16``), the score mapping (``kws_recognizer_score`` through
``_native.scores_u8``) and the recognizer (``kws_recognizer`` through ``_native.recognize``).
Nothing is reimplemented in Python.

The streaming objects are the native ones: :class:`FeatureStream` wraps
``_native.FeatureStream`` (``kws_feature_provider``: one continuous front-end state) and
:class:`Recognizer` wraps ``_native.Recognizer`` (``kws_recognizer``: per-label thresholds,
minimum coverage in ms); :func:`recognize` is the batch replay ``_native.recognize``, which
gives what the frame-by-frame recognizer gives (tests/stream checks both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    minimum_coverage_ms: int
    thresholds: tuple[int, ...]

    @classmethod
    def build(cls, labels: Sequence[str], recognizer: dict[str, Any]) -> RecognizerSettings:
        """From an export-style dict: ``threshold`` for all labels, ``thresholds`` per label."""
        from kwstool.core.settings import check_recognizer

        check_recognizer(recognizer)
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
            int(recognizer["minimum_coverage_ms"]),
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
            self.minimum_coverage_ms,
            (int(threshold),) * len(self.labels),
        )

    def with_suppression(self, suppression_ms: int) -> RecognizerSettings:
        return RecognizerSettings(
            self.labels,
            self.average_window_ms,
            int(suppression_ms),
            self.minimum_coverage_ms,
            self.thresholds,
        )


@dataclass(frozen=True)
class Detection:
    """One detection: result ``index`` at ``time_ms``, ``label`` index, averaged ``score``."""

    index: int
    time_ms: int
    label: int
    score: int
    count: int = field(default=0, compare=False)  # results in the window (batch replay only)


def recognize(
    scores: np.ndarray, times: np.ndarray, settings: RecognizerSettings
) -> list[Detection]:
    """Detections of one fresh C recognizer over ``scores`` uint8 ``(T, labels)`` at ``times``."""
    s = np.ascontiguousarray(scores, dtype=np.uint8)
    t = np.ascontiguousarray(times, dtype=np.uint32)
    if s.ndim != 2 or s.shape[1] != len(settings.labels) or len(t) != len(s):
        raise ValueError(
            f"scores {s.shape} / times {t.shape} do not match {len(settings.labels)} labels"
        )
    if len(s) == 0:
        return []
    found = _native.recognize(
        s.tobytes(),
        t.tobytes(),
        len(settings.labels),
        settings.average_window_ms,
        bytes(settings.thresholds),
        settings.suppression_ms,
        settings.minimum_coverage_ms,
        settings.ignore_mask,
    )
    return [Detection(int(i), int(tm), int(lab), int(sc), int(c)) for i, tm, lab, sc, c in found]


class Recognizer:
    """Frame-by-frame recognizer: :meth:`process` one result, get its detection or None."""

    def __init__(self, settings: RecognizerSettings) -> None:
        self.settings = settings
        self._rec = _native.Recognizer(
            len(settings.labels),
            settings.average_window_ms,
            settings.suppression_ms,
            bytes(settings.thresholds),
            settings.minimum_coverage_ms,
            settings.ignore_mask,
        )
        self._count = 0

    def reset(self) -> None:
        self._rec.reset()
        self._count = 0

    def process(self, scores: np.ndarray, time_ms: int) -> Detection | None:
        found = self._rec.process(np.ascontiguousarray(scores, np.uint8).tobytes(), int(time_ms))
        self._count += 1
        if found is None:
            return None
        label, score, t = found
        return Detection(self._count - 1, int(t), int(label), int(score), 0)


class FeatureStream:
    """Samples in, the model's sliding 49 x 40 int8 window out (``kws_feature_provider``).

    :meth:`feed` returns the frames completed by the new samples; :meth:`window` gives the
    newest 49 frames, oldest first, silence (-128) before the first frame.
    """

    def __init__(self) -> None:
        self._fs = _native.FeatureStream()
        self.samples = 0

    def reset(self) -> None:
        self._fs.reset()
        self.samples = 0

    @property
    def frames(self) -> int:
        return int(self._fs.frames)

    @property
    def time_ms(self) -> int:
        return int(self._fs.time_ms)

    def feed(self, samples: np.ndarray) -> int:
        x = np.ascontiguousarray(samples, np.int16)
        self.samples += len(x)
        return int(self._fs.feed(x.tobytes()))

    def window(self) -> np.ndarray:
        out = np.empty((NUM_FRAMES, NUM_CHANNELS), np.int8)
        self._fs.window(out)
        return out
