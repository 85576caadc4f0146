"""The ``embedding`` teacher (``kwstool train --teacher embedding``): outside knowledge from a
frozen pretrained speech embedding (:mod:`kwstool.core.embedding`).

At the start of a run a small head (:class:`kwstool.core.embedding.Head`) is trained on the
embeddings of the run's *training* clips only (un-augmented but for time shifts of up to
:data:`HEAD_SHIFT` embeddings; the validation and test speakers are never seen), seeded by the
run's seed. Its logits of the training clips are computed once and
kept; the teacher's distribution of clip ``i`` is ``softmax(logits[i] / temperature)``, whatever
the augmentation of the epoch. Stream windows and mined negatives are cut from synthetic streams
every epoch: their distributions are computed when they are cut, from the embeddings of the
stream they come from (:attr:`EmbeddingTeacher.audio`, one embedding pass per stream).

``RUN/teacher/`` keeps ``head.npz``, ``teacher.json`` (:class:`~kwstool.core.embedding.HeadRecord`)
and ``clip_logits.npy``; a resumed run reuses them when labels, data, seed and ONNX models match.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.embedding import (
    EMB_DIM,
    HEAD_EMBEDDINGS,
    HEAD_FILE,
    INSTALL,
    TEACHER_DIR,
    Head,
    HeadRecord,
    SpeechEmbedding,
    model_hashes,
    softmax,
)
from kwstool.errors import KwsError
from kwstool.model.augment import class_weights, read_rows
from kwstool.model.teachers import blend

LOGITS_FILE = "clip_logits.npy"
HIDDEN = 128
HEAD_EPOCHS = 50
HEAD_MAX_STEPS = 4000  # big training splits take fewer epochs
HEAD_BATCH = 128
HEAD_LR = 1e-3
HEAD_WEIGHT_DECAY = 1e-4
HEAD_DROPOUT = 0.3
CLIP_CHUNK = 256  # training clips read and embedded at a time


#: The head also learns each training clip moved by up to this many embeddings (80 ms each)
#: either way: a word then holds its score over ~0.6 s of a stream, not the ~0.3 s of a head
#: that only saw centred clips (``listen --model embedding`` averages its scores over 300 ms).
HEAD_SHIFT = 2


def clip_embeddings(emb: SpeechEmbedding, audio: np.ndarray, shift: int = 0) -> np.ndarray:
    """``(N, 12 + 2 shift, 96)`` embeddings of a split's clips (memory-mapped audio read in
    chunks; ``shift``: see :meth:`SpeechEmbedding.clips`)."""
    out = np.empty((len(audio), HEAD_EMBEDDINGS + 2 * shift, EMB_DIM), np.float32)
    for s in range(0, len(audio), CLIP_CHUNK):
        idx = np.arange(s, min(s + CLIP_CHUNK, len(audio)))
        out[idx] = emb.clips(read_rows(audio, idx), shift=shift)
    return out


def shifted_views(
    wide: np.ndarray, labels: np.ndarray, shift: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every 12-embedding window of ``(N, 12 + 2 shift, 96)`` clip embeddings, with its label."""
    views = [wide[:, i : i + HEAD_EMBEDDINGS] for i in range(2 * shift + 1)]
    return np.concatenate(views), np.tile(np.asarray(labels), len(views))


