"""What the board should answer, computed on the host.

:func:`host_reference` runs the host's copy of the firmware's C code (``kwstool._native``) and
the tflite-micro interpreter (:class:`TflmModel`) over the same samples, for comparisons with
what :mod:`kwstool.deploy.device` collects from a board.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.contract import (
    NUM_CHANNELS as CHANNELS,
    NUM_FRAMES as WINDOW_FRAMES,
    SAMPLE_RATE,
    STRIDE_SAMPLES,
    WINDOW_SAMPLES,
)
from kwstool.deploy.protocol import (
    Detection,
    ScoreEvent,
    StreamResult,
    resolve_recognizer,
)
from kwstool.errors import KwsError


class TflmModel:
    """An int8 .tflite in the TFLite Micro interpreter of the tflite-micro Python package (the
    same interpreter code the board runs, compiled for the host)."""

    def __init__(self, path: str | Path) -> None:
        try:
            from tflite_micro.python.tflite_micro import runtime
        except ImportError as exc:  # pragma: no cover - a dependency of kwstool
            raise KwsError(
                f"tflite-micro is not installed ({exc}); `pip install tflite-micro`"
            ) from None
        self.path = Path(path)
        self.interpreter = runtime.Interpreter.from_file(str(self.path))
        inp = self.interpreter.get_input_details(0)
        outp = self.interpreter.get_output_details(0)
        self.input_shape = tuple(int(d) for d in inp["shape"])
        self.input_scale = float(inp["quantization_parameters"]["scales"][0])
        self.input_zero_point = int(inp["quantization_parameters"]["zero_points"][0])
        self.output_scale = float(outp["quantization_parameters"]["scales"][0])
        self.output_zero_point = int(outp["quantization_parameters"]["zero_points"][0])
        self.num_outputs = int(np.prod(outp["shape"]))
        if int(np.prod(self.input_shape)) != WINDOW_FRAMES * CHANNELS:
            raise KwsError(f"{self.path}: input {self.input_shape} is not 49x40 features")

    def __call__(self, window: np.ndarray) -> np.ndarray:
        """int8 input (1960 values, already in the model's quantization) -> int8 outputs."""
        self.interpreter.set_input(np.asarray(window, np.int8).reshape(self.input_shape), 0)
        self.interpreter.invoke()
        return np.asarray(self.interpreter.get_output(0), np.int8).reshape(-1)


def requant_table(scale: float, zero_point: int) -> np.ndarray:
    """The firmware's kws_feature_requant_lut in float32 numpy (same operations, same result)."""
    v = np.arange(-128, 128, dtype=np.float32)
    x = v / np.float32(scale)
    r = np.where(x >= 0, x + np.float32(0.5), x - np.float32(0.5))
    q = np.clip(r, -1000, 1000).astype(np.int64) + int(zero_point)
    table: np.ndarray = np.clip(q, -128, 127).astype(np.int8)
    return table


def feature_windows(feats: np.ndarray, every: int) -> Iterable[tuple[int, np.ndarray]]:
    """(frames so far, 49x40 window) after every ``every``-th frame, silence (-128) before the
    first frame -- the feature provider's ring buffer."""
    padded = np.concatenate([np.full((WINDOW_FRAMES, CHANNELS), -128, np.int8), feats])
    for k in range(every, len(feats) + 1, every):
        yield k, padded[k : k + WINDOW_FRAMES]


def frame_time_ms(k: int) -> int:
    """Audio time when frame k (1-based) completes: after 480 + 320 (k - 1) samples."""
    return (WINDOW_SAMPLES + STRIDE_SAMPLES * (k - 1)) * 1000 // SAMPLE_RATE


def host_reference(
    samples: np.ndarray,
    model: TflmModel,
    labels: Sequence[str],
    infer_every: int,
    recognizer: dict[str, Any],
    input_scale: float | None = None,
    input_zero_point: int | None = None,
) -> StreamResult:
    """What the board computes for ``samples`` as one stream: features via the C front end
    (``kwstool._native``), the model via TFLite Micro, the recognizer via ``kwstool._native``.
    ``input_scale``/``input_zero_point`` override the model's (micro_speech's model, for one,
    takes the int8 features unchanged)."""
    from kwstool import _native
    from kwstool.core.frontend import compute_raw, to_int8

    feats = to_int8(compute_raw(np.asarray(samples, np.int16)))
    scale = model.input_scale if input_scale is None else input_scale
    zero = model.input_zero_point if input_zero_point is None else input_zero_point
    lut = requant_table(scale, zero)
    result = StreamResult(features=feats)
    for k, window in feature_windows(feats, infer_every):
        raw = model(lut[window.astype(np.int16) + 128])
        scores = np.zeros(len(raw), np.uint8)
        _native.scores_u8(raw.tobytes(), model.output_scale, model.output_zero_point, scores)
        result.scores.append(
            ScoreEvent(frame=k, time_ms=frame_time_ms(k), invoke_us=0, raw=raw, scores=scores)
        )
    if result.scores:
        mask = sum(1 << i for i, lab in enumerate(labels) if lab.startswith("_"))
        rec = resolve_recognizer({}, recognizer, labels, infer_every)
        found = _native.recognize(
            np.stack([s.scores for s in result.scores]).tobytes(),
            np.array([s.time_ms for s in result.scores], np.uint32).tobytes(),
            len(labels),
            rec["average_window_ms"],
            bytes(rec["thresholds"]),
            rec["suppression_ms"],
            rec["minimum_coverage_ms"],
            mask,
        )
        result.detections = [
            Detection(label=labels[lab], index=lab, time_ms=t, score=score, count=count)
            for _, t, lab, score, count in found
        ]
    return result
