"""`kwstool listen`: the laptop listens like the board does.

Audio comes from a source that pushes blocks of samples into one queue:

* :class:`MicSource`: the microphone through PortAudio (``sounddevice``): an ``InputStream``
  callback copies each block into the queue (16 kHz mono when the device offers it, else the
  device's rate, resampled on the consuming side);
* :class:`WavSource`: a thread reading a WAV file and pushing the same-sized blocks, at the pace
  of real time or as fast as possible (``--fast``); tests and CI listen this way.

Everything after the queue is shared: :class:`~kwstool.stream.engine.StreamPipeline` (the C
front end, the int8 model every inference period, the C recognizer with the run's calibrated
thresholds), the live view and the ``--on WORD --exec CMD`` action, started with
:class:`subprocess.Popen` so listening never waits for it (finished children are reaped).
"""

from __future__ import annotations

import math
import os
import queue
import subprocess
import threading
import time
import webbrowser
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.contract import SAMPLE_RATE
from kwstool.core.labels import is_filler
from kwstool.errors import KwsError
from kwstool.stream import engine, native
from kwstool.stream.embedding import (
    RECOGNIZER as EMBEDDING_RECOGNIZER,
    EmbeddingModel,
    EmbeddingPipeline,
)
from kwstool.stream.resample import BlockResampler

#: What ``kwstool listen --model`` runs: the board's path, or the speech embedding (laptop only).
DETECTORS = ("board", "embedding")
#: Samples per block a source delivers (at 16 kHz: 64 ms, the firmware's PDM chunk order).
BLOCK_SAMPLES = 1024
INSTALL_HINT = (
    "install PortAudio and its Python binding: `sudo apt-get install libportaudio2`"
    " and `pip install sounddevice`"
)


def import_sounddevice() -> Any:
    """The ``sounddevice`` module, or a one-line KwsError saying what to install."""
    try:
        import sounddevice
    except (
        ImportError,
        OSError,
    ) as exc:  # OSError: the PortAudio library itself is missing
        raise KwsError(
            f"no audio input: {str(exc).splitlines()[0] if str(exc) else exc}; {INSTALL_HINT}"
        ) from None
    return sounddevice


def list_devices() -> list[dict[str, Any]]:
    """The input devices PortAudio sees: index, name, channels, default rate."""
    sd = import_sounddevice()
    return [
        {
            "index": i,
            "name": d["name"],
            "channels": int(d["max_input_channels"]),
            "default_samplerate": float(d["default_samplerate"]),
        }
        for i, d in enumerate(sd.query_devices())
        if d["max_input_channels"] > 0
    ]


@dataclass
class Block:
    samples: np.ndarray  # int16 mono
    rate: int


