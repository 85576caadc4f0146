"""``kwstool listen --model embedding`` (laptop only): the pretrained speech embedding and the head
``kwstool train --teacher embedding`` saved in the run folder, as a detector.

It plugs into :func:`kwstool.stream.listen.run_loop` in place of the board's
:class:`~kwstool.stream.engine.StreamPipeline`: the same audio blocks in, the same
:class:`~kwstool.stream.engine.StepResult` out, the same C recognizer (averaging, threshold,
suppression). The run's ``calibration.json`` is for the board's int8 model, so the recognizer
starts from the export defaults here, with :data:`RECOGNIZER`'s shorter average.

Streaming framing (as openWakeWord runs the same embedding): the stream is preceded by
:data:`LEAD` zero samples; embedding ``j`` is computed from its own :data:`EMB_SPAN` samples
``[1280 j, 1280 j + 12512)`` of that padded stream (mel frames of the slice alone, then the
embedding model), once, as soon as they have been heard. Every inference period (100 ms, at
stream time ``T``) the head reads the newest :data:`HEAD_EMBEDDINGS` complete embeddings
(:func:`newest_embedding`): the second of audio that ended about 0.4 s before ``T``, as the
head learnt its clips (12 embeddings). A result's time is ``T``, when it can be known, so the
measured latency includes that look-back. :func:`batch_scores` computes the same results for a
whole recording in bulk (``scripts/bench_custom_word.py``); a test checks the two agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwstool.core.contract import SAMPLE_RATE
from kwstool.core.embedding import (
    EMB_DIM,
    EMB_HOP_SAMPLES,
    EMB_SPAN,
    HEAD_EMBEDDINGS,
    HEAD_FILE,
    TEACHER_DIR,
    Head,
    HeadRecord,
    SpeechEmbedding,
)
from kwstool.errors import KwsError
from kwstool.stream import native
from kwstool.stream.engine import DEFAULT_PERIOD_MS, StepResult, StreamScores

#: The recognizer settings the embedding detector starts from (over the export defaults): the
#: head learnt centred 1 s clips, so a word holds its score for about 300 ms of inferences; the
#: board's 1 s average would dilute that below any threshold.
RECOGNIZER: dict[str, int] = {"average_window_ms": 300, "minimum_coverage_ms": 200}
#: Zeros before the stream: enough that the first inference has HEAD_EMBEDDINGS embeddings.
LEAD = EMB_SPAN + HEAD_EMBEDDINGS * EMB_HOP_SAMPLES
SLICE_BATCH = 1024  # embeddings computed per call in bulk (bounds the memory of the slices)


def newest_embedding(samples_heard: np.ndarray | int) -> np.ndarray:
    """Index of the newest embedding whose samples have all been heard after ``samples_heard``
    stream samples (see the module doc)."""
    return (np.asarray(samples_heard, np.int64) + LEAD - EMB_SPAN) // EMB_HOP_SAMPLES


def slice_embeddings(
    embedding: SpeechEmbedding, padded: np.ndarray, first: int, ks: np.ndarray
) -> np.ndarray:
    """``(len(ks), 96)``: embedding ``k`` of the padded stream, each from its own slice;
    ``padded`` holds the padded stream from padded sample ``first`` on."""
    ks = np.asarray(ks, np.int64)
    out = np.empty((len(ks), EMB_DIM), np.float32)
    for s in range(0, len(ks), SLICE_BATCH):
        part = ks[s : s + SLICE_BATCH]
        idx = (part * EMB_HOP_SAMPLES - first)[:, None] + np.arange(EMB_SPAN)
        out[s : s + len(part)] = embedding.embed(embedding.mel(padded[idx]))
    return out


def _scores(head: Head, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0..255 scores and the int8 outputs they stand for (zero point -128) of ``(M, 12, 96)``."""
    probs = head.probabilities(windows)
    scores = np.clip(np.rint(probs * 255), 0, 255).astype(np.uint8)
    return (scores.astype(np.int16) - 128).astype(np.int8), scores


@dataclass
class EmbeddedStream:
    """A stream's head inputs at every inference: ``windows[i]`` (12, 96) heard by ``times_ms[i]``
    (what the head of any run reads: computed once per recording, see :func:`embed_stream`)."""

    times_ms: np.ndarray
    windows: np.ndarray
    samples: int


