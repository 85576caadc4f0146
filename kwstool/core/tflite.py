"""TFLite flatbuffers on the host: what a model holds, and running it as the board would.

* :func:`model_info`: operators and input/output tensors read from the flatbuffer;
* :data:`TFLM_RESOLVER_METHODS` / :func:`resolver_methods` (from :mod:`kwstool.core.resolver`):
  the ``MicroMutableOpResolver`` method the firmware calls for each operator;
* :func:`run_tflm` (the TFLite-Micro interpreter, the board's arithmetic) and
  :func:`run_litert` (LiteRT's reference kernels, which TFLM and CMSIS-NN are bit-exact ports of);
* :func:`measure_arena`: the TFLite-Micro arena the model needs;
* :func:`load_report` (from :mod:`kwstool.core.artifacts`, re-exported): ``quantize.json``
  beside a ``.tflite``, validated and checked to describe that file.

Shared by the model, deploy and stream stages (a floor below them).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.artifacts import (
    REPORT_FILE as REPORT_FILE,  # re-exported for the stages
    load_report as load_report,
    read_report as read_report,
)
from kwstool.core.records import read_json as read_json
from kwstool.core.resolver import (
    TFLM_RESOLVER_METHODS as TFLM_RESOLVER_METHODS,
    resolver_methods as resolver_methods,
)
from kwstool.errors import KwsError

MODEL_FILE = "model_int8.tflite"
_ARENA_CEILING = 64 * 1024 * 1024


@dataclass
class ModelInfo:
    """Facts read from a .tflite flatbuffer without running it."""

    ops: list[str]  # builtin operator names in opcode-table order, e.g. CONV_2D
    input_shape: tuple[int, ...]  # e.g. (1, 49, 40, 1)
    input_dtype: str  # "int8"
    input_scale: float
    input_zero_point: int
    output_shape: tuple[int, ...]
    output_dtype: str
    output_scale: float
    output_zero_point: int


# --- flatbuffer inspection ---------------------------------------------------------------------
def _check_tflite_bytes(data: bytes, where: str) -> None:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise KwsError(
            f"{where}: not a TFLite flatbuffer (no 'TFL3' identifier); "
            f"pass the model_int8.tflite written by `kwstool quantize`"
        )


def model_info(tflite: bytes, where: str = "model") -> ModelInfo:
    """Operators and input/output tensors of a TFLite model, read from the flatbuffer."""
    from tflite_micro.python.tflite_micro import runtime
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    _check_tflite_bytes(tflite, where)
    try:
        model = runtime.convert_bytearray_to_object(bytearray(tflite))
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        type_names = {
            v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")
        }
        ops = []
        for oc in model.operatorCodes or []:
            code = runtime.get_builtin_code_from_operator_code(oc)
            if code == schema.BuiltinOperator.CUSTOM:
                custom = oc.customCode
                ops.append(f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}")
            else:
                ops.append(names.get(code, f"BUILTIN_{code}"))
        graph = model.subgraphs[0]
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise KwsError(
                f"{where}: model has {len(graph.inputs)} inputs and "
                f"{len(graph.outputs)} outputs; kwstool needs exactly one of each"
            )

        def tensor(idx: int) -> tuple[tuple[int, ...], str, float, int]:
            t = graph.tensors[idx]
            q = t.quantization
            scales = [] if q is None or q.scale is None else list(q.scale)
            zero_points = [] if q is None or q.zeroPoint is None else list(q.zeroPoint)
            scale = float(scales[0]) if scales else 0.0
            zp = int(zero_points[0]) if zero_points else 0
            return tuple(int(d) for d in t.shape), type_names.get(t.type, str(t.type)), scale, zp

        ishape, itype, iscale, izp = tensor(graph.inputs[0])
        oshape, otype, oscale, ozp = tensor(graph.outputs[0])
    except KwsError:
        raise
    except Exception as exc:  # malformed flatbuffer
        raise KwsError(
            f"{where}: damaged TFLite flatbuffer ({type(exc).__name__}); re-run `kwstool quantize`"
        ) from None
    return ModelInfo(
        ops=ops,
        input_shape=ishape,
        input_dtype=itype,
        input_scale=iscale,
        input_zero_point=izp,
        output_shape=oshape,
        output_dtype=otype,
        output_scale=oscale,
        output_zero_point=ozp,
    )


# --- running models ----------------------------------------------------------------------------
@contextlib.contextmanager
def captured_stderr() -> Iterator[io.StringIO]:
    """Capture what native code writes to file descriptor 2 (TFLM prints its errors there)."""
    buf = io.StringIO()
    try:
        fd = 2
        saved = os.dup(fd)
    except OSError:  # no usable stderr; nothing to capture
        yield buf
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        try:
            os.dup2(tmp.fileno(), fd)
            yield buf
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            buf.write(tmp.read().decode("utf-8", "replace"))


def to_model_input(features: np.ndarray, info: ModelInfo, raw: bool = False) -> np.ndarray:
    """int8 features ``(N, 49, 40)`` -> the model's int8 input, one row per clip.

    kwstool models take the feature values as floats, so the int8 input is
    ``q = round(x / scale) + zero_point`` (the identity for the usual scale 1.0 / zero point 0).
    ``raw=True`` feeds the int8 features unchanged whatever the input quantization, as
    TensorFlow's micro_speech does for its model. Each row gets the model's input shape.
    """
    x = np.asarray(features)
    n = x.shape[0]
    per_clip = int(np.prod(info.input_shape[1:]))
    if int(np.prod(x.shape[1:])) != per_clip:
        raise KwsError(
            f"model input {info.input_shape} does not take features of shape "
            f"{x.shape[1:]}; the model was made for other features"
        )
    if raw or (info.input_scale in (0.0, 1.0) and info.input_zero_point == 0):
        q = x.astype(np.int8)
    else:
        q = np.clip(
            np.round(x.astype(np.float64) / info.input_scale) + info.input_zero_point, -128, 127
        ).astype(np.int8)
    return q.reshape((n, 1, *info.input_shape[1:]))


def run_litert(tflite: bytes, inputs: np.ndarray) -> np.ndarray:
    """int8 outputs ``(N, labels)`` of LiteRT's reference kernels, one clip per invoke.

    The reference kernels are the ones TFLite-Micro's (and CMSIS-NN's) are bit-exact ports of.
    LiteRT's default optimized kernels and its XNNPACK delegate round differently at ties (seen
    in CONV_2D and DEPTHWISE_CONV_2D), which a deep network amplifies to several int8 steps.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_content=tflite,
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
    )
    interp.allocate_tensors()
    i = interp.get_input_details()[0]["index"]
    o = interp.get_output_details()[0]
    out = np.empty((len(inputs), int(np.prod(o["shape"][1:]))), dtype=o["dtype"])
    for k, x in enumerate(inputs):
        interp.set_tensor(i, x)
        interp.invoke()
        out[k] = interp.get_tensor(o["index"]).reshape(-1)
    return out


