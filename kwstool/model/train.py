"""`kwstool train`: train a keyword model on prepared data, with augmentation by our own front end.

Each epoch the training clips are re-augmented from their int16 audio and turned into features
by the same C front end the board runs (:func:`kwstool.features.compute`):

1. optional speed perturbation (``speed_perturb``, off by default: it did not help on the
   benchmark): each clip played 1 +- x times as fast, stretched about its centre;
2. random time shift of up to ``time_shift_ms`` either way, zero filled (TF speech_commands);
3. with probability ``noise_prob`` a random 1 s slice of a background-noise recording
   (``background_noise.npz``) is mixed in at a volume drawn uniformly from 0..``noise_volume``;
   ``_silence_`` clips always get a slice, at a volume drawn from 0..1;
4. the front end turns the batch into int8 features (fast C, GIL released);
5. with ``spec_augment``, SpecAugment-style masks (Park et al. 2019): one band of up to
   :data:`FREQ_MASK_MAX` mel channels and one span of up to :data:`TIME_MASK_MAX` frames per clip
   are set to the clip's mean value.

With ``class_balance`` each training clip's loss is weighted by ``N / (labels * count of its
label)``, so every label weighs the same however many clips it has (prepared data may hold many
more ``_unknown_`` clips than clips of one keyword). Validation uses the cached clean features;
the model with the best validation accuracy is kept and early stopping watches the same figure.

All randomness is seeded: the augmentation of epoch ``e`` uses
``numpy.random.default_rng([seed, e])`` and the shuffle of that epoch is drawn from it, Keras/TF
are seeded with :func:`keras.utils.set_random_seed`, TF op determinism is on, and the state of
every random generator inside the model (dropout) is part of its variables, which the
checkpoint holds with the optimizer's. So the same seed gives the same weights on the same
machine, and a resumed run continues exactly where an interrupted one stopped.

Run folder (``run_dir``)
    ``config.json``   model, hyper-parameters, seed, data path and hash, labels, features
    ``history.json``  per-epoch loss/accuracy/val_loss/val_accuracy/lr/seconds, best epoch
    ``best.keras``    the model with the best validation accuracy (inference graph, batch 1)
    ``checkpoint/``   ``epoch_NNNN.npz`` (model + optimizer variables of the last finished epoch)
                      and ``state.json`` (epoch, early-stopping state, history), the commit point
    ``training_curve.png``
Every file is written atomically; an interrupt (Ctrl-C) leaves the last finished epoch resumable.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kwstool import __version__
from kwstool.core.labels import SILENCE as SILENCE_LABEL
from kwstool.core.contract import SAMPLE_RATE, SHAPE
from kwstool.core import tfenv
from kwstool.core.console import make_console
from kwstool.errors import KwsError
from kwstool.fileio import atomic_path, write_bytes, write_json

#: Defaults of the hyper-parameters ``train`` accepts (None there means: this value for a new run,
#: the stored value for a resumed one).
DEFAULTS: dict[str, Any] = {
    "model": "ds_tcn",
    "epochs": 100,
    "batch_size": 32,  # benchmark: +3 points over 64 (mean of 2 seeds), 1.5x the time
    "lr": 3e-3,
    "weight_decay": 1e-3,
    "label_smoothing": 0.05,
    "seed": 0,
    "patience": 20,
    "noise_prob": 0.8,
    "noise_volume": 0.1,
    "time_shift_ms": 100.0,
    "spec_augment": True,
    "class_balance": True,
    "speed_perturb": 0.0,
}
HYPERPARAMETERS = tuple(DEFAULTS)

FREQ_MASK_MAX = 5  # mel channels, SpecAugment's F
TIME_MASK_MAX = 5  # frames (100 ms), SpecAugment's T
WARMUP_EPOCHS = 2  # linear learning-rate warm-up before the cosine decay
AUGMENT_CHUNK = 512  # clips per augmentation step (bounds the float32 working memory)
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
BEST_FILE = "best.keras"
CURVE_FILE = "training_curve.png"
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
RUN_FORMAT = 1


@dataclass
class TrainResult:
    """What :func:`train` produced; the figures are also in ``history.json``."""

    run_dir: Path
    model: str
    epochs_run: int  # epochs finished (including those of earlier, resumed sessions)
    best_epoch: int  # 1-based epoch of best.keras
    best_val_accuracy: float
    stopped_early: bool  # early stopping ended the run before ``epochs``
    resumed_from: int | None  # epoch the run resumed after, None for a fresh run
    params: int  # trainable + non-trainable parameters of the model
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["run_dir"] = str(self.run_dir)
        return d


# --- augmentation --------------------------------------------------------------------------------
def _noise_list(noise) -> list[np.ndarray]:
    """Background-noise recordings as a list of 1-D int16 arrays (dict values in key order)."""
    if noise is None:
        return []
    items = [noise[k] for k in sorted(noise)] if isinstance(noise, dict) else list(noise)
    return [np.asarray(a, dtype=np.int16).reshape(-1) for a in items if np.size(a) > 0]


class Augmenter:
    """Per-epoch augmented features of the training clips (see the module documentation)."""

    def __init__(self, audio: np.ndarray, labels: np.ndarray, noise, silence_index: int | None,
                 noise_prob: float, noise_volume: float, time_shift_ms: float,
                 spec_augment: bool, speed_perturb: float = 0.0,
                 sample_rate: int = SAMPLE_RATE):
        self.audio = audio
        self.labels = np.asarray(labels)
        self.noise = _noise_list(noise)
        self.silence = (self.labels == silence_index) if silence_index is not None else \
            np.zeros(len(self.labels), dtype=bool)
        self.noise_prob = float(noise_prob)
        self.noise_volume = float(noise_volume)
        self.max_shift = int(round(time_shift_ms * sample_rate / 1000.0))
        self.spec_augment = bool(spec_augment)
        self.speed_perturb = float(speed_perturb)

    def _speed(self, clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Play each clip faster or slower by a factor drawn from 1 +- speed_perturb (pitch moves
        with it, as in Kaldi's speed perturbation), stretched about the clip's centre; samples
        beyond the original clip are zeros. Linear interpolation."""
        n, length = clips.shape
        rates = rng.uniform(1.0 - self.speed_perturb, 1.0 + self.speed_perturb, size=n)
        centre = (length - 1) / 2.0
        grid = np.arange(length, dtype=np.float64)
        out = np.empty((n, length), dtype=np.float32)
        for i, rate in enumerate(rates):
            out[i] = np.interp(centre + (grid - centre) * rate, grid, clips[i], left=0.0,
                               right=0.0)
        return out

    def _shift(self, clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Shift each clip by a uniform -max_shift..max_shift samples, filling with zeros."""
        if self.max_shift <= 0:
            return clips.astype(np.float32)
        n, length = clips.shape
        shifts = rng.integers(-self.max_shift, self.max_shift + 1, size=n)
        out = np.zeros((n, length), dtype=np.float32)
        for i, s in enumerate(shifts):
            if s >= 0:
                out[i, s:] = clips[i, :length - s]
            else:
                out[i, :length + s] = clips[i, -s:]
        return out

    def _mix_noise(self, x: np.ndarray, silence: np.ndarray, rng: np.random.Generator) -> None:
        """Add a random noise slice to the chosen clips of ``x`` (float32, in place)."""
        n, length = x.shape
        use = (rng.random(n) < self.noise_prob) | silence
        volume = np.where(silence, rng.uniform(0.0, 1.0, n), rng.uniform(0.0, self.noise_volume, n))
        which = rng.integers(0, len(self.noise), size=n)
        starts = rng.random(n)
        for i in np.flatnonzero(use):
            rec = self.noise[which[i]]
            if len(rec) < length:  # short recording: repeat it to a full clip
                rec = np.tile(rec, length // len(rec) + 1)
            start = int(starts[i] * (len(rec) - length + 1))
            x[i] += volume[i] * rec[start:start + length]

    def _mask(self, feats: np.ndarray, rng: np.random.Generator) -> None:
        """SpecAugment: one frequency band and one time span per clip set to the clip mean."""
        n, frames, channels = feats.shape
        fill = feats.reshape(n, -1).mean(axis=1)
        f_width = rng.integers(0, FREQ_MASK_MAX + 1, size=n)
        f_start = (rng.random(n) * (channels - f_width + 1)).astype(int)
        t_width = rng.integers(0, TIME_MASK_MAX + 1, size=n)
        t_start = (rng.random(n) * (frames - t_width + 1)).astype(int)
        for i in range(n):
            feats[i, :, f_start[i]:f_start[i] + f_width[i]] = fill[i]
            feats[i, t_start[i]:t_start[i] + t_width[i], :] = fill[i]

    def features(self, rng: np.random.Generator, order: np.ndarray | None = None) -> np.ndarray:
        """Float32 model inputs ``(N, 49, 40, 1)`` of freshly augmented clips, in ``order``."""
        from kwstool.core import frontend

        order = np.arange(len(self.labels)) if order is None else order
        out = np.empty((len(order), *SHAPE, 1), dtype=np.float32)
        for start in range(0, len(order), AUGMENT_CHUNK):
            idx = order[start:start + AUGMENT_CHUNK]
            x = np.asarray(self.audio[idx])
            if self.speed_perturb > 0:
                x = self._speed(x, rng)
            x = self._shift(x, rng)
            if self.noise:
                self._mix_noise(x, self.silence[idx], rng)
            clips = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
            feats = frontend.compute(clips).astype(np.float32)
            if self.spec_augment:
                self._mask(feats, rng)
            out[start:start + len(idx), ..., 0] = feats
        return out


def class_weights(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Per-label loss weights ``N / (num_labels_present * count)`` (1.0 for balanced data)."""
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_labels, dtype=np.float32)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights


