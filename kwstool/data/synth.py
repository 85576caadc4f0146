"""`kwstool synth`: synthetic keyword clips (and confusable negatives) from a local
text-to-speech engine plus augmentation.

Engines (:mod:`kwstool.data.tts`; ``engine``, ``kwstool synth --engine``)
    ``espeak-ng`` (default, ~100 voices), ``kokoro`` (neural, 28 English voices and their
    mixes), ``flite`` (5 voices). The engine's voices are shuffled by ``seed``; the speaker
    of clip ``k`` is the next voice in that order (round and round) or, with probability
    ``mix`` (engines with mixable voices), a mix of two voices with a weight drawn from ``seed``
    (``af_bella65+am_adam35``). Each voice or mix is one *speaker*: its files are named
    ``<voice>_nohash_<k>.wav`` and ``prepare`` keeps them together (a source named ``synth*``
    or passed with ``--synthetic`` goes to train only).
What is said
    Keyword clips: ``text`` (default the word with ``_`` as spaces) into ``out/word/``.
    Negatives (``negatives`` and/or ``confusables``, :mod:`kwstool.data.confusables`): clip
    ``k`` says text ``k mod len(texts)`` into ``out/<text with '_' for spaces>/``, so every
    folder holds what it is called: in ``prepare`` they are ``_unknown_`` candidates (or
    clips of another keyword of that name).
Per clip (random draws from ``numpy.random.default_rng([seed, k])``: deterministic)
    a relative speed in the engine's range (or ``speed``), the engine's own draws (espeak-ng:
    pitch), then our augmentation: speed/pitch perturbation by resampling (factor in
    :data:`PERTURB_RANGE`), room reverberation with probability 1/2 (an exponentially
    decaying noise impulse response, RT60 in :data:`RT60_RANGE`), background noise with
    probability 2/3 at an SNR in :data:`SNR_RANGE` (slices of ``noise`` WAVs, else generated
    pink noise), and a peak level in :data:`PEAK_DB_RANGE`. The result is 16 kHz int16, cut or
    padded to 1 s centred on the speech found by energy.
Files are written atomically; a re-run with the same arguments rewrites the same files.
"""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.audio import is_audio_file, load_wav, save_wav
from kwstool.core.contract import CLIP_SAMPLES, SAMPLE_RATE
from kwstool.data import tts
from kwstool.data.store import Progress
from kwstool.data.takes import centre_clip, ensure_writable, find_words
from kwstool.errors import KwsError

PERTURB_RANGE = (0.9, 1.1)
RT60_RANGE = (0.15, 0.6)
SNR_RANGE = (5.0, 30.0)
PEAK_DB_RANGE = (-24.0, -3.0)
MIX_WEIGHT_RANGE = (0.2, 0.8)  # share of the second voice in a mix
DEFAULT_MIX = 0.5  # share of mixed speakers for engines that can mix


@dataclass
class SynthResult:
    word: str
    folder: Path  # the word's folder; for negatives the folder of the text folders
    engine: str
    saved: list[Path] = field(default_factory=list)
    voices: list[str] = field(default_factory=list)  # voice of each saved clip
    texts: list[str] = field(default_factory=list)  # what each saved clip says

    def to_dict(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "folder": str(self.folder),
            "engine": self.engine,
            "saved": [str(p) for p in self.saved],
            "voices": self.voices,
            "texts": self.texts,
        }


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


def speakers(engine: tts.Engine, count: int, seed: int, mix: float) -> list[str]:
    """The speaker of each of ``count`` clips: the engine's voices in an order shuffled by
    ``seed``, each clip a mix of two voices with probability ``mix`` (see module docs)."""
    voices = engine.voices()
    order = np.random.default_rng([seed, 1]).permutation(len(voices))
    voices = [voices[i] for i in order]
    draw = np.random.default_rng([seed, 2])
    out, plain = [], 0
    for _ in range(count):
        if mix > 0 and len(voices) > 1 and draw.random() < mix:
            a, b = draw.choice(len(voices), 2, replace=False)
            weight = round(float(draw.uniform(*MIX_WEIGHT_RANGE)), 2)
            out.append(tts.mix_name(voices[int(a)], voices[int(b)], weight))
        else:
            out.append(voices[plain % len(voices)])
            plain += 1
    return out


def _one_clip(
    engine: tts.Engine,
    text: str,
    voice: str,
    speed_range: tuple[float, float],
    seed: int,
    k: int,
    noise: list[np.ndarray],
    plain: bool,
) -> np.ndarray:
    rng = np.random.default_rng([seed, k])
    speed = float(rng.uniform(*speed_range))
    audio = engine.speak(text, voice, speed, rng)
    y = audio if plain else augment(audio, rng, noise)
    words = find_words(y)
    if words:
        start, end = words[0][0], words[-1][1]
    else:  # nothing above the noise: centre on the whole rendering
        start, end = 0, len(y)
    return centre_clip(y, start, end)