def _tflm_interpreter(tflite: bytes, arena_bytes: int, where: str) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    with captured_stderr() as err:
        try:
            return runtime.Interpreter.from_bytes(tflite, arena_size=int(arena_bytes))
        except RuntimeError:
            pass
    text = err.getvalue()
    missing = re.search(r"Didn't find op for builtin opcode '([^']+)'", text)
    if missing:
        raise KwsError(
            f"{where}: uses operator {missing.group(1)}, which the TFLite-Micro "
            f"interpreter has no kernel for; change the layer that produces it in "
            f"the model"
        )
    last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "no message")
    raise KwsError(
        f"{where}: TFLite-Micro could not load the model with a {arena_bytes}-byte "
        f"arena ({last}); re-run `kwstool quantize`"
    )


def run_tflm(
    tflite: bytes, inputs: np.ndarray, arena_bytes: int | None = None, where: str = "model"
) -> np.ndarray:
    """int8 outputs ``(N, labels)`` of the TFLite-Micro interpreter, one clip per invoke."""
    arena = arena_bytes or max(2 * 1024 * 1024, 10 * len(tflite))
    interp = _tflm_interpreter(tflite, arena, where)
    rows = []
    failed = False
    with captured_stderr() as err:
        try:
            for x in inputs:
                interp.set_input(x, 0)
                interp.invoke()
                rows.append(np.array(interp.get_output(0)).reshape(-1))
        except RuntimeError:
            failed = True
    if failed:
        last = next(
            (ln.strip() for ln in reversed(err.getvalue().splitlines()) if ln.strip()), "no message"
        )
        raise KwsError(
            f"{where}: TFLite-Micro failed to run the model ({last}); re-run `kwstool quantize`"
        )
    return np.stack(rows) if rows else np.empty((0, 0), dtype=np.int8)