# --- run folder ----------------------------------------------------------------------------------
def _atomic_keras_save(model, path: Path) -> None:
    """``model.save`` needs a ``.keras`` name: save in a temp folder, then write atomically."""
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".save-") as tmp:
        tmp_file = Path(tmp) / path.name
        model.save(tmp_file)
        write_bytes(path, tmp_file.read_bytes())


def _save_best(model, name: str, num_labels: int, path: Path) -> None:
    """Save the weights of ``model`` in the batch-1 inference graph (static shapes for TFLite)."""
    from kwstool.model.zoo import build_model

    inference = build_model(name, num_labels, batch_size=1)
    inference.set_weights(model.get_weights())
    _atomic_keras_save(inference, path)


def _state_arrays(model, optimizer) -> dict[str, np.ndarray]:
    arrays = {}
    for prefix, variables in (("model", model.variables), ("optimizer", optimizer.variables)):
        for i, v in enumerate(variables):
            arrays[f"{prefix}/{i:04d}"] = np.asarray(v.numpy())
    return arrays


def _restore_arrays(model, optimizer, arrays, where: Path) -> None:
    for prefix, variables in (("model", model.variables), ("optimizer", optimizer.variables)):
        keys = sorted(k for k in arrays.files if k.startswith(prefix + "/"))
        if len(keys) != len(variables):
            raise KwsError(f"{where}: checkpoint holds {len(keys)} {prefix} variables, the model "
                           f"has {len(variables)}; it belongs to another model, start a new run")
        for key, var in zip(keys, variables):
            value = arrays[key]
            if tuple(value.shape) != tuple(var.shape):
                raise KwsError(f"{where}: checkpoint variable {var.path} has shape {value.shape}, "
                               f"expected {tuple(var.shape)}; start a new run")
            var.assign(value)


