"""Per-keyword detection thresholds calibrated on long streams
(``kwstool stream-eval --calibrate``).

The record lives in the run folder as ``calibration.json`` (written atomically)::

    {"schema": "kwstool.calibration", "version": 1, "kwstool_version": "...",
     "model_file": "model_int8.tflite", "model_sha256": "...", "labels": [...],
     "fa_per_hour_budget": 0.5,
     "thresholds": {"yes": 187, "no": 201, ...},         # 0..255 on the averaged score * 255
     "recognizer": {"average_window_ms": ..., "suppression_ms": ..., "minimum_count": ...},
     "inference_period_ms": 100,
     "stream": {... the stream design, seed, data folder, split, hours ...},
     "figures": {"yes": {"threshold": 187, "frr": 0.04, "fa_per_hour": 0.4, ...}, ...}}

It sits in ``core`` because two stages read it: ``export`` writes the thresholds into the
firmware header and ``listen`` uses them on the laptop. Both call :func:`load_calibration`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from kwstool.core.labels import is_filler
from kwstool.core.recognizer import THRESHOLD_OFF, muted_keywords
from kwstool.core.settings import check_recognizer
from kwstool.errors import KwsError

CALIBRATION_FILE = "calibration.json"
SCHEMA = "kwstool.calibration"
VERSION = 1


def _run_and_model(run_or_model: str | os.PathLike[str]) -> tuple[Path, Path]:
    from kwstool.core.tflite import MODEL_FILE

    p = Path(run_or_model)
    if p.suffix == ".tflite":
        return p.parent, p
    return p, p / MODEL_FILE


def calibration_path(run_or_model: str | os.PathLike[str]) -> Path:
    """Where the calibration of a run folder (or of the .tflite in it) is stored."""
    return _run_and_model(run_or_model)[0] / CALIBRATION_FILE


def read_calibration(run_or_model: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The whole calibration record, checked against the model beside it; None when absent."""
    run, model = _run_and_model(run_or_model)
    path = run / CALIBRATION_FILE
    if not path.exists():
        return None
    fix = f"re-run `kwstool stream-eval {run} DATA --calibrate FA_PER_HOUR` or delete it"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KwsError(f"{path}: unreadable ({exc}); {fix}") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise KwsError(f"{path}: not a kwstool calibration record; {fix}")
    if record.get("version") != VERSION:
        raise KwsError(
            f"{path}: calibration version {record.get('version')} is not {VERSION}; {fix}"
        )
    if model.exists():
        sha = hashlib.sha256(model.read_bytes()).hexdigest()
        if record.get("model_sha256") != sha:
            raise KwsError(
                f"{path}: calibrated for another model (sha256 differs from {model.name}); {fix}"
            )
    thresholds = record.get("thresholds")
    if not isinstance(thresholds, dict) or not all(
        isinstance(v, int) and 0 <= v <= 255 for v in thresholds.values()
    ):
        raise KwsError(f"{path}: thresholds must map labels to integers 0..255; {fix}")
    stored = record.get("recognizer")
    try:
        check_recognizer(stored if isinstance(stored, dict) else {})
    except KwsError as exc:
        raise KwsError(f"{path}: {exc}; {fix}") from None
    keywords = {k for k in thresholds if not is_filler(k)}
    if keywords and keywords <= set(muted_keywords(thresholds)):
        raise KwsError(
            f"{path}: every keyword is at threshold {THRESHOLD_OFF} and would never fire; "
            f"re-run `kwstool stream-eval {run} DATA --calibrate FA_PER_HOUR` with a larger "
            f"budget, or delete it"
        )
    return record


def load_calibration(run_or_model: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Recognizer settings calibrated for this run, or None when it has no calibration.

    Returns ``{"thresholds": {label: 0..255}, "suppression_ms": n, "average_window_ms": n,
    "minimum_coverage_ms": n}``: the form export's and the recognizer's ``recognizer=`` dict
    takes (the thresholds were chosen with those settings). A record for another model, or a
    damaged one, is a KwsError.
    """
    record = read_calibration(run_or_model)
    if record is None:
        return None
    out: dict[str, Any] = {"thresholds": {str(k): int(v) for k, v in record["thresholds"].items()}}
    stored = record.get("recognizer") or {}
    for key in ("suppression_ms", "average_window_ms", "minimum_coverage_ms"):
        if isinstance(stored.get(key), int):  # the thresholds were chosen with these
            out[key] = stored[key]
    return out


def save_calibration(run_dir: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Write ``record`` (schema and version are added) as the run's calibration, atomically."""
    from kwstool.fileio import write_json

    path = Path(run_dir) / CALIBRATION_FILE
    write_json(path, {"schema": SCHEMA, "version": VERSION, **record})
    return path
