"""Teachers of ``kwstool train``: soft targets blended into the student's training targets.

One small interface, :class:`Teacher`; one module per kind:

* ``runs`` (:mod:`.runs`, ``--teachers RUN,...``): finished kwstool runs on the same data; they
  read each batch's features (knowledge distillation).
* ``embedding`` (:mod:`.embedding`, ``--teacher embedding``): a frozen pretrained speech
  embedding with a head trained on the run's training split; it reads audio, so its
  distributions of the training clips are computed once and those of the stream windows and
  mined negatives when they are cut (:attr:`Teacher.audio`).

Per batch (:func:`kwstool.model.epochs.batches`) the targets become
``(1 - share) * labels + share * teacher``; with mixup the blended targets are then mixed like
the labels. ``share`` and the temperature are ``--distill`` and ``--distill-temperature``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kwstool.errors import KwsError

#: ``audio(stream int16 (S,), window starts (M,) in samples) -> (M, labels) distributions``
AudioTeacher = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: The teachers ``--teacher`` names (``runs`` is given by ``--teachers RUN,...``).
KINDS = ("none", "embedding")


class Teacher(Protocol):
    """What ``kwstool train`` asks of a teacher."""

    share: float  # the teacher's share of each target

    @property
    def audio(self) -> AudioTeacher | None:
        """None: the teacher reads the batch's features; else the distributions of 1 s windows
        of audio streams, which the extra-example hooks call when they cut windows (their third
        returned array, see :func:`kwstool.model.epochs.extras`)."""
        ...

    def __call__(
        self, x: np.ndarray, y: np.ndarray, ids: np.ndarray, extra: np.ndarray | None
    ) -> np.ndarray:
        """Training targets of a batch: ``x`` float inputs ``(B, 49, 40, 1)`` (augmented, before
        mixup), ``y`` label distributions ``(B, L)``, ``ids`` the examples (a training clip's
        index, or the number of clips + an index into this epoch's extra examples), ``extra``
        this epoch's teacher distributions of the extra examples (None: the hook gave none)."""
        ...


def blend(y: np.ndarray, soft: np.ndarray, share: float) -> np.ndarray:
    """``(1 - share) * y + share * soft`` as float32."""
    return ((1.0 - share) * np.asarray(y) + share * np.asarray(soft)).astype(np.float32)


def make_teacher(
    cfg: Any, labels: list[str], data: Any, run_dir: Path, threads: int | None, report: Any
) -> Teacher | None:
    """The teacher ``cfg`` asks for (None: no teacher); one-line errors for bad combinations."""
    kind = cfg.teacher
    if kind not in KINDS:
        raise KwsError(f"teacher={kind!r} is not one of {', '.join(KINDS)}")
    if kind != "none" and cfg.teachers:
        raise KwsError(
            f"--teacher {kind} and --teachers {cfg.teachers} both given; use one teacher"
        )
    if cfg.teachers:
        from kwstool.model.teachers.runs import Teachers, teacher_paths

        frontend_hash = (data.manifest.get("features") or {}).get("frontend_hash")
        return Teachers(teacher_paths(cfg.teachers), labels, cfg.distill,
                        cfg.distill_temperature, frontend_hash)  # fmt: skip
    if kind == "embedding":
        from kwstool.model.teachers.embedding import EmbeddingTeacher

        return EmbeddingTeacher.for_run(cfg, labels, data, run_dir, threads, report)
    return None