def train_head(
    emb: np.ndarray,
    labels: np.ndarray,
    num_labels: int,
    seed: int,
    hidden: int = HIDDEN,
    epochs: int = HEAD_EPOCHS,
) -> tuple[Head, int]:
    """A head trained on embeddings ``(N, 12, 96)`` with labels ``(N,)``: class-balanced
    cross-entropy, AdamW, dropout on the hidden layer, all in NumPy from ``seed``; the head and
    the steps it took. BLAS runs on one thread: its small products are several times slower
    spread over busy cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise KwsError(f"the embedding teacher needs threadpoolctl; {INSTALL}") from None
    with threadpool_limits(1, user_api="blas"):
        return _train_head(emb, labels, num_labels, seed, hidden, epochs)


def _train_head(
    emb: np.ndarray, labels: np.ndarray, num_labels: int, seed: int, hidden: int, epochs: int
) -> tuple[Head, int]:
    rng = np.random.default_rng([seed, 7])
    x = emb.reshape(len(emb), -1).astype(np.float32)
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-3
    x = (x - mean) / scale
    y = np.asarray(labels, np.int64)
    cw = class_weights(y, num_labels)
    d = x.shape[1]
    params = {
        "w1": (rng.standard_normal((d, hidden)) * math.sqrt(2.0 / d)).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "w2": (rng.standard_normal((hidden, num_labels)) * math.sqrt(1.0 / hidden)).astype(
            np.float32
        ),
        "b2": np.zeros(num_labels, np.float32),
    }
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    eye = np.eye(num_labels, dtype=np.float32)
    steps_per_epoch = math.ceil(len(x) / HEAD_BATCH)
    epochs = max(1, min(epochs, HEAD_MAX_STEPS // steps_per_epoch))
    total = epochs * steps_per_epoch
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for s in range(0, len(x), HEAD_BATCH):
            b = order[s : s + HEAD_BATCH]
            xb, yb, wb = x[b], eye[y[b]], cw[y[b]]
            pre = xb @ params["w1"] + params["b1"]
            h = np.maximum(pre, 0.0)
            keep = (rng.random(h.shape, np.float32) >= HEAD_DROPOUT) * np.float32(
                1.0 / (1.0 - HEAD_DROPOUT)
            )
            hd = h * keep
            p = softmax(hd @ params["w2"] + params["b2"])
            g = ((p - yb) * (wb / wb.sum())[:, None]).astype(np.float32)  # d loss / d logits
            grads = {"w2": hd.T @ g, "b2": g.sum(axis=0)}
            gh = (g @ params["w2"].T) * keep * (pre > 0)
            grads["w1"] = xb.T @ gh
            grads["b1"] = gh.sum(axis=0)
            step += 1
            lr = HEAD_LR * 0.5 * (1 + math.cos(math.pi * step / total))
            for k in params:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                mh = m[k] / (1 - 0.9**step)
                vh = v[k] / (1 - 0.999**step)
                params[k] -= lr * (mh / (np.sqrt(vh) + 1e-8) + HEAD_WEIGHT_DECAY * params[k])
    return Head(mean.astype(np.float32), scale.astype(np.float32), **params), step


class EmbeddingTeacher:
    """A :class:`~kwstool.model.teachers.Teacher` on a speech embedding and a trained head."""

    def __init__(
        self,
        embedding: SpeechEmbedding,
        head: Head,
        clip_logits: np.ndarray,
        share: float,
        temperature: float,
    ) -> None:
        self.embedding = embedding
        self.head = head
        self.share = float(share)
        self.temperature = float(temperature)
        self.clip_soft = softmax(clip_logits, self.temperature)
        self.seconds = 0.0  # spent on window distributions (the per-epoch cost)

    def audio(self, stream: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """The teacher's distributions of the 1 s windows of ``stream`` starting at ``starts``."""
        t0 = time.perf_counter()
        out = self.head.probabilities(self.embedding.windows(stream, starts), self.temperature)
        self.seconds += time.perf_counter() - t0
        return out

    def __call__(
        self, x: np.ndarray, y: np.ndarray, ids: np.ndarray, extra: np.ndarray | None
    ) -> np.ndarray:
        n = len(self.clip_soft)
        ids = np.asarray(ids, np.int64)
        soft = np.array(y, np.float32)  # rows it cannot teach keep their labels
        clip = ids < n
        soft[clip] = self.clip_soft[ids[clip]]
        if extra is not None:
            taught = extra[ids[~clip] - n]
            rows = np.flatnonzero(~clip)[~np.isnan(taught).any(axis=1)]
            soft[rows] = taught[~np.isnan(taught).any(axis=1)]
        return blend(y, soft, self.share)

    @classmethod
    def for_run(
        cls,
        cfg: Any,
        labels: list[str],
        data: Any,
        run_dir: Path,
        threads: int | None,
        report: Any,
    ) -> EmbeddingTeacher:
        """The run's teacher: its head and clip logits from ``RUN/teacher/`` when they fit this
        run, else trained now on the training split (and saved there)."""
        embedding = SpeechEmbedding(threads)
        folder = run_dir / TEACHER_DIR
        train = data.split("train")
        want = {
            "labels": list(labels),
            "models": model_hashes(embedding.folder),
            "data_inputs_hash": str(data.manifest.get("inputs_hash", "")),
            "seed": int(cfg.seed),
            "train_clips": len(train.labels),
            "shift": HEAD_SHIFT,
        }
        cached = _cached(folder, want, len(labels))
        if cached is not None:
            head, logits = cached
            report.line(f"embedding teacher: head and clip logits from {folder}")
            return cls(embedding, head, logits, cfg.distill, cfg.distill_temperature)
        t0 = time.perf_counter()
        y = np.asarray(train.labels, np.int64)
        wide = clip_embeddings(embedding, train.audio, HEAD_SHIFT)
        emb = wide[:, HEAD_SHIFT : HEAD_SHIFT + HEAD_EMBEDDINGS]  # each clip centred
        t_emb = time.perf_counter() - t0
        head, steps = train_head(*shifted_views(wide, y, HEAD_SHIFT), len(labels), cfg.seed)
        logits = head.logits(emb)
        accuracy = float((logits.argmax(axis=1) == y).mean())
        _save(folder, head, logits, want, steps, accuracy)
        report.line(
            f"embedding teacher: {len(y)} training clips embedded in {t_emb:.1f}s, head trained "
            f"({steps} steps, training top-1 {accuracy:.3f}) in "
            f"{time.perf_counter() - t0 - t_emb:.1f}s; saved in {folder}"
        )
        return cls(embedding, head, logits, cfg.distill, cfg.distill_temperature)


def _cached(folder: Path, want: dict[str, Any], num_labels: int) -> tuple[Head, np.ndarray] | None:
    record_path = folder / HeadRecord.FILE
    if not (record_path.is_file() and (folder / HEAD_FILE).is_file()):
        return None
    if not (folder / LOGITS_FILE).is_file():
        return None
    record = HeadRecord.from_json(record_path)
    if any(getattr(record, k) != v for k, v in want.items()):
        return None
    logits = np.load(folder / LOGITS_FILE)
    if logits.shape != (want["train_clips"], num_labels):
        return None
    return Head.load(folder / HEAD_FILE, num_labels), logits


def _save(
    folder: Path,
    head: Head,
    logits: np.ndarray,
    want: dict[str, Any],
    steps: int,
    accuracy: float,
) -> None:
    from kwstool import __version__
    from kwstool.fileio import save_npy

    folder.mkdir(parents=True, exist_ok=True)
    head.save(folder / HEAD_FILE)
    save_npy(folder / LOGITS_FILE, logits.astype(np.float32))
    record = HeadRecord(
        kwstool_version=__version__,
        teacher="embedding",
        embeddings=HEAD_EMBEDDINGS,
        hidden=int(head.b1.shape[0]),
        train_accuracy=round(accuracy, 4),
        steps=steps,
        **want,
    )
    record.to_json(folder / HeadRecord.FILE)  # written last: the commit point
