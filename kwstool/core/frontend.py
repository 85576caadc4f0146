"""Features: 16 kHz int16 audio -> (frames, channels) int8, computed by the firmware's C front end.

There is exactly one implementation of the micro_speech "micro frontend" in kwstool:
``firmware/lib/kws_frontend`` (portable C, fixed point), compiled into ``kwstool._native``.
Training, evaluation and the board all run it, so the board sees the features the model was
trained on. ``scripts/parity.py`` checks it bit for bit against TensorFlow's
``audio_microfrontend`` op.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from kwstool import _native
from kwstool.core.contract import (
    CLIP_SAMPLES,
    FRONTEND_HASH,
    NUM_CHANNELS,
    NUM_FRAMES,
    SAMPLE_RATE,
    STRIDE_MS,
    STRIDE_SAMPLES,
    WINDOW_MS,
    WINDOW_SAMPLES,
)

#: Stored in every artifact (prepared data, runs, exported headers) so no stage guesses. Every
#: value comes from the C header (through ``_native``); ``frontend_hash`` covers the C code too.
FEATURE_PARAMS: dict[str, Any] = {
    "frontend": "micro_frontend",
    "sample_rate": SAMPLE_RATE,
    "clip_samples": CLIP_SAMPLES,
    "window_ms": WINDOW_MS,
    "stride_ms": STRIDE_MS,
    "num_channels": NUM_CHANNELS,
    "num_frames": NUM_FRAMES,
    "lower_band_hz": _native.LOWER_BAND_HZ,
    "upper_band_hz": _native.UPPER_BAND_HZ,
    "noise_reduction": {
        "smoothing_bits": _native.NOISE_SMOOTHING_BITS,
        "even_smoothing": _native.NOISE_EVEN_SMOOTHING,
        "odd_smoothing": _native.NOISE_ODD_SMOOTHING,
        "min_signal_remaining": _native.NOISE_MIN_SIGNAL_REMAINING,
    },
    "pcan": {
        "strength": _native.PCAN_STRENGTH,
        "offset": _native.PCAN_OFFSET,
        "gain_bits": _native.PCAN_GAIN_BITS,
    },
    "log_scale_shift": _native.LOG_SCALE_SHIFT,
    "dtype": "int8",
    "int8_mapping": "clamp(((v * 256) + 333) / 666 - 128, -128, 127)",
    "frontend_hash": FRONTEND_HASH,
}

_THREADS = max(1, min(8, os.cpu_count() or 1))
_CHUNK = 256  # clips per C call when spreading a batch over threads


def _clips(audio: np.ndarray, frames: int) -> np.ndarray:
    audio = np.ascontiguousarray(audio, dtype=np.int16)
    out = np.empty((audio.shape[0], frames, NUM_CHANNELS), dtype=np.int8)
    _native.clips_int8(audio, audio.shape[1], out, frames)
    return out


def compute(samples: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Features of one clip ``(16000,)`` -> ``(49, 40)``, a batch ``(B, 16000)`` -> ``(B, 49, 40)``.

    Samples must be int16 at 16 kHz. Each clip starts from a fresh front-end state, as on the
    board after a reset and as TensorFlow's op does per call. Large batches run on ``threads``
    threads (default: the CPU count, at most 8); the C code releases the GIL.
    """
    x = np.asarray(samples)
    if x.dtype != np.int16:
        raise TypeError(f"features.compute needs int16 samples, got {x.dtype}")
    if x.ndim == 1:
        one: np.ndarray = _clips(x[None, :], NUM_FRAMES)[0]
        return one
    if x.ndim != 2:
        raise ValueError(f"expected (samples,) or (batch, samples), got shape {x.shape}")
    n = x.shape[0]
    workers = threads or _THREADS
    if n <= _CHUNK or workers == 1:
        return _clips(x, NUM_FRAMES)
    out = np.empty((n, NUM_FRAMES, NUM_CHANNELS), dtype=np.int8)

    def run(start: int) -> None:
        out[start : start + _CHUNK] = _clips(x[start : start + _CHUNK], NUM_FRAMES)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run, range(0, n, _CHUNK)))
    return out


def compute_raw(samples: np.ndarray) -> np.ndarray:
    """The front end's uint16 output ``(frames, 40)`` for a stream of any length (no int8 map)."""
    x = np.ascontiguousarray(samples, dtype=np.int16)
    frames = 0 if len(x) < WINDOW_SAMPLES else 1 + (len(x) - WINDOW_SAMPLES) // STRIDE_SAMPLES
    out = np.zeros((frames, NUM_CHANNELS), dtype=np.uint16)
    if frames:
        got = _native.stream_uint16(x, out)
        assert got == frames
    return out


def to_int8(raw: np.ndarray) -> np.ndarray:
    """micro_speech's mapping of uint16 front-end values to int8 (vectorised, for checks)."""
    v = (raw.astype(np.int64) * 256 + 333) // 666 - 128
    return np.clip(v, -128, 127).astype(np.int8)


def windows_of(features: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The 49-frame windows of a feature sequence ending after each of ``ends`` frames (counts,
    1-based), silence (-128) before the first frame."""
    pad = np.full((NUM_FRAMES, NUM_CHANNELS), -128, np.int8)
    padded = np.concatenate([pad, features])
    idx = np.asarray(ends)[:, None] + np.arange(NUM_FRAMES)[None, :]
    return padded[idx]