_PROBE = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
try:
    interp = runtime.Interpreter.from_bytes(model, arena_size=int(sys.argv[2]))
    interp.set_input(np.load(sys.argv[3]), 0)
    interp.invoke()
except RuntimeError:
    sys.exit(1)
"""


def _arena_fits(model_file: Path, sample_file: Path, size: int) -> bool:
    """Does the model allocate and invoke with a ``size``-byte arena? Probed in a child process:
    for some models and sizes TFLite-Micro's Python wrapper crashes instead of failing cleanly."""
    import subprocess
    import sys

    cmd = [sys.executable, "-c", _PROBE, str(model_file), str(size), str(sample_file)]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc.returncode == 0


def recorded_arena(tflite: bytes, sample: np.ndarray, where: str = "model") -> int:
    """Arena bytes TFLite-Micro's recording allocator reports after one invoke (generous arena)."""
    interp = _tflm_interpreter(tflite, max(4 * 1024 * 1024, 10 * len(tflite)), where)
    interp.set_input(sample, 0)
    interp.invoke()
    with captured_stderr() as err:
        interp.print_allocations()
    found = re.search(r"Arena allocation total (\d+) bytes", err.getvalue())
    if not found:
        raise KwsError(
            f"{where}: the installed tflite-micro did not report its arena use; "
            f"install the version pinned in pyproject.toml"
        )
    return int(found.group(1))


def measure_arena(tflite: bytes, sample: np.ndarray, where: str = "model") -> tuple[int, bool]:
    """TFLite-Micro arena bytes the model needs, and whether that size was checked to be minimal.

    The recording allocator's total after one invoke is the measurement. It is then confirmed in
    child processes: the model must allocate and invoke with exactly that arena and fail with 16
    bytes less (then the figure is verified minimal). Should the first check fail, the smallest
    working size is found by bisection instead. Measured in the host build (64-bit pointers,
    recording bookkeeping in the arena): an upper bound for the plain allocator on a 32-bit board.
    """
    used = recorded_arena(tflite, sample, where)
    with tempfile.TemporaryDirectory(prefix="kwstool-arena-") as tmp:
        model_file, sample_file = Path(tmp) / "model.tflite", Path(tmp) / "sample.npy"
        model_file.write_bytes(tflite)
        np.save(sample_file, np.asarray(sample, dtype=np.int8))
        if _arena_fits(model_file, sample_file, used):
            return used, not _arena_fits(model_file, sample_file, used - 16)
        lo, hi = used, 2 * used  # lo fails; find a working hi, then bisect in 16-byte steps
        while not _arena_fits(model_file, sample_file, hi):
            lo, hi = hi, 2 * hi
            if hi > _ARENA_CEILING:
                raise KwsError(
                    f"{where}: TFLite-Micro cannot run the model even with a "
                    f"{_ARENA_CEILING}-byte arena; the model is far too large"
                )
        lo, hi = lo // 16 * 16, (hi + 15) // 16 * 16
        while hi - lo > 16:
            mid = (lo + hi) // 32 * 16
            if _arena_fits(model_file, sample_file, mid):
                hi = mid
            else:
                lo = mid
        return hi, True
