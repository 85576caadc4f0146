"""`kwstool synth`: synthetic keyword clips from the local espeak-ng text-to-speech engine.

Voices
    Every English espeak-ng voice (``espeak-ng --voices=en``, MBROLA voices left out as they need
    extra packages) combined with the variants in :data:`VARIANTS` (``en-us+f3`` ...), in an
    order shuffled by ``seed``. Clip ``k`` uses voice ``k mod len(voices)``, so up to ~100
    clips come from distinct voices. Each voice is one *speaker*: its files are named
    ``<voice>_nohash_<k>.wav`` and ``prepare`` keeps them together (a source named ``synth*``
    or passed with ``--synthetic`` goes to train only).
Per clip (random draws from ``numpy.random.default_rng([seed, k])``: deterministic)
    espeak-ng speed ``-s`` in :data:`SPEED_RANGE` words per minute and pitch ``-p`` in
    :data:`PITCH_RANGE`; then our augmentation: speed/pitch perturbation by resampling (factor
    in :data:`PERTURB_RANGE`), room reverberation with probability 1/2 (an exponentially
    decaying noise impulse response, RT60 in :data:`RT60_RANGE`), background noise with
    probability 2/3 at an SNR in :data:`SNR_RANGE` (slices of ``noise`` WAVs, else generated
    pink noise), and a peak level in :data:`PEAK_DB_RANGE`. The result is 16 kHz int16, cut or
    padded to 1 s centred on the word found by energy.
Files are written atomically; a re-run with the same arguments rewrites the same files.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.audio import is_audio_file, load_wav, save_wav
from kwstool.core.contract import CLIP_SAMPLES, SAMPLE_RATE
from kwstool.data.takes import centre_clip, ensure_writable, find_words
from kwstool.errors import KwsError

ENGINE = "espeak-ng"
INSTALL_HINT = (
    "install it: `sudo apt-get install espeak-ng` (macOS: `brew install espeak-ng`; "
    "Windows: the installer from github.com/espeak-ng/espeak-ng/releases)"
)
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
SPEED_RANGE = (120, 200)
PITCH_RANGE = (20, 80)
PERTURB_RANGE = (0.9, 1.1)
RT60_RANGE = (0.15, 0.6)
SNR_RANGE = (5.0, 30.0)
PEAK_DB_RANGE = (-24.0, -3.0)


@dataclass
class SynthResult:
    word: str
    folder: Path
    engine: str
    saved: list[Path] = field(default_factory=list)
    voices: list[str] = field(default_factory=list)  # voice of each saved clip

    def to_dict(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "folder": str(self.folder),
            "engine": self.engine,
            "saved": [str(p) for p in self.saved],
            "voices": self.voices,
        }


def find_engine() -> str:
    exe = shutil.which(ENGINE)
    if exe is None:
        raise KwsError(f"{ENGINE} (text to speech) is not installed; {INSTALL_HINT}")
    return exe


def english_voices(exe: str) -> list[str]:
    """Language names of espeak-ng's own English voices (``en-us``, ``en-gb-scotland``...)."""
    try:
        text = subprocess.run(
            [exe, "--voices=en"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise KwsError(f"{exe} --voices=en failed ({exc}); reinstall it: {INSTALL_HINT}") from None
    names = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        own = len(cols) >= 5 and cols[1].startswith("en") and not cols[4].startswith("mb/")
        if own and cols[1] not in names:
            names.append(cols[1])
    if not names:
        raise KwsError(
            f"{exe} lists no English voice; reinstall espeak-ng with its data "
            f"(`sudo apt-get install --reinstall espeak-ng-data`)"
        )
    return names


def voice_list(exe: str, seed: int) -> list[str]:
    """All voice+variant combinations, in an order shuffled by ``seed``."""
    voices = [f"{v}+{var}" for v in english_voices(exe) for var in VARIANTS]
    order = np.random.default_rng([seed, 1]).permutation(len(voices))
    return [voices[i] for i in order]


def speak(exe: str, text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng's rendering of ``text`` as 16 kHz int16."""
    with tempfile.TemporaryDirectory(prefix="kwstool-synth-") as tmp:
        wav = Path(tmp) / "say.wav"
        cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text]
        try:
            subprocess.run(cmd, capture_output=True, check=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            raise KwsError(
                f"{ENGINE} failed for voice {voice} ({exc}); check `{' '.join(cmd[:-1])} '{text}'`"
            ) from None
        return load_wav(wav, clip_samples=None)


def _pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1.0))
    x = np.fft.irfft(spec, n)
    out: np.ndarray = x / (np.std(x) + 1e-12)
    return out


def _noise_slice(rng: np.random.Generator, noise: list[np.ndarray], n: int) -> np.ndarray:
    usable = [x for x in noise if len(x) >= n]
    if not usable:
        return _pink_noise(rng, n)
    x = usable[int(rng.integers(len(usable)))]
    start = int(rng.integers(len(x) - n + 1))
    seg = x[start : start + n].astype(np.float64)
    out: np.ndarray = seg / (np.std(seg) + 1e-12)
    return out


def augment(x: np.ndarray, rng: np.random.Generator, noise: list[np.ndarray]) -> np.ndarray:
    """Speed/pitch, reverberation, noise and level (see module docs); float in, int16 out."""
    from scipy.signal import fftconvolve, resample_poly

    y = x.astype(np.float64) / 32768.0
    factor = rng.uniform(*PERTURB_RANGE)
    y = resample_poly(y, 100, round(100 * factor))  # played at 16 kHz: faster and higher
    if rng.random() < 0.5:
        rt60 = rng.uniform(*RT60_RANGE)
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60) * 0.3
        ir[0] = 1.0
        y = fftconvolve(y, ir / np.sqrt(np.sum(ir**2)))
    pad = np.zeros(CLIP_SAMPLES // 2)
    y = np.concatenate([pad, y, pad])  # room for centring and for the noise around the word
    speech_rms = math.sqrt(float(np.mean(y[len(pad) : -len(pad)] ** 2))) + 1e-12
    if rng.random() < 2 / 3:
        snr = rng.uniform(*SNR_RANGE)
        y = y + _noise_slice(rng, noise, len(y)) * speech_rms / 10 ** (snr / 20)
    peak = 10 ** (rng.uniform(*PEAK_DB_RANGE) / 20)
    y = y * peak / (np.max(np.abs(y)) + 1e-12)
    out: np.ndarray = np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)
    return out


