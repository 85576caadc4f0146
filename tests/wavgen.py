"""Writers for test WAV files in every format the loader accepts (and some it must reject)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def write_wav(
    path: Path,
    data: np.ndarray,
    rate: int = 16000,
    bits: int | None = None,
    float_format: bool = False,
) -> Path:
    """Write PCM (8/16/24/32-bit) or IEEE float (32/64-bit) WAV; data is (n,) or (n, channels).

    Integer data is written as given (int16 for 16-bit, int32 holding 24-bit values for 24-bit,
    uint8 for 8-bit); float data as float32/float64.
    """
    data = np.asarray(data)
    channels = 1 if data.ndim == 1 else data.shape[1]
    if float_format:
        bits = bits or data.dtype.itemsize * 8
        raw = data.astype(np.float32 if bits == 32 else np.float64).tobytes()
        fmt_tag = 3
    else:
        bits = bits or data.dtype.itemsize * 8
        if bits == 8:
            raw = data.astype(np.uint8).tobytes()
        elif bits == 16:
            raw = data.astype("<i2").tobytes()
        elif bits == 24:
            v = data.astype("<i4").reshape(-1)
            b = v.view(np.uint8).reshape(-1, 4)[:, :3]
            raw = b.tobytes()
        elif bits == 32:
            raw = data.astype("<i4").tobytes()
        else:
            raise ValueError(bits)
        fmt_tag = 1
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(raw)) + raw + (b"\0" if len(raw) % 2 else b"")
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def tone(
    freq: float = 440.0, seconds: float = 1.0, rate: int = 16000, amp: float = 0.5
) -> np.ndarray:
    """A float sine in [-1, 1]."""
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def as_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def burst(freq: float, start_s: float, length_s: float, amp: float = 8000.0) -> np.ndarray:
    """A 1 s, 16 kHz int16 clip holding one tone burst ("a word") at a known place."""
    t = np.arange(16000) / 16000
    x = np.zeros(16000)
    on = (t >= start_s) & (t < start_s + length_s)
    x[on] = amp * np.sin(2 * np.pi * freq * t[on])
    return x.astype(np.int16)
