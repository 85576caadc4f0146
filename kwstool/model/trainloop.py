"""The epoch loop of :func:`kwstool.model.train.train`: one session's state (:class:`Session`),
an epoch trained and validated (:func:`run_epoch`), its row recorded with best model, checkpoint
and history (:func:`record_epoch`), and early stopping (:func:`run_epochs`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.model import runfolder as rf
from kwstool.model.augment import Augmenter
from kwstool.model.config import TrainConfig
from kwstool.model.distribute import Distribution
from kwstool.model.epochs import (
    Epoch,
    ExtraExamples,
    Targets,
    epoch_dataset,
    extras,
)
from kwstool.model.progress import Reporter

#: ``select(model) -> float``: the score best.keras and early stopping follow (higher is better)
Select = Callable[[Any], float]


@dataclass
class Session:
    """Everything the epoch loop needs."""

    cfg: TrainConfig
    run_dir: Path
    net: Any
    optimizer: Any
    schedule: Any
    labels: list[str]
    aug: Augmenter
    y_train: np.ndarray
    weights: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    state: dict[str, Any]
    report: Reporter
    extra_examples: ExtraExamples | None = None
    select: Select | None = None
    targets: Targets | None = None
    dist: Distribution = field(default_factory=Distribution)

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.state["history"])


@contextmanager
def kept_weights(s: Session) -> Iterator[None]:
    """Inside: the model holds the weights that are validated and kept (the optimizer's moving
    average with ``cfg.ema``, else the last ones); after: exactly the training weights again."""
    if not s.cfg.ema:
        yield
        return
    live = [v.numpy() for v in s.net.trainable_variables]
    for v, average in zip(s.net.trainable_variables, s.optimizer.averages(), strict=True):
        v.assign(average)
    try:
        yield
    finally:
        for v, value in zip(s.net.trainable_variables, live):
            v.assign(value)


def run_epoch(s: Session, epoch: int) -> dict[str, Any]:
    """Train one epoch and validate; the history row."""
    import keras

    t0 = time.perf_counter()
    n = len(s.y_train)
    rng = np.random.default_rng([s.cfg.seed, epoch])
    extra_x, extra_y, soft = extras(s.extra_examples, s.cfg.seed, epoch, len(s.labels), s.net)
    total = n + (0 if extra_x is None else len(extra_x))
    ep = Epoch(rng.permutation(total), rng, extra_x, extra_y, s.cfg.mixup, s.targets, soft)
    batch = s.dist.global_batch(s.cfg.batch_size)  # the strategy gives each replica its share
    ds, steps = epoch_dataset(s.aug, s.y_train, s.weights, ep, batch)
    ds = s.dist.shard_by_data(ds)
    callback = s.report.batch_callback(epoch, s.cfg.epochs, steps, batch)
    fit = s.net.fit(
        ds,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=[callback] if callback else None,
    )
    train_s = time.perf_counter() - t0
    val = {"loss": math.nan, "accuracy": math.nan}  # no validation clips (select_by 'last')
    with kept_weights(s):
        if len(s.y_val):
            val = s.net.evaluate(s.x_val, s.y_val, batch_size=256, verbose=0, return_dict=True)
        if s.cfg.select_by == "last":
            score = float(epoch)
        else:
            score = float(s.select(s.net)) if s.select else float(val["accuracy"])
    row = {
        "epoch": epoch,
        "loss": float(fit.history["loss"][-1]),
        "accuracy": float(fit.history["accuracy"][-1]),
        "val_loss": float(val["loss"]),
        "val_accuracy": float(val["accuracy"]),
        "lr": float(keras.ops.convert_to_numpy(s.schedule(s.optimizer.iterations))),
        "examples": int(total),
        "clips_per_s": round(total / max(train_s, 1e-9), 1),
    }
    row["score"] = score
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def record_epoch(s: Session, row: dict[str, Any]) -> tuple[bool, bool]:
    """Update the state with ``row``, save best/checkpoint/history; (improved, stop). Only the
    chief writes best.keras and history; every worker keeps its checkpoint (for --resume)."""
    state, epoch = s.state, row["epoch"]
    state["history"] = [*s.history, row]
    improved = row["score"] > state["best_score"]
    if improved:
        state.update(
            best_epoch=epoch,
            best_score=row["score"],
            best_val_accuracy=row["val_accuracy"],
            since_best=0,
        )
        if s.dist.chief:
            with kept_weights(s):
                rf.save_best(s.net, s.cfg.model, len(s.labels), s.run_dir / rf.BEST_FILE)
    else:
        state["since_best"] += 1
    stop = state["since_best"] >= s.cfg.patience
    state.update(
        stopped_early=stop and epoch < s.cfg.epochs,
        finished=stop or epoch == s.cfg.epochs,
    )
    rf.write_checkpoint(s.run_dir / rf.CHECKPOINT_DIR, epoch, s.net, s.optimizer, state)
    if s.dist.chief:
        rf.write_history(s.run_dir, state["history"], state, s.cfg.model)
    return improved, stop


def epoch_line(s: Session, row: dict[str, Any], improved: bool) -> str:
    score = f"  score {row['score']:.3f}" if s.select else ""
    return (
        f"epoch {row['epoch']:3d}/{s.cfg.epochs}  loss {row['loss']:.3f}  "
        f"acc {row['accuracy']:.3f}  val_loss {row['val_loss']:.3f}  "
        f"val_acc {row['val_accuracy']:.3f}{score}{'  *' if improved else '   '}  "
        f"lr {row['lr']:.1e}  {row['clips_per_s']:,.0f} clips/s  {row['seconds']:.1f}s"
    )


def run_epochs(s: Session) -> None:
    for epoch in range(len(s.state["history"]) + 1, s.cfg.epochs + 1):
        row = run_epoch(s, epoch)
        improved, stop = record_epoch(s, row)
        s.report.line(epoch_line(s, row, improved))
        if stop:
            s.report.line(
                f"early stop: the validation score has not improved for {s.cfg.patience} epochs"
            )
            break
    where = f"model in {s.run_dir / rf.BEST_FILE}" if s.dist.chief else "the chief keeps the model"
    s.report.line(
        f"best validation score {s.state['best_score']:.4f} at epoch {s.state['best_epoch']}; "
        + where
    )
