#!/usr/bin/env python
"""Embedding-teacher benchmark: the head alone, 12-class top-1 on unseen speakers, and its cost.

Reads the 12 label folders of ``../shared/data/speech_commands_test_dev`` (the canonical test
layout; ``_unknown_`` and ``_silence_`` as they are), embeds every clip once with the pretrained
speech embedding (:mod:`kwstool.core.embedding`), deals the clips to ``--folds`` speaker-grouped
folds (:func:`kwstool.model.crossval.assign_folds`; a ``_silence_`` clip is its own group) and,
per fold, trains the teacher's head (:func:`kwstool.model.teachers.embedding.train_head`) on the
other folds and scores it on this one. Prints per-fold and pooled top-1 and the costs: embedding
seconds per clip, head training seconds, and the time to cut one training epoch's stream windows
(``kwstool train``'s default 0.5 windows per training clip) without the teacher, with it on the
default share of the streams (``--teacher-streams``) and on all of them, on this machine.

Usage::

    nice python scripts/bench_teacher.py                       # 5 folds, seed 0, 2 threads
    python scripts/bench_teacher.py --folds 5 --cache /tmp/emb.npz
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np

from kwstool.core.labels import SILENCE, UNKNOWN

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
LABELS = (SILENCE, UNKNOWN, *WORDS)


def load(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from kwstool.core.audio import load_wav
    from kwstool.data import speaker_of

    clips, labels, groups = [], [], []
    for li, label in enumerate(LABELS):
        for f in sorted((folder / label).iterdir()):
            clip = np.zeros(16000, np.int16)
            x = load_wav(f)[:16000]
            clip[: len(x)] = x
            clips.append(clip)
            labels.append(li)
            rel = f"{label}/{f.name}"
            groups.append(f"clip:{rel}" if label == SILENCE else f"speaker:{speaker_of(rel)}")
    return np.stack(clips), np.asarray(labels, np.int64), groups


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", type=Path,
                    default=REPO.parent / "shared/data/speech_commands_test_dev")  # fmt: skip
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, help="npz of the clip embeddings (written if absent)")
    args = ap.parse_args(argv)

    from kwstool.core.embedding import SpeechEmbedding
    from kwstool.model.crossval import assign_folds
    from kwstool.model.teachers.embedding import train_head

    clips, y, groups = load(args.folder)
    emb = SpeechEmbedding(args.threads)
    t0 = time.perf_counter()
    if args.cache and args.cache.is_file():
        e = np.load(args.cache)["emb"]
        per_clip = float("nan")
    else:
        e = emb.clips(clips)
        per_clip = (time.perf_counter() - t0) / len(clips)
        if args.cache:
            np.savez(args.cache, emb=e)
    print(f"{len(clips)} clips, {len(set(groups))} groups; embedding {per_clip * 1000:.0f} ms/clip")

    folds = assign_folds(groups, args.folds, args.seed)
    pred = np.empty(len(y), np.int64)
    head_s = 0.0
    for f in range(args.folds):
        test = folds == f
        t = time.perf_counter()
        head, steps = train_head(e[~test], y[~test], len(LABELS), args.seed + f)
        head_s += time.perf_counter() - t
        pred[test] = head.logits(e[test]).argmax(axis=1)
        print(f"fold {f}: train {int((~test).sum())} test {int(test.sum())} clips, "
              f"top-1 {(pred[test] == y[test]).mean():.4f} ({steps} head steps)")  # fmt: skip
    accs = [(pred[folds == f] == y[folds == f]).mean() for f in range(args.folds)]
    print(f"embedding head, 12-class top-1 on unseen speakers: mean {np.mean(accs):.4f} "
          f"+- {np.std(accs):.4f} over {args.folds} folds, pooled {(pred == y).mean():.4f}; "
          f"head training {head_s / args.folds:.1f} s per fold")  # fmt: skip

    # the teacher's per-epoch cost: windows of one epoch (0.5 per training clip) with and
    # without the teacher's distributions
    from kwstool.core.audio import load_wav
    from kwstool.model.windows import StreamWindows

    noise_dir = REPO.parent / "shared/data/speech_commands_mini/_background_noise_"
    noise = [load_wav(p) for p in sorted(noise_dir.glob("*.wav"))] if noise_dir.is_dir() else []
    head, _ = train_head(e, y, len(LABELS), args.seed)
    n_train = int(len(clips) * 0.8)
    count = n_train // 2

    def teacher(stream: np.ndarray, starts: np.ndarray) -> np.ndarray:
        return head.probabilities(emb.windows(stream, starts), 2.0)

    from kwstool.model.config import DEFAULTS

    share = float(DEFAULTS["teacher_streams"])
    for name, hook, p in (("without the teacher", None, 1.0),
                          (f"teacher on {share:g} of the streams", teacher, share),
                          ("teacher on every stream", teacher, 1.0)):  # fmt: skip
        w = StreamWindows(clips, y, list(LABELS), noise, count=count, teacher=hook,
                          teacher_share=p)  # fmt: skip
        t = time.perf_counter()
        w(np.random.default_rng(0))
        print(f"{count} stream windows (one epoch's), {name}: {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
