"""flite (CMU Flite): a small diphone/clustergen synthesizer with 5 built-in English voices;
needs only the ``flite`` binary. Speed through ``duration_stretch`` (1 / speed)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from kwstool.core.audio import load_wav
from kwstool.data.tts import EngineOptions, program_missing, program_path
from kwstool.errors import KwsError

NAME = "flite"
SUMMARY = "CMU Flite, 5 English voices (the flite binary)"
INSTALL_HINT = "install it: `sudo apt-get install flite` (macOS: `brew install flite`)"
VOICES = ("awb", "kal", "kal16", "rms", "slt")  # the built-in ones (awb_time speaks only times)
SPEED_RANGE = (0.8, 1.2)


def missing(options: EngineOptions) -> str | None:
    return program_missing(NAME, INSTALL_HINT)


def load(options: EngineOptions) -> Flite:
    return Flite(program_path(NAME, INSTALL_HINT))


class Flite:
    name = NAME
    workers = 2
    speed_range = SPEED_RANGE
    mixable = False

    def __init__(self, exe: str) -> None:
        self.exe = exe

    def voices(self) -> list[str]:
        return list(VOICES)

    def speak(self, text: str, voice: str, speed: float, rng: np.random.Generator) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="kwstool-synth-") as tmp:
            wav = Path(tmp) / "say.wav"
            stretch = f"duration_stretch={1.0 / speed:.3f}"
            cmd = [self.exe, "-voice", voice, "--setf", stretch, "-t", text, "-o", str(wav)]
            try:
                subprocess.run(cmd, capture_output=True, check=True, timeout=60)
            except (OSError, subprocess.SubprocessError) as exc:
                raise KwsError(
                    f"{NAME} failed for voice {voice} ({exc}); check `{' '.join(cmd)}`"
                ) from None
            return load_wav(wav, clip_samples=None)  # kal is 8 kHz: resampled to 16 kHz
