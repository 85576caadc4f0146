"""A frozen pretrained speech embedding (Google's speech_embedding, as ONNX models shipped in the
``openwakeword==0.4.0`` wheel) and a small classifier head over it: the embedding teacher of
``kwstool train --teacher embedding`` and ``kwstool listen --model embedding`` (laptop only).

Framing, checked against the ONNX models' shapes (``tests/core/test_embedding.py``):

* ``melspectrogram.onnx``: float32 samples ``(B, S)`` at 16 kHz (int16 values as floats) ->
  ``(B, 1, F, 32)`` with ``F = (S - 512) // 160 + 1`` (a 512-sample window every 10 ms),
  transformed ``mel / 10 + 2`` as the embedding model expects;
* ``embedding_model.onnx``: ``(M, 76, 32, 1)`` mel windows -> ``(M, 1, 1, 96)``; the windows are
  taken every 8 mel frames (80 ms), so embedding ``k`` covers samples ``[1280 k, 1280 k + 12512)``.

A stream is zero-padded by :data:`PAD` samples on both sides; a 1 s window starting at stream
sample ``w0`` is represented by the :data:`HEAD_EMBEDDINGS` consecutive embeddings whose centres
lie in it (:func:`first_embedding`). A clip is the window at 0 of a one-clip stream, so clips and
windows cut from continuous streams go through the same framing (:meth:`SpeechEmbedding.windows`
computes a stream's embeddings once and takes each window's from them).

The head (:class:`Head`): standardized flattened embeddings -> ReLU layer -> label logits, in
NumPy (no TensorFlow needed to run it), stored as ``head.npz`` beside a typed record
(:class:`HeadRecord`, ``teacher.json``) in ``RUN/teacher/``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from kwstool.core.artifacts import Artifact
from kwstool.core.contract import CLIP_SAMPLES, SAMPLE_RATE
from kwstool.errors import KwsError

INSTALL = "install the teacher extra: `pip install 'kwstool[teacher]'`"
TEACHER_DIR = "teacher"  # in a run folder: the head and its record (HeadRecord.FILE)
HEAD_FILE = "head.npz"
#: Environment variable naming a folder that holds the two ONNX files (instead of the package).
MODEL_DIR_ENV = "KWSTOOL_EMBEDDING_DIR"
MEL_MODEL, EMBEDDING_MODEL = "melspectrogram.onnx", "embedding_model.onnx"

MEL_WINDOW = 512  # samples per mel frame
MEL_HOP = 160  # samples between mel frames (10 ms)
MEL_BINS = 32
EMB_FRAMES = 76  # mel frames per embedding window
EMB_HOP = 8  # mel frames between embeddings (80 ms)
EMB_DIM = 96
EMB_HOP_SAMPLES = EMB_HOP * MEL_HOP  # 1280
EMB_SPAN = MEL_WINDOW + (EMB_FRAMES - 1) * MEL_HOP  # samples one embedding sees: 12512
PAD = SAMPLE_RATE // 2  # zeros either side of every stream
HEAD_EMBEDDINGS = 12  # embeddings per 1 s window: those centred in it
MAX_SHIFT = 2  # embeddings a clip's window can move either way inside its padded stream
EMBED_BATCH = 256  # mel windows per embedding-model call


def mel_frames(samples: int) -> int:
    """Mel frames of ``samples`` samples (the melspectrogram model's output length)."""
    return max(0, (samples - MEL_WINDOW) // MEL_HOP + 1)


def first_embedding(w0: np.ndarray | int) -> np.ndarray:
    """Index (in the padded stream) of the first of the :data:`HEAD_EMBEDDINGS` embeddings of the
    window starting at stream sample ``w0``: the group whose centre is nearest the window's."""
    centre = np.asarray(w0, np.int64) + CLIP_SAMPLES // 2 + PAD - EMB_SPAN // 2
    return np.rint(centre / EMB_HOP_SAMPLES - (HEAD_EMBEDDINGS - 1) / 2).astype(np.int64)


def model_dir() -> Path:
    """The folder holding the two ONNX models: ``$KWSTOOL_EMBEDDING_DIR`` or the installed
    ``openwakeword`` package's ``resources/models`` (the package is not imported)."""
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        folder = Path(env)
        where = f"{MODEL_DIR_ENV}={env}"
    else:
        spec = importlib.util.find_spec("openwakeword")
        if spec is None or not spec.submodule_search_locations:
            raise KwsError(f"the speech-embedding models are not installed; {INSTALL}")
        folder = Path(next(iter(spec.submodule_search_locations))) / "resources" / "models"
        where = "the openwakeword package"
    for name in (MEL_MODEL, EMBEDDING_MODEL):
        if not (folder / name).is_file():
            raise KwsError(f"{where}: no {name} in {folder}; {INSTALL} (openwakeword==0.4.0)")
    return folder


def model_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of the two ONNX files (recorded with a head: it is only valid for them)."""
    names = (MEL_MODEL, EMBEDDING_MODEL)
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


class SpeechEmbedding:
    """The two ONNX models: int16 audio -> mel frames -> 96-d embeddings (see the module doc)."""

    def __init__(self, threads: int | None = None, folder: Path | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise KwsError(f"the embedding teacher needs onnxruntime; {INSTALL}") from None
        self.folder = folder or model_dir()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        self._mel = ort.InferenceSession(str(self.folder / MEL_MODEL), opts, providers=providers)
        self._emb = ort.InferenceSession(
            str(self.folder / EMBEDDING_MODEL), opts, providers=providers
        )

    def mel(self, audio: np.ndarray) -> np.ndarray:
        """``(B, S)`` int16 samples -> ``(B, F, 32)`` float32 mel frames (``mel / 10 + 2``).

        One row at a time: the model floors its decibels at the input's maximum - 80 dB, the
        maximum of the whole batch, so a batch would make each row depend on the others."""
        x = np.asarray(audio, np.float32).reshape(len(audio), -1)
        out = np.empty((len(x), mel_frames(x.shape[1]), MEL_BINS), np.float32)
        for i, row in enumerate(x):
            mel = self._mel.run(None, {"input": row[None]})[0]
            out[i] = np.asarray(mel, np.float32).reshape(-1, MEL_BINS) / 10.0 + 2.0
        return out

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """``(M, 76, 32)`` mel windows -> ``(M, 96)`` embeddings."""
        out = np.empty((len(windows), EMB_DIM), np.float32)
        for s in range(0, len(windows), EMBED_BATCH):
            part = np.ascontiguousarray(windows[s : s + EMBED_BATCH], np.float32)[..., None]
            out[s : s + len(part)] = np.asarray(self._emb.run(None, {"input_1": part})[0]).reshape(
                len(part), EMB_DIM
            )
        return out

    def stream(self, stream: np.ndarray) -> np.ndarray:
        """All embeddings ``(K, 96)`` of a zero-padded stream (``stream`` int16 ``(S,)``)."""
        padded = np.concatenate([np.zeros(PAD, np.int16), np.asarray(stream, np.int16),
                                 np.zeros(PAD, np.int16)])  # fmt: skip
        mel = self.mel(padded[None])[0]
        k = np.arange((len(mel) - EMB_FRAMES) // EMB_HOP + 1)
        return self.embed(_mel_windows(mel[None], k)[0])

    def windows(self, stream: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """``(M, 12, 96)``: the embeddings of the 1 s windows starting at stream samples
        ``starts``; the stream's mel frames are computed once and only the embeddings some window
        needs are run."""
        starts = np.asarray(starts, np.int64).reshape(-1)
        if len(starts) == 0:
            return np.empty((0, HEAD_EMBEDDINGS, EMB_DIM), np.float32)
        padded = np.concatenate([np.zeros(PAD, np.int16), np.asarray(stream, np.int16),
                                 np.zeros(PAD, np.int16)])  # fmt: skip
        mel = self.mel(padded[None])[0]
        ks = first_embedding(starts)[:, None] + np.arange(HEAD_EMBEDDINGS)
        last = (len(mel) - EMB_FRAMES) // EMB_HOP
        if ks.min() < 0 or ks.max() > last:
            raise ValueError(f"windows {starts.min()}..{starts.max()} outside the stream")
        need, where = np.unique(ks, return_inverse=True)
        emb = self.embed(_mel_windows(mel[None], need)[0])
        return emb[where.reshape(ks.shape)]

    def clips(self, clips: np.ndarray, batch: int = 64, shift: int = 0) -> np.ndarray:
        """``(B, 12, 96)`` of 1 s int16 clips ``(B, 16000)``: each clip the window at 0 of its
        own zero-padded stream (the same framing as :meth:`windows`), batched. ``shift``
        (0..:data:`MAX_SHIFT`): ``shift`` more embeddings on each side, ``(B, 12 + 2 shift,
        96)``: the windows of the clip moved by up to ``shift`` x 80 ms either way."""
        if not 0 <= shift <= MAX_SHIFT:
            raise ValueError(f"shift {shift}: 0..{MAX_SHIFT}")
        clips = np.asarray(clips, np.int16).reshape(len(clips), -1)
        width = HEAD_EMBEDDINGS + 2 * shift
        k = first_embedding(0) - shift + np.arange(width)
        out = np.empty((len(clips), width, EMB_DIM), np.float32)
        for s in range(0, len(clips), batch):
            part = clips[s : s + batch]
            padded = np.pad(part, ((0, 0), (PAD, PAD)))
            wins = _mel_windows(self.mel(padded), k)
            out[s : s + len(part)] = self.embed(wins.reshape(-1, EMB_FRAMES, MEL_BINS)).reshape(
                len(part), width, EMB_DIM
            )
        return out


def _mel_windows(mel: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """``(B, len(ks), 76, 32)``: the mel window of embedding ``k`` for each ``k`` in ``ks``."""
    idx = np.asarray(ks, np.int64)[:, None] * EMB_HOP + np.arange(EMB_FRAMES)
    return mel[:, idx]


# --- the head ------------------------------------------------------------------------------------
def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    return out


@dataclass
class Head:
    """Standardized flattened embeddings -> ReLU hidden layer -> label logits (NumPy)."""

    mean: np.ndarray  # (12 * 96,)
    scale: np.ndarray  # (12 * 96,)
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    ARRAYS: ClassVar[tuple[str, ...]] = ("mean", "scale", "w1", "b1", "w2", "b2")

    @property
    def num_labels(self) -> int:
        return int(self.b2.shape[0])

    def inputs(self, emb: np.ndarray) -> np.ndarray:
        x = np.asarray(emb, np.float32).reshape(len(emb), self.mean.shape[0])  # 0 rows too
        out: np.ndarray = (x - self.mean) / self.scale
        return out

    def logits(self, emb: np.ndarray) -> np.ndarray:
        """``(M, labels)`` logits of ``(M, 12, 96)`` embeddings."""
        h = np.maximum(self.inputs(emb) @ self.w1 + self.b1, 0.0)
        return np.asarray(h @ self.w2 + self.b2, np.float32)

    def probabilities(self, emb: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        out: np.ndarray = softmax(self.logits(emb), temperature)
        return out

    def save(self, path: Path) -> None:
        import io

        from kwstool.fileio import write_bytes

        buf = io.BytesIO()
        np.savez(buf, **{k: getattr(self, k) for k in self.ARRAYS})
        write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path, num_labels: int) -> Head:
        fix = "train it again with `kwstool train --teacher embedding`"
        try:
            with np.load(path) as z:
                arrays = {k: np.asarray(z[k], np.float32) for k in cls.ARRAYS}
        except (OSError, KeyError, ValueError) as exc:
            raise KwsError(f"{path}: not a readable embedding head ({exc}); {fix}") from None
        head = cls(**arrays)
        width = HEAD_EMBEDDINGS * EMB_DIM
        if (
            head.mean.shape != (width,)
            or head.w1.shape[0] != width
            or head.w2.shape != (head.b1.shape[0], num_labels)
        ):
            raise KwsError(f"{path}: the head's shapes do not fit {num_labels} labels; {fix}")
        return head


@dataclass
class HeadRecord(Artifact):
    """``RUN/teacher/teacher.json``: what the embedding head was trained on and for."""

    SCHEMA: ClassVar[str] = "kwstool.teacher"
    VERSION: ClassVar[int] = 1
    FILE: ClassVar[str] = "teacher.json"
    FIX: ClassVar[str] = "train it again with `kwstool train --teacher embedding`"

    kwstool_version: str
    teacher: str  # "embedding"
    labels: list[str]
    embeddings: int  # per window (HEAD_EMBEDDINGS)
    hidden: int
    models: dict[str, str]  # ONNX file name -> SHA-256
    data_inputs_hash: str  # the prepared data whose training split it learnt
    train_clips: int
    train_accuracy: float
    steps: int
    seed: int
    shift: int = 0  # embeddings a training clip was also moved by either way
