"""Features: 16 kHz int16 audio -> (49, 40) int8, computed by the firmware's C front end.

There is exactly one implementation of the micro_speech "micro frontend" in kwstool:
``firmware/lib/kws_frontend`` (portable C, fixed point), compiled into ``kwstool._native``.
Training, evaluation and the board all run it, so the board sees the features the model was
trained on. ``scripts/parity.py`` checks it bit for bit against TensorFlow's
``audio_microfrontend`` op.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import KwsError

try:
    from . import _native
except ImportError as exc:  # pragma: no cover - only when the package was not built
    raise ImportError(
        "kwstool._native is not built; run `pip install -e .` in the kwstool checkout"
    ) from exc

SAMPLE_RATE = _native.SAMPLE_RATE
NUM_CHANNELS = _native.NUM_CHANNELS
NUM_FRAMES = _native.CLIP_FRAMES
CLIP_SAMPLES = SAMPLE_RATE
SHAPE = (NUM_FRAMES, NUM_CHANNELS)

#: Stored in every artifact (prepared data, runs, exported headers) so no stage guesses.
FEATURE_PARAMS = {
    "frontend": "micro_frontend",
    "sample_rate": SAMPLE_RATE,
    "clip_samples": CLIP_SAMPLES,
    "window_ms": 30,
    "stride_ms": 20,
    "num_channels": NUM_CHANNELS,
    "num_frames": NUM_FRAMES,
    "lower_band_hz": 125,
    "upper_band_hz": 7500,
    "noise_reduction": {"smoothing_bits": 10, "even_smoothing": 0.025, "odd_smoothing": 0.06,
                        "min_signal_remaining": 0.05},
    "pcan": {"strength": 0.95, "offset": 80.0, "gain_bits": 21},
    "log_scale_shift": 6,
    "dtype": "int8",
    "int8_mapping": "clamp(((v * 256) + 333) / 666 - 128, -128, 127)",
}

_THREADS = max(1, min(8, os.cpu_count() or 1))
_CHUNK = 256  # clips per C call when spreading a batch over threads


def _clips(audio: np.ndarray, frames: int) -> np.ndarray:
    audio = np.ascontiguousarray(audio, dtype=np.int16)
    out = np.empty((audio.shape[0], frames, NUM_CHANNELS), dtype=np.int8)
    _native.clips_int8(audio, audio.shape[1], out, frames)
    return out


def compute(samples: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Features of one clip ``(16000,)`` -> ``(49, 40)`` or a batch ``(B, 16000)`` -> ``(B, 49, 40)``.

    Samples must be int16 at 16 kHz. Each clip starts from a fresh front-end state, as on the
    board after a reset and as TensorFlow's op does per call. Large batches run on ``threads``
    threads (default: the CPU count, at most 8); the C code releases the GIL.
    """
    x = np.asarray(samples)
    if x.dtype != np.int16:
        raise TypeError(f"features.compute needs int16 samples, got {x.dtype}")
    if x.ndim == 1:
        return _clips(x[None, :], NUM_FRAMES)[0]
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
    frames = 0 if len(x) < 480 else 1 + (len(x) - 480) // 320
    out = np.zeros((frames, NUM_CHANNELS), dtype=np.uint16)
    if frames:
        got = _native.stream_uint16(x, out)
        assert got == frames
    return out


def to_int8(raw: np.ndarray) -> np.ndarray:
    """micro_speech's mapping of uint16 front-end values to int8 (vectorised, for checks)."""
    v = (raw.astype(np.int64) * 256 + 333) // 666 - 128
    return np.clip(v, -128, 127).astype(np.int8)


# --- files -------------------------------------------------------------------------------------
def list_wavs(paths: Iterable[Path]) -> list[Path]:
    """Expand folders (recursively, sorted) to their .wav files; keep files as given."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(".wav"))
            if not found:
                raise KwsError(f"{p}: folder has no .wav files; point at WAV files or their folder")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise KwsError(f"{p}: no such file or folder; check the path")
    return files


@dataclass
class FeaturesResult:
    out: Path
    shape: tuple
    count: int
    files: list[str]
    skipped: list[dict] = field(default_factory=list)
    png: Path | None = None


def features_for_paths(paths: Sequence[Path], out: Path, png: Path | None = None) -> FeaturesResult:
    """Features of WAV files and folders, written to ``out`` (.npy) and optionally a PNG.

    One WAV argument gives ``(49, 40)``; several files or a folder give ``(N, 49, 40)`` and
    ``OUT.files.txt`` listing the files in row order. Unreadable files are skipped and reported.
    """
    from .audio import load_wav, skipped_entry
    from .fileio import save_npy, write_text

    out = Path(out)
    if out.suffix != ".npy":
        raise KwsError(f"{out}: output must end in .npy")
    single = len(paths) == 1 and Path(paths[0]).is_file()
    files = list_wavs(paths)
    audio, good, skipped = [], [], []
    for f in files:
        try:
            audio.append(load_wav(f))
            good.append(str(f))
        except KwsError as exc:
            if single:
                raise
            skipped.append(skipped_entry(f, exc))
    if not audio:
        return FeaturesResult(out=out, shape=(0,), count=0, files=[], skipped=skipped)
    feats = compute(np.stack(audio))
    array = feats[0] if single else feats
    save_npy(out, array)
    if not single:
        write_text(out.with_suffix(".files.txt"), "".join(f + "\n" for f in good))
    if png is not None:
        render_png(feats, [Path(f).name for f in good], png)
    return FeaturesResult(out=out, shape=array.shape, count=len(good), files=good,
                          skipped=skipped, png=png)


def render_png(feats: np.ndarray, titles: Sequence[str], path: Path, max_panels: int = 16) -> None:
    """Spectrogram image(s): time left to right, channel (low to high frequency) bottom to top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fileio import atomic_path

    n = min(len(feats), max_panels)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.axis("on")
        im = ax.imshow(feats[i].T, origin="lower", aspect="auto", cmap="magma", vmin=-128, vmax=127,
                       extent=(0, NUM_FRAMES * 20, 0, NUM_CHANNELS))
        ax.set_title(titles[i], fontsize=8)
        ax.set_xlabel("time (ms)", fontsize=7)
        ax.set_ylabel("mel channel", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="int8 feature")
    if len(feats) > max_panels:
        fig.suptitle(f"first {max_panels} of {len(feats)} clips", fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
