#!/usr/bin/env python
"""How many own recordings does a custom wake word need, and do synthetic voices help?

``happy`` from ``speech_commands_mini`` (174 speakers) plays the custom word. Per N (5, 10, 20,
50 real clips), with and without synthetic clips:

    1. own clips: N clips of ``happy`` from the speakers whose hash puts them in train, the
       speakers with most clips first (so "a few speakers": N=5 is 2 speakers, N=50 about 17);
       the picks are nested (N=5 is inside N=10 ...);
    2. synthetic: ``kwstool.data.synth.synth("happy", --synth-count)`` (espeak-ng voices +
       augmentation with the mini set's background noise), made once;
    3. ``kwstool.data.prepare`` merges ``own`` (+ ``synth``) with the negatives: the mini set
       (its ``happy/`` folder is left out by prepare: keywords are never negatives) and the
       canonical test set ``speech_commands_test_dev`` (its ``_unknown_/happy_*`` left out the
       same way), every negative clip used (``--unknown-min``), noise from the mini set;
    4. ``kwstool.model.train.train`` (``--model``, ``--epochs``) and
       ``kwstool.model.quantize.quantize``; the int8 model is scored with LiteRT's reference
       kernels (bit-exact with TFLite-Micro);
    5. threshold on the ``happy`` score: the lowest value that keeps false positives per clip
       at most ``--fpr`` (1 %) on the *validation* negatives; then recall on every ``happy``
       clip of the speakers never used for training (the same held-out set for every row) and
       the false-positive rate on the *test* negatives at that threshold. Negatives here are
       the ``_unknown_`` clips (other words; the same clips in every row), not silence.

Validation holds no real ``happy`` clip (all own clips are train; synthetic ones are train only),
so ``best.keras`` is chosen by validation accuracy on negatives and silence; ``best`` in the
table is that epoch.

Usage::

    python scripts/bench_custom_word.py                      # the whole table (~14 min, 2 cores)
    python scripts/bench_custom_word.py --ns 5,20 --epochs 5 --work /tmp/cw
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORD = "happy"


def _pick_own(mini: Path, max_n: int) -> tuple[list[Path], list[Path]]:
    """Nested train picks (train-hash speakers, most clips first) and the held-out clips."""
    from kwstool.data import speaker_of, which_split

    by_speaker: dict[str, list[Path]] = {}
    for f in sorted((mini / WORD).glob("*.wav")):
        by_speaker.setdefault(speaker_of(f"{WORD}/{f.name}"), []).append(f)
    order = sorted(
        (s for s in by_speaker if which_split(s, 10.0, 10.0) == "train"),
        key=lambda s: (-len(by_speaker[s]), s),
    )
    picked: list[Path] = []
    used: set[str] = set()
    for s in order:
        if len(picked) >= max_n:
            break
        picked += by_speaker[s]
        used.add(s)
    held_out = [f for s, fs in sorted(by_speaker.items()) if s not in used for f in fs]
    return picked, held_out


def _own_folder(work: Path, clips: list[Path], n: int) -> Path:
    folder = work / f"own_{n}" / WORD
    folder.mkdir(parents=True, exist_ok=True)
    for f in clips[:n]:
        link = folder / f.name
        if not link.exists():
            link.symlink_to(f)
    return folder.parent


def _scores(tflite: bytes, features: np.ndarray, index: int) -> np.ndarray:
    from kwstool.core.tflite import model_info, run_litert, to_model_input

    info = model_info(tflite)
    out = run_litert(tflite, to_model_input(features, info)).astype(np.int32)
    return out[:, index]


def _threshold(negative_scores: np.ndarray, fpr: float) -> int:
    """Lowest t with at most fpr of the negatives scoring above it (detection: score > t)."""
    s = np.sort(negative_scores)[::-1]
    allowed = int(np.floor(fpr * len(s)))
    return int(s[allowed]) if allowed < len(s) else int(s[-1]) - 1


def _row(
    args: argparse.Namespace, work: Path, n: int, synth_dir: Path | None, held_feats: np.ndarray
) -> dict:
    from kwstool.data import load_prepared, prepare
    from kwstool.model.quantize import quantize
    from kwstool.model.train import train

    tag = f"n{n}_{'synth' if synth_dir else 'real'}"
    sources = [f"own={_own_folder(work, args.own_clips, n)}"]
    if synth_dir:
        sources.append(f"synth={synth_dir}")
    data_dir = work / "data" / tag
    prepare(
        sources,
        data_dir,
        words=WORD,
        silence_share=1000.0,
        unknown_min=100000,
        negatives=[
            f"mini={args.data_root / 'speech_commands_mini'}",
            f"testdev={args.data_root / 'speech_commands_test_dev'}",
        ],
        progress=False,
    )
    run = work / "runs" / tag
    # a finished run with the same settings is reused (train's resume returns it as it is)
    tr = train(
        data_dir,
        run,
        model=args.model,
        epochs=args.epochs,
        patience=args.epochs,
        seed=args.seed,
        resume=(run / "config.json").is_file(),
        progress=False,
    )
    quantize(run, data_dir, log=lambda _msg: None)
    tflite = (run / "model_int8.tflite").read_bytes()
    data = load_prepared(data_dir)
    k, u = data.labels.index(WORD), data.labels.index("_unknown_")
    val, test = data.split("validation"), data.split("test")
    # negatives: the _unknown_ clips (other words, other speakers). Silence clips are left out:
    # their count follows the keyword count, so they would differ between the rows.
    val_neg = _scores(tflite, np.asarray(val.features)[np.asarray(val.labels) == u], k)
    test_neg = _scores(tflite, np.asarray(test.features)[np.asarray(test.labels) == u], k)
    pos = _scores(tflite, held_feats, k)
    t = _threshold(val_neg, args.fpr)
    train_counts = data.manifest["splits"]["train"]["per_class"]
    return {
        "n": n,
        "synth": bool(synth_dir),
        "train_word": train_counts[WORD],
        "train_unknown": train_counts["_unknown_"],
        "val_neg": len(val_neg),
        "test_neg": len(test_neg),
        "threshold": t,
        "recall": float(np.mean(pos > t)),
        "test_fpr": float(np.mean(test_neg > t)),
        "best_epoch": tr.best_epoch,
    }


def _print_table(rows: list[dict], held: int, fpr: float) -> None:
    print(
        f"\nrecall of '{WORD}' on {held} clips of held-out speakers at <= {fpr:.0%} false "
        f"positives per clip (threshold from validation negatives)"
    )
    print(
        f"{'N real':>6} {'synth':>5} {'train word':>10} {'train unk':>9} {'val neg':>7} "
        f"{'test neg':>8} {'thr':>5} {'recall':>7} {'test FPR':>8} {'best':>4}"
    )
    for r in rows:
        print(
            f"{r['n']:>6} {'yes' if r['synth'] else 'no':>5} {r['train_word']:>10} "
            f"{r['train_unknown']:>9} {r['val_neg']:>7} {r['test_neg']:>8} {r['threshold']:>5} "
            f"{r['recall']:>7.3f} {r['test_fpr']:>8.3%} {r['best_epoch']:>4}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/kwstool_bench_custom_word"))
    ap.add_argument("--ns", default="5,10,20,50", help="Real clip counts, comma-separated.")
    ap.add_argument("--synth-count", type=int, default=300)
    ap.add_argument("--model", default="tiny_conv")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fpr", type=float, default=0.01)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from kwstool.core import tfenv

    tfenv.quiet()
    from kwstool.core.audio import load_wav
    from kwstool.core.frontend import compute
    from kwstool.data.synth import synth

    t0 = time.perf_counter()
    ns = [int(x) for x in args.ns.split(",")]
    mini = args.data_root / "speech_commands_mini"
    args.own_clips, held = _pick_own(mini, max(ns))
    held_feats = compute(np.stack([load_wav(f) for f in held]))
    synth_dir = args.work / "synth"
    if len(list((synth_dir / WORD).glob("*.wav"))) != args.synth_count:  # deterministic: reuse
        synth(
            WORD, args.synth_count, synth_dir, seed=args.seed, noise_dir=mini / "_background_noise_"
        )
    print(f"synthetic clips: {args.synth_count} in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for n in ns:
        for use_synth in (False, True):
            t1 = time.perf_counter()
            rows.append(_row(args, args.work, n, synth_dir if use_synth else None, held_feats))
            r = rows[-1]
            print(
                f"N={n} synth={use_synth}: recall {r['recall']:.3f} at test FPR "
                f"{r['test_fpr']:.3%} ({time.perf_counter() - t1:.0f} s)",
                flush=True,
            )
    _print_table(rows, len(held), args.fpr)
    print(
        f"total {time.perf_counter() - t0:.0f} s; model {args.model}, {args.epochs} epochs, "
        f"seed {args.seed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
