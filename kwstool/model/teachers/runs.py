"""The ``runs`` teacher, knowledge distillation (Hinton et al. 2015): trained models teach the
one being trained.

``--teachers RUN[,RUN...]`` names finished run folders trained on the same data (same labels,
same front end). Each training batch, after augmentation (before mixup), goes through every
teacher; their averaged, temperature-softened distribution is blended into the batch's targets,
``(1 - distill) * labels + distill * teachers``, and the student learns from the blend with the
usual cross-entropy. An average of several teachers is a better teacher than any one of them
(an ensemble), and the student, one small model, is what goes on the board.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kwstool.errors import KwsError


def teacher_paths(spec: str) -> list[Path]:
    """The run folders of a ``teachers`` value (comma-separated; empty: none)."""
    return [Path(p.strip()) for p in spec.split(",") if p.strip()]


def _check_teacher(run: Path, labels: list[str], frontend_hash: str | None) -> Path:
    from kwstool.model import runfolder as rf

    model = run / rf.BEST_FILE
    if not model.is_file() or not (run / "config.json").is_file():
        raise KwsError(
            f"{run}: not a finished run folder (no {rf.BEST_FILE}/config.json); "
            "train the teacher first with `kwstool train DATA --out RUN`"
        )
    stored = rf.read_config(run / "config.json")
    if list(stored.get("labels") or []) != list(labels):
        raise KwsError(
            f"{run}: teacher labels {stored.get('labels')} differ from the data's {labels}; "
            "use a teacher trained on the same prepared data"
        )
    theirs = (stored.get("features") or {}).get("frontend_hash")
    if frontend_hash and theirs and theirs != frontend_hash:
        raise KwsError(
            f"{run}: the teacher was trained on features of another front end; "
            "retrain it on this data"
        )
    return model


class Teachers:
    """A :class:`~kwstool.model.teachers.Teacher`: the blend of ``y`` with the teachers'
    softened mean of the batch's features."""

    audio = None  # reads features

    def __init__(
        self,
        runs: list[Path],
        labels: list[str],
        share: float,
        temperature: float,
        frontend_hash: str | None = None,
    ) -> None:
        import keras
        import tensorflow as tf

        from kwstool.core.contract import SHAPE

        if not runs:
            raise KwsError("distillation needs at least one teacher run folder")
        paths = [_check_teacher(r, labels, frontend_hash) for r in runs]
        self.models = [keras.models.load_model(p, compile=False) for p in paths]
        self.share = float(share)
        self.temperature = float(temperature)
        spec = tf.TensorSpec((None, *SHAPE, 1), tf.float32)
        self._predict = tf.function(self._soft, input_signature=[spec])

    def _soft(self, x: Any) -> Any:
        import tensorflow as tf

        logs = [tf.math.log(tf.maximum(m(x, training=False), 1e-7)) for m in self.models]
        soft = [tf.nn.softmax(v / self.temperature, axis=-1) for v in logs]
        return tf.add_n(soft) / len(soft)

    def distribution(self, x: np.ndarray) -> np.ndarray:
        """The teachers' averaged softened class distribution of a batch of features."""
        return np.asarray(self._predict(np.asarray(x, dtype=np.float32)))

    def __call__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        ids: np.ndarray | None = None,
        extra: np.ndarray | None = None,
    ) -> np.ndarray:
        from kwstool.model.teachers import blend

        return blend(y, self.distribution(x), self.share)
