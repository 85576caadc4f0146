"""`kwstool record`: your own keyword clips, from the microphone or from one long recording.

Guided session (:func:`record_session`)
    For each take: a countdown, then ``take_seconds`` of audio from a :class:`BlockSource` (the
    microphone, :class:`Microphone`; or a WAV file, :class:`WavBlocks`, through the same code)
    with a level meter; the loudest word in the take is found by energy
    (:mod:`kwstool.data.takes`), rejected with a reason when it is silent, too quiet, clipped or
    longer than 1 s (then the take is repeated), else cut to 1 s centred on the word and saved.
Splitting a recording (:func:`split_recording`, ``--wav FILE``)
    A long recording of the word said again and again, with pauses: every word found by energy
    is one take, checked and cut the same way.
Output
    ``OUT/WORD/SPEAKER_nohash_K.wav`` (16 kHz mono 16-bit), K continuing after the files already
    there, so ``kwstool prepare`` keeps each speaker in one split. Each file is written
    atomically; a split writes nothing unless at least one take is good.
"""

from __future__ import annotations

import getpass
import queue
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from kwstool.core.audio import load_audio, save_wav, to_int16_mono_16k
from kwstool.core.contract import SAMPLE_RATE
from kwstool.data.takes import (
    analyse_take,
    centre_clip,
    check_speaker,
    ensure_writable,
    find_words,
    next_index,
    peak_db,
    take_problem,
)
from kwstool.errors import KwsError

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+; the package supports 3.10

BLOCK_SAMPLES = SAMPLE_RATE // 10  # 100 ms: one level-meter step
INSTALL_HINT = (
    "install PortAudio and sounddevice (Debian/Ubuntu: `sudo apt-get install "
    "libportaudio2`, then `pip install sounddevice`; macOS: `brew install portaudio`)"
    ", or split a recording with --wav FILE"
)