def _write_checkpoint(ckpt_dir: Path, epoch: int, model, optimizer, state: dict) -> None:
    """Write ``epoch_NNNN.npz`` then ``state.json`` (the commit point), then drop older files."""
    name = f"epoch_{epoch:04d}.npz"
    with atomic_path(ckpt_dir / name) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **_state_arrays(model, optimizer))
    write_json(ckpt_dir / STATE_FILE, dict(state, epoch=epoch, file=name))
    for old in ckpt_dir.glob("epoch_*.npz"):
        if old.name != name:
            old.unlink(missing_ok=True)


def plot_history(history: list[dict], best_epoch: int | None, path: Path, title: str) -> None:
    """Loss and accuracy per epoch (train and validation), best epoch marked, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(epochs, [h[key] for h in history], label=f"train {label} (augmented)")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], label=f"validation {label}")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_acc.set_ylim(0, 1)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


# --- set-up helpers ------------------------------------------------------------------------------
def _clear_run(run_dir: Path) -> None:
    """Remove what an earlier training run wrote into ``run_dir`` (only train's own files)."""
    import shutil

    for name in (CONFIG_FILE, HISTORY_FILE, BEST_FILE, CURVE_FILE):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)


def _resolve_config(run_dir: Path, resume: bool, given: dict, check_existing: bool = True
                    ) -> tuple[dict, dict | None]:
    """Hyper-parameters for this session, and the stored config when resuming."""
    cfg_path = run_dir / CONFIG_FILE
    if not resume:
        if check_existing and (cfg_path.exists() or (run_dir / CHECKPOINT_DIR).exists()):
            raise KwsError(f"{run_dir} already holds a training run; continue it with --resume, "
                           f"replace it with --overwrite, or choose another output folder")
        return {k: DEFAULTS[k] if given.get(k) is None else given[k] for k in HYPERPARAMETERS}, None
    if not cfg_path.is_file():
        raise KwsError(f"{run_dir}: no {CONFIG_FILE}, so there is no run to resume; start it "
                       f"without --resume")
    try:
        stored = json.loads(cfg_path.read_text(encoding="utf-8"))
        hp = stored["hyperparameters"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KwsError(f"{cfg_path}: unreadable ({exc}); start a new run in another "
                       f"folder") from None
    for key, value in given.items():
        if value is not None and key in hp and value != hp[key]:
            raise KwsError(f"{run_dir} was started with {key}={hp[key]!r}, not {value!r}; "
                           f"drop that option to resume, or start a new run in another folder")
    return {k: hp.get(k, DEFAULTS[k]) for k in HYPERPARAMETERS}, stored


def _check_hyperparameters(hp: dict) -> None:
    from kwstool.model.zoo import check_name

    check_name(hp["model"])
    checks = [
        ("epochs", hp["epochs"] >= 1 and float(hp["epochs"]).is_integer(), "an integer >= 1"),
        ("batch_size", hp["batch_size"] >= 1 and float(hp["batch_size"]).is_integer(),
         "an integer >= 1"),
        ("lr", 0 < hp["lr"] < 1, "between 0 and 1"),
        ("weight_decay", 0 <= hp["weight_decay"] < 1, "between 0 and 1"),
        ("label_smoothing", 0 <= hp["label_smoothing"] < 1, "between 0 and 1"),
        ("patience", hp["patience"] >= 1 and float(hp["patience"]).is_integer(),
         "an integer >= 1"),
        ("noise_prob", 0 <= hp["noise_prob"] <= 1, "between 0 and 1"),
        ("noise_volume", 0 <= hp["noise_volume"] <= 1, "between 0 and 1"),
        ("time_shift_ms", 0 <= hp["time_shift_ms"] <= 500, "between 0 and 500"),
        ("speed_perturb", 0 <= hp["speed_perturb"] < 0.5, "at least 0 and below 0.5"),
        ("seed", float(hp["seed"]).is_integer() and hp["seed"] >= 0, "an integer >= 0"),
    ]
    for key, ok, what in checks:
        if not ok:
            raise KwsError(f"{key}={hp[key]!r} is out of range; it must be {what}")


def _load_data(data_dir: Path):
    from kwstool.data import load_prepared

    if not data_dir.exists():
        raise KwsError(f"{data_dir}: no such folder; create it with `kwstool prepare`")
    if not data_dir.is_dir():
        raise KwsError(f"{data_dir}: not a folder; pass the folder `kwstool prepare` wrote")
    data = load_prepared(data_dir)
    train_split = data.split("train")
    val_split = data.split("validation")
    for name, split in (("train", train_split), ("validation", val_split)):
        if len(split.labels) == 0:
            raise KwsError(f"{data_dir}: the {name} split is empty; prepare more data")
    if int(np.max(train_split.labels)) >= len(data.labels) or int(np.min(train_split.labels)) < 0:
        raise KwsError(f"{data_dir}: train labels outside 0..{len(data.labels) - 1}; re-run "
                       f"`kwstool prepare --force`")
    return data, train_split, val_split


def _seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TF and Keras, and make TF ops deterministic (process-wide)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class _Reporter:
    """Per-epoch lines (Rich); a live batch bar only on an interactive terminal."""

    def __init__(self, enabled: bool, console=None):
        self.enabled = enabled
        self.console = console or make_console()
        self.live = enabled and self.console.is_terminal

    def line(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False, soft_wrap=True)

    def batch_callback(self, epoch: int, epochs: int, steps: int):
        import keras

        if not self.live:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
            TimeRemainingColumn

        console = self.console

        class _Bar(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch_index, logs=None):
                self.progress = Progress(TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(),
                                         MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                         TimeRemainingColumn(), console=console, transient=True)
                self.progress.start()
                self.task = self.progress.add_task("train", total=steps, info="")

            def on_train_batch_end(self, batch, logs=None):
                logs = logs or {}
                info = f"loss {logs.get('loss', float('nan')):.3f} " \
                       f"acc {logs.get('accuracy', float('nan')):.3f}"
                self.progress.update(self.task, completed=batch + 1, info=info)

            def on_epoch_end(self, epoch_index, logs=None):
                self.progress.stop()

        return _Bar()


# --- training ------------------------------------------------------------------------------------
def train(data_dir: str | os.PathLike, run_dir: str | os.PathLike, model: str | None = None,
          epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
          seed: int | None = None, resume: bool = False, overwrite: bool = False,
          patience: int | None = None,
          noise_prob: float | None = None, noise_volume: float | None = None,
          time_shift_ms: float | None = None, spec_augment: bool | None = None,
          weight_decay: float | None = None, label_smoothing: float | None = None,
          class_balance: bool | None = None, speed_perturb: float | None = None,
          progress: bool = True, extra_examples=None,
          console=None) -> TrainResult:
    """Train ``model`` on the prepared data in ``data_dir``, writing the run folder ``run_dir``.

    Hyper-parameters left as None take :data:`DEFAULTS` for a new run and the stored values when
    ``resume`` is set (a different explicit value is then an error). ``resume`` continues the run
    in ``run_dir`` from its last finished epoch and gives the same result as an uninterrupted run;
    a finished run is returned as it is. ``overwrite`` first removes the files an earlier run
    left in ``run_dir`` (config, history, best model, checkpoint, curve). Early stopping ends
    training once validation accuracy has not improved for ``patience`` epochs; ``best.keras``
    holds the best epoch's weights. Training uses AdamW with a linear warm-up and cosine decay
    of the learning rate.
    """
    data_dir = Path(data_dir)
    run_dir = Path(run_dir)
    given = {"model": model, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
             "patience": patience, "noise_prob": noise_prob, "noise_volume": noise_volume,
             "time_shift_ms": time_shift_ms, "spec_augment": spec_augment,
             "weight_decay": weight_decay, "label_smoothing": label_smoothing,
             "class_balance": class_balance, "speed_perturb": speed_perturb}
    if resume and overwrite:
        raise KwsError("--resume continues the run in the output folder and --overwrite replaces "
                       "it; pass only one of them")
    if overwrite:
        _check_hyperparameters({k: DEFAULTS[k] if given.get(k) is None else given[k]
                                for k in HYPERPARAMETERS})
    hp, stored = _resolve_config(run_dir, resume, given, check_existing=not overwrite)
    _check_hyperparameters(hp)
    data, train_split, val_split = _load_data(data_dir)
    labels = list(data.labels)
    if stored is not None:
        if stored.get("labels") != labels or stored.get("data", {}).get("inputs_hash") != \
                data.manifest.get("inputs_hash"):
            raise KwsError(f"{data_dir} is not the prepared data {run_dir} was trained on "
                           f"({stored.get('data', {}).get('path')}); resume with that data")
    if overwrite:  # only now that the inputs are known to be good
        _clear_run(run_dir)

    report = _Reporter(progress, console)
    tfenv.quiet()
    import keras

    from kwstool.core import frontend
    from kwstool.model.zoo import build_model

    seed_value = int(hp["seed"])
    _seed_everything(seed_value)
    net = build_model(hp["model"], len(labels))
    n_train = len(train_split.labels)
    n_extra = int(getattr(extra_examples, "per_epoch", 0))
    steps_per_epoch = math.ceil((n_train + n_extra) / int(hp["batch_size"]))
    total_steps = steps_per_epoch * int(hp["epochs"])
    warmup = min(WARMUP_EPOCHS * steps_per_epoch, total_steps // 4)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=hp["lr"] * 0.1, decay_steps=max(1, total_steps - warmup),
        alpha=0.01, warmup_target=hp["lr"], warmup_steps=warmup)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=hp["weight_decay"])
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=hp["label_smoothing"])
    net.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    optimizer.build(net.trainable_variables)

    config = {
        "format": RUN_FORMAT,
        "kwstool_version": __version__,
        "model": hp["model"],
        "hyperparameters": hp,
        "seed": seed_value,
        "labels": labels,
        "num_labels": len(labels),
        "input_shape": [int(d) for d in net.input_shape[1:]],
        "params": int(net.count_params()),
        "features": data.manifest.get("features", frontend.FEATURE_PARAMS),
        "data": {"path": str(data_dir.resolve()),
                 "inputs_hash": data.manifest.get("inputs_hash"),
                 "train_count": n_train, "validation_count": int(len(val_split.labels))},
        "augmentation": {"freq_mask_max": FREQ_MASK_MAX, "time_mask_max": TIME_MASK_MAX,
                         "silence_noise_volume": 1.0},
        "optimizer": {"name": "AdamW", "schedule": "linear warm-up + cosine decay",
                      "warmup_steps": warmup, "total_steps": total_steps},
    }

    # Restore the last finished epoch when resuming.
    ckpt_dir = run_dir / CHECKPOINT_DIR
    state = {"best_epoch": 0, "best_val_accuracy": -1.0, "since_best": 0, "history": [],
             "finished": False, "stopped_early": False}
    resumed_from = None
    state_path = ckpt_dir / STATE_FILE
    if resume and state_path.is_file():
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            with np.load(ckpt_dir / state["file"], allow_pickle=False) as arrays:
                _restore_arrays(net, optimizer, arrays, ckpt_dir)
        except (OSError, ValueError, KeyError) as exc:
            raise KwsError(f"{ckpt_dir}: checkpoint unreadable ({exc}); start a new run in "
                           f"another folder") from None
        resumed_from = int(state["epoch"])
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_FILE, config)

    history: list[dict] = list(state["history"])
    start_epoch = len(history)

    def result() -> TrainResult:
        return TrainResult(
            run_dir=run_dir, model=hp["model"], epochs_run=len(history),
            best_epoch=int(state["best_epoch"]),
            best_val_accuracy=float(state["best_val_accuracy"]),
            stopped_early=bool(state["stopped_early"]), resumed_from=resumed_from,
            params=int(net.count_params()), history=history)

    if state["finished"]:
        report.line(f"{run_dir}: training already finished at epoch {len(history)}")
        return result()

    silence_index = labels.index(SILENCE_LABEL) if SILENCE_LABEL in labels else None
    augmenter = Augmenter(train_split.audio, train_split.labels, data.background_noise,
                          silence_index, hp["noise_prob"], hp["noise_volume"],
                          hp["time_shift_ms"], hp["spec_augment"], hp["speed_perturb"])
    y_train = np.asarray(train_split.labels, dtype=np.int64)
    weights = class_weights(y_train, len(labels)) if hp["class_balance"] else None
    x_val = np.asarray(val_split.features, dtype=np.float32)[..., None]
    y_val = keras.utils.to_categorical(np.asarray(val_split.labels, dtype=np.int64),
                                       len(labels))
    report.line(f"training {hp['model']} ({net.count_params():,} parameters) on {n_train} clips, "
                f"validating on {len(y_val)}; run folder {run_dir}"
                + (f"; resuming after epoch {resumed_from}" if resumed_from else ""))

    for epoch in range(start_epoch + 1, int(hp["epochs"]) + 1):
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed_value, epoch])
        order = rng.permutation(n_train)
        x = augmenter.features(rng, order)
        y_idx = y_train[order]
        if extra_examples is not None:  # e.g. stream windows + mined hard negatives
            ex_x, ex_y = extra_examples(np.random.default_rng([seed_value, epoch, 1]), epoch, net)
            x = np.concatenate([x, np.asarray(ex_x, np.float32)[..., None]])
            y_idx = np.concatenate([y_idx, np.asarray(ex_y, np.int64)])
            mix = rng.permutation(len(y_idx))
            x, y_idx = x[mix], y_idx[mix]
        y = keras.utils.to_categorical(y_idx, len(labels))
        callback = report.batch_callback(epoch, int(hp["epochs"]), steps_per_epoch)
        fit = net.fit(x, y, batch_size=int(hp["batch_size"]), epochs=1, shuffle=False, verbose=0,
                      sample_weight=None if weights is None else weights[y_idx],
                      callbacks=[callback] if callback else None)
        val = net.evaluate(x_val, y_val, batch_size=256, verbose=0, return_dict=True)
        row = {"epoch": epoch, "loss": float(fit.history["loss"][-1]),
               "accuracy": float(fit.history["accuracy"][-1]),
               "val_loss": float(val["loss"]), "val_accuracy": float(val["accuracy"]),
               "lr": float(keras.ops.convert_to_numpy(schedule(optimizer.iterations))),
               "seconds": round(time.perf_counter() - t0, 2)}
        history.append(row)
        improved = row["val_accuracy"] > state["best_val_accuracy"]
        if improved:
            state.update(best_epoch=epoch, best_val_accuracy=row["val_accuracy"], since_best=0)
            _save_best(net, hp["model"], len(labels), run_dir / BEST_FILE)
        else:
            state["since_best"] += 1
        stop = state["since_best"] >= int(hp["patience"])
        state.update(history=history, stopped_early=stop and epoch < int(hp["epochs"]),
                     finished=stop or epoch == int(hp["epochs"]))
        _write_checkpoint(ckpt_dir, epoch, net, optimizer, state)
        _write_history(run_dir, history, state, hp["model"])
        report.line(f"epoch {epoch:3d}/{hp['epochs']}  loss {row['loss']:.3f}  "
                    f"acc {row['accuracy']:.3f}  val_loss {row['val_loss']:.3f}  "
                    f"val_acc {row['val_accuracy']:.3f}{'  *' if improved else '   '}  "
                    f"lr {row['lr']:.1e}  {row['seconds']:.1f}s")
        if stop:
            report.line(f"early stop: validation accuracy has not improved for "
                        f"{hp['patience']} epochs")
            break
    report.line(f"best validation accuracy {state['best_val_accuracy']:.4f} at epoch "
                f"{state['best_epoch']}; model in {run_dir / BEST_FILE}")
    return result()


def _write_history(run_dir: Path, history: list[dict], state: dict, model: str) -> None:
    write_json(run_dir / HISTORY_FILE, {
        "epochs": history, "best_epoch": state["best_epoch"],
        "best_val_accuracy": state["best_val_accuracy"], "stopped_early": state["stopped_early"],
        "finished": state["finished"]})
    plot_history(history, state["best_epoch"], run_dir / CURVE_FILE,
                 f"{model}: best validation accuracy {state['best_val_accuracy']:.3f} "
                 f"(epoch {state['best_epoch']})")
