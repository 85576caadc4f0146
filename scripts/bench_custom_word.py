#!/usr/bin/env python
"""Your own wake word, measured the way a user makes it: docs/WAKEWORD.md's flow, end to end.

For each word (``computer``, ``jarvis`` from ``shared/data/wake_words``, crowd-sourced clips of
about 3 s with the word somewhere inside and no speaker ids):

1. **record**: the first ``--user-clips`` (20) files, sorted by name, are "the user's
   recordings". They are joined into one session WAV with 0.5 s of digital silence between
   takes (what an editor makes of separate files) and split by ``kwstool record --wav ...
   --speaker user`` (:func:`kwstool.data.record.split_recording`): ONE speaker, as when one
   person records their word. The other files are the held-out test clips.
2. **synth**: ``kwstool synth WORD --count N --noise <mini>/_background_noise_``
   (``--engine``, default espeak-ng).
3. **prepare**: ``--source own=recordings --source synth=synth --negatives sc_mini=...
   --negatives sc_extra=... --negatives ww=<wake_words>`` (the other wake word's clips are
   negatives; this word's folder there is left out by prepare), every negative used
   (``--unknown-min``), ``--silence-share 100``. One speaker: prepare splits the word by take.
4. **train** (``--model``, ``--epochs``), **quantize**, **stream-eval --split validation
   --calibrate BUDGET** (the thresholds a user gets, in ``calibration.json``).
5. **measure** on audio nobody trained or calibrated on, through the stream machinery of
   ``kwstool stream-eval`` (:mod:`kwstool.stream`: stream builder, bulk board path, C
   recognizer, hit matching, threshold sweep):

   * positive stream: the held-out clips of the word (each cut to 1 s around its loudest word
     as prepare does), placed in background noise with 1.5-3 s gaps, about one placement per
     clip;
   * negative stream (``--neg-hours``, 1 h): speech of **held-out Speech Commands speakers**:
     a speaker is held out when TensorFlow's ``which_set`` hash of its id falls in the test
     band [10 %, 20 %) (:func:`kwstool.data.splits.which_split` gives ``test``); prepare puts
     those speakers' clips in test, so they are neither trained nor calibrated on. Their clips
     from ``speech_commands_mini`` and ``speech_commands_extra`` plus every speech clip of the
     canonical test set ``speech_commands_test_dev`` (all its speakers are in that band; it is
     not given to prepare);
   * noise: the Speech Commands mini background recordings (as stream-eval uses).

   Reported: recall and false accepts per hour at the calibrated threshold, the latency after
   the word's end there (p50/p95), and the recall at <= 0.5, 1, 2 and 5 FA/h (the best
   threshold on these held-out streams: what a perfectly calibrated threshold would give).

Usage::

    python scripts/bench_custom_word.py                        # ds_tcn, 40 epochs
    python scripts/bench_custom_word.py --model tiny_conv --epochs 5 --synth-count 100  # quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BUDGETS = (0.5, 1.0, 2.0, 5.0)
GAP_S = 0.5  # digital silence between the takes of the joined session


def _session(files: list[Path], out: Path) -> Path:
    """The user's takes joined into one recording with digital silence between them."""
    from kwstool.core.audio import load_audio, save_wav

    gap = np.zeros(int(GAP_S * 16000), np.int16)
    parts = [gap]
    for f in files:
        parts += [load_audio(f, clip_samples=None), gap]
    save_wav(out, np.concatenate(parts))
    return out


def _synth(args: argparse.Namespace, word: str, out: Path, count: int, negatives: bool) -> None:
    """``kwstool synth WORD --count N`` (``negatives``: ``--confusables``), reused when done."""
    from kwstool.data.synth import synth

    done = out / ".done"
    want = f"{args.engine} {count} {args.seed} {negatives}"
    if done.is_file() and done.read_text() == want:  # same arguments: reuse
        return
    shutil.rmtree(out, ignore_errors=True)
    noise = args.data_root / "speech_commands_mini" / "_background_noise_"
    synth(word, count, out, seed=args.seed + negatives, noise_dir=noise, engine=args.engine,
          confusables=negatives)  # fmt: skip
    done.write_text(want)


def _held_out_speech(root: Path) -> list[Path]:
    """Speech clips of the Speech Commands speakers in the test band (see the module doc)."""
    from kwstool.core.labels import BACKGROUND_NOISE, SILENCE
    from kwstool.data.splits import speaker_of, which_split

    out = []
    for name in ("speech_commands_mini", "speech_commands_extra"):
        for f in sorted((root / name).glob("*/*.wav")):
            rel = f"{f.parent.name}/{f.name}"
            if f.parent.name != BACKGROUND_NOISE and which_split(speaker_of(rel), 10, 10) == "test":
                out.append(f)
    test_dev = root / "speech_commands_test_dev"
    out += sorted(f for f in test_dev.glob("*/*.wav") if f.parent.name != SILENCE)
    return out


