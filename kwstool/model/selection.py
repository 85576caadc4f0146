"""Model selection by the streaming metric: recall at zero false accepts on validation streams.

``kwstool train --select-by stream`` keeps the epoch (``best.keras``) and stops early by this
score instead of clip accuracy. :class:`StreamSelector` builds, once, two streams from the
*validation* speakers' clips with :class:`kwstool.model.windows.StreamWindows` (the training
windows' stream builder): a positive stream (keywords only) and a negative stream (other words
only), words ``gap_seconds`` apart over background noise, as in the stream benchmark. The C
front end runs continuously over each, and a 49-frame window is cut every ``hop_frames`` frames
(the board's inference period).

Each call runs the model on all windows and averages each keyword's probability over the last
``average_windows`` windows (the recognizer's averaging window). A keyword's threshold is its
highest averaged score anywhere on the negative stream, so that keyword has no false accept
there; a keyword utterance is found when its averaged score exceeds that threshold in a window
ending within ``find_seconds`` after the word ends. The score is the mean over keywords of
the share found: recall at zero false accepts on unseen (validation) speakers. It is a proxy
of ``kwstool stream-eval`` (no suppression or minimum count), cheap enough for every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from kwstool.core.contract import NUM_FRAMES, SAMPLE_RATE, STRIDE_SAMPLES
from kwstool.core.frontend import compute_raw, to_int8, windows_of
from kwstool.core.labels import is_filler
from kwstool.model.windows import StreamWindows, WindowConfig, _frame_ending_after


@dataclass
class _Stream:
    windows: np.ndarray  # int8 (W, 49, 40)
    ends: np.ndarray  # last frame index of each window
    words: list[tuple[int, int]]  # (label, last frame holding the word's end), keywords only


class StreamSelector:
    """``select(model) -> float`` for :func:`kwstool.model.train.train` (see the module doc)."""

    def __init__(
        self,
        audio: np.ndarray,
        labels: np.ndarray,
        label_names: list[str],
        noise: list[np.ndarray],
        seconds: float = 600.0,
        gap_seconds: tuple[float, float] = (1.5, 3.0),
        hop_frames: int = 5,
        average_windows: int = 5,
        find_seconds: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.label_names = list(label_names)
        self.keywords = [i for i, n in enumerate(self.label_names) if not is_filler(n)]
        self.hop, self.average = hop_frames, average_windows
        self.find_windows = max(1, round(find_seconds * SAMPLE_RATE / STRIDE_SAMPLES / hop_frames))
        builder = StreamWindows(audio, labels, self.label_names, noise, count=1)
        cfg = replace(WindowConfig(), stream_seconds=seconds, gap_seconds=gap_seconds)
        rng = np.random.default_rng([seed, 7])
        self.positive = self._stream(builder, replace(cfg, keyword_share=1.0), rng)
        self.negative = self._stream(builder, replace(cfg, keyword_share=0.0), rng)
        self.history: list[dict[str, Any]] = []

    def _stream(self, builder: StreamWindows, cfg: WindowConfig, rng: Any) -> _Stream:
        audio, events = builder.stream(rng, cfg)
        frames = to_int8(compute_raw(audio))
        ends = np.arange(NUM_FRAMES - 1, len(frames), self.hop)
        windows = windows_of(frames, ends + 1)
        words = [(ev.label, _frame_ending_after(ev.end)) for ev in events
                 if ev.label in self.keywords]  # fmt: skip
        return _Stream(windows, ends, words)

    def _averaged(self, model: Any, stream: _Stream) -> np.ndarray:
        """Keyword probabilities per window, averaged over the last ``average`` windows."""
        probs = np.asarray(
            model.predict(stream.windows.astype(np.float32)[..., None], batch_size=512, verbose=0)
        )[:, self.keywords]
        csum = np.cumsum(np.vstack([np.zeros((1, probs.shape[1])), probs]), axis=0)
        k = np.minimum(np.arange(1, len(probs) + 1), self.average)
        out: np.ndarray = (csum[1:] - csum[np.arange(1, len(probs) + 1) - k]) / k[:, None]
        return out

    def recalls(self, model: Any) -> dict[str, float]:
        """Per keyword: the share of its utterances found at zero false accepts."""
        threshold = self._averaged(model, self.negative).max(axis=0)
        pos = self._averaged(model, self.positive)
        found: dict[int, list[bool]] = {k: [] for k in self.keywords}
        for label, last in self.positive.words:
            first = int(np.searchsorted(self.positive.ends, last))
            col = self.keywords.index(label)
            span = pos[first : first + self.find_windows, col]
            found[label].append(bool(span.size) and bool(span.max() > threshold[col]))
        return {self.label_names[k]: float(np.mean(v)) for k, v in found.items() if v}

    def __call__(self, model: Any) -> float:
        recalls = self.recalls(model)
        score = float(np.mean(list(recalls.values()))) if recalls else 0.0
        self.history.append(
            {"score": round(score, 4), **{k: round(v, 3) for k, v in recalls.items()}}
        )
        return score
