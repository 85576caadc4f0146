"""``kwstool listen --model embedding`` (laptop only): the pretrained speech embedding and the head
``kwstool train --teacher embedding`` saved in the run folder, as a detector.

It plugs into :func:`kwstool.stream.listen.run_loop` in place of the board's
:class:`~kwstool.stream.engine.StreamPipeline`: the same audio blocks in, the same
:class:`~kwstool.stream.engine.StepResult` out, the same C recognizer (averaging, threshold,
suppression). Every inference period the last second of audio is treated as the head learnt its
clips (:meth:`kwstool.core.embedding.SpeechEmbedding.clips`: zero-padded, 12 embeddings), and its
label probabilities, as 0..255 scores, go to the recognizer. The run's ``calibration.json`` is
for the board's int8 model, so the recognizer starts from the export defaults here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwstool.core.contract import CLIP_SAMPLES, SAMPLE_RATE
from kwstool.core.embedding import HEAD_FILE, TEACHER_DIR, Head, HeadRecord, SpeechEmbedding
from kwstool.errors import KwsError
from kwstool.stream import native
from kwstool.stream.engine import DEFAULT_PERIOD_MS, StepResult


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
        self._buffer = np.zeros(CLIP_SAMPLES, np.int16)

    def feed(self, samples: np.ndarray) -> list[StepResult]:
        results = []
        samples = np.asarray(samples, np.int16).reshape(-1)
        pos = 0
        while pos < len(samples):
            # up to the next inference time exactly, as the board path does with its frames
            now = self.features.samples
            take = samples[pos : pos + (now // self.every + 1) * self.every - now]
            pos += len(take)
            self._buffer = np.concatenate([self._buffer[len(take) :], take])[-CLIP_SAMPLES:]
            self.features.samples += len(take)
            if self.features.samples % self.every == 0:
                results.append(self._infer())
        return results

    def _infer(self) -> StepResult:
        probs = self.model.head.probabilities(self.embedding.clips(self._buffer[None]))[0]
        scores = np.clip(np.rint(probs * 255), 0, 255).astype(np.uint8)
        raw = (scores.astype(np.int16) - 128).astype(np.int8)  # as an int8 output, zero point -128
        t = self.features.time_ms
        return StepResult(t, raw, scores, self.recognizer.process(scores, t))