def _load_noise(noise_dir: Path | None) -> list[np.ndarray]:
    if noise_dir is None:
        return []
    if not Path(noise_dir).is_dir():
        raise KwsError(
            f"{noise_dir}: no such folder; give a folder of noise WAVs (e.g. "
            f"speech_commands/_background_noise_) or leave --noise out"
        )
    files = sorted(f for f in Path(noise_dir).iterdir() if is_audio_file(f.name))
    if not files:
        raise KwsError(f"{noise_dir}: no audio files; give a folder of noise recordings")
    return [load_wav(f, clip_samples=None) for f in files]


def _one_clip(
    exe: str, text: str, voice: str, seed: int, k: int, noise: list[np.ndarray], plain: bool
) -> np.ndarray:
    rng = np.random.default_rng([seed, k])
    speed = int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1))
    pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
    audio = speak(exe, text, voice, speed, pitch)
    y = audio if plain else augment(audio, rng, noise)
    words = find_words(y)
    if words:
        start, end = words[0][0], words[-1][1]
    else:  # nothing above the noise: centre on the whole rendering
        start, end = 0, len(y)
    return centre_clip(y, start, end)


def synth(
    word: str,
    count: int,
    out: str | Path,
    seed: int = 0,
    noise_dir: str | Path | None = None,
    augmented: bool = True,
    text: str | None = None,
) -> SynthResult:
    """Write ``count`` synthetic clips of ``word`` to ``out/word/`` (see module docs).

    ``text`` is what is spoken (default: the word with ``_`` as spaces, ``hey_lamp`` ->
    "hey lamp"); ``augmented=False`` keeps espeak-ng's rendering as it is (only resampled and
    centred).
    """
    if count < 1:
        raise KwsError(f"--count {count}: make at least one clip")
    if not word or word.startswith("_") or "/" in word or "\\" in word:
        raise KwsError(
            f"word {word!r}: give a folder name without '/' that does not start "
            f"with '_' (e.g. hey_lamp)"
        )
    exe = find_engine()
    folder = ensure_writable(Path(out) / word)
    noise = _load_noise(Path(noise_dir) if noise_dir else None)
    voices = voice_list(exe, seed)
    spoken = text or word.replace("_", " ")
    picks = [voices[k % len(voices)] for k in range(count)]
    with ThreadPoolExecutor(2) as pool:
        clips = list(
            pool.map(
                lambda k: _one_clip(exe, spoken, picks[k], seed, k, noise, not augmented),
                range(count),
            )
        )
    result = SynthResult(word, folder, ENGINE)
    for k, (voice, clip) in enumerate(zip(picks, clips)):
        path = folder / f"{voice}_nohash_{k}.wav"
        save_wav(path, clip)
        result.saved.append(path)
        result.voices.append(voice)
    return result
