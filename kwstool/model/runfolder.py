"""The run folder of `kwstool train`: config, history, best model, checkpoint, curve.

Layout (see kwstool.model.train): ``config.json``, ``history.json``, ``best.keras``,
``training_curve.png`` and ``checkpoint/`` holding ``epoch_NNNN.npz`` (model + optimizer
variables of the last finished epoch) and ``state.json`` (the commit point). Every file is
written atomically, so an interrupt leaves the last finished epoch resumable.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from kwstool import __version__
from kwstool.errors import KwsError
from kwstool.fileio import atomic_path, write_bytes, write_json
from kwstool.model.augment import AUGMENT_CHUNK, FREQ_MASK_MAX, TIME_MASK_MAX
from kwstool.model.config import FIELD_NAMES, SCHEMA_VERSION, TrainConfig

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
BEST_FILE = "best.keras"
CURVE_FILE = "training_curve.png"
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
RUN_FORMAT = 2


def _atomic_keras_save(model: Any, path: Path) -> None:
    """``model.save`` needs a ``.keras`` name: save in a temp folder, then write atomically."""
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".save-") as tmp:
        tmp_file = Path(tmp) / path.name
        model.save(tmp_file)
        write_bytes(path, tmp_file.read_bytes())


def save_best(model: Any, name: str, num_labels: int, path: Path) -> None:
    """Save the weights of ``model`` in the batch-1 inference graph (static shapes for TFLite)."""
    from kwstool.model.zoo import build_model

    inference = build_model(name, num_labels, batch_size=1)
    inference.set_weights(model.get_weights())
    _atomic_keras_save(inference, path)


def _state_arrays(model: Any, optimizer: Any) -> dict[str, np.ndarray]:
    arrays = {}
    for prefix, variables in (
        ("model", model.variables),
        ("optimizer", optimizer.variables),
    ):
        for i, v in enumerate(variables):
            arrays[f"{prefix}/{i:04d}"] = np.asarray(v.numpy())
    return arrays


def _restore_arrays(model: Any, optimizer: Any, arrays: Any, where: Path) -> None:
    for prefix, variables in (
        ("model", model.variables),
        ("optimizer", optimizer.variables),
    ):
        keys = sorted(k for k in arrays.files if k.startswith(prefix + "/"))
        if len(keys) != len(variables):
            raise KwsError(
                f"{where}: checkpoint holds {len(keys)} {prefix} variables, the model "
                f"has {len(variables)}; it belongs to another model, start a new run"
            )
        for key, var in zip(keys, variables):
            value = arrays[key]
            if tuple(value.shape) != tuple(var.shape):
                raise KwsError(
                    f"{where}: checkpoint variable {var.path} has shape {value.shape}, "
                    f"expected {tuple(var.shape)}; start a new run"
                )
            var.assign(value)


def write_checkpoint(
    ckpt_dir: Path, epoch: int, model: Any, optimizer: Any, state: dict[str, Any]
) -> None:
    """Write ``epoch_NNNN.npz`` then ``state.json`` (the commit point), then drop older files."""
    name = f"epoch_{epoch:04d}.npz"
    with atomic_path(ckpt_dir / name) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **_state_arrays(model, optimizer))  # type: ignore[arg-type]
    write_json(ckpt_dir / STATE_FILE, dict(state, epoch=epoch, file=name))
    for old in ckpt_dir.glob("epoch_*.npz"):
        if old.name != name:
            old.unlink(missing_ok=True)


def plot_history(
    history: list[dict[str, Any]], best_epoch: int | None, path: Path, title: str
) -> None:
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
            ax.axvline(
                best_epoch,
                color="grey",
                linestyle=":",
                label=f"best epoch {best_epoch}",
            )
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


def clear_run(run_dir: Path) -> None:
    """Remove what an earlier run wrote into ``run_dir``: train's files and what the later
    stages derived from its model (the int8 model, its report, its calibration), so the folder
    never holds a new ``best.keras`` beside an old ``model_int8.tflite``. The derived files go
    first: an interrupted removal leaves an unquantized run, never a mixed one."""
    from kwstool.core.artifacts import REPORT_FILE
    from kwstool.core.calibration import CALIBRATION_FILE
    from kwstool.core.tflite import MODEL_FILE

    for name in (CALIBRATION_FILE, REPORT_FILE, MODEL_FILE):
        (run_dir / name).unlink(missing_ok=True)
    for name in (CONFIG_FILE, HISTORY_FILE, BEST_FILE, CURVE_FILE):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
    from kwstool.core.embedding import TEACHER_DIR  # the embedding teacher's head

    shutil.rmtree(run_dir / TEACHER_DIR, ignore_errors=True)


def resolve_config(
    run_dir: Path,
    resume: bool,
    given: dict[str, Any],
    base: TrainConfig,
    check_existing: bool = True,
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The config of this session (``base`` with ``given`` applied for a new run; the stored
    one when resuming, where a differing ``given`` value is an error), and the stored config."""
    cfg_path = run_dir / CONFIG_FILE
    if not resume:
        if check_existing and (cfg_path.exists() or (run_dir / CHECKPOINT_DIR).exists()):
            raise KwsError(
                f"{run_dir} already holds a training run; continue it with --resume, "
                f"replace it with --overwrite, or choose another output folder"
            )
        return base.replace(**given), None
    if not cfg_path.is_file():
        raise KwsError(
            f"{run_dir}: no {CONFIG_FILE}, so there is no run to resume; start it without --resume"
        )
    stored = read_config(cfg_path)
    hp = stored["hyperparameters"]
    for key, value in given.items():
        if value is not None and key in hp and value != hp[key]:
            raise KwsError(
                f"{run_dir} was started with {key}={hp[key]!r}, not {value!r}; "
                f"drop that option to resume, or start a new run in another folder"
            )
    return TrainConfig.from_dict(hp, str(cfg_path)), stored


