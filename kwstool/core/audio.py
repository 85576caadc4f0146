"""Audio input: any WAV a user is likely to have, turned into 16 kHz mono int16.

Accepted: PCM 8/16/24/32-bit integer and 32/64-bit float WAV (plain or WAVE_FORMAT_EXTENSIBLE),
any sample rate (resampled to 16 kHz with :func:`scipy.signal.resample_poly`), mono or
multi-channel (mixed down by averaging). Clips shorter than the clip length are zero-padded at the
end; longer ones are cut to the first clip length unless ``clip_samples=None``.

Every failure is a :class:`kwstool.errors.KwsError` whose message names the file.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np

from kwstool.core.contract import CLIP_SAMPLES, SAMPLE_RATE
from kwstool.errors import KwsError


def _to_float_mono(data: np.ndarray) -> np.ndarray:
    """Scale any WAV sample type to float64 in [-1, 1) and mix channels down."""
    if data.dtype == np.uint8:
        x = (data.astype(np.float64) - 128.0) / 128.0
    elif data.dtype == np.int16:
        x = data.astype(np.float64) / 32768.0
    elif data.dtype == np.int32:  # 24-bit data arrives left-justified in int32
        x = data.astype(np.float64) / 2147483648.0
    elif data.dtype in (np.float32, np.float64):
        x = data.astype(np.float64)
    else:  # pragma: no cover - scipy returns only the types above
        raise ValueError(f"unsupported sample type {data.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    return x


def _float_to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def to_int16_mono_16k(data: np.ndarray, rate: int) -> np.ndarray:
    """Convert decoded WAV samples at ``rate`` to 16 kHz mono int16 (no length change)."""
    if data.dtype == np.int16 and data.ndim == 1 and rate == SAMPLE_RATE:
        return np.array(
            data, copy=True
        )  # the common case stays bit-exact without a float round trip
    x = _to_float_mono(data)
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = math.gcd(int(rate), SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, int(rate) // g)
    return _float_to_int16(x)


def fit_length(samples: np.ndarray, clip_samples: int | None = CLIP_SAMPLES) -> np.ndarray:
    """Zero-pad at the end or cut to ``clip_samples`` (None keeps the length)."""
    if clip_samples is None:
        return samples
    if len(samples) >= clip_samples:
        return samples[:clip_samples]
    out = np.zeros(clip_samples, dtype=np.int16)
    out[: len(samples)] = samples
    return out


def skipped_entry(path: str | os.PathLike[str], exc: KwsError) -> dict[str, str]:
    """The record of a clip a folder run skipped: its path and the error without the path prefix."""
    return {"file": str(path), "reason": str(exc).split(": ", 1)[-1]}


def load_wav(path: str | os.PathLike[str], clip_samples: int | None = CLIP_SAMPLES) -> np.ndarray:
    """Read ``path`` as 16 kHz mono int16, padded or cut to ``clip_samples``.

    Raises :class:`KwsError` naming the file when it is missing, empty, not a WAV, or undecodable.
    """
    from scipy.io import wavfile

    p = Path(path)
    if not p.exists():
        raise KwsError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise KwsError(f"{p}: is a folder, expected a .wav file")
    if p.stat().st_size == 0:
        raise KwsError(f"{p}: file is empty; re-record or remove it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns about unknown chunks; they are harmless
            rate, data = wavfile.read(p)
    except Exception as exc:  # scipy raises ValueError/EOFError/struct.error on bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KwsError(
            f"{p}: not a readable WAV file ({reason}); convert it to PCM WAV, e.g. "
            f"`sox in.ext -r 16000 -c 1 -b 16 out.wav`"
        ) from None
    if data.size == 0 or (data.ndim == 2 and data.shape[0] == 0):
        raise KwsError(f"{p}: WAV holds no audio samples; re-record or remove it")
    if rate <= 0:
        raise KwsError(f"{p}: WAV header gives sample rate {rate}; the file is damaged")
    if data.dtype not in (np.uint8, np.int16, np.int32, np.float32, np.float64):
        raise KwsError(
            f"{p}: unsupported sample format {data.dtype}; use 8/16/24/32-bit PCM or float WAV"
        )
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise KwsError(f"{p}: float WAV contains NaN or infinite samples; the file is damaged")
    return fit_length(to_int16_mono_16k(data, rate), clip_samples)


def save_wav(path: str | os.PathLike[str], samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write int16 mono samples as a 16-bit PCM WAV, atomically."""
    from scipy.io import wavfile

    from kwstool.fileio import atomic_path

    with atomic_path(path) as tmp:
        wavfile.write(tmp, rate, np.asarray(samples, dtype=np.int16))


#: 10 ms energy frames for :func:`speech_span`.
SPAN_FRAME = SAMPLE_RATE // 100


def speech_span(clip: np.ndarray, floor_db: float, min_rms: float = 0.0) -> tuple[int, int]:
    """[start, end) samples of the loud part of a clip: the first to the last 10 ms frame whose
    RMS is within ``floor_db`` of the loudest frame and at least ``min_rms``; (0, 0) if none."""
    x = np.asarray(clip, np.float64)
    n = len(x) // SPAN_FRAME
    if n == 0:
        return 0, 0
    rms = np.sqrt(np.mean(x[: n * SPAN_FRAME].reshape(n, SPAN_FRAME) ** 2, axis=1))
    if rms.max() <= 0:
        return 0, 0
    loud = np.flatnonzero((rms >= rms.max() * 10 ** (-floor_db / 20)) & (rms >= min_rms))
    if len(loud) == 0:
        return 0, 0
    return int(loud[0]) * SPAN_FRAME, int(loud[-1] + 1) * SPAN_FRAME
