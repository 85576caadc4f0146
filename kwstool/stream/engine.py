"""The board's streaming path on the host: audio -> C front end -> int8 model -> C recognizer.

* :func:`inference_period_ms`: how often the model runs (the board's cadence), from the model's
  metadata. One function: the latency budget that will choose the period is owned elsewhere.
* :class:`StreamModel`: an int8 ``.tflite`` from a run folder with its labels, quantization
  and recognizer settings, run one window at a time (TFLite-Micro or LiteRT's reference
  kernels, which give the same int8 outputs) or over many windows at once on several threads.
* :class:`StreamPipeline`: the frame-by-frame path ``listen`` uses: feed samples, get results.
* :func:`batch_results`: the same results for a whole recording at once (features computed
  once over the stream, the model batched over all windows), which ``stream-eval`` uses.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.contract import NUM_CHANNELS, NUM_FRAMES, STRIDE_MS
from kwstool.core.frontend import windows_of as windows_of
from kwstool.core.tflite import MODEL_FILE, load_report, model_info, to_model_input
from kwstool.errors import KwsError
from kwstool.stream import native

#: The board's default inference period before a measured one is recorded.
DEFAULT_PERIOD_MS = 100
#: litert: LiteRT's reference kernels (the int8 arithmetic TFLite-Micro's are ports of);
#: tflm: the TFLite-Micro interpreter; litert-fast: LiteRT's optimized kernels + XNNPACK
#: (several times faster, but rounds differently: the parity check reports by how much).
RUNTIMES = ("litert", "tflm", "litert-fast")


def inference_period_ms(report: dict[str, Any] | None = None) -> int:
    """The model's inference period: ``inference_period_ms`` recorded in the run's
    ``quantize.json`` (or given by a latency budget), else the smallest multiple of the 20 ms
    stride >= 100 ms. Always a positive multiple of the stride (the model runs every
    N-th completed frame, N = period / stride, on audio time, as the firmware does)."""
    value = (report or {}).get("inference_period_ms")
    if value is None:
        return -(-DEFAULT_PERIOD_MS // STRIDE_MS) * STRIDE_MS
    period = int(value)
    if period <= 0 or period % STRIDE_MS:
        raise KwsError(
            f"quantize.json: inference_period_ms {value} is not a positive multiple "
            f"of the {STRIDE_MS} ms stride; re-run `kwstool quantize`"
        )
    return period


def resolve_model(run_or_model: str | os.PathLike[str]) -> Path:
    """The ``.tflite`` of a run folder (or the path itself), checked to exist."""
    p = Path(run_or_model)
    path = p if p.suffix == ".tflite" else p / MODEL_FILE
    if p.suffix != ".tflite" and not path.exists() and (p / "run" / MODEL_FILE).exists():
        path = p / "run" / MODEL_FILE  # a `kwstool run` work folder (runs/demo)
    if not path.exists():
        hint = "run `kwstool quantize` on it first" if p.is_dir() else "check the path"
        raise KwsError(f"{path}: not found; {hint}")
    return path


def _litert(tflite: bytes, fast: bool = False) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.AUTO if fast else OpResolverType.BUILTIN_REF
    interp = Interpreter(model_content=tflite, num_threads=1, experimental_op_resolver_type=kind)
    interp.allocate_tensors()
    return interp


@dataclass
class StreamModel:
    """An int8 keyword model ready for streaming."""

    path: Path
    tflite: bytes
    sha256: str
    labels: list[str]
    info: Any  # kwstool.core.tflite.ModelInfo
    period_ms: int
    runtime: str = "litert"

    @classmethod
    def load(cls, run_or_model: str | os.PathLike[str], runtime: str = "litert") -> StreamModel:
        if runtime not in RUNTIMES:
            raise KwsError(f"unknown runtime {runtime!r}; use {' or '.join(RUNTIMES)}")
        path = resolve_model(run_or_model)
        tflite = path.read_bytes()
        report = load_report(path)
        info = model_info(tflite, str(path))
        labels = list(report.get("labels") or [])
        if len(labels) != int(np.prod(info.output_shape[1:])):
            raise KwsError(
                f"{path.with_name('quantize.json')}: {len(labels)} labels for a model "
                f"with {info.output_shape} outputs; re-run `kwstool quantize`"
            )
        if int(np.prod(info.input_shape[1:])) != NUM_FRAMES * NUM_CHANNELS:
            raise KwsError(
                f"{path}: input {info.input_shape} is not {NUM_FRAMES}x{NUM_CHANNELS}"
                f" features; train the model with kwstool"
            )
        return cls(
            path,
            tflite,
            hashlib.sha256(tflite).hexdigest(),
            labels,
            info,
            inference_period_ms(report),
            runtime,
        )

    @property
    def every_frames(self) -> int:
        return self.period_ms // STRIDE_MS

    def invoker(self) -> Callable[[np.ndarray], np.ndarray]:
        """A function: int8 feature window(s) ``(n, 49, 40)`` -> int8 outputs ``(n, labels)``."""
        if self.runtime == "tflm":
            from kwstool.core.tflite import _tflm_interpreter

            tflm = _tflm_interpreter(
                self.tflite, max(2 * 1024 * 1024, 10 * len(self.tflite)), str(self.path)
            )

            def run_tflm(windows: np.ndarray) -> np.ndarray:
                rows = []
                for x in to_model_input(windows, self.info):
                    tflm.set_input(x, 0)
                    tflm.invoke()
                    rows.append(np.array(tflm.get_output(0), np.int8).reshape(-1))
                return np.stack(rows)

            return run_tflm
        interp = _litert(self.tflite, fast=self.runtime == "litert-fast")
        i = interp.get_input_details()[0]["index"]
        o = interp.get_output_details()[0]["index"]

        def run_litert(windows: np.ndarray) -> np.ndarray:
            x = to_model_input(windows, self.info)
            out = np.empty((len(x), len(self.labels)), np.int8)
            for k in range(len(x)):
                interp.set_tensor(i, x[k])
                interp.invoke()
                out[k] = interp.get_tensor(o).reshape(-1)
            return out

        return run_litert

    def scores(self, raw: np.ndarray) -> np.ndarray:
        return native.scores_u8(raw, self.info.output_scale, self.info.output_zero_point)


def window_ends(num_frames: int, every: int) -> np.ndarray:
    """Frames (1-based counts) after which the model runs: every ``every``-th completed frame."""
    return np.arange(every, num_frames + 1, every, dtype=np.int64)


def batch_outputs(
    model: StreamModel,
    features: np.ndarray,
    ends: np.ndarray,
    threads: int | None = None,
    chunk: int = 2048,
    advance: Callable[[int], None] | None = None,
) -> np.ndarray:
    """int8 model outputs ``(len(ends), labels)`` for the windows ending at ``ends``.

    The windows are split over ``threads`` interpreters (default: the CPU count); LiteRT and
    TFLite-Micro release the GIL while they run, so the threads use separate cores.
    ``advance(n)`` is called after each chunk of ``n`` windows (a progress bar).
    """
    workers = max(1, threads or os.cpu_count() or 1)
    out = np.empty((len(ends), len(model.labels)), np.int8)
    starts = list(range(0, len(ends), chunk))
    invokers = [model.invoker() for _ in range(min(workers, max(1, len(starts))))]

    def work(job: int) -> None:
        run = invokers[job]
        for s in starts[job :: len(invokers)]:
            out[s : s + chunk] = run(windows_of(features, ends[s : s + chunk]))
            if advance is not None:
                advance(len(ends[s : s + chunk]))

    with ThreadPoolExecutor(max_workers=len(invokers)) as pool:
        list(pool.map(work, range(len(invokers))))
    return out


@dataclass
class StreamScores:
    """Per-inference results of one stream: times (ms), raw int8 outputs, 0..255 scores."""

    times_ms: np.ndarray
    raw: np.ndarray
    scores: np.ndarray
    frames: int


def batch_results(
    model: StreamModel,
    samples: np.ndarray,
    threads: int | None = None,
    advance: Callable[[int], None] | None = None,
) -> StreamScores:
    """The results the board would produce for ``samples`` as one stream, computed in bulk
    (``advance``: see :func:`batch_outputs`)."""
    feats = native.stream_features(samples)
    ends = window_ends(len(feats), model.every_frames)
    raw = batch_outputs(model, feats, ends, threads, advance=advance)
    return StreamScores(
        native.frame_time_ms(ends).astype(np.uint32), raw, model.scores(raw), len(feats)
    )


@dataclass
class StepResult:
    """One inference of the live path."""

    time_ms: int
    raw: np.ndarray
    scores: np.ndarray
    detection: native.Detection | None


class StreamPipeline:
    """The frame-by-frame path: samples in, one :class:`StepResult` per inference out."""

    def __init__(self, model: StreamModel, settings: native.RecognizerSettings) -> None:
        self.model = model
        self.features = native.FeatureStream()
        self.recognizer = native.Recognizer(settings)
        self._run = model.invoker()

    def feed(self, samples: np.ndarray) -> list[StepResult]:
        """Feed samples of any length; run the model after every ``every_frames``-th frame."""
        results = []
        every = self.model.every_frames
        pos = 0
        samples = np.asarray(samples, np.int16)
        while pos < len(samples):
            # feed up to the next inference frame exactly, so each window is the board's
            frames = self.features.frames
            target = (frames // every + 1) * every
            need = native.frames_needed(target, self.features.samples)
            take = samples[pos : pos + need]
            pos += len(take)
            self.features.feed(take)
            if self.features.frames >= target:
                results.append(self._infer())
        return results

    def _infer(self) -> StepResult:
        raw = self._run(self.features.window()[None])[0]
        scores = self.model.scores(raw[None])[0]
        t = int(native.frame_time_ms(self.features.frames))
        return StepResult(t, raw, scores, self.recognizer.process(scores, t))