def _check_word(word: str) -> None:
    if not word or word.startswith("_") or "/" in word or "\\" in word:
        raise KwsError(
            f"word {word!r}: give a folder name without '/' that does not start "
            f"with '_' (e.g. hey_lamp)"
        )


def text_folder(text: str) -> str:
    """The folder of a negative text: lower case, runs of other characters as one ``_``."""
    return re.sub(r"[^a-z0-9']+", "_", text.lower()).strip("_").replace("'", "")


def negative_texts(word: str, negatives: list[str], confusables: bool) -> list[str]:
    """The texts to say as negatives of ``word``: ``negatives`` then its confusables; a text
    that contains the keyword is refused."""
    from kwstool.data.confusables import confusable_texts, says_keyword

    texts = [t.strip() for t in negatives if t.strip()]
    if confusables:
        texts += confusable_texts(word)
    unique = list(dict.fromkeys(texts))
    for t in unique:
        if says_keyword(t, word):
            raise KwsError(
                f"--negatives {t!r}: says the keyword {word.replace('_', ' ')!r}; a negative "
                f"must not contain it (leave it out)"
            )
        if not text_folder(t):
            raise KwsError(f"--negatives {t!r}: nothing to say; give words (e.g. 'no,toe')")
    return unique


def _speed_range(engine: tts.Engine, speed: tuple[float, float] | None) -> tuple[float, float]:
    lo, hi = speed if speed is not None else engine.speed_range
    if not 0.5 <= lo <= hi <= 2.0:
        raise KwsError(
            f"--speed {lo:g},{hi:g}: give LOW,HIGH relative speeds with 0.5 <= LOW <= HIGH "
            f"<= 2 (1 is the engine's normal rate)"
        )
    return lo, hi


def synth(
    word: str,
    count: int,
    out: str | Path,
    seed: int = 0,
    noise_dir: str | Path | None = None,
    augmented: bool = True,
    text: str | None = None,
    engine: str = tts.DEFAULT_ENGINE,
    options: tts.EngineOptions | None = None,
    mix: float | None = None,
    speed: tuple[float, float] | None = None,
    negatives: list[str] | None = None,
    confusables: bool = False,
    progress: bool = False,
) -> SynthResult:
    """Write ``count`` synthetic clips of ``word`` to ``out/word/`` (see module docs).

    ``text`` is what is spoken (default: the word with ``_`` as spaces, ``hey_lamp`` ->
    "hey lamp"); ``augmented=False`` keeps the engine's rendering as it is (only resampled and
    centred). ``mix``: share of mixed-voice speakers (default :data:`DEFAULT_MIX` for engines
    that mix, else 0); ``speed``: range of relative speeds (default the engine's).
    ``negatives`` / ``confusables``: say these texts / the word's confusables instead, each
    into its own folder (see module docs). ``progress``: a progress bar on stderr.
    """
    if count < 1:
        raise KwsError(f"--count {count}: make at least one clip")
    _check_word(word)
    if mix is not None and not 0.0 <= mix <= 1.0:
        raise KwsError(f"--mix {mix:g}: give the share of mixed voices, from 0 to 1")
    eng = tts.load(engine, options)
    if mix and not eng.mixable:
        raise KwsError(f"--mix: {eng.name} cannot mix voices; leave --mix out or use kokoro")
    share = (DEFAULT_MIX if eng.mixable else 0.0) if mix is None else mix
    speeds = _speed_range(eng, speed)
    if negatives or confusables:
        texts = negative_texts(word, negatives or [], confusables)[:count]  # folders used only
        folders = [text_folder(t) for t in texts]
        root = Path(out)
    else:
        texts = [text or word.replace("_", " ")]
        folders = [word]
        root = Path(out) / word
    targets = {f: ensure_writable(Path(out) / f) for f in dict.fromkeys(folders)}
    noise = _load_noise(Path(noise_dir) if noise_dir else None)
    picks = speakers(eng, count, seed, share)
    which = [k % len(texts) for k in range(count)]
    with (
        Progress(progress).task(f"synth ({eng.name})", count) as advance,
        ThreadPoolExecutor(eng.workers) as pool,
    ):

        def one(k: int) -> np.ndarray:
            clip = _one_clip(eng, texts[which[k]], picks[k], speeds, seed, k, noise, not augmented)
            advance(1)
            return clip

        clips = list(pool.map(one, range(count)))
    result = SynthResult(word, root, eng.name)
    for k, (voice, clip) in enumerate(zip(picks, clips)):
        path = targets[folders[which[k]]] / f"{voice}_nohash_{k}.wav"
        save_wav(path, clip)
        result.saved.append(path)
        result.voices.append(voice)
        result.texts.append(texts[which[k]])
    return result
