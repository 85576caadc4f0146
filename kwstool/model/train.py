"""`kwstool train`: train a keyword model on prepared data, with augmentation by our own front end.

The hyper-parameters are one :class:`kwstool.model.config.TrainConfig`. Each epoch the training
clips are re-augmented from their int16 audio and turned into features by the same C front end
the board runs (:mod:`kwstool.model.augment`): optional speed perturbation, a random time shift,
background noise (always for ``_silence_``), the front end, SpecAugment masks.

Streaming: the prepared arrays are memory-mapped (``load_prepared(mmap=True)``) and each epoch
is a ``tf.data`` pipeline over a Python generator that augments ``AUGMENT_CHUNK`` clips at a
time and yields batches, prefetched while the model trains on the previous ones (the C front end
releases the GIL, so both run at once). Memory stays bounded by a few chunks, whatever the
number of clips: no epoch-sized array is ever built.

With ``class_balance`` each training clip's loss is weighted by ``N / (labels * count of its
label)``, and ``_unknown_``'s weight is multiplied by ``negative_weight``. Validation uses the
cached clean features. The kept model (``best.keras``) and early stopping follow a score:
validation accuracy by default; with ``select_by='stream'`` keyword recall at zero false accepts
on validation-speaker streams (:mod:`kwstool.model.selection`); or a ``select(model) -> float``
hook.

Hooks for other training data: ``extra_examples(epoch_rng) -> (features int8 (M, 49, 40),
labels (M,))`` is called once per epoch with a generator seeded from ``[seed, epoch, 1]``; its
examples are shuffled in with that epoch's training clips and used as given (not augmented;
weighted like clips of their label). The learning-rate schedule counts the training clips only.

All randomness is seeded: epoch ``e`` draws its shuffle and augmentation from
``numpy.random.default_rng([seed, e])`` in one sequential generator, Keras/TF are seeded with
:func:`keras.utils.set_random_seed`, TF op determinism is on, and the state of every random
generator inside the model (dropout) is part of its variables, which the checkpoint holds with
the optimizer's. So the same seed gives the same weights on the same machine, and a resumed run
continues exactly where an interrupted one stopped.

Several devices or machines (``distribute``, :mod:`kwstool.model.distribute`): the model is
built in the strategy's scope, ``batch_size`` is per replica and the peak learning rate is
multiplied by the replicas; only the chief writes the run folder's artifacts.

Run folder (``run_dir``, :mod:`kwstool.model.runfolder`)
    ``config.json``   model, hyper-parameters (schema_version), seed, data path and hash, labels
    ``history.json``  per-epoch loss/accuracy/val_loss/val_accuracy/score/lr/seconds/clips_per_s
    ``best.keras``    the model with the best score (inference graph, batch 1)
    ``checkpoint/``   ``epoch_NNNN.npz`` and ``state.json`` (the commit point)
    ``training_curve.png``
    ``teacher/``      with ``teacher='embedding'``: its head (:mod:`kwstool.model.teachers`)
Every file is written atomically; an interrupt (Ctrl-C) leaves the last finished epoch resumable.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core import tfenv
from kwstool.core.folders import writes_to
from kwstool.core.labels import SILENCE as SILENCE_LABEL, UNKNOWN as UNKNOWN_LABEL
from kwstool.errors import KwsError
from kwstool.fileio import write_json
from kwstool.model import runfolder as rf
from kwstool.model.augment import (
    Augmenter,
    class_weights,
)
from kwstool.model.config import DEFAULTS, FIELD_NAMES, TrainConfig
from kwstool.model.distribute import Distribution, setup as setup_distribution
from kwstool.model.epochs import (
    ExtraExamples,
    validation_arrays,
)
from kwstool.model.progress import Reporter
from kwstool.model.teachers import make_teacher
from kwstool.model.trainloop import Select, Session, run_epochs

HYPERPARAMETERS = FIELD_NAMES
__all__ = [
    "DEFAULTS",
    "HYPERPARAMETERS",
    "Augmenter",
    "ExtraExamples",
    "Select",
    "TrainConfig",
    "TrainResult",
    "class_weights",
    "train",
]


@dataclass
class TrainResult:
    """What :func:`train` produced; the figures are also in ``history.json``."""

    run_dir: Path
    model: str
    epochs_run: int  # epochs finished (including those of earlier, resumed sessions)
    best_epoch: int  # 1-based epoch of best.keras
    best_val_accuracy: float  # validation accuracy of that epoch
    stopped_early: bool  # early stopping ended the run before ``epochs``
    resumed_from: int | None  # epoch the run resumed after, None for a fresh run
    params: int  # trainable + non-trainable parameters of the model
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -1.0  # the selection score of best_epoch (= best_val_accuracy by default)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["run_dir"] = str(self.run_dir)
        return d


# --- set-up helpers ------------------------------------------------------------------------------
def _load_data(data_dir: Path, select_by: str = "accuracy") -> Any:
    from kwstool.data import load_prepared

    if not data_dir.exists():
        raise KwsError(f"{data_dir}: no such folder; create it with `kwstool prepare`")
    if not data_dir.is_dir():
        raise KwsError(f"{data_dir}: not a folder; pass the folder `kwstool prepare` wrote")
    data = load_prepared(data_dir, mmap=True)
    train_split = data.split("train")
    val_split = data.split("validation")
    for name, split in (("train", train_split), ("validation", val_split)):
        if len(split.labels) == 0 and not (name == "validation" and select_by == "last"):
            raise KwsError(f"{data_dir}: the {name} split is empty; prepare more data")
    labels = np.asarray(train_split.labels)
    if int(labels.max()) >= len(data.labels) or int(labels.min()) < 0:
        raise KwsError(
            f"{data_dir}: train labels outside 0..{len(data.labels) - 1}; re-run "
            f"`kwstool prepare --force`"
        )
    return data


def _seed_everything(seed: int, threads: int | None) -> None:
    """Seed Python, NumPy, TF and Keras, make TF ops deterministic, use ``threads`` CPU threads
    (None: all cores; only before TensorFlow first runs, which is the case in a CLI run)."""
    import keras
    import tensorflow as tf

    n = threads or os.cpu_count() or 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(max(2, n))
    except RuntimeError:  # TensorFlow already initialised in this process: keep its threads
        pass
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _averaging_adamw(schedule: Any, weight_decay: float, ema: float) -> Any:
    """AdamW; with ``ema`` > 0 it also keeps a moving average of the weights, every step.

    The average stays in the optimizer (and so in every checkpoint): Keras's ``fit`` would copy
    it into the model at the end of each call, and each epoch is one call here, so that copy is
    skipped; :func:`kwstool.model.trainloop.kept_weights` swaps it in to validate and keep.
    """
    import keras

    if ema <= 0:
        return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay)

    class AveragingAdamW(keras.optimizers.AdamW):  # type: ignore[misc]  # untyped base
        def finalize_variable_values(self, var_list: Any) -> None:
            """Training continues on the live weights (see :func:`_averaging_adamw`)."""

        def averages(self) -> list[Any]:
            """The averaged weights, in the order of the variables the optimizer was built
            with (the model's trainable variables, :func:`_compile`)."""
            return list(self._model_variables_moving_average)

        def _update_model_variables_moving_average(self, trainable_variables: Any) -> None:
            """The average with a warm-up, ``min(ema, (1 + step) / (10 + step))``, as
            TensorFlow's ExponentialMovingAverage does with ``num_updates``: a fixed 0.998
            would still hold 28 % of the random initial weights after 640 steps (a short run on
            a small dataset); after the warm-up it is the plain exponential average."""
            step = keras.ops.cast(self.iterations, "float32")
            momentum = keras.ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step))
            momentum = momentum * keras.ops.cast(keras.ops.not_equal(self.iterations, 0), "float32")
            for var, average in zip(trainable_variables, self._model_variables_moving_average):
                if average is not None:
                    m = keras.ops.cast(momentum, var.dtype)
                    average.assign(m * average + (1.0 - m) * var)

    return AveragingAdamW(
        learning_rate=schedule, weight_decay=weight_decay, use_ema=True, ema_momentum=ema
    )


