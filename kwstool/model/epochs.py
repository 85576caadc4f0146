"""The training data of one epoch as a prefetched ``tf.data`` pipeline (see kwstool.model.train).

:func:`batches` augments ``AUGMENT_CHUNK`` clips at a time (whole batches per chunk, so batch
``i`` is ``order[i*b:(i+1)*b]``) and mixes in the epoch's extra examples where the shuffled
order points past the clips; :func:`epoch_dataset` wraps it in ``tf.data.Dataset.from_generator``
with a prefetch of ``PREFETCH_CHUNKS`` chunks, so augmentation of the next chunk overlaps
training on this one and memory is bounded by a few chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from kwstool.core.contract import SHAPE
from kwstool.errors import KwsError
from kwstool.model.augment import AUGMENT_CHUNK, Augmenter
from kwstool.model.teachers import Teacher

#: ``extra_examples(epoch_rng) -> (int8 features (M, 49, 40), labels (M,))``; a hook that cuts
#: windows for a teacher that reads audio may add a third array, their teacher distributions
ExtraExamples = Callable[[np.random.Generator], tuple[np.ndarray, ...]]
#: ``targets(inputs, label distributions, example ids, extras' teacher distributions) ->
#: training targets``: a teacher (:mod:`kwstool.model.teachers`)
Targets = Teacher
PREFETCH_CHUNKS = 2  # augmented chunks buffered ahead of the model


@dataclass
class Epoch:
    """What an epoch trains on: shuffled order over clips (< n) and extra examples (>= n),
    and how its batches are mixed (``mixup``: the Beta parameter, 0 off) and their targets
    made (``targets``: a teacher, None: the labels; ``extra_soft``: the teacher's distributions
    of the extra examples, when the hook gave them)."""

    order: np.ndarray
    rng: np.random.Generator
    extra_x: np.ndarray | None = None
    extra_y: np.ndarray | None = None
    mixup: float = 0.0
    targets: Targets | None = None
    extra_soft: np.ndarray | None = None


def extras(
    extra_examples: ExtraExamples | None,
    seed: int,
    epoch: int,
    num_labels: int,
    model: Any = None,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Call ``extra_examples`` for ``epoch`` and check what it gave (one-line errors): features,
    labels and the teacher distributions (None when the hook gave none). A hook with
    ``needs_model = True`` (hard-negative mining) is called ``(rng, epoch, model)``."""
    if extra_examples is None:
        return None, None, None
    rng = np.random.default_rng([seed, epoch, 1])
    if getattr(extra_examples, "needs_model", False):
        got = extra_examples(rng, epoch, model)  # type: ignore[call-arg]
    else:
        got = extra_examples(rng)
    x, y = np.asarray(got[0]), np.asarray(got[1])
    soft = np.asarray(got[2], np.float32) if len(got) > 2 and got[2] is not None else None
    if x.dtype != np.int8 or x.shape[1:] != SHAPE or x.ndim != 3:
        raise KwsError(
            f"extra_examples gave features {x.dtype} {x.shape}; they must be int8 "
            f"(M, {SHAPE[0]}, {SHAPE[1]})"
        )
    if y.shape != (len(x),) or (len(y) and (int(y.min()) < 0 or int(y.max()) >= num_labels)):
        raise KwsError(
            f"extra_examples gave labels of shape {y.shape}; they must be (M,) "
            f"integers in 0..{num_labels - 1}"
        )
    if soft is not None and soft.shape != (len(x), num_labels):
        raise KwsError(
            f"extra_examples gave teacher distributions of shape {soft.shape}; they must be "
            f"({len(x)}, {num_labels})"
        )
    return x, y.astype(np.int64), soft


def mix(
    batch: tuple[np.ndarray, np.ndarray, np.ndarray], alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixup (Zhang et al. 2018): each example blended with another of its batch by a
    ``Beta(alpha, alpha)`` share; features, label distributions and sample weights alike."""
    x, y, w = batch
    lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
    lam = np.maximum(lam, 1.0 - lam)  # the example keeps the larger share
    other = rng.permutation(len(x))
    lx = lam.reshape(-1, *([1] * (x.ndim - 1)))
    return (
        lx * x + (1 - lx) * x[other],
        lam[:, None] * y + (1 - lam[:, None]) * y[other],
        lam * w + (1 - lam) * w[other],
    )


def batches(
    aug: Augmenter,
    y_train: np.ndarray,
    weights: np.ndarray,
    ep: Epoch,
    batch_size: int,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(inputs, one-hot labels, sample weights) batches of one epoch, augmented chunk by chunk
    (chunks are whole batches, so each batch is ``order[i*b:(i+1)*b]``); with ``ep.mixup`` > 0
    every batch is mixed by :func:`mix`, after ``ep.targets`` blended the teacher's
    distributions into the label distributions."""
    n, num_labels = len(y_train), len(weights)
    size = max(1, AUGMENT_CHUNK // batch_size) * batch_size
    eye = np.eye(num_labels, dtype=np.float32)
    for start in range(0, len(ep.order), size):
        idx = ep.order[start : start + size]
        clip = idx < n
        feats = np.empty((len(idx), *SHAPE), dtype=np.float32)
        labels = np.empty(len(idx), dtype=np.int64)
        if clip.all():  # the usual case: no extra examples in this chunk
            feats[:] = aug.chunk(idx, ep.rng)
            labels[:] = y_train[idx]
        else:
            if clip.any():
                feats[clip] = aug.chunk(idx[clip], ep.rng)
                labels[clip] = y_train[idx[clip]]
            assert ep.extra_x is not None and ep.extra_y is not None
            feats[~clip] = ep.extra_x[idx[~clip] - n]
            labels[~clip] = ep.extra_y[idx[~clip] - n]
        for b in range(0, len(idx), batch_size):
            lab = labels[b : b + batch_size]
            x, y = feats[b : b + batch_size, ..., None], eye[lab]
            if ep.targets is not None:
                y = ep.targets(x, y, idx[b : b + batch_size], ep.extra_soft)
            batch = x, y, weights[lab]
            yield mix(batch, ep.mixup, ep.rng) if ep.mixup > 0 else batch


def epoch_dataset(
    aug: Augmenter,
    y_train: np.ndarray,
    weights: np.ndarray,
    ep: Epoch,
    batch_size: int,
) -> tuple[Any, int]:
    """The epoch as a prefetched ``tf.data.Dataset`` of batches, and its number of steps."""
    import tensorflow as tf

    steps = math.ceil(len(ep.order) / batch_size)
    num_labels = len(weights)
    spec = (
        tf.TensorSpec((None, *SHAPE, 1), tf.float32),
        tf.TensorSpec((None, num_labels), tf.float32),
        tf.TensorSpec((None,), tf.float32),
    )
    ds = tf.data.Dataset.from_generator(
        lambda: batches(aug, y_train, weights, ep, batch_size), output_signature=spec
    )
    ahead = PREFETCH_CHUNKS * max(1, AUGMENT_CHUNK // batch_size)
    ds = ds.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(ahead)
    return ds, steps


def validation_arrays(val_split: Any, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    x_val = np.asarray(val_split.features, dtype=np.float32)[..., None]
    y_val = np.eye(num_labels, dtype=np.float32)[np.asarray(val_split.labels, dtype=np.int64)]
    return x_val, y_val
