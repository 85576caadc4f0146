"""Text-to-speech engines behind one small interface (the voices of ``kwstool synth``).

One module per engine, each with

* ``NAME``, ``SUMMARY`` and ``missing(options) -> str | None``: a cheap check that says, in one
  line naming the install step, what is missing (None: the engine is usable);
* ``load(options) -> Engine``: the engine, or a :class:`~kwstool.errors.KwsError` with that line.

An :class:`Engine` lists its voices and speaks a text in one of them at a relative speed (1.0 is
the engine's normal rate) as 16 kHz mono int16. Augmentation, centring and file naming are the
caller's (:mod:`kwstool.data.synth`) and the same for every engine.

Mixed voices (engines with ``mixable``): ``a65+b35`` is 65 % of voice ``a`` and 35 % of voice
``b`` (:func:`mix_name` / :func:`parse_mix`); each such mix is one new speaker.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from kwstool.errors import KwsError

DEFAULT_ENGINE = "espeak-ng"
# name -> module; aliases map to a name
ENGINES = {
    "espeak-ng": "kwstool.data.tts.espeak",
    "kokoro": "kwstool.data.tts.kokoro",
    "flite": "kwstool.data.tts.flite",
}
ALIASES = {"espeak": "espeak-ng"}


@dataclass(frozen=True)
class EngineOptions:
    """Where an engine's files are, when the user names them (``--model``, ``--voices``)."""

    model: Path | None = None
    voices: Path | None = None


class Engine(Protocol):
    name: str
    workers: int  # clips to synthesize at once (threads); 1 for engines that use all cores
    speed_range: tuple[float, float]  # default range of the relative speed drawn per clip
    mixable: bool  # whether voices can be mixed into new ones (mix_name)

    def voices(self) -> list[str]:
        """The engine's own voices, in a fixed order."""
        ...

    def speak(self, text: str, voice: str, speed: float, rng: np.random.Generator) -> np.ndarray:
        """``text`` in ``voice`` at relative ``speed`` as 16 kHz mono int16 (any length)."""
        ...


def program_missing(program: str, hint: str) -> str | None:
    """The one-line problem of an engine that is a program on PATH, None when it is there."""
    import shutil

    if shutil.which(program) is None:
        return f"{program} (text to speech) is not installed; {hint}"
    return None


def program_path(program: str, hint: str) -> str:
    """The path of an engine's program on PATH, or a KwsError naming the install step."""
    import shutil

    exe = shutil.which(program)
    if exe is None:
        raise KwsError(program_missing(program, hint) or program)
    return exe


def canonical(name: str) -> str:
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in ENGINES:
        raise KwsError(
            f"--engine {name}: no such engine; choose one of {', '.join(ENGINES)} "
            f"(`kwstool synth --engine list` shows which are installed)"
        )
    return key


def _module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(ENGINES[canonical(name)])


def load(name: str, options: EngineOptions | None = None) -> Engine:
    """The engine ``name``, ready to speak; a one-line KwsError naming the install step if not."""
    engine: Engine = _module(name).load(options or EngineOptions())
    return engine


def engine_table(options: EngineOptions | None = None) -> list[dict[str, str | bool]]:
    """Every engine with its summary and whether it is usable (else the missing piece)."""
    rows: list[dict[str, str | bool]] = []
    for name in ENGINES:
        mod = _module(name)
        problem = mod.missing(options or EngineOptions())
        rows.append(
            {
                "engine": name,
                "default": name == DEFAULT_ENGINE,
                "installed": problem is None,
                "summary": mod.SUMMARY,
                "missing": problem or "",
            }
        )
    return rows


_MIX = re.compile(r"^(?P<a>[^+]+?)(?P<wa>\d{1,2})\+(?P<b>[^+]+?)(?P<wb>\d{1,2})$")


def mix_name(a: str, b: str, weight_b: float) -> str:
    """Name of the mix of voices ``a`` and ``b`` with ``weight_b`` of ``b`` (whole percent, 1-99);
    the pair is written in sorted order so one mix has one name."""
    pct = min(99, max(1, round(100 * weight_b)))
    if b < a:
        a, b, pct = b, a, 100 - pct
    return f"{a}{100 - pct}+{b}{pct}"


def parse_mix(voice: str) -> tuple[str, str, float] | None:
    """``(a, b, weight of b)`` of a mix name, None for a plain voice."""
    m = _MIX.match(voice)
    if not m or int(m["wa"]) + int(m["wb"]) != 100:
        return None
    return m["a"], m["b"], int(m["wb"]) / 100
