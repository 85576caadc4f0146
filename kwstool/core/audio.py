"""Audio input: any WAV, FLAC, OGG/Vorbis or MP3 a user is likely to have, as 16 kHz mono int16.

Accepted: PCM 8/16/24/32-bit integer and 32/64-bit float WAV (plain or WAVE_FORMAT_EXTENSIBLE;
read by :mod:`scipy.io.wavfile`, bit-exact), and whatever libsndfile decodes (the ``soundfile``
package, whose wheel ships libsndfile): FLAC, OGG/Vorbis, Opus, MP3, and WAV encodings scipy does
not read (IMA ADPCM, A-law, mu-law). Any sample rate (resampled to 16 kHz with
:func:`scipy.signal.resample_poly`), mono or multi-channel (mixed down by averaging).

Length: clips shorter than the clip length are zero-padded at the end. A recording longer than
the clip (by more than :data:`LONG_TOLERANCE`) is never cut silently: :func:`load_audio` raises
a one-line error unless the caller asks for the whole recording (``clip_samples=None``; prepare
then centres the clip on its loudest word, :func:`kwstool.data.takes.fit_clip`) or for the cut
(``long="cut"``). A WAV whose header promises more data than the file holds (a cut-off copy or
download) is an error, not zero-padded.

Every failure is a :class:`kwstool.errors.KwsError` whose message names the file.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from kwstool.core.contract import CLIP_SAMPLES, SAMPLE_RATE, STRIDE_SAMPLES
from kwstool.errors import KwsError

#: File name endings of the audio files folders are searched for (prepare, features, synth noise).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")
#: A clip at most this much longer than the clip length is a rounding matter (a resampled or
#: padded 1 s file): its tail is dropped. Anything longer is a recording, not a clip.
LONG_TOLERANCE = STRIDE_SAMPLES
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # data sizes streaming writers leave in the header


def is_audio_file(name: str) -> bool:
    """Whether a file name (not hidden) ends in one of :data:`AUDIO_SUFFIXES`."""
    return not name.startswith(".") and name.lower().endswith(AUDIO_SUFFIXES)


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
    """Convert decoded samples at ``rate`` to 16 kHz mono int16 (no length change)."""
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


def _check_wav_data(p: Path) -> None:
    """KwsError when the WAV's data chunk is cut short (its header promises more bytes)."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return  # not a plain RIFF WAV: the decoder says what is wrong
            order = "<" if head[:4] == b"RIFF" else ">"
            size = p.stat().st_size
            while True:
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return
                cid, n = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
                if cid == b"data":
                    present = size - fh.tell()
                    if n not in _UNKNOWN_SIZES and n > present:
                        raise KwsError(
                            f"{p}: WAV is cut short (its header announces {n} bytes of audio, "
                            f"the file holds {present}): copy or export it again"
                        )
                    return
                fh.seek(n + (n & 1), os.SEEK_CUR)
    except OSError as exc:
        raise KwsError(f"{p}: cannot read ({exc.strerror or exc}); check the file") from None


def _read_scipy(p: Path) -> tuple[int, np.ndarray]:
    from scipy.io import wavfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about unknown chunks; they are harmless
        rate, data = wavfile.read(p)
    return int(rate), data


def _read_sndfile(p: Path) -> tuple[int, np.ndarray]:
    import soundfile

    data, rate = soundfile.read(str(p), dtype="float32", always_2d=False)
    return int(rate), np.asarray(data)


def _reason(exc: Exception) -> str:
    """A decoder's error in a few words (libsndfile's repeats the path: dropped)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if text.startswith("Error opening") and "': " in text:
        text = text.split("': ", 1)[1]
    return text.rstrip(".")


def _decode(p: Path) -> tuple[int, np.ndarray]:
    """(rate, samples) of any supported file: scipy for plain WAV (bit-exact, as before), else
    libsndfile; the error names the first reader's reason."""
    with open(p, "rb") as fh:
        magic = fh.read(4)
    readers = [_read_scipy, _read_sndfile] if magic in (b"RIFF", b"RIFX") else [_read_sndfile]
    first: str | None = None
    for read in readers:
        try:
            return read(p)
        except Exception as exc:  # scipy: ValueError/EOFError; libsndfile: LibsndfileError ...
            first = first or _reason(exc)
    what = "WAV" if p.suffix.lower() == ".wav" else "audio"
    raise KwsError(
        f"{p}: not a readable {what} file ({first}); give WAV, FLAC, OGG or MP3, or convert "
        f"it to PCM WAV, e.g. `sox in.ext -r 16000 -c 1 -b 16 out.wav`"
    )


def load_audio(
    path: str | os.PathLike[str],
    clip_samples: int | None = CLIP_SAMPLES,
    long: Literal["error", "cut"] = "error",
) -> np.ndarray:
    """Read ``path`` as 16 kHz mono int16, zero-padded to ``clip_samples`` (None: the whole
    recording). Longer than ``clip_samples``: an error naming the file, or with ``long="cut"``
    the first ``clip_samples`` (see the module doc).

    Raises :class:`KwsError` naming the file when it is missing, empty, cut short, not audio, or
    undecodable.
    """
    p = Path(path)
    if not p.exists():
        raise KwsError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise KwsError(f"{p}: is a folder, expected an audio file")
    if p.stat().st_size == 0:
        raise KwsError(f"{p}: file is empty; re-record or remove it")
    _check_wav_data(p)
    rate, data = _decode(p)
    what = "WAV" if p.suffix.lower() == ".wav" else "audio file"
    if data.size == 0 or (data.ndim == 2 and data.shape[0] == 0):
        raise KwsError(f"{p}: {what} holds no audio samples; re-record or remove it")
    if rate <= 0:
        raise KwsError(f"{p}: header gives sample rate {rate}; the file is damaged")
    if data.dtype not in (np.uint8, np.int16, np.int32, np.float32, np.float64):
        raise KwsError(
            f"{p}: unsupported sample format {data.dtype}; use 8/16/24/32-bit PCM or float WAV"
        )
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise KwsError(f"{p}: float {what} contains NaN or infinite samples; the file is damaged")
    samples = to_int16_mono_16k(data, rate)
    if clip_samples is None:
        return samples
    if long == "error" and len(samples) > clip_samples + LONG_TOLERANCE:
        raise KwsError(
            f"{p}: {len(samples) / SAMPLE_RATE:.2f} s long, longer than one "
            f"{clip_samples / SAMPLE_RATE:g} s clip; cut it to the word, or give it where a whole "
            f"recording is meant (`features --all-windows`, `device-test --stream`, `record --wav`)"
        )
    return fit_length(samples, clip_samples)


def load_wav(
    path: str | os.PathLike[str],
    clip_samples: int | None = CLIP_SAMPLES,
    long: Literal["error", "cut"] = "error",
) -> np.ndarray:
    """:func:`load_audio` under its old name (it reads every supported format)."""
    return load_audio(path, clip_samples, long)


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
