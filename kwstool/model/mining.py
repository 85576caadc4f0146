"""Hard-negative mining: windows of other speech that the model being trained scores as a keyword.

Every ``every`` epochs :class:`HardNegatives` runs the current model over a long stream of the
training speakers' *other* words and noise (no keyword at all, built by
:class:`kwstool.model.windows.StreamWindows` with keywords switched off), every
``hop_frames`` frames as the board would, and keeps the windows whose best keyword probability
reaches ``threshold``: they are exactly the false accepts of a live stream. They join a pool
(at most ``pool_size``, the newest kept) that is mixed into every following epoch as
``_unknown_`` examples, next to freshly cut stream windows. As in openWakeWord and
microWakeWord, the negatives the model finds hardest get trained on. With a teacher that reads
audio (``windows.teacher``) each mined window keeps the teacher's distribution, computed on the
stream it came from, and calls return it as a third array.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from kwstool.core.contract import NUM_CHANNELS, NUM_FRAMES
from kwstool.core.frontend import compute_raw, to_int8, windows_of
from kwstool.core.labels import is_filler
from kwstool.model.windows import StreamWindows, window_starts


@dataclass
class HardNegatives:
    """Per-epoch extra examples: fresh stream windows plus mined hard negatives.

    Call ``(rng, epoch, model)``; ``model`` is the Keras model being trained (its float outputs
    are what is mined). Returns int8 features ``(M, 49, 40)`` and label indices ``(M,)``.
    """

    windows: StreamWindows
    every: int = 5
    stream_seconds: float = 240.0
    hop_frames: int = 3
    threshold: float = 0.5
    pool_size: int = 1500
    mined_per_epoch: int = 600
    pool: np.ndarray = field(
        default_factory=lambda: np.empty((0, NUM_FRAMES, NUM_CHANNELS), np.int8)
    )
    history: list[dict[str, Any]] = field(default_factory=list)
    pool_soft: np.ndarray | None = None  # the teacher's distributions of the pool (with one)

    needs_model = True  # train() calls it (rng, epoch, model)

    @property
    def per_epoch(self) -> int:
        """Examples one call returns once the pool is full (for the learning-rate schedule)."""
        return self.windows.count + min(self.mined_per_epoch, self.pool_size)

    def __call__(self, rng: np.random.Generator, epoch: int, model: Any) -> tuple[np.ndarray, ...]:
        got = self.windows(rng)
        feats, labels = got[0], got[1]
        if model is not None and epoch > 1 and (epoch - 1) % self.every == 0:
            self.mine(rng, model, epoch)
        take = np.empty(0, np.int64)
        if len(self.pool):
            take = rng.choice(
                len(self.pool), size=min(self.mined_per_epoch, len(self.pool)), replace=False
            )
            feats = np.concatenate([feats, self.pool[take]])
            labels = np.concatenate([labels, np.full(len(take), self.windows.unknown)])
        if self.windows.teacher is None:
            return feats, labels
        mined = self.pool_soft[take] if self.pool_soft is not None else got[2][:0]
        return feats, labels, np.concatenate([got[2], mined])

    def negative_frames(self, rng: np.random.Generator) -> np.ndarray:
        """int8 features of a continuous stream of other words and noise (no keyword)."""
        return self.negative_stream(rng)[1]

    def negative_stream(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A continuous stream of other words and noise (no keyword) and its int8 features."""
        cfg = replace(self.windows.config, keyword_share=0.0, stream_seconds=self.stream_seconds)
        stream, _ = self.windows.stream(rng, cfg)
        return stream, to_int8(compute_raw(stream))

    def mine(self, rng: np.random.Generator, model: Any, epoch: int) -> int:
        """Add the windows of a fresh negative stream that score as a keyword; returns how many."""
        stream, frames = self.negative_stream(rng)
        ends = np.arange(NUM_FRAMES - 1, len(frames), self.hop_frames)
        wins = windows_of(frames, ends + 1)
        probs = np.asarray(
            model.predict(wins.astype(np.float32)[..., None], batch_size=512, verbose=0)
        )
        keyword = np.array([not is_filler(n) for n in self.windows.label_names])
        best = probs[:, keyword].max(axis=1)
        hard = wins[best >= self.threshold]
        self.pool = np.concatenate([self.pool, hard])[-self.pool_size :]
        if self.windows.teacher is not None:
            soft = self.windows.teacher(stream, window_starts(ends[best >= self.threshold]))
            old = self.pool_soft if self.pool_soft is not None else soft[:0]
            self.pool_soft = np.concatenate([old, soft])[-self.pool_size :]
        seconds = len(frames) * 0.02
        self.history.append(
            {
                "epoch": epoch,
                "windows": len(wins),
                "hard": len(hard),
                "false_accept_windows_per_hour": round(len(hard) * 3600 / seconds, 1),
                "pool": len(self.pool),
            }
        )
        return len(hard)
