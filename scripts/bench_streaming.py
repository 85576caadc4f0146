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

Usage::

    python scripts/bench_streaming.py /tmp/x/runs/bc_resnet
    python scripts/bench_streaming.py RUN --hours 1 --negative-hours 1 --fa-per-hour 1 --seed 0
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
    ap.add_argument("run", type=Path, help="run folder (after kwstool quantize) or .tflite")
    ap.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/kwstool_bench_streaming"))
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--negative-hours", type=float, default=1.0)
    ap.add_argument("--fa-per-hour", type=float, default=1.0, help="calibration budget")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--runtime", default="litert")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return run(args)
    except KwsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from kwstool.data import prepare
    from kwstool.stream.evaluate import stream_eval
    from kwstool.stream.synth import StreamDesign

    t0 = time.perf_counter()
    data = args.work / "speech_commands_test_dev"
    prepare(str(args.data_root / "speech_commands_test_dev"), data, progress=False)
    noise = args.data_root / "speech_commands_mini" / "_background_noise_"
    t_prep = time.perf_counter() - t0
    design = StreamDesign(seed=args.seed, hours=args.hours, negative_hours=args.negative_hours)
    res = stream_eval(
        args.run,
        data,
        design=design,
        noise_dir=noise,
        calibrate_fa=args.fa_per_hour,
        out_dir=args.work / "out",
        runtime=args.runtime,
        threads=args.threads,
        log=print,
    )
    rep = res.report
    cal = rep["calibration"]
    print(
        f"\nmodel {rep['model_file']} (period {rep['inference_period_ms']} ms, runtime "
        f"{rep['runtime']}); streams from {data} test split, seed {args.seed}: "
        f"{rep['positive']['hours']} h positive, {rep['negative']['hours']} h negative"
    )
    print(f"calibrated for <= {args.fa_per_hour} false accepts per hour per keyword")
    print(
        f"{'word':8} {'thr':>4} {'words':>6} {'FRR':>7} {'FA/h':>7} {'false/h+':>9} "
        f"{'lat p50':>8} {'lat p95':>8}  default thr 200: FRR, FA/h"
    )
    for name, f in cal["figures"].items():
        d = rep["per_keyword"][name]
        print(
            f"{name:8} {cal['picks'][name]['threshold']:4d} {f['words']:6d} "
            f"{_n(f['frr'], 3):>7} {_n(f['fa_per_hour'], 2):>7} "
            f"{_n(f['false_per_hour_positive'], 2):>9} {_n(f['latency_ms']['median'], 0):>8} "
            f"{_n(f['latency_ms']['p95'], 0):>8}  {_n(d['frr'], 3)}, {_n(d['fa_per_hour'], 2)}"
        )
    p = rep["parity"]
    print(
        f"TFLite-Micro check: {p['identical']}/{p['windows']} windows bit-identical "
        f"(max diff {p['max_abs_diff']})"
    )
    s = rep["seconds"]
    hours = rep["positive"]["hours"] + rep["negative"]["hours"]
    print(
        f"time: prepare {t_prep:.1f} s, build streams {s['build']:.1f} s, front end + model "
        f"+ recognizer {s['stream']:.1f} s wall / {s['stream_cpu']:.1f} s CPU (per hour of "
        f"audio: {s['stream'] / max(hours, 1e-9):.1f} s wall, "
        f"{s['stream_cpu'] / max(hours, 1e-9):.1f} s CPU), TFLM check {s['parity_check']:.1f} s,"
        f" sweep {s['sweep']:.1f} s, total {s['total']:.1f} s on {os.cpu_count()} CPUs "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    print(f"wrote {res.json_path}, {res.det_path}, {res.calibration_path}")
    return 0


def _n(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
