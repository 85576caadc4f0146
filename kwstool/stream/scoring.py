"""Detections against the words known to be in a stream: hits, misses, false accepts, latency.

A detection of label L at time t (the end of the window the model saw) *hits* the word placed
in the stream whose speech starts before t and ended at most ``latency_limit_ms`` before t, when
that word is L and no earlier detection already hit it; latency is t minus the word's end
(negative when the recognizer fires before the word is over). Every other detection of L is a
false detection: on the positive stream a wrong or extra one, on the negative stream (noise and
``_unknown_`` words only) a false accept. The limit stays below the shortest gap between words,
so a detection can belong to one word only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kwstool.core.labels import is_filler
from kwstool.stream.native import Detection
from kwstool.stream.synth import Word

#: Longest delay after a word's end at which a detection still counts as hitting it.
LATENCY_LIMIT_MS = 1000


@dataclass
class WordTable:
    """The placed words of a stream as arrays (ms and label indices)."""

    start_ms: np.ndarray
    end_ms: np.ndarray
    label: np.ndarray

    @classmethod
    def of(cls, words: Sequence[Word], labels: Sequence[str], sample_rate: int) -> WordTable:
        index = {lab: i for i, lab in enumerate(labels)}
        return cls(
            np.array([w.start * 1000 // sample_rate for w in words], np.int64),
            np.array([w.end * 1000 // sample_rate for w in words], np.int64),
            np.array([index[w.label] for w in words], np.int64),
        )


@dataclass
class Outcome:
    """Per-detection verdicts: ``hit_word`` is the word index hit, or -1 (a false detection)."""

    label: np.ndarray
    time_ms: np.ndarray
    hit_word: np.ndarray


def match(
    detections: Sequence[Detection],
    words: WordTable,
    latency_limit_ms: int = LATENCY_LIMIT_MS,
) -> Outcome:
    """Which word, if any, each detection hits (vectorised; see the module doc)."""
    t = np.array([d.time_ms for d in detections], np.int64)
    lab = np.array([d.label for d in detections], np.int64)
    hit = np.full(len(t), -1, np.int64)
    if len(t) and len(words.start_ms):
        j = np.searchsorted(words.start_ms, t, side="right") - 1
        jj = np.maximum(j, 0)
        ok = (j >= 0) & (t <= words.end_ms[jj] + latency_limit_ms) & (words.label[jj] == lab)
        cand = np.flatnonzero(ok)
        _, first = np.unique(jj[cand], return_index=True)  # only the first detection per word
        hit[cand[first]] = jj[cand[first]]
    return Outcome(lab, t, hit)


def keyword_figures(
    labels: Sequence[str],
    words: WordTable,
    pos: Outcome,
    neg: Outcome | None,
    pos_hours: float,
    neg_hours: float,
) -> dict[str, dict[str, Any]]:
    """Per keyword: words, hits, misses, FRR, false accepts per hour, latency (ms)."""
    out: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(labels):
        if is_filler(name):
            continue
        n = int(np.sum(words.label == k))
        hits = pos.hit_word[(pos.label == k) & (pos.hit_word >= 0)]
        lat = pos.time_ms[(pos.label == k) & (pos.hit_word >= 0)] - words.end_ms[hits]
        false_pos = int(np.sum((pos.label == k) & (pos.hit_word < 0)))
        fa = int(np.sum(neg.label == k)) if neg is not None else 0
        out[name] = {
            "words": n,
            "hits": len(hits),
            "misses": n - len(hits),
            "frr": round(1 - len(hits) / n, 4) if n else None,
            "false_accepts": fa,
            "fa_per_hour": round(fa / neg_hours, 3) if neg_hours > 0 else None,
            "false_detections_positive": false_pos,
            "false_per_hour_positive": round(false_pos / pos_hours, 3) if pos_hours else None,
            "latency_ms": {"median": _pct(lat, 50), "p95": _pct(lat, 95)},
        }
    return out


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def curve_point(
    labels: Sequence[str],
    words: WordTable,
    pos: Outcome,
    neg: Outcome | None,
    neg_hours: float,
) -> dict[str, tuple[float | None, float | None, int]]:
    """(FRR, FA/h on the negative stream, misses) per keyword: one point of the DET curve."""
    out = {}
    for k, name in enumerate(labels):
        if is_filler(name):
            continue
        n = int(np.sum(words.label == k))
        hits = int(np.sum((pos.label == k) & (pos.hit_word >= 0)))
        fa = int(np.sum(neg.label == k)) if neg is not None else 0
        out[name] = (
            1 - hits / n if n else None,
            fa / neg_hours if neg_hours > 0 else None,
            n - hits,
        )
    return out