def _clips(files: list[Path]) -> np.ndarray:
    from kwstool.data.takes import read_clip

    return np.stack([read_clip(f)[0] for f in files])


_EMBEDDED: dict[str, Any] = {}  # the negative stream's embeddings, shared by both words' heads


def _embedded(samples: np.ndarray) -> Any:
    import hashlib

    from kwstool.stream.embedding import embed_stream

    key = hashlib.sha1(np.ascontiguousarray(samples).tobytes()).hexdigest()
    if key not in _EMBEDDED:
        _EMBEDDED[key] = embed_stream(samples)
    return _EMBEDDED[key]


def _streams(
    args: argparse.Namespace, word: str, held: list[Path], negatives: np.ndarray
) -> tuple[Any, Any]:
    """The held-out positive stream (the word's other clips) and negative stream (held-out
    speakers' speech), built once per word for every detector."""
    from kwstool.core.labels import UNKNOWN
    from kwstool.data.prepared import load_prepared
    from kwstool.stream import synth
    from kwstool.stream.evaluate import load_noise

    noise = load_noise(load_prepared(args.work / word / "data"), None)
    mean_word_s = 0.8 + sum(synth.StreamDesign().gap_s) / 2
    design = synth.StreamDesign(
        seed=args.seed + 1,
        hours=len(held) * mean_word_s / 3600,
        negative_hours=args.neg_hours,
        split="held-out",
        unknown_share=0.0,
    )
    rng_pos, rng_neg = (np.random.default_rng([design.seed, k]) for k in (1, 2))
    positive = synth.build_stream(
        _clips(held), [word] * len(held), noise, design.hours, design, rng_pos
    )
    negative = synth.build_stream(
        negatives, [UNKNOWN] * len(negatives), noise, args.neg_hours, design, rng_neg, False
    )
    return positive, negative


def _measure(
    run: Path,
    word: str,
    streams: tuple[Any, Any],
    detector: str = "board",
) -> dict[str, Any]:
    """Held-out streams (:func:`_streams`) through the board path (or, ``detector='embedding'``,
    the embedding detector of ``listen --model embedding``); figures at the thresholds a user
    gets and the best recall within each FA/h budget."""
    from kwstool.core.calibration import load_calibration
    from kwstool.core.contract import SAMPLE_RATE
    from kwstool.stream import det, engine, native, scoring
    from kwstool.stream.embedding import (
        RECOGNIZER as EMBEDDING_RECOGNIZER,
        EmbeddingModel,
        batch_scores,
    )
    from kwstool.stream.evaluate import recognizer_defaults

    positive, negative = streams
    labels: list[str]
    if detector == "embedding":  # listen --model embedding: no calibration, the defaults
        emodel = EmbeddingModel.load(run)
        labels = emodel.labels
        pos = batch_scores(emodel, positive.samples)
        neg = batch_scores(emodel, _embedded(negative.samples))
        rec = recognizer_defaults(EMBEDDING_RECOGNIZER)
    else:
        model = engine.StreamModel.load(run)
        labels = model.labels
        pos = engine.batch_results(model, positive.samples)
        neg = engine.batch_results(model, negative.samples)
        rec = recognizer_defaults(load_calibration(run))
    settings = native.RecognizerSettings.build(labels, rec)
    words = scoring.WordTable.of(positive.words, labels, SAMPLE_RATE)
    no_words = scoring.WordTable.of([], labels, SAMPLE_RATE)

    def figures(s: native.RecognizerSettings) -> dict[str, Any]:
        po = scoring.match(native.recognize(pos.scores, pos.times_ms, s), words)
        ne = scoring.match(native.recognize(neg.scores, neg.times_ms, s), no_words)
        f: dict[str, Any] = scoring.keyword_figures(
            labels, words, po, ne, positive.hours, negative.hours
        )[word]
        return f

    at_cal = figures(settings)
    curves = det.sweep(settings, pos, neg, words, negative.hours)["suppression_ms"]
    curve = curves[str(settings.suppression_ms)]
    budgets = {}
    for b in BUDGETS:
        pick = det.calibrate(curve, b)[word]
        if not pick["met_budget"]:
            budgets[b] = {"recall": 0.0, "threshold": 255, "latency_ms": None}
            continue
        f = figures(settings.with_threshold(pick["threshold"]))
        budgets[b] = {
            "recall": 1 - pick["frr"],
            "threshold": pick["threshold"],
            "latency_ms": f["latency_ms"]["median"],
        }
    return {
        "detector": detector,
        "threshold": settings.thresholds[labels.index(word)],
        "positive_words": at_cal["words"],
        "positive_hours": positive.hours,
        "negative_hours": negative.hours,
        "negative_words": len(negative.words),
        "recall": 1 - at_cal["frr"],
        "fa_per_hour": at_cal["fa_per_hour"],
        "latency": at_cal["latency_ms"],
        "budgets": budgets,
    }


