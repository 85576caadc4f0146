#!/usr/bin/env python
"""Package a calibrated run as the model that ships inside kwstool, and export it to the firmware.

Copies ``RUN/model_int8.tflite``, ``quantize.json`` and ``calibration.json`` into
``kwstool/pretrained/NAME/`` (``kwstool listen`` uses it when no run is given), writes its
``provenance.json`` (:class:`kwstool.core.artifacts.PretrainedProvenance`: recipe, data, the
cross-validated figures of the same recipe and how the thresholds were chosen) and runs
``kwstool export`` of the packaged folder into ``firmware/src/model`` (a test checks that the
firmware files equal that export).

The shipped model is made like this (see README, "Accuracy, measured honestly")::

    python scripts/bench_models.py --cv --json cv.json            # the recipe's clip figures
    python scripts/bench_models.py --cv --all                     # the model, every speaker
    python scripts/bench_streaming.py --cv WORK/cv/k5-... --json stream.json \\
        --write-calibration WORK/cv/k5-.../all/run                # thresholds: all folds pooled
    python scripts/package_model.py WORK/cv/k5-.../all/run --cv-json cv.json \\
        --stream-json stream.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kwstool.errors import KwsError

CREDITS = [
    "Speech Commands dataset by Google, CC BY 4.0 (Warden 2018, arXiv:1804.03209)",
    "Wake-word recordings (computer, jarvis, used as other words): Picovoice wake-word "
    "benchmark, Apache-2.0",
]


def _mean_std(values: list[float]) -> dict[str, float]:
    import numpy as np

    v = np.asarray(values, dtype=float)
    return {"mean": round(float(v.mean()), 4), "std": round(float(v.std(ddof=1)), 4) if len(v) > 1
            else 0.0}  # fmt: skip


def figures(cv_json: Path | None, stream_json: Path | None) -> dict:
    out: dict = {}
    if cv_json is not None:
        cv = json.loads(cv_json.read_text())
        s = cv["summary"]
        out["clips"] = {
            "command": "python scripts/bench_models.py --cv",
            "folds": len(cv["folds"]),
            "k": cv["k"],
            "clips": s["clips"],
            "top1_int8": s["top1"],
            "balanced_top1": s["balanced_top1"],
            "top1_by_source": s["top1_by_source"],
            "recall": s["recall"],
        }
    if stream_json is not None:
        st = json.loads(stream_json.read_text())
        rows = st["folds"]
        words = sum(r["words"] for r in rows)
        out["stream"] = {
            "command": "python scripts/bench_streaming.py --cv WORK/cv/...",
            "folds": len(rows),
            "thresholds": "leave-one-fold-out",
            "fa_per_hour_budget": float(st["args"]["fa_per_hour"]),
            "frr": _mean_std([r["frr"] for r in rows]),
            "fa_per_hour": _mean_std([r["fa_per_hour"] for r in rows]),
            "pooled_frr": round(sum(r["misses"] for r in rows) / max(1, words), 4),
            "found": {
                k: _mean_std([r["found"][k] for r in rows if r["found"].get(k) is not None])
                for k in rows[0]["found"]
            },
        }
    return out


def package(run: Path, name: str, cv_json: Path | None, stream_json: Path | None) -> Path:
    from kwstool import __version__
    from kwstool.core.artifacts import PROVENANCE_FILE, PretrainedProvenance, load_config
    from kwstool.core.calibration import read_calibration
    from kwstool.core.pretrained import ROOT
    from kwstool.core.tflite import load_report

    cal = read_calibration(run)
    if cal is None:
        raise KwsError(
            f"{run}: no calibration.json; calibrate it first (scripts/bench_streaming.py --cv "
            "... --write-calibration RUN)"
        )
    report = load_report(run / "model_int8.tflite")
    config = load_config(run)
    dest = ROOT / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("model_int8.tflite", "quantize.json", "calibration.json"):
        shutil.copyfile(run / f, dest / f)
    manifest = json.loads((Path(config.data.path) / "manifest.json").read_text())
    record = PretrainedProvenance(
        name=name,
        kwstool_version=__version__,
        model_sha256=hashlib.sha256((dest / "model_int8.tflite").read_bytes()).hexdigest(),
        labels=list(report["labels"]),
        features=dict(config.features),
        recipe=dict(config.hyperparameters),
        data={
            "source": str(manifest.get("source")),
            "train_clips": config.data.train_count,
            "per_class": manifest["splits"]["train"]["per_class"],
            "held_out": "none: trained on every speaker of ../shared (speech_commands_mini, "
            "speech_commands_test_dev, speech_commands_extra, wake_words as other words)",
        },
        figures=figures(cv_json, stream_json),
        calibration=str(cal.get("stream", {}).get("data", ""))
        + f"; budget {cal.get('fa_per_hour_budget')} FA/h per keyword, rule of "
        "kwstool.stream.det.calibrate",
        credits=CREDITS,
    )
    record.to_json(dest / PROVENANCE_FILE)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="calibrated run folder (model_int8.tflite ...)")
    ap.add_argument("--name", default="speech_commands_12")
    ap.add_argument("--cv-json", type=Path, default=None, help="bench_models.py --cv --json")
    ap.add_argument("--stream-json", type=Path, default=None, help="bench_streaming.py --cv --json")
    ap.add_argument(
        "--export", type=Path, default=REPO / "firmware" / "src" / "model",
        help="export the packaged model here (the firmware's model folder)",
    )  # fmt: skip
    ap.add_argument("--board", default="nano33ble")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        dest = package(args.run, args.name, args.cv_json, args.stream_json)
        from kwstool.deploy.export import export

        res = export(dest, args.export, board=args.board)
    except KwsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"packaged {dest}; exported {res.header} and {res.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