class WavSource:
    """A WAV file pushed into the queue in BLOCK_SAMPLES blocks (real time unless ``fast``)."""

    def __init__(self, path: str | os.PathLike[str], fast: bool = False) -> None:
        from kwstool.core.audio import load_wav

        self.path = Path(path)
        self.samples = load_wav(self.path, None)
        self.fast = fast
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, q: queue.Queue[Block | None]) -> None:
        def run() -> None:
            t0 = time.monotonic()
            for pos in range(0, len(self.samples), BLOCK_SAMPLES):
                if self._stop.is_set():
                    break
                if not self.fast:
                    delay = t0 + (pos + BLOCK_SAMPLES) / SAMPLE_RATE - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                q.put(Block(self.samples[pos : pos + BLOCK_SAMPLES], SAMPLE_RATE))
            q.put(None)

        self._thread = threading.Thread(target=run, name="kwstool-wav", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def describe(self) -> str:
        return (
            f"{self.path} ({len(self.samples) / SAMPLE_RATE:.1f} s{', fast' if self.fast else ''})"
        )


class MicSource:
    """The microphone through a sounddevice InputStream whose callback feeds the queue."""

    def __init__(self, device: str | int | None = None) -> None:
        self.sd = import_sounddevice()
        self.device = int(device) if isinstance(device, str) and device.isdigit() else device
        self.rate = SAMPLE_RATE
        self.stream: Any = None

    def _open_rate(self) -> int:
        try:
            self.sd.check_input_settings(
                device=self.device, channels=1, dtype="int16", samplerate=SAMPLE_RATE
            )
            return SAMPLE_RATE
        except (
            self.sd.PortAudioError,
            ValueError,
        ):  # no 16 kHz: its own rate, resampled
            try:
                info = self.sd.query_devices(self.device, "input")
            except (self.sd.PortAudioError, ValueError) as exc:
                raise KwsError(
                    f"no microphone ({exc}); plug one in, pick one with --device "
                    f"(see --list-devices), or replay a file with --wav"
                ) from None
            return int(info["default_samplerate"])

    def start(self, q: queue.Queue[Block | None]) -> None:
        self.rate = self._open_rate()

        def callback(indata: np.ndarray, frames: int, t: Any, status: Any) -> None:
            q.put(Block(indata[:, 0].copy(), self.rate))

        try:
            self.stream = self.sd.InputStream(
                device=self.device,
                channels=1,
                dtype="int16",
                samplerate=self.rate,
                callback=callback,
                blocksize=BLOCK_SAMPLES * self.rate // SAMPLE_RATE,
            )
            self.stream.start()
        except (self.sd.PortAudioError, ValueError) as exc:
            raise KwsError(
                f"cannot open the microphone {self.device or '(default)'} ({exc}); "
                f"pick one with --device (see --list-devices)"
            ) from None

    def stop(self) -> None:
        if self.stream is not None:
            self.stream.stop()
            self.stream.close()

    def describe(self) -> str:
        return (
            f"microphone {self.device if self.device is not None else '(default)'}"
            f" at {self.rate} Hz"
        )


@dataclass
class Action:
    """``--on WORD --exec CMD`` / ``--open URL``: on each detection of WORD, run CMD (argv, or
    with ``shell`` one shell line, given to the shell as it is: ``$KWS_TIME_MS``, ``>>``, pipes
    work) and/or open URL in the default web browser (the standard library's ``webbrowser``, in
    a thread of its own so listening never waits for the browser)."""

    word: str
    command: list[str]
    shell: bool = False
    url: str | None = None
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    openers: list[threading.Thread] = field(default_factory=list)
    started: int = 0

    def fire(self, label: str, score: int, time_ms: int) -> None:
        if self.url is not None:
            opener = threading.Thread(target=webbrowser.open, args=(self.url,), daemon=True)
            opener.start()
            self.openers.append(opener)
            self.started += 1
        if self.command:
            self._run(label, score, time_ms)

    def _run(self, label: str, score: int, time_ms: int) -> None:
        env = dict(
            os.environ,
            KWS_LABEL=label,
            KWS_SCORE=f"{score / 255:.3f}",
            KWS_TIME_MS=str(time_ms),
        )
        args: Any = self.command[0] if self.shell else self.command
        try:
            self.children.append(subprocess.Popen(args, shell=self.shell, env=env))
        except OSError as exc:
            raise KwsError(
                f"--exec {self.command[0]}: cannot start it ({exc.strerror}); check the command"
            ) from None
        self.started += 1

    def reap(self) -> None:
        self.children = [c for c in self.children if c.poll() is None]
        self.openers = [t for t in self.openers if t.is_alive()]

    def finish(self, timeout: float = 10.0) -> None:
        """Wait (bounded) for the commands and browsers still starting when listening ends."""
        end = time.monotonic() + timeout
        for c in self.children:
            try:
                c.wait(max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for t in self.openers:
            t.join(max(0.0, end - time.monotonic()))
        self.reap()


@dataclass
class ListenState:
    """What the live view shows; updated by the listening loop."""

    labels: list[str]
    level_dbfs: float = -120.0
    scores: np.ndarray | None = None
    detections: list[tuple[float, str, int]] = field(default_factory=list)  # (s, label, score)
    audio_s: float = 0.0
    source: str = ""
    thresholds: dict[str, int] = field(default_factory=dict)


def _level_dbfs(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    return 20 * math.log10(max(rms, 1e-3) / 32768)


def settings_for(
    model: engine.StreamModel | EmbeddingModel, overrides: dict[str, Any] | None
) -> native.RecognizerSettings:
    """Recognizer defaults, then the run's calibration (the board model's; the embedding
    detector's own averaging instead), then the user's overrides."""
    from kwstool.core.calibration import load_calibration
    from kwstool.core.recognizer import RECOGNIZER_DEFAULTS

    rec: dict[str, Any] = dict(RECOGNIZER_DEFAULTS)
    if isinstance(model, engine.StreamModel):
        rec.update(load_calibration(model.path) or {})
    else:
        rec.update(EMBEDDING_RECOGNIZER)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "threshold" in given:
        rec.pop("thresholds", None)
    rec.update(given)
    return native.RecognizerSettings.build(model.labels, rec)


def check_action(
    model: engine.StreamModel | EmbeddingModel,
    on: str | None,
    command: Sequence[str],
    url: str | None = None,
    shell: bool = False,
) -> None:
    if (on is None) != (not command and url is None):
        raise KwsError("--on WORD goes with --exec CMD and/or --open URL: give both or neither")
    if shell and len(command) != 1:
        raise KwsError(
            "--shell runs one shell line: quote the whole command as one --exec argument, "
            "e.g. --exec 'echo $KWS_TIME_MS >> times.txt'"
        )
    if on is not None and (on not in model.labels or is_filler(on)):
        words = ", ".join(lab for lab in model.labels if not is_filler(lab))
        raise KwsError(f"--on {on}: the model does not detect that word; choose one of {words}")


def run_loop(
    pipeline: engine.StreamPipeline | EmbeddingPipeline,
    source: Any,
    state: ListenState,
    action: Action | None,
    on_update: Callable[[ListenState], None],
) -> None:
    """Consume the source's blocks until it ends (or Ctrl-C): the path every source shares."""
    q: queue.Queue[Block | None] = queue.Queue()
    resampler: BlockResampler | None = None
    labels = pipeline.model.labels
    source.start(q)
    try:
        while True:
            block = q.get()
            if block is None:
                break
            samples = block.samples
            if block.rate != SAMPLE_RATE:
                resampler = resampler or BlockResampler(block.rate, SAMPLE_RATE)
                samples = resampler.process(samples)
            state.level_dbfs = _level_dbfs(samples)
            for r in pipeline.feed(samples):
                state.scores = r.scores
                if r.detection is not None:
                    d = r.detection
                    state.detections.append((d.time_ms / 1000, labels[d.label], d.score))
                    if action is not None and labels[d.label] == action.word:
                        action.fire(labels[d.label], d.score, d.time_ms)
            state.audio_s = pipeline.features.time_ms / 1000
            if action is not None:
                action.reap()
            on_update(state)
    finally:
        source.stop()
        if action is not None:
            action.finish()


@dataclass
class ListenResult:
    source: str
    audio_s: float
    detections: list[tuple[float, str, int]]
    commands_started: int
    thresholds: dict[str, int]


def listen(
    run_or_model: str | os.PathLike[str] | None = None,
    *,
    wav: str | os.PathLike[str] | None = None,
    fast: bool = False,
    device: str | int | None = None,
    on: str | None = None,
    command: Sequence[str] | str = (),
    shell: bool = False,
    open_url: str | None = None,
    recognizer: dict[str, Any] | None = None,
    runtime: str = "litert",
    console: Any = None,
    detector: str = "board",
) -> ListenResult:
    """Listen to the microphone (or replay ``wav``) and detect keywords until the end or Ctrl-C.

    ``run_or_model`` None: the 12-word model packaged with kwstool
    (:mod:`kwstool.core.pretrained`), with its calibrated thresholds. ``detector``: ``board``
    (the run's int8 model through the board's path) or ``embedding`` (the pretrained speech
    embedding and the run's teacher head, :mod:`.embedding`). ``command`` is an argv list, or
    with ``shell`` one shell line (a string or a one-item list) that the shell gets unchanged."""
    from kwstool.core.pretrained import pretrained_dir
    from kwstool.core.settings import check_recognizer
    from kwstool.stream.view import View

    if fast and wav is None:
        raise KwsError("--fast replays a file as fast as possible: give it with --wav FILE")
    check_recognizer(recognizer or {})
    command = [command] if isinstance(command, str) else list(command)
    if detector not in DETECTORS:
        raise KwsError(f"--model {detector}: unknown; choose {' or '.join(DETECTORS)}")
    if run_or_model is None:
        if detector == "embedding":
            raise KwsError("--model embedding needs a run folder trained with --teacher embedding")
        run_or_model = pretrained_dir()
    model: engine.StreamModel | EmbeddingModel
    if detector == "embedding":
        model = EmbeddingModel.load(run_or_model)
    else:
        model = engine.StreamModel.load(run_or_model, runtime)
    check_action(model, on, command, open_url, shell)
    settings = settings_for(model, recognizer)
    pipeline: engine.StreamPipeline | EmbeddingPipeline
    if isinstance(model, EmbeddingModel):
        pipeline = EmbeddingPipeline(model, settings)
    else:
        pipeline = engine.StreamPipeline(model, settings)
    source: Any = WavSource(wav, fast) if wav is not None else MicSource(device)
    action = Action(on, list(command), shell, open_url) if on is not None else None
    state = ListenState(
        list(model.labels),
        source=source.describe(),
        thresholds=dict(zip(model.labels, settings.thresholds)),
    )
    if console is None:
        from kwstool.core.console import make_console

        console = make_console()
    with View(console) as view:
        try:
            run_loop(pipeline, source, state, action, view)
        except KeyboardInterrupt:
            pass  # Ctrl-C ends listening; what was detected is reported
    return ListenResult(
        state.source,
        state.audio_s,
        state.detections,
        action.started if action else 0,
        state.thresholds,
    )
