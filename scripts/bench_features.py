#!/usr/bin/env python3
"""Feature extraction speed: kwstool's C front end vs TensorFlow's audio_microfrontend op.

Both compute the same (49, 40) features for the same clips (default: the first 1,000 clips of
../shared/data/speech_commands_test_dev, else generated noise). TF runs its op inside a
tf.function over the batch (its fastest form); ours runs the C loop on 1 thread and on all cores.

    python scripts/bench_features.py [--clips N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np

from kwstool.core import frontend as features
from kwstool.core.audio import load_wav


def load_clips(n: int) -> np.ndarray:
    folder = REPO.parent / "shared/data/speech_commands_test_dev"
    files = sorted(folder.rglob("*.wav"))[:n] if folder.exists() else []
    if len(files) >= n:
        return np.stack([load_wav(f) for f in files])
    rng = np.random.default_rng(0)
    return rng.normal(0, 3000, size=(n, 16000)).clip(-32768, 32767).astype(np.int16)


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    clips = load_clips(args.clips)
    n = len(clips)

    import tensorflow as tf
    from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op

    @tf.function  # type: ignore[untyped-decorator]  # TensorFlow is untyped
    def tf_batch(x: Any) -> Any:
        return tf.map_fn(
            lambda a: audio_microfrontend_op.audio_microfrontend(
                a,
                sample_rate=16000,
                window_size=30,
                window_step=20,
                num_channels=40,
                out_scale=1,
                out_type=tf.uint16,
            ),
            x,
            fn_output_signature=tf.TensorSpec((49, 40), tf.uint16),
        )

    tf_in = tf.constant(clips)
    tf_batch(tf_in[:2])  # trace once
    t_tf = best_of(lambda: tf_batch(tf_in).numpy(), args.repeat)
    t_one = best_of(lambda: features.compute(clips, threads=1), args.repeat)
    t_all = best_of(lambda: features.compute(clips), args.repeat)
    same = np.array_equal(features.to_int8(tf_batch(tf_in).numpy()), features.compute(clips))
    cores = os.cpu_count()
    print(f"clips: {n}  (identical int8 output: {same})")
    print(f"  TensorFlow audio_microfrontend op : {n / t_tf:9.0f} clips/s")
    print(
        f"  kwstool C front end, 1 thread     : {n / t_one:9.0f} clips/s  ({t_tf / t_one:.1f}x TF)"
    )
    print(
        f"  kwstool C front end, {cores} threads    : {n / t_all:9.0f} clips/s  "
        f"({t_tf / t_all:.1f}x TF)"
    )
    print(f"  per 1 s clip, 1 thread            : {t_one / n * 1e6:9.0f} us")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
