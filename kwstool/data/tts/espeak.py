"""espeak-ng: the default engine, a formant synthesizer with ~100 English voices; needs only the
``espeak-ng`` binary.

Voices: every English espeak-ng voice (``espeak-ng --voices=en``, MBROLA voices left out as they
need extra packages) combined with the variants in :data:`VARIANTS` (``en-us+f3`` ...). Per clip
a pitch ``-p`` in :data:`PITCH_RANGE`; speed 1.0 is :data:`WPM` words per minute.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from kwstool.core.audio import load_wav
from kwstool.data.tts import EngineOptions, program_missing, program_path
from kwstool.errors import KwsError

NAME = "espeak-ng"
SUMMARY = "formant synthesizer, ~100 English voices x variants (the espeak-ng binary)"
INSTALL_HINT = (
    "install it: `sudo apt-get install espeak-ng` (macOS: `brew install espeak-ng`; "
    "Windows: the installer from github.com/espeak-ng/espeak-ng/releases)"
)
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
WPM = 160
SPEED_RANGE = (0.75, 1.25)  # 120-200 words per minute
PITCH_RANGE = (20, 80)


def missing(options: EngineOptions) -> str | None:
    return program_missing(NAME, INSTALL_HINT)


def load(options: EngineOptions) -> Espeak:
    return Espeak(program_path(NAME, INSTALL_HINT))


def phonemes(words: list[str]) -> list[str] | None:
    """espeak-ng's phoneme mnemonics (``-x``) of each word, None without espeak-ng."""
    exe = shutil.which(NAME)
    if exe is None or not words:
        return None
    try:
        out = subprocess.run(
            [exe, "-q", "-x", "-v", "en-us"],
            input="\n".join(words) + "\n",
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines if len(lines) == len(words) else None


class Espeak:
    name = NAME
    workers = 2
    speed_range = SPEED_RANGE
    mixable = False

    def __init__(self, exe: str) -> None:
        self.exe = exe
        self._voices: list[str] | None = None

    def _english(self) -> list[str]:
        """Language names of espeak-ng's own English voices (``en-us``, ``en-gb-scotland``...)."""
        try:
            text = subprocess.run(
                [self.exe, "--voices=en"], capture_output=True, text=True, check=True, timeout=30
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise KwsError(
                f"{self.exe} --voices=en failed ({exc}); reinstall it: {INSTALL_HINT}"
            ) from None
        names = []
        for line in text.splitlines()[1:]:
            cols = line.split()
            own = len(cols) >= 5 and cols[1].startswith("en") and not cols[4].startswith("mb/")
            if own and cols[1] not in names:
                names.append(cols[1])
        if not names:
            raise KwsError(
                f"{self.exe} lists no English voice; reinstall espeak-ng with its data "
                f"(`sudo apt-get install --reinstall espeak-ng-data`)"
            )
        return names

    def voices(self) -> list[str]:
        if self._voices is None:
            self._voices = [f"{v}+{var}" for v in self._english() for var in VARIANTS]
        return list(self._voices)

    def speak(self, text: str, voice: str, speed: float, rng: np.random.Generator) -> np.ndarray:
        pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
        wpm = round(WPM * speed)
        with tempfile.TemporaryDirectory(prefix="kwstool-synth-") as tmp:
            wav = Path(tmp) / "say.wav"
            cmd = [self.exe, "-v", voice, "-s", str(wpm), "-p", str(pitch), "-w", str(wav), text]
            try:
                subprocess.run(cmd, capture_output=True, check=True, timeout=60)
            except (OSError, subprocess.SubprocessError) as exc:
                raise KwsError(
                    f"{NAME} failed for voice {voice} ({exc}); "
                    f"check `{' '.join(cmd[:-1])} '{text}'`"
                ) from None
            return load_wav(wav, clip_samples=None)