class BlockSource(Protocol):
    """Blocks of 16 kHz mono int16 samples (the microphone, or a WAV standing in for it)."""

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples (fewer only at the end of a file; empty when exhausted)."""
        ...

    def discard(self) -> None:
        """Drop audio buffered so far (what was said during the countdown)."""
        ...


class WavBlocks:
    """A WAV file read block by block, as if it came from the microphone."""

    def __init__(self, path: str | Path):
        self.samples = load_audio(path, clip_samples=None)
        self.pos = 0

    def read(self, n: int) -> np.ndarray:
        out = self.samples[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def discard(self) -> None:
        """Nothing is buffered in a file: the countdown costs no audio."""


class Microphone:
    """The default input device through PortAudio (``sounddevice``), as 16 kHz mono int16.

    Opened at 16 kHz when the device allows it, else at its default rate with each block
    resampled to 16 kHz. Use as a context manager.
    """

    def __init__(self, device: int | str | None = None):
        try:
            import sounddevice as sd
        except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
            raise KwsError(
                f"no microphone access ({str(exc).splitlines()[0]}): {INSTALL_HINT}"
            ) from None
        self._sd = sd
        self._queue: queue.Queue[np.ndarray] = queue.Queue()
        self._pending = np.zeros(0, np.int16)
        try:
            info = sd.query_devices(device, "input")
        except (ValueError, sd.PortAudioError) as exc:
            raise KwsError(
                f"no input device ({exc}): plug in a microphone, or split a "
                f"recording with --wav FILE"
            ) from None
        self.name = str(info["name"])
        self.rate = SAMPLE_RATE
        try:
            sd.check_input_settings(device, channels=1, dtype="int16", samplerate=SAMPLE_RATE)
        except Exception:
            self.rate = int(info["default_samplerate"])
        self._stream = sd.InputStream(
            samplerate=self.rate,
            channels=1,
            dtype="int16",
            device=device,
            blocksize=self.rate // 10,
            callback=self._callback,
        )

    def _callback(self, indata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        self._queue.put(indata[:, 0].copy())

    def __enter__(self) -> Self:
        self._stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.stop()
        self._stream.close()

    def read(self, n: int) -> np.ndarray:
        while len(self._pending) < n:
            try:
                block = self._queue.get(timeout=5.0)
            except queue.Empty:
                raise KwsError(
                    f"microphone {self.name!r} delivered no audio for 5 s; check "
                    f"that it is not muted or used by another program"
                ) from None
            if self.rate != SAMPLE_RATE:
                block = to_int16_mono_16k(block, self.rate)
            self._pending = np.concatenate([self._pending, block])
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def discard(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
        self._pending = np.zeros(0, np.int16)


class SessionUI(Protocol):
    """What a guided session shows (the CLI renders it with Rich; tests pass None)."""

    def prompt(self, index: int, count: int, word: str) -> None: ...
    def countdown(self, n: int) -> None: ...
    def level(self, db: float) -> None: ...
    def rejected(self, reason: str) -> None: ...
    def saved(self, path: Path) -> None: ...


@dataclass
class RecordResult:
    word: str
    speaker: str
    folder: Path
    saved: list[Path] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # one reason per rejected take

    def to_dict(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "speaker": self.speaker,
            "folder": str(self.folder),
            "saved": [str(p) for p in self.saved],
            "rejected": self.rejected,
        }


def default_speaker() -> str:
    """The login name, reduced to the characters a speaker id may hold."""
    try:
        name = re.sub(r"[^A-Za-z0-9.-]", "", getpass.getuser())
    except Exception:
        name = ""
    return name if name and name[0].isalnum() else "me"


def _word_folder(word: str, out: Path) -> Path:
    if not word or word.startswith("_") or "/" in word or "\\" in word:
        raise KwsError(
            f"word {word!r}: give a folder name without '/' that does not start "
            f"with '_' (e.g. hey_lamp)"
        )
    return ensure_writable(Path(out) / word)


def _read_take(source: BlockSource, seconds: float, ui: SessionUI | None) -> np.ndarray:
    parts, need = [], int(seconds * SAMPLE_RATE)
    while need > 0:
        block = source.read(min(BLOCK_SAMPLES, need))
        if len(block) == 0:
            break
        parts.append(block)
        need -= len(block)
        if ui:
            ui.level(peak_db(block))
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


def record_session(
    source: BlockSource,
    word: str,
    count: int,
    out: str | Path,
    speaker: str | None = None,
    take_seconds: float = 2.0,
    countdown: int = 3,
    max_tries: int | None = None,
    ui: SessionUI | None = None,
) -> RecordResult:
    """Record ``count`` good takes of ``word`` from ``source`` (see module docs)."""
    from kwstool.core.settings import check

    check(seconds=take_seconds)
    if count < 1:
        raise KwsError(f"--count {count}: record at least one take")
    speaker = check_speaker(speaker or default_speaker())
    folder = _word_folder(word, Path(out))
    result = RecordResult(word, speaker, folder)
    k = next_index(folder, speaker)
    tries = max_tries if max_tries is not None else 3 * count
    while len(result.saved) < count and tries > 0:
        tries -= 1
        if ui:
            ui.prompt(len(result.saved) + 1, count, word)
        for n in range(countdown, 0, -1):
            if ui:
                ui.countdown(n)
            time.sleep(1.0)
        source.discard()
        audio = _read_take(source, take_seconds, ui)
        if len(audio) == 0:
            break  # a WAV standing in for the microphone has ended
        take = analyse_take(audio)
        if take.clip is None:
            result.rejected.append(str(take.reason))
            if ui:
                ui.rejected(str(take.reason))
            continue
        path = folder / f"{speaker}_nohash_{k}.wav"
        save_wav(path, take.clip)
        k += 1
        result.saved.append(path)
        if ui:
            ui.saved(path)
    if not result.saved:
        raise KwsError(
            f"no usable take of {word!r} ({len(result.rejected)} rejected: "
            f"{result.rejected[0] if result.rejected else 'no audio'}); nothing written"
        )
    return result


def split_recording(
    wav: str | Path,
    word: str,
    out: str | Path,
    speaker: str | None = None,
) -> RecordResult:
    """Cut a long recording of ``word`` said repeatedly into checked 1 s clips."""
    audio = load_audio(wav, clip_samples=None)
    speaker = check_speaker(speaker or default_speaker())
    spans = find_words(audio)
    if not spans:
        raise KwsError(
            f"{wav}: no word found, the recording is silent (peak "
            f"{peak_db(audio):.0f} dBFS); record louder or check the microphone"
        )
    clips, rejected = [], []
    for start, end in spans:
        reason = take_problem(audio[start:end])
        if reason:
            rejected.append(f"{start / SAMPLE_RATE:.1f} s: {reason}")
        else:
            clips.append(centre_clip(audio, start, end))
    if not clips:
        raise KwsError(
            f"{wav}: all {len(spans)} takes rejected (e.g. {rejected[0]}); nothing written"
        )
    folder = _word_folder(word, Path(out))
    result = RecordResult(word, speaker, folder, rejected=rejected)
    k = next_index(folder, speaker)
    for i, clip in enumerate(clips):
        path = folder / f"{speaker}_nohash_{k + i}.wav"
        save_wav(path, clip)
        result.saved.append(path)
    return result
