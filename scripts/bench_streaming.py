#!/usr/bin/env python
"""Streaming benchmark: FRR per keyword, false accepts per hour and latency on 1 h + 1 h streams.

Trains nothing: give it a run folder after ``kwstool quantize`` (or its ``model_int8.tflite``)
of a 12-class model (e.g. ``scripts/bench_models.py --models bc_resnet --work /tmp/x`` ->
``/tmp/x/runs/bc_resnet``). The streams come from test-split speakers:
``../shared/data/speech_commands_test_dev`` prepared with ``kwstool prepare`` (cached under
``--work``), background noise from ``../shared/data/speech_commands_mini/_background_noise_``
(the canonical test layout has no noise recordings). It then runs ``kwstool stream-eval``'s
library function with ``--calibrate`` and prints, at the calibrated thresholds, FRR, FA/h and
latency per keyword, and how long each part took.

With ``--data`` (the prepared data the run was trained on, e.g. ``scripts/bench_models.py``'s
``WORK/data``) the thresholds are calibrated on streams of its *validation* speakers and the
figures are measured on streams of its *test* speakers, which the model never heard.

Usage::

    python scripts/bench_models.py --models ds_tcn --work /tmp/x      # the default recipe
    python scripts/bench_streaming.py /tmp/x/runs/ds_tcn --data /tmp/x/data
    python scripts/bench_streaming.py RUN --data DATA --fa-per-hour 2 --snr 40:60 --seed 0
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kwstool.errors import KwsError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "run",
        type=Path,
        nargs="?",
        default=None,
        help="run folder (after kwstool quantize) or .tflite",
    )
    ap.add_argument(
        "--data",
        type=Path,
        default=None,
        help="prepared data the run was trained with (scripts/bench_models.py's "
        "WORK/data): calibrate on its validation speakers, report on its test "
        "speakers; default: speech_commands_test_dev prepared here, both on test",
    )
    ap.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/kwstool_bench_streaming"))
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--negative-hours", type=float, default=1.0)
    ap.add_argument(
        "--fa-per-hour",
        type=float,
        default=2.0,
        help="false accepts per hour allowed on the negative stream, all keywords "
        "together (each keyword gets an equal share)",
    )
    ap.add_argument(
        "--snr",
        default="40:60",
        help="word-to-noise SNR range in dB (issue 16's "
        "design: quiet background, 40-60 dB; kwstool stream-eval's default is 5:25)",
    )
    ap.add_argument(
        "--noise-dbfs",
        default="-80:-60",
        help="background noise level range (dBFS); "
        "with --snr 40:60 the words lie at -40..-15 dBFS RMS",
    )
    ap.add_argument("--window-ms", type=int, default=500, help="recognizer averaging window")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--runtime", default="litert")
    ap.add_argument(
        "--cv",
        type=Path,
        default=None,
        help="a cross-validation folder of scripts/bench_models.py --cv (WORK/cv/k5-...): "
        "measure every fold (RUN is then ignored) and print mean +- std over folds",
    )
    ap.add_argument("--json", type=Path, default=None, help="--cv: also write the figures here")
    ap.add_argument(
        "--write-calibration",
        type=Path,
        default=None,
        metavar="RUN",
        help="--cv: store the thresholds calibrated on all folds' streams pooled as RUN's "
        "calibration.json (RUN: a model trained on all speakers with the fold runs' recipe)",
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return run(args)
    except KwsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _design(args: argparse.Namespace, split: str, seed: int):
    from kwstool.stream.synth import StreamDesign

    lo, hi = (float(v) for v in args.snr.split(":"))
    nlo, nhi = (float(v) for v in args.noise_dbfs.split(":"))
    return StreamDesign(
        seed=seed,
        hours=args.hours,
        negative_hours=args.negative_hours,
        split=split,
        snr_db=(lo, hi),
        noise_dbfs=(nlo, nhi),
    )


def run(args: argparse.Namespace) -> int:
    from kwstool.data import prepare

    if args.cv is not None:
        return run_cv(args)
    t0 = time.perf_counter()
    if args.data is not None:
        data, noise, calib_split = args.data, None, "validation"
    else:
        data = args.work / "speech_commands_test_dev"
        prepare(str(args.data_root / "speech_commands_test_dev"), data, progress=False)
        noise, calib_split = args.data_root / "speech_commands_mini" / "_background_noise_", "test"
    t_prep = time.perf_counter() - t0
    res, cal, per_word = measure(args, args.run, data, noise, calib_split, args.work)
    _print(args, res.report, cal.report, data, calib_split, per_word, t_prep)
    print(f"wrote {res.json_path}, {res.det_path}, {cal.calibration_path}")
    return 0


def measure(args, run_dir, data, noise, calib_split, work):
    """Calibrate ``run_dir`` on ``calib_split`` streams, then measure it on test streams."""
    from kwstool.core.calibration import load_calibration
    from kwstool.stream.engine import StreamModel
    from kwstool.stream.evaluate import stream_eval

    keywords = [
        lab for lab in StreamModel.load(run_dir, args.runtime).labels if not lab.startswith("_")
    ]
    per_word = args.fa_per_hour / max(1, len(keywords))
    log = None if args.cv is not None else print
    cal = stream_eval(
        run_dir,
        data,
        design=_design(args, calib_split, args.seed + 1),
        noise_dir=noise,
        recognizer={"average_window_ms": args.window_ms},
        calibrate_fa=per_word,
        out_dir=work / "calibration",
        runtime=args.runtime,
        threads=args.threads,
        log=log,
    )
    res = stream_eval(
        run_dir,
        data,
        design=_design(args, "test", args.seed),
        noise_dir=noise,
        recognizer=load_calibration(run_dir),
        out_dir=work / "out",
        runtime=args.runtime,
        threads=args.threads,
        log=log,
    )
    return res, cal, per_word


def figures(rep: dict, per_word: float) -> dict:
    """Overall and per-keyword figures of one test report (calibrated thresholds), and the
    FRR of thresholds picked on the test streams themselves (an optimistic bound)."""
    from kwstool.stream.det import calibrate

    per = rep["per_keyword"]
    words = sum(f["words"] for f in per.values())
    misses = sum(round((f["frr"] or 0.0) * f["words"]) for f in per.values())
    sup = str(rep["recognizer"]["suppression_ms"])
    best = calibrate(rep["sweep"]["suppression_ms"][sup], per_word, min_recall=0.0)
    best_misses = sum(p["misses"] or 0 for p in best.values())
    return {
        "words": words,
        "misses": misses,
        "frr": misses / max(1, words),
        "fa_per_hour": sum(f["fa_per_hour"] or 0.0 for f in per.values()),
        "found": {k: (None if f["frr"] is None else 1 - f["frr"]) for k, f in per.items()},
        "best_on_test_frr": best_misses / max(1, words),
    }


def _sweep_of(rep: dict) -> tuple[dict, dict, float]:
    """(curves at the report's suppression time, keyword words, negative hours) of a report."""
    sup = str(rep["recognizer"]["suppression_ms"])
    words = {k: int(f["words"]) for k, f in rep["per_keyword"].items()}
    return rep["sweep"]["suppression_ms"][sup], words, float(rep["negative"]["hours"])


def figures_at(curves: dict, words: dict, thresholds: dict) -> dict:
    """Overall and per-keyword figures of one fold's test streams at given thresholds."""
    from kwstool.stream.det import at_thresholds

    at = at_thresholds(curves, thresholds)
    total = sum(words.values())
    misses = sum(int(p["misses"] or 0) for p in at.values())
    return {
        "words": total,
        "misses": misses,
        "frr": misses / max(1, total),
        "fa_per_hour": sum(float(p["fa_per_hour"] or 0.0) for p in at.values()),
        "found": {k: (None if p["frr"] is None else 1 - p["frr"]) for k, p in at.items()},
        "thresholds": {k: p["threshold"] for k, p in at.items()},
    }


def run_cv(args: argparse.Namespace) -> int:
    """Every fold of a cross-validation folder, thresholds calibrated leave-one-fold-out: each
    fold's model runs over streams of its own test speakers (which it never heard); the
    threshold sweeps of the *other* folds' streams are pooled and calibrated for the budget, and
    those thresholds are scored on this fold's streams. Per-fold figures, mean +- std, pooled;
    ``--write-calibration RUN`` stores the thresholds calibrated on all folds' streams pooled
    (for a model trained on all speakers with the same recipe)."""
    from kwstool.fileio import write_json
    from kwstool.stream.det import budget_warning, calibrate, pool_curves
    from kwstool.stream.evaluate import stream_eval

    folds = sorted(p for p in args.cv.glob("fold_*") if (p / "run" / "model_int8.tflite").is_file())
    if not folds:
        raise KwsError(
            f"{args.cv}: no fold_*/run/model_int8.tflite; run scripts/bench_models.py --cv first"
        )
    t0 = time.perf_counter()
    sweeps, reps = [], []
    for fold in folds:
        res = stream_eval(
            fold / "run",
            fold / "data",
            design=_design(args, "test", args.seed),
            recognizer={"average_window_ms": args.window_ms},
            out_dir=args.work / fold.name / "out",
            runtime=args.runtime,
            threads=args.threads,
            log=None,
        )
        reps.append(res.report)
        sweeps.append(_sweep_of(res.report))
        print(f"{fold.name}: streams scored ({time.perf_counter() - t0:.0f} s)", flush=True)
    keywords = list(sweeps[0][0])
    per_word = args.fa_per_hour / max(1, len(keywords))
    rows: list = []
    rows_one: list = []
    for k, fold in enumerate(folds if len(folds) > 1 else []):  # one fold: thresholds only
        others = pool_curves([s for j, s in enumerate(sweeps) if j != k])
        picks = calibrate(others, per_word)
        row = figures_at(sweeps[k][0], sweeps[k][1], {n: p["threshold"] for n, p in picks.items()})
        best = calibrate(sweeps[k][0], per_word, min_recall=0.0)
        row["best_on_test_frr"] = sum(p["misses"] or 0 for p in best.values()) / max(
            1, row["words"]
        )
        row["shares"] = {n: p["share"] for n, p in picks.items()}
        rows.append(row)
        warning = budget_warning(picks, per_word)
        print(
            f"{fold.name}: FRR {row['frr']:.3f} ({row['misses']}/{row['words']}), "
            f"{row['fa_per_hour']:.1f} FA/h, best-on-test FRR {row['best_on_test_frr']:.3f}"
            + (f"  [{warning}]" if warning else ""),
            flush=True,
        )

    if not rows:  # one fold (e.g. a paired ablation row): the oracle figure only
        best = calibrate(sweeps[0][0], per_word, min_recall=0.0)
        row = figures_at(sweeps[0][0], sweeps[0][1], {n: p["threshold"] for n, p in best.items()})
        row["best_on_test_frr"] = row["frr"]
        rows_one = [row]
        print(
            f"one fold: no leave-one-fold-out thresholds; best-on-test (thresholds chosen on its "
            f"own test streams, {per_word:g} FA/h per keyword): FRR {row['frr']:.3f} "
            f"({row['misses']}/{row['words']}) at {row['fa_per_hour']:.1f} FA/h; found "
            + ", ".join(f"{n} {v:.2f}" for n, v in row["found"].items() if v is not None)
        )
    else:
        _summary(args, rows, keywords)
    all_picks = calibrate(pool_curves(sweeps), per_word)
    print(
        "thresholds from all folds pooled: "
        + ", ".join(f"{n} {p['threshold']}" for n, p in all_picks.items())
    )
    if args.write_calibration is not None:
        path = save_pooled(args, args.write_calibration, all_picks, reps, folds, per_word)
        print(f"wrote {path}")
    print(f"time {time.perf_counter() - t0:.0f} s")
    if args.json:
        write_json(args.json, {"folds": rows or rows_one,
                               "args": {k: str(v) for k, v in vars(args).items()}})  # fmt: skip
    return 0


def _summary(args: argparse.Namespace, rows: list, keywords: list) -> None:
    def ms(key: str) -> str:
        return _mean_std([r[key] for r in rows])

    words = sum(r["words"] for r in rows)
    print(
        f"\n{len(rows)} folds of {args.cv}: thresholds calibrated leave-one-fold-out (the other "
        f"folds' test-speaker streams pooled) for {args.fa_per_hour:g} FA/h in all (equal "
        f"shares; a keyword found < 50 % within its share gets a larger one, see "
        f"kwstool.stream.det.calibrate), averaging {args.window_ms} ms, SNR {args.snr} dB; "
        f"figures on each fold's test speakers, {args.hours:g} h + {args.negative_hours:g} h "
        f"per fold"
    )
    pooled = sum(r["misses"] for r in rows) / max(1, words)
    print(f"FRR at calibrated thresholds {ms('frr')}  (pooled {pooled:.3f} over {words} keywords)")
    print(f"false accepts per hour       {ms('fa_per_hour')}")
    print(f"best-on-test FRR at {args.fa_per_hour:g} FA/h {ms('best_on_test_frr')}")
    for name in keywords:
        v = [r["found"][name] for r in rows if r["found"].get(name) is not None]
        print(f"  found {name:6} {_mean_std(v)}")


def save_pooled(args, run_dir: Path, picks: dict, reps: list, folds: list, per_word: float) -> Path:
    """The all-folds calibration as ``run_dir``'s calibration.json (model checked by sha256)."""
    from kwstool.core.calibration import save_calibration
    from kwstool.stream.engine import StreamModel
    from kwstool.stream.evaluate import calibration_record

    model = StreamModel.load(run_dir, args.runtime)
    thresholds = {name: int(p["threshold"]) for name, p in picks.items()}
    stream = {
        "design": reps[0]["design"],
        "data": f"pooled test-speaker streams of {len(folds)} folds of {args.cv}",
        "positive_hours": sum(r["positive"]["hours"] for r in reps),
        "negative_hours": sum(r["negative"]["hours"] for r in reps),
    }
    record = calibration_record(model, reps[0], per_word, thresholds, picks, {}, stream)
    return save_calibration(model.path.parent, record)


def _mean_std(values: list[float]) -> str:
    import numpy as np

    v = np.array(values, dtype=float)
    return f"{v.mean():.3f} +- {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def _print(args, rep, cal_rep, data, calib_split, per_word, t_prep) -> None:
    print(
        f"\nmodel {rep['model_file']} (period {rep['inference_period_ms']} ms, runtime "
        f"{rep['runtime']}); thresholds calibrated on {calib_split}-speaker streams of {data} "
        f"(<= {per_word:.2f} FA/h per keyword, {args.fa_per_hour:g} FA/h in all, averaging "
        f"{args.window_ms} ms, SNR {args.snr} dB over noise at {args.noise_dbfs} dBFS); "
        f"figures on test-speaker streams, seed "
        f"{args.seed}: {rep['positive']['hours']} h positive, {rep['negative']['hours']} h negative"
    )
    picks = (cal_rep.get("calibration") or {}).get("picks") or {}
    thr = {name: p["threshold"] for name, p in picks.items()}
    print(
        f"{'word':8} {'thr':>4} {'words':>6} {'found':>7} {'FRR':>7} {'FA/h':>7} "
        f"{'false/h+':>9} {'lat p50':>8} {'lat p95':>8}"
    )
    total = figures(rep, per_word)
    for name, f in rep["per_keyword"].items():
        found = total["found"][name]
        print(
            f"{name:8} {thr.get(name, '-'):>4} {f['words']:6d} {_n(found, 3):>7} "
            f"{_n(f['frr'], 3):>7} {_n(f['fa_per_hour'], 2):>7} "
            f"{_n(f['false_per_hour_positive'], 2):>9} {_n(f['latency_ms']['median'], 0):>8} "
            f"{_n(f['latency_ms']['p95'], 0):>8}"
        )
    print(
        f"all keywords: FRR {total['frr']:.3f} ({total['misses']}/{total['words']} missed), "
        f"false accepts {total['fa_per_hour']:.2f} per hour on the negative stream"
    )
    from kwstool.stream.det import budget_warning

    warning = budget_warning(picks, per_word)
    if warning:
        print(f"{warning} (calibration streams)")
    p = rep["parity"]
    print(
        f"TFLite-Micro check: {p['identical']}/{p['windows']} windows bit-identical "
        f"(max diff {p['max_abs_diff']})"
    )
    s = rep["seconds"]
    hours = rep["positive"]["hours"] + rep["negative"]["hours"]
    print(
        f"time (test streams): prepare {t_prep:.1f} s, build streams {s['build']:.1f} s, front end "
        f"+ model + recognizer {s['stream']:.1f} s wall / {s['stream_cpu']:.1f} s CPU (per hour "
        f"of audio: {s['stream'] / max(hours, 1e-9):.1f} s wall, "
        f"{s['stream_cpu'] / max(hours, 1e-9):.1f} s CPU), total {s['total']:.1f} s on "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f})"
    )


def _n(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
