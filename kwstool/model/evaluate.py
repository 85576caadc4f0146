"""Evaluate: top-1, per-class precision/recall/F1 and a confusion matrix for an int8 model.

``evaluate(model_path, data)`` runs a ``.tflite`` over

* a prepared-data folder (``kwstool prepare`` output, has ``manifest.json``): one split, default
  ``test``; or
* a folder-per-label tree (the Speech Commands test layout): each subfolder is a label,
  ``_silence_`` and ``_unknown_`` included; ``_background_noise_`` is ignored. Folders naming a
  word the model does not know count as ``_unknown_``. Clips are read with
  :func:`kwstool.audio.load_wav` (any rate/format, padded/cut to 1 s) and turned into features by
  the C front end.

The model's labels come from ``quantize.json`` beside the ``.tflite`` (written by ``kwstool
quantize`` together with the model; its checksum must match the file). ``labels=`` overrides
that, e.g. ``silence,unknown,yes,no`` for TensorFlow's micro_speech model: ``silence`` and
``unknown`` are read as ``_silence_`` and ``_unknown_``. Any model with one int8 input of
49x40 values (any shape) and one int8 output works. kwstool's models take the feature values as
floats (their input is requantized if its scale/zero point are not 1.0/0); a model given with
``labels=`` and no ``quantize.json`` gets the int8 features unchanged, micro_speech's convention.

``runtime`` is ``litert`` (LiteRT with its builtin reference-equivalent kernels) or ``tflm`` (the
TFLite-Micro interpreter, as on the board). Results can be written as JSON (``json_out``) and a
confusion-matrix PNG (``png_out``), both atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.artifacts import QuantizeReport
from kwstool.core.labels import BACKGROUND_NOISE, SILENCE, UNKNOWN
from kwstool.core.tflite import ModelInfo
from kwstool.errors import KwsError

RUNTIMES = ("litert", "tflm")
SPLITS = ("train", "validation", "test")


@dataclass
class ClassScore:
    label: str
    precision: float | None  # None when the model never predicted this class
    recall: float | None  # None when the data has no clip of this class
    f1: float | None  # 2TP / (2TP + FP + FN); None when neither
    support: int


@dataclass
class EvalResult:
    model: Path
    data: Path
    split: str | None
    runtime: str
    labels: list[str]
    count: int
    top1: float
    per_class: list[ClassScore]
    confusion: np.ndarray  # rows: true label, columns: predicted label
    macro_f1: float | None
    skipped: list[dict[str, str]] = field(default_factory=list)
    json_path: Path | None = None
    png_path: Path | None = None
    predictions: np.ndarray | None = None  # predicted label index of every clip, in data order

    def to_json(self) -> dict[str, Any]:
        return {
            "model": str(self.model),
            "data": str(self.data),
            "split": self.split,
            "runtime": self.runtime,
            "labels": list(self.labels),
            "count": self.count,
            "top1": self.top1,
            "macro_f1": self.macro_f1,
            "per_class": {
                c.label: {
                    "precision": c.precision,
                    "recall": c.recall,
                    "f1": c.f1,
                    "support": c.support,
                }
                for c in self.per_class
            },
            "confusion": {
                "rows": "true label",
                "columns": "predicted label",
                "matrix": self.confusion.tolist(),
            },
            "skipped": list(self.skipped),
        }


# --- labels ------------------------------------------------------------------------------------
def parse_labels(labels: str | Sequence[str]) -> list[str]:
    """``"silence,unknown,yes,no"`` -> ``["_silence_", "_unknown_", "yes", "no"]``."""
    raw = labels.split(",") if isinstance(labels, str) else [str(s) for s in labels]
    items = [s.strip() for s in raw if s.strip()]
    canon = {"silence": SILENCE, "unknown": UNKNOWN}
    out = [canon.get(s.lower(), s) for s in items]
    if len(out) < 2 or len(set(out)) != len(out):
        raise KwsError(f"--labels {','.join(items)!r}: need two or more distinct labels")
    return out


def label_index(name: str, labels: Sequence[str], where: str) -> int:
    """Model label index for a data label: exact name, else ``_unknown_``."""
    if name in labels:
        return labels.index(name)
    if name == SILENCE:
        raise KwsError(
            f"{where}: the data has {SILENCE} clips but the model has no {SILENCE} "
            f"label; remove that folder or evaluate a model trained with it"
        )
    if UNKNOWN in labels:
        return labels.index(UNKNOWN)
    raise KwsError(
        f"{where}: label {name!r} is not one of the model's {list(labels)} and the "
        f"model has no {UNKNOWN} class; remove that folder"
    )


# --- data --------------------------------------------------------------------------------------
Loaded = tuple[np.ndarray, np.ndarray, list[dict[str, str]]]


def _from_prepared(
    path: Path, split: str, labels: list[str], model_features: dict[str, Any] | None
) -> Loaded:
    from kwstool.data import load_prepared

    data = load_prepared(path)
    data_features = data.manifest.get("features")
    if model_features and data_features and data_features != model_features:
        raise KwsError(
            f"{path}: prepared with other feature settings than the model was trained "
            f"on; re-run `kwstool prepare --force` with this kwstool"
        )
    if split not in SPLITS:
        raise KwsError(f"{path}: has no split {split!r}; use --split train, validation or test")
    s = data.split(split)
    names = list(data.labels)
    mapping = np.array([label_index(n, labels, str(path)) for n in names], dtype=np.int64)
    y = mapping[np.asarray(s.labels, dtype=np.int64)]
    return np.asarray(s.features), y, []


def _from_tree(path: Path, labels: list[str]) -> Loaded:
    from kwstool.core.audio import load_wav, skipped_entry
    from kwstool.core.frontend import compute

    folders = sorted(
        p
        for p in path.iterdir()
        if p.is_dir() and p.name != BACKGROUND_NOISE and not p.name.startswith(".")
    )
    audio, y, skipped = [], [], []
    for folder in folders:
        wavs = sorted(q for q in folder.rglob("*") if q.is_file() and q.suffix.lower() == ".wav")
        if not wavs:
            continue
        idx = label_index(folder.name, labels, str(folder))
        for wav in wavs:
            try:
                audio.append(load_wav(wav))
                y.append(idx)
            except KwsError as exc:
                skipped.append(skipped_entry(wav, exc))
    if not audio:
        raise KwsError(
            f"{path}: no readable .wav clips in label subfolders; give a prepared-data "
            f"folder or a folder with one subfolder of WAVs per label"
        )
    return compute(np.stack(audio)), np.asarray(y, dtype=np.int64), skipped


def load_data(
    data: Path, labels: list[str], split: str = "test", model_features: dict[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]], str | None]:
    """Features ``(N, 49, 40)``, true model-label indices, skipped files, and the split used."""
    data = Path(data)
    if not data.exists():
        raise KwsError(f"{data}: no such folder; give a prepared-data folder or a label tree")
    if not data.is_dir():
        raise KwsError(f"{data}: not a folder; give a prepared-data folder or a label tree")
    if (data / "manifest.json").exists():
        x, y, skipped = _from_prepared(data, split, labels, model_features)
        return x, y, skipped, split
    x, y, skipped = _from_tree(data, labels)
    return x, y, skipped, None


# --- metrics -----------------------------------------------------------------------------------
def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def class_scores(cm: np.ndarray, labels: Sequence[str]) -> list[ClassScore]:
    out = []
    for i, lab in enumerate(labels):
        tp = int(cm[i, i])
        predicted = int(cm[:, i].sum())
        support = int(cm[i, :].sum())
        p = tp / predicted if predicted else None
        r = tp / support if support else None
        # F1 = 2TP / (2TP + FP + FN): defined whenever the class was present or predicted.
        f1 = 2 * tp / (predicted + support) if (predicted + support) else None
        out.append(
            ClassScore(
                lab,
                None if p is None else round(p, 6),
                None if r is None else round(r, 6),
                None if f1 is None else round(f1, 6),
                support,
            )
        )
    return out


def render_confusion_png(cm: np.ndarray, labels: Sequence[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kwstool.fileio import atomic_path

    k = len(labels)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    size = max(4.0, 0.55 * k + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of true label")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# --- the command -------------------------------------------------------------------------------
@dataclass
class _Model:
    """The model under evaluation: its bytes, facts, labels and (when there is one) report."""

    path: Path
    tflite: bytes
    info: ModelInfo
    labels: list[str]
    report: QuantizeReport | None  # None: labels given, micro_speech's input convention


def _open_model(model_path: str | os.PathLike[str], labels: str | Sequence[str] | None) -> _Model:
    """The int8 model and its labels (``labels``, else its validated ``quantize.json``)."""
    from kwstool.core.tflite import MODEL_FILE, model_info, read_report

    model = Path(model_path)
    if model.is_dir():
        model = model / MODEL_FILE
    if not model.exists():
        raise KwsError(f"{model}: not found; give the .tflite written by `kwstool quantize`")
    tflite = model.read_bytes()
    info = model_info(tflite, str(model))
    if info.input_dtype != "int8" or info.output_dtype != "int8":
        raise KwsError(
            f"{model}: has {info.input_dtype} input / {info.output_dtype} output; "
            f"kwstool evaluates int8 models (run `kwstool quantize`)"
        )
    report: QuantizeReport | None = None
    if labels is not None:
        model_labels = parse_labels(labels)
    else:
        report = read_report(model)
        model_labels = list(report.labels)
    n_out = int(np.prod(info.output_shape[1:]))
    if n_out != len(model_labels):
        raise KwsError(
            f"{model}: has {n_out} outputs but {len(model_labels)} labels were given; "
            f"pass --labels with {n_out} names"
        )
    return _Model(path=model, tflite=tflite, info=info, labels=model_labels, report=report)


def _scores(m: _Model, x: np.ndarray, runtime: str) -> np.ndarray:
    """int8 outputs of ``runtime`` for features ``x``."""
    from kwstool.core.tflite import run_litert, run_tflm, to_model_input

    # A model without quantize.json follows micro_speech: its input takes the features as is.
    inputs = to_model_input(x, m.info, raw=m.report is None)
    if runtime == "tflm":
        from kwstool.core.boards import arena_total

        arena = arena_total(m.report.arena_bytes) if m.report is not None else None
        return run_tflm(m.tflite, inputs, arena, where=str(m.path))
    return run_litert(m.tflite, inputs)


def _write_outputs(
    result: EvalResult,
    json_out: str | os.PathLike[str] | None,
    png_out: str | os.PathLike[str] | None,
) -> None:
    """The JSON report and the confusion-matrix PNG, each when asked for (atomically)."""
    from kwstool.fileio import write_json

    target = None
    try:
        if png_out is not None:
            target = Path(png_out)
            where = result.data.name + (f" ({result.split})" if result.split else "")
            title = (
                f"{result.model.name} on {where}\n"
                f"{result.runtime}: top-1 {result.top1:.3f} on {result.count} clips"
            )
            render_confusion_png(result.confusion, result.labels, target, title)
            result.png_path = target
        if json_out is not None:
            target = Path(json_out)
            result.json_path = target
            write_json(target, result.to_json())
    except OSError as exc:
        raise KwsError(
            f"{target}: cannot write ({exc.strerror or exc}); choose a writable path"
        ) from None


def evaluate(
    model_path: str | os.PathLike[str],
    data: str | os.PathLike[str],
    runtime: str = "litert",
    json_out: str | os.PathLike[str] | None = None,
    png_out: str | os.PathLike[str] | None = None,
    split: str = "test",
    labels: str | Sequence[str] | None = None,
) -> EvalResult:
    """Evaluate the int8 ``.tflite`` at ``model_path`` on ``data``; see the module docstring."""
    if runtime not in RUNTIMES:
        raise KwsError(f"unknown runtime {runtime!r}; choose litert or tflm")
    m = _open_model(model_path, labels)
    features = m.report.features if m.report is not None else None
    x, y, skipped, used_split = load_data(Path(data), m.labels, split, features)
    pred = np.argmax(_scores(m, x, runtime).astype(np.int32), axis=1)
    cm = confusion_matrix(y, pred, len(m.labels))
    per_class = class_scores(cm, m.labels)
    f1s = [c.f1 if c.f1 is not None else 0.0 for c in per_class if c.support]
    result = EvalResult(
        model=m.path,
        data=Path(data),
        split=used_split,
        runtime=runtime,
        labels=m.labels,
        count=len(y),
        top1=round(float(np.mean(pred == y)), 6),
        per_class=per_class,
        confusion=cm,
        macro_f1=round(float(np.mean(f1s)), 6) if f1s else None,
        skipped=skipped,
        predictions=pred,
    )
    _write_outputs(result, json_out, png_out)
    return result


def format_score(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