def embed_stream(
    samples: np.ndarray,
    period_ms: int = DEFAULT_PERIOD_MS,
    embedding: SpeechEmbedding | None = None,
) -> EmbeddedStream:
    """Every embedding of ``samples`` computed once; each period's newest twelve."""
    samples = np.asarray(samples, np.int16).reshape(-1)
    every = period_ms * SAMPLE_RATE // 1000
    heard = every * np.arange(1, len(samples) // every + 1, dtype=np.int64)
    times = (heard * 1000 // SAMPLE_RATE).astype(np.uint32)
    if not len(heard):
        return EmbeddedStream(times, np.empty((0, HEAD_EMBEDDINGS, EMB_DIM), np.float32), 0)
    newest = newest_embedding(heard)
    padded = np.concatenate([np.zeros(LEAD, np.int16), samples])
    ks = np.arange(newest[0] - HEAD_EMBEDDINGS + 1, newest[-1] + 1)
    emb = slice_embeddings(embedding or SpeechEmbedding(), padded, 0, ks)
    rows = (newest - ks[0])[:, None] + np.arange(-HEAD_EMBEDDINGS + 1, 1)
    return EmbeddedStream(times, emb[rows], len(samples))


def batch_scores(
    model: EmbeddingModel,
    stream: np.ndarray | EmbeddedStream,
    embedding: SpeechEmbedding | None = None,
) -> StreamScores:
    """The results :class:`EmbeddingPipeline` gives for a stream (samples, or
    :func:`embed_stream` of them at the model's period), in bulk."""
    if not isinstance(stream, EmbeddedStream):
        stream = embed_stream(stream, model.period_ms, embedding)
    raw, scores = _scores(model.head, stream.windows)
    every = model.period_ms * SAMPLE_RATE // 1000
    return StreamScores(stream.times_ms, raw, scores, stream.samples // every)


@dataclass
class EmbeddingModel:
    """The head of a run folder (``RUN/teacher/``) with its labels."""

    path: Path
    labels: list[str]
    head: Head
    period_ms: int = DEFAULT_PERIOD_MS

    @classmethod
    def load(cls, run: str | os.PathLike[str]) -> EmbeddingModel:
        folder = Path(run) / TEACHER_DIR
        record_path = folder / HeadRecord.FILE
        if not record_path.is_file() or not (folder / HEAD_FILE).is_file():
            raise KwsError(
                f"{folder}: no embedding head; train the run with "
                f"`kwstool train DATA --out {run} --teacher embedding`"
            )
        record = HeadRecord.from_json(record_path)
        return cls(folder, list(record.labels), Head.load(folder / HEAD_FILE, len(record.labels)))


class _Clock:
    """What the listening loop reads of the board path's feature stream: audio time."""

    def __init__(self) -> None:
        self.samples = 0

    @property
    def time_ms(self) -> int:
        return self.samples * 1000 // SAMPLE_RATE


class EmbeddingPipeline:
    """Samples in, one :class:`StepResult` per inference period out (see the module doc)."""

    def __init__(
        self,
        model: EmbeddingModel,
        settings: native.RecognizerSettings,
        embedding: SpeechEmbedding | None = None,
    ) -> None:
        self.model = model
        self.embedding = embedding or SpeechEmbedding()
        self.recognizer = native.Recognizer(settings)
        self.features = _Clock()
        self.every = model.period_ms * SAMPLE_RATE // 1000
        self._padded = np.zeros(LEAD, np.int16)  # the padded stream from padded sample _first
        self._first = 0
        self._emb: dict[int, np.ndarray] = {}  # the newest embeddings by index

    def feed(self, samples: np.ndarray) -> list[StepResult]:
        results = []
        samples = np.asarray(samples, np.int16).reshape(-1)
        pos = 0
        while pos < len(samples):
            # up to the next inference time exactly, as the board path does with its frames
            now = self.features.samples
            take = samples[pos : pos + (now // self.every + 1) * self.every - now]
            pos += len(take)
            self._padded = np.concatenate([self._padded, take])
            self.features.samples += len(take)
            if self.features.samples % self.every == 0:
                results.append(self._infer())
        return results

    def _infer(self) -> StepResult:
        newest = int(newest_embedding(self.features.samples))
        want = range(newest - HEAD_EMBEDDINGS + 1, newest + 1)
        todo = np.array([k for k in want if k not in self._emb], np.int64)
        if len(todo):
            for k, e in zip(
                todo, slice_embeddings(self.embedding, self._padded, self._first, todo)
            ):
                self._emb[int(k)] = e
        self._emb = {k: self._emb[k] for k in want}
        keep = want[0] * EMB_HOP_SAMPLES  # the oldest sample a later embedding needs
        self._padded, self._first = self._padded[keep - self._first :], keep
        raw, scores = _scores(self.model.head, np.stack([self._emb[k] for k in want])[None])
        t = self.features.time_ms
        return StepResult(t, raw[0], scores[0], self.recognizer.process(scores[0], t))
