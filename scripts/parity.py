#!/usr/bin/env python3
"""Bit-exact parity of kwstool's C front end with TensorFlow's audio_microfrontend op.

Runs both on every WAV under a folder (default ../shared/data/speech_commands_test_dev, 2,748
real clips) with the micro_speech settings (16 kHz, 30 ms window, 20 ms step, 40 channels,
out_scale 1, uint16), maps both to int8 as micro_speech does, and prints the fraction of equal
values and the largest difference. Exit code 1 if anything differs.

    python scripts/parity.py [FOLDER] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np

from kwstool.core import frontend as features
from kwstool.core.audio import load_wav


def tf_microfrontend(samples: np.ndarray) -> np.ndarray:
    """The independent oracle: TensorFlow's op, uint16 (frames, 40)."""
    import tensorflow as tf
    from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op

    out = audio_microfrontend_op.audio_microfrontend(
        tf.constant(samples, dtype=tf.int16),
        sample_rate=16000,
        window_size=30,
        window_step=20,
        num_channels=40,
        out_scale=1,
        out_type=tf.uint16,
    )
    result: np.ndarray = out.numpy()
    return result


def compare(samples: np.ndarray) -> tuple[int, int, int, int]:
    """(int8 values, int8 equal, largest int8 difference, uint16 values that differ)."""
    ref = tf_microfrontend(samples)
    ours = features.compute_raw(samples)
    if ref.shape != ours.shape:
        raise AssertionError(f"frame count differs: TF {ref.shape} vs ours {ours.shape}")
    a, b = features.to_int8(ref), features.to_int8(ours)
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return a.size, int((diff == 0).sum()), int(diff.max(initial=0)), int((ref != ours).sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "folder", nargs="?", default=str(REPO.parent / "shared/data/speech_commands_test_dev")
    )
    ap.add_argument("--limit", type=int, default=0, help="only the first N files (0 = all)")
    args = ap.parse_args()
    files = sorted(p for p in Path(args.folder).rglob("*") if p.name.lower().endswith(".wav"))
    if args.limit:
        files = files[: args.limit]
    if not files:
        print(f"error: no WAV files under {args.folder}", file=sys.stderr)
        return 2
    total = equal = worst = raw_diff = 0
    t0 = time.time()
    for i, f in enumerate(files, 1):
        n, e, w, r = compare(load_wav(f))
        total, equal, worst, raw_diff = total + n, equal + e, max(worst, w), raw_diff + r
        if i % 500 == 0:
            print(f"  {i}/{len(files)} clips ...", flush=True)
    print(
        f"clips: {len(files)}  int8 values: {total}  equal: {equal / total:.6%}  "
        f"largest difference: {worst}  uint16 values differing: {raw_diff}  "
        f"({time.time() - t0:.1f} s)"
    )
    return 0 if equal == total and raw_diff == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