def _compile(
    cfg: TrainConfig, num_labels: int, n_train: int, dist: Distribution | None = None
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Model, optimizer and schedule of ``cfg`` (AdamW, linear warm-up + cosine decay), built
    in the scope of ``dist``'s strategy; batch and peak learning rate follow its replicas."""
    import keras

    from kwstool.model.zoo import build_model

    dist = dist or Distribution()
    batch, peak_lr = dist.global_batch(cfg.batch_size), dist.peak_lr(cfg.lr)
    steps_per_epoch = math.ceil(n_train / batch)  # n_train counts the extra examples
    total_steps = steps_per_epoch * cfg.epochs
    warmup = min(cfg.warmup_epochs * steps_per_epoch, total_steps // 4)
    with dist.scope():
        net = build_model(cfg.model, num_labels)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=peak_lr * 0.1,
            decay_steps=max(1, total_steps - warmup),
            alpha=0.01,
            warmup_target=peak_lr,
            warmup_steps=warmup,
        )
        optimizer = _averaging_adamw(schedule, cfg.weight_decay, cfg.ema)
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
        net.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
        optimizer.build(net.trainable_variables)
        dist.prepare(net, num_labels)
    info = {
        "name": "AdamW",
        "schedule": "linear warm-up + cosine decay",
        "warmup_steps": warmup,
        "total_steps": total_steps,
        "ema_momentum": cfg.ema,
    }
    if dist.strategy is not None:
        info["distribution"] = dist.info(cfg.batch_size, cfg.lr)
    return net, optimizer, schedule, info


def _session(
    cfg: TrainConfig,
    data: Any,
    run_dir: Path,
    threads: int | None,
    report: Reporter,
    hooks: dict[str, Any],
    dist: Distribution | None = None,
) -> tuple[Session, dict[str, Any]]:
    """Model, augmenter, validation arrays and a fresh state; the optimizer info."""
    train_split, val_split = data.split("train"), data.split("validation")
    labels = list(data.labels)
    y_train = np.asarray(train_split.labels, dtype=np.int64)
    teacher = make_teacher(cfg, labels, data, run_dir, threads, report)  # kwstool.model.teachers
    if teacher is not None:
        hooks = {**hooks, "targets": teacher}
    if hooks.get("extra_examples") is None and cfg.stream_windows > 0:
        windows = stream_examples(cfg, train_split, labels, data.background_noise,
                                  teacher.audio if teacher is not None else None)  # fmt: skip
        hooks = {**hooks, "extra_examples": windows}
    if hooks.get("select") is None and cfg.select_by == "stream":
        hooks = {**hooks, "select": stream_selector(cfg, val_split, labels, data.background_noise)}
    n_extra = int(getattr(hooks.get("extra_examples"), "per_epoch", 0))
    dist = dist or Distribution()
    net, optimizer, schedule, opt_info = _compile(cfg, len(labels), len(y_train) + n_extra, dist)
    silence = labels.index(SILENCE_LABEL) if SILENCE_LABEL in labels else None
    aug = Augmenter(train_split.audio, y_train, data.background_noise, silence,
                    cfg.noise_prob, cfg.noise_volume, cfg.time_shift_ms, cfg.spec_augment,
                    cfg.speed_perturb, threads=threads)  # fmt: skip
    ones = np.ones(len(labels), dtype=np.float32)
    weights = class_weights(y_train, len(labels)) if cfg.class_balance else ones
    weights = negative_weighted(weights, labels, cfg.negative_weight)
    x_val, y_val = validation_arrays(val_split, len(labels))
    state = {"best_epoch": 0, "best_val_accuracy": -1.0, "best_score": -math.inf,
             "since_best": 0, "history": [], "finished": False, "stopped_early": False}  # fmt: skip
    s = Session(cfg, run_dir, net, optimizer, schedule, labels, aug, y_train, weights,
                 x_val, y_val, state, report, dist=dist, **hooks)  # fmt: skip
    return s, opt_info


def negative_weighted(weights: np.ndarray, labels: list[str], factor: float) -> np.ndarray:
    """``weights`` with the ``_unknown_`` label's weight multiplied by ``factor``."""
    out = np.array(weights, dtype=np.float32)
    if UNKNOWN_LABEL in labels:
        out[labels.index(UNKNOWN_LABEL)] *= factor
    return out


def stream_selector(cfg: TrainConfig, val_split: Any, labels: list[str], noise: Any) -> Any:
    """``select_by='stream'``: see :mod:`kwstool.model.selection`."""
    from kwstool.model.augment import noise_list
    from kwstool.model.selection import StreamSelector

    return StreamSelector(val_split.audio, val_split.labels, labels,  # memory-mapped
                          noise_list(noise), seed=cfg.seed)  # fmt: skip


def stream_examples(
    cfg: TrainConfig, train_split: Any, labels: list[str], noise: Any, teacher: Any = None
) -> Any:
    """The default extra examples: stream windows (and mined hard negatives), see
    :mod:`kwstool.model.windows` and :mod:`kwstool.model.mining`; ``teacher``: a teacher's
    ``audio`` hook, which gives the distributions of the windows of ``cfg.teacher_streams`` of
    the streams as they are cut (and of every mined window)."""
    from kwstool.model.augment import noise_list
    from kwstool.model.mining import HardNegatives
    from kwstool.model.windows import StreamWindows

    count = max(1, round(cfg.stream_windows * len(train_split.labels)))
    windows = StreamWindows(train_split.audio, train_split.labels, labels,  # memory-mapped
                            noise_list(noise), count=count, teacher=teacher,
                            teacher_share=cfg.teacher_streams)  # fmt: skip
    if not cfg.hard_negatives:
        return windows
    return HardNegatives(windows, mined_per_epoch=max(1, count * 2 // 5), pool_size=count)


def _restore(s: Session, resume: bool) -> int | None:
    """Restore the last finished epoch when resuming; the epoch resumed after (or None)."""
    ckpt_dir = s.run_dir / rf.CHECKPOINT_DIR
    if not (resume and (ckpt_dir / rf.STATE_FILE).is_file()):
        return None
    s.state = rf.load_checkpoint(ckpt_dir, s.net, s.optimizer)
    s.state.setdefault("best_score", s.state.get("best_val_accuracy", -1.0))
    return int(s.state["epoch"])


def _result(s: Session, resumed_from: int | None) -> TrainResult:
    st = s.state
    return TrainResult(run_dir=s.run_dir, model=s.cfg.model, epochs_run=len(s.history),
                       best_epoch=int(st["best_epoch"]),
                       best_val_accuracy=float(st["best_val_accuracy"]),
                       stopped_early=bool(st["stopped_early"]), resumed_from=resumed_from,
                       params=int(s.net.count_params()), history=s.history,
                       best_score=float(st["best_score"]))  # fmt: skip


def _worker_folder(out: Path, config: TrainConfig | None, overrides: dict[str, Any]) -> Path:
    """``out``, or a multi-worker run's non-chief folder ``out/.worker-I`` (from TF_CONFIG)."""
    mode = overrides.get("distribute") or (config.distribute if config is not None else None)
    if mode != "multi-worker":
        return out
    from kwstool.model.distribute import read_tf_config

    cluster = read_tf_config()
    return Distribution(chief=cluster.chief, worker=cluster.worker).run_folder(out)


def _this_workers_folder(arguments: dict[str, Any]) -> Path:
    """The folder this process writes and locks (see :func:`_worker_folder`)."""
    overrides = arguments.get("overrides") or {}
    return _worker_folder(Path(arguments["run_dir"]), arguments.get("config"), overrides)


@writes_to("run_dir", "--out", "kwstool train", _this_workers_folder)
def train(
    data_dir: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    console: Any = None,
    threads: int | None = None,
    extra_examples: ExtraExamples | None = None,
    select: Select | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train on the prepared data in ``data_dir``, writing the run folder ``run_dir``.

    The hyper-parameters are ``config`` (default :class:`TrainConfig`) with ``overrides``
    (field names, e.g. ``epochs=5``; None is ignored). With ``resume`` the stored config is used
    and a differing explicit value is an error; the run continues from its last finished epoch
    and gives the same result as an uninterrupted run (a finished run is returned as it is).
    ``overwrite`` first removes what an earlier run left in ``run_dir``. ``threads``: CPU
    threads for TensorFlow and the front end (default: all cores). ``extra_examples`` and
    ``select``: see the module documentation.
    """
    data_dir, out = Path(data_dir), Path(run_dir)
    run_dir = _worker_folder(out, config, overrides)
    cfg, stored = rf.resolve_session(run_dir, config, resume, overwrite, overrides)
    if cfg.distribute == "multi-worker" and run_dir != _worker_folder(out, cfg, {}):
        raise KwsError(
            f"{out} is a multi-worker run; pass --distribute multi-worker on every worker, "
            "also with --resume"
        )
    data = _load_data(data_dir, cfg.select_by)
    rf.check_data_matches(stored, data, data_dir, run_dir)
    if overwrite:  # only now that the inputs are known to be good
        rf.clear_run(run_dir)
    tfenv.quiet()
    _seed_everything(cfg.seed, threads)
    dist = setup_distribution(cfg.distribute, cfg.devices)
    hooks = {"extra_examples": extra_examples, "select": select}
    s, opt_info = _session(cfg, data, run_dir, threads, Reporter(progress, console), hooks, dist)
    resumed_from = _restore(s, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = rf.config_record(cfg, data, data_dir, s.net, len(s.y_train), len(s.y_val), opt_info)
    # issue 14: config.json is a typed, versioned record (kwstool.core.artifacts.RunConfig)
    from kwstool.core.artifacts import RunConfig

    record = RunConfig.stamp(record, str(run_dir / rf.CONFIG_FILE))
    write_json(run_dir / rf.CONFIG_FILE, record)  # a worker's own copy: what --resume reads
    if s.state["finished"]:
        s.report.line(f"{run_dir}: training already finished at epoch {len(s.history)}")
    else:
        resuming = f"; resuming after epoch {resumed_from}" if resumed_from else ""
        where = f" ({dist.describe()})" if dist.strategy is not None else ""
        s.report.line(
            f"training {cfg.model} ({s.net.count_params():,} parameters) on {len(s.y_train)} "
            f"clips, validating on {len(s.y_val)}{where}; run folder {run_dir}{resuming}"
        )
        run_epochs(s)
    return _result(s, resumed_from)