def _word(args: argparse.Namespace, word: str, negatives: np.ndarray) -> list[dict[str, Any]]:
    from kwstool.data import prepare
    from kwstool.data.record import split_recording
    from kwstool.model.quantize import quantize
    from kwstool.model.train import train
    from kwstool.stream.evaluate import stream_eval
    from kwstool.stream.synth import StreamDesign

    t: dict[str, float] = {}
    work = args.work / word
    work.mkdir(parents=True, exist_ok=True)
    files = sorted((args.data_root / "wake_words" / word).glob("*.wav"))
    user, held = files[: args.user_clips], files[args.user_clips :]
    t0 = time.perf_counter()
    shutil.rmtree(work / "recordings", ignore_errors=True)
    rec = split_recording(
        _session(user, work / "session.wav"), word, work / "recordings", args.speaker
    )
    t["record"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _synth(args, word, work / "synth", args.synth_count, False)
    synthetic_negatives = []
    if args.neg_count:
        _synth(args, word, work / "synth_neg", args.neg_count, True)
        synthetic_negatives = [f"synth_neg={work / 'synth_neg'}"]
    t["synth"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    prep = prepare(
        [f"own={work / 'recordings'}", f"synth={work / 'synth'}"],
        work / "data",
        words=word,
        silence_share=100.0,
        unknown_min=100000,
        negatives=[
            f"sc_mini={args.data_root / 'speech_commands_mini'}",
            f"sc_extra={args.data_root / 'speech_commands_extra'}",
            f"ww={args.data_root / 'wake_words'}",
            *synthetic_negatives,
        ],
        progress=False,
    )
    t["prepare"] = time.perf_counter() - t0
    for w in prep.warnings:
        print(f"  prepare: {w}", flush=True)
    run = work / "run"
    t0 = time.perf_counter()
    reuse = args.reuse_runs and (run / "config.json").is_file()
    tr = train(
        work / "data",
        run,
        model=args.model,
        epochs=args.epochs,
        seed=args.seed,
        teacher=args.teacher,
        overwrite=not reuse,
        resume=reuse,
        progress=False,
    )
    t["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    quantize(run, work / "data", log=lambda _m: None)
    t["quantize"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cal = stream_eval(
        run,
        work / "data",
        design=StreamDesign(
            seed=args.seed, hours=args.cal_hours, negative_hours=args.cal_hours, split="validation"
        ),
        calibrate_fa=args.calibrate,
        log=lambda m: print(f"  stream-eval: {m}", flush=True),
    )
    t["calibrate"] = time.perf_counter() - t0
    counts = prep.keyword_clips[word] if prep.keyword_clips else {}
    rows = []
    t0 = time.perf_counter()
    streams = _streams(args, word, held, negatives)
    t["streams"] = time.perf_counter() - t0
    for detector in ("board", "embedding") if args.teacher == "embedding" else ("board",):
        t0 = time.perf_counter()
        m = _measure(run, word, streams, detector)
        rows.append({
            "word": word, "takes": len(rec.saved), "rejected": len(rec.rejected),
            "held": len(held), "counts": counts, "best_epoch": tr.best_epoch,
            "cal_budget_met": cal.report["calibration"]["picks"][word]["met_budget"],
            **m, "seconds": {**t, "measure": time.perf_counter() - t0},
        })  # fmt: skip
    return rows


def _print(rows: list[dict[str, Any]], args: argparse.Namespace, neg_clips: int) -> None:
    negs = f" + {args.neg_count} synthetic confusable negatives" if args.neg_count else ""
    print(
        f"\nown wake word from {args.user_clips} recordings of ONE speaker (record --wav "
        f"--speaker {args.speaker}) + {args.synth_count} synthetic ({args.engine}){negs}; "
        f"{args.model}, {args.epochs} epochs, teacher {args.teacher}, seed {args.seed}; board "
        f"thresholds from stream-eval --split validation --calibrate {args.calibrate:g}; "
        "embedding (listen --model embedding): listen's default threshold"
    )
    print(
        f"held-out: positive stream of each word's other clips; negative stream "
        f"{args.neg_hours:g} h of {neg_clips} clips of held-out Speech Commands speakers"
    )
    head = (
        f"{'word':>8} {'detector':>9} {'takes':>5} {'train r+s':>9} {'val':>3} {'test':>4} "
        f"{'held':>4} {'thr':>3} {'recall':>6} {'FA/h':>5} {'lat p50/p95 ms':>14} "
        + " ".join(f"{'R@' + format(b, 'g'):>6}" for b in BUDGETS)
    )
    print(head)
    for r in rows:
        c = r["counts"]
        lat = r["latency"]
        lat_s = (
            f"{lat['median'] or 0:.0f}/{lat['p95'] or 0:.0f}" if lat["median"] is not None else "-"
        )
        print(
            f"{r['word']:>8} {r['detector']:>9} {r['takes']:>5} "
            f"{str(c['train']['real']) + '+' + str(c['train']['synthetic']):>9} "
            f"{c['validation']['real']:>3} {c['test']['real']:>4} {r['positive_words']:>4} "
            f"{r['threshold']:>3} {r['recall']:>6.3f} {r['fa_per_hour']:>5.1f} {lat_s:>14} "
            + " ".join(f"{r['budgets'][b]['recall']:>6.3f}" for b in BUDGETS)
        )
    for r in rows:
        s = r["seconds"]
        print(
            f"{r['word']} ({r['detector']}): "
            + ", ".join(f"{k} {v:.0f} s" for k, v in s.items())
            + f"; best epoch {r['best_epoch']}; calibration budget met: {r['cal_budget_met']}"
        )
        lat = [r["budgets"][b]["latency_ms"] for b in BUDGETS]
        print(
            f"{r['word']} ({r['detector']}): latency p50 (ms) at the R@ thresholds: "
            + ", ".join("-" if v is None else f"{v:.0f}" for v in lat)
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/kwstool_bench_custom_word"))
    ap.add_argument("--words", default="computer,jarvis")
    ap.add_argument("--user-clips", type=int, default=20)
    ap.add_argument("--speaker", default="user")
    ap.add_argument("--engine", default="espeak-ng", help="kwstool synth engine.")
    ap.add_argument("--synth-count", type=int, default=300)
    ap.add_argument(
        "--neg-count",
        type=int,
        default=0,
        help="Synthetic confusable negatives (kwstool synth --confusables, same engine).",
    )
    ap.add_argument(
        "--teacher",
        default="none",
        choices=("none", "embedding"),
        help="kwstool train --teacher; with embedding the embedding detector is measured too.",
    )
    ap.add_argument(
        "--reuse-runs",
        action="store_true",
        help="Resume/reuse WORK/WORD/run instead of training afresh (same arguments and "
        "prepared data only).",
    )
    ap.add_argument("--json", type=Path, default=None, help="Also write the rows as JSON.")
    ap.add_argument("--model", default="ds_tcn")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calibrate", type=float, default=1.0, help="FA/h budget of stream-eval.")
    ap.add_argument("--cal-hours", type=float, default=0.5, help="Calibration streams, h each.")
    ap.add_argument("--neg-hours", type=float, default=1.0, help="Held-out negative stream, h.")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from kwstool.core import tfenv

    tfenv.quiet()
    from kwstool.errors import KwsError

    for need in ("speech_commands_mini", "speech_commands_extra", "wake_words"):
        if not (args.data_root / need).is_dir():
            raise KwsError(f"{args.data_root / need}: not found; give --data-root (../shared/data)")
    for word in args.words.split(","):
        if not (args.data_root / "wake_words" / word).is_dir():
            raise KwsError(f"--words {word}: no folder {args.data_root / 'wake_words' / word}")
    t0 = time.perf_counter()
    neg_files = _held_out_speech(args.data_root)
    negatives = _clips(neg_files)
    rows = []
    for word in args.words.split(","):
        t1 = time.perf_counter()
        rows += _word(args, word, negatives)
        for r in rows[-2:]:
            if r["word"] == word:
                print(
                    f"{word} ({r['detector']}): recall {r['recall']:.3f} at "
                    f"{r['fa_per_hour']:.1f} FA/h, R@1 {r['budgets'][1.0]['recall']:.3f}; "
                    f"{time.perf_counter() - t1:.0f} s",
                    flush=True,
                )
    _print(rows, args, len(neg_files))
    if args.json:
        from kwstool.fileio import write_json

        write_json(args.json, {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows})
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


def cli() -> int:
    """``main`` with kwstool's errors as one line (exit 2), as the CLI gives them."""
    from kwstool.errors import KwsError

    try:
        return main()
    except KwsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