def read_config(cfg_path: Path) -> dict[str, Any]:
    """A run's config.json, its hyper-parameters validated (one-line error naming file+field)."""
    try:
        stored = json.loads(cfg_path.read_text(encoding="utf-8"))
        hp = stored["hyperparameters"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KwsError(
            f"{cfg_path}: unreadable ({exc}); start a new run in another folder"
        ) from None
    version = stored.get("schema_version", 1)
    if version > SCHEMA_VERSION:
        raise KwsError(
            f"{cfg_path}: schema_version {version} is newer than this kwstool's "
            f"{SCHEMA_VERSION}; upgrade kwstool"
        )
    TrainConfig.from_dict(hp, str(cfg_path))
    return dict(stored)


def load_checkpoint(ckpt_dir: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    """Restore the last finished epoch into ``model``/``optimizer``; return its state."""
    try:
        state: dict[str, Any] = json.loads((ckpt_dir / STATE_FILE).read_text(encoding="utf-8"))
        with np.load(ckpt_dir / state["file"], allow_pickle=False) as arrays:
            _restore_arrays(model, optimizer, arrays, ckpt_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise KwsError(
            f"{ckpt_dir}: checkpoint unreadable ({exc}); start a new run in another folder"
        ) from None
    return state


def write_history(
    run_dir: Path, history: list[dict[str, Any]], state: dict[str, Any], model: str
) -> None:
    write_json(
        run_dir / HISTORY_FILE,
        {
            "epochs": history,
            "best_epoch": state["best_epoch"],
            "best_score": state["best_score"],
            "best_val_accuracy": state["best_val_accuracy"],
            "stopped_early": state["stopped_early"],
            "finished": state["finished"],
        },
    )
    plot_history(
        history,
        state["best_epoch"],
        run_dir / CURVE_FILE,
        f"{model}: best validation accuracy {state['best_val_accuracy']:.3f} "
        f"(epoch {state['best_epoch']})",
    )


def config_record(
    cfg: TrainConfig,
    data: Any,
    data_dir: Path,
    net: Any,
    n_train: int,
    n_val: int,
    optimizer_info: dict[str, Any],
) -> dict[str, Any]:
    from kwstool.core import frontend

    labels = list(data.labels)
    return {
        "format": RUN_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "kwstool_version": __version__,
        "model": cfg.model,
        "hyperparameters": cfg.to_dict(),
        "seed": cfg.seed,
        "labels": labels,
        "num_labels": len(labels),
        "input_shape": [int(d) for d in net.input_shape[1:]],
        "params": int(net.count_params()),
        "features": data.manifest.get("features", frontend.FEATURE_PARAMS),
        "data": {
            "path": str(data_dir.resolve()),
            "inputs_hash": data.manifest.get("inputs_hash"),
            "train_count": n_train,
            "validation_count": n_val,
        },
        "augmentation": {
            "freq_mask_max": FREQ_MASK_MAX,
            "time_mask_max": TIME_MASK_MAX,
            "silence_noise_volume": 1.0,
            "chunk": AUGMENT_CHUNK,
        },
        "optimizer": optimizer_info,
    }


def check_data_matches(
    stored: dict[str, Any] | None, data: Any, data_dir: Path, run_dir: Path
) -> None:
    if stored is None:
        return
    if stored.get("labels") != list(data.labels) or stored.get("data", {}).get(
        "inputs_hash"
    ) != data.manifest.get("inputs_hash"):
        raise KwsError(
            f"{data_dir} is not the prepared data {run_dir} was trained on "
            f"({stored.get('data', {}).get('path')}); resume with that data"
        )


def resolve_session(
    run_dir: Path,
    config: TrainConfig | None,
    resume: bool,
    overwrite: bool,
    overrides: dict[str, Any],
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """``train()``'s config (``config`` with ``overrides``, or the stored one on resume) and the
    stored config.json; argument conflicts are one-line errors."""
    if resume and overwrite:
        raise KwsError(
            "--resume continues the run in the output folder and --overwrite replaces "
            "it; pass only one of them"
        )
    unknown = sorted(set(overrides) - set(FIELD_NAMES))
    if unknown:
        raise TypeError(f"train() got unknown hyper-parameter(s): {', '.join(unknown)}")
    given = dict(config.to_dict()) if config is not None else {}
    given.update({k: v for k, v in overrides.items() if v is not None})
    if overwrite:
        TrainConfig().replace(**given)  # bad values fail before anything is removed
    return resolve_config(run_dir, resume, given, TrainConfig(), check_existing=not overwrite)
