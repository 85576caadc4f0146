"""Quantize: a trained Keras model -> full-integer int8 TFLite, checked in the real TFLite-Micro.

``quantize(run_dir)`` reads ``best.keras`` from a run folder (``kwstool train`` output) and

1. converts it with :class:`tf.lite.TFLiteConverter` to a full-integer int8 model (int8 input and
   output, int8 builtin kernels only). The representative set is drawn (seeded) from the training
   split; its first sample carries one feature value -128 and one 127, so the input tensor's
   calibrated range is exactly the int8 feature range: scale 1.0, zero point 0 (the board then
   feeds its int8 features unchanged). The actual values are read back and recorded. The
   batch is fixed at 1 (no shape arithmetic in the graph) and tensor names are stripped
   (:func:`strip_names`; often a third of the file, never read by TFLite-Micro).
2. lists the model's operators from the flatbuffer and maps each to the
   ``tflite::MicroMutableOpResolver`` method the firmware calls; an operator TFLite-Micro has no
   kernel for is a one-line error naming it.
3. runs every validation and test clip through the TFLite-Micro interpreter (PyPI
   ``tflite-micro``) and through LiteRT with its reference kernels (those TFLite-Micro's and
   CMSIS-NN's kernels are bit-exact ports of; LiteRT's default optimized kernels and XNNPACK
   round differently at ties). The int8 outputs are normally bit-identical. LiteRT's PyPI build,
   however, requantizes FULLY_CONNECTED with one rounding step where TFLite-Micro rounds twice, so
   at a rounding tie an output can differ by one int8 step: that is accepted and recorded
   (``parity`` in quantize.json); ``strict=True`` refuses it, and any larger difference is an
   error.
4. measures the TFLM tensor arena: the recording allocator's figure, confirmed in a child
   interpreter to be the smallest arena that works (16-byte steps).
5. computes top-1 accuracy on validation and test: float (Keras) and int8 (TFLite-Micro's
   outputs, i.e. the board's arithmetic).

It writes ``model_int8.tflite`` and then ``quantize.json`` (the commit point), both atomically.
The runner helpers here (:func:`run_litert`, :func:`run_tflm`, :func:`model_info`) are shared with
:mod:`kwstool.evaluate`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .errors import KwsError

MODEL_FILE = "model_int8.tflite"
REPORT_FILE = "quantize.json"
KERAS_FILE = "best.keras"

#: Representative samples drawn from the training split (plus the range-setting first one).
REPRESENTATIVE_COUNT = 300
_ARENA_CEILING = 64 * 1024 * 1024

# TFLite builtin operator -> tflite::MicroMutableOpResolver method registering its kernel.
# Only operators TFLite-Micro has a kernel for appear here; the test suite checks every entry
# against the kernels compiled into the installed tflite-micro package.
TFLM_RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MAXIMUM": "AddMaximum",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_MAX": "AddReduceMax",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
}


# --- results -----------------------------------------------------------------------------------
@dataclass
class QuantizeResult:
    """What ``quantize`` wrote and measured (``quantize.json`` holds the same figures)."""

    run_dir: Path
    tflite_path: Path
    json_path: Path
    model_bytes: int
    arena_bytes: int
    ops: list[str]
    resolver_methods: list[str]
    input: dict
    output: dict
    labels: list[str]
    accuracy: dict
    tflm_matches_litert: bool
    compared: int
    report: dict = field(repr=False, default_factory=dict)


@dataclass
class ModelInfo:
    """Facts read from a .tflite flatbuffer without running it."""

    ops: list[str]                 # builtin operator names in opcode-table order, e.g. CONV_2D
    input_shape: tuple[int, ...]   # e.g. (1, 49, 40, 1)
    input_dtype: str               # "int8"
    input_scale: float
    input_zero_point: int
    output_shape: tuple[int, ...]
    output_dtype: str
    output_scale: float
    output_zero_point: int


# --- flatbuffer inspection ---------------------------------------------------------------------
def _check_tflite_bytes(data: bytes, where: str) -> None:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise KwsError(f"{where}: not a TFLite flatbuffer (no 'TFL3' identifier); "
                       f"pass the model_int8.tflite written by `kwstool quantize`")


def model_info(tflite: bytes, where: str = "model") -> ModelInfo:
    """Operators and input/output tensors of a TFLite model, read from the flatbuffer."""
    from tflite_micro.python.tflite_micro import runtime
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    _check_tflite_bytes(tflite, where)
    try:
        model = runtime.convert_bytearray_to_object(bytearray(tflite))
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        type_names = {v: k.lower() for k, v in vars(schema.TensorType).items()
                      if not k.startswith("_")}
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
            raise KwsError(f"{where}: model has {len(graph.inputs)} inputs and "
                           f"{len(graph.outputs)} outputs; kwstool needs exactly one of each")

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
        raise KwsError(f"{where}: damaged TFLite flatbuffer ({type(exc).__name__}); "
                       f"re-run `kwstool quantize`") from None
    return ModelInfo(ops=ops, input_shape=ishape, input_dtype=itype, input_scale=iscale,
                     input_zero_point=izp, output_shape=oshape, output_dtype=otype,
                     output_scale=oscale, output_zero_point=ozp)


def resolver_methods(ops: Sequence[str], where: str = "model") -> list[str]:
    """MicroMutableOpResolver methods for ``ops`` (sorted, unique); unknown op -> KwsError."""
    methods = set()
    for op in ops:
        if op not in TFLM_RESOLVER_METHODS:
            raise KwsError(f"{where}: uses operator {op}, which TFLite-Micro has no kernel for; "
                           f"change the layer that produces it in the model")
        methods.add(TFLM_RESOLVER_METHODS[op])
    return sorted(methods)


# --- running models ----------------------------------------------------------------------------
@contextlib.contextmanager
def _captured_stderr() -> Iterator[io.StringIO]:
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
        raise KwsError(f"model input {info.input_shape} does not take features of shape "
                       f"{x.shape[1:]}; the model was made for other features")
    if raw or (info.input_scale in (0.0, 1.0) and info.input_zero_point == 0):
        q = x.astype(np.int8)
    else:
        q = np.clip(np.round(x.astype(np.float64) / info.input_scale) + info.input_zero_point,
                    -128, 127).astype(np.int8)
    return q.reshape((n, 1) + tuple(info.input_shape[1:]))


def run_litert(tflite: bytes, inputs: np.ndarray) -> np.ndarray:
    """int8 outputs ``(N, labels)`` of LiteRT's reference kernels, one clip per invoke.

    The reference kernels are the ones TFLite-Micro's (and CMSIS-NN's) are bit-exact ports of.
    LiteRT's default optimized kernels and its XNNPACK delegate round differently at ties (seen
    in CONV_2D and DEPTHWISE_CONV_2D), which a deep network amplifies to several int8 steps.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=tflite, num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    i = interp.get_input_details()[0]["index"]
    o = interp.get_output_details()[0]
    out = np.empty((len(inputs), int(np.prod(o["shape"][1:]))), dtype=o["dtype"])
    for k, x in enumerate(inputs):
        interp.set_tensor(i, x)
        interp.invoke()
        out[k] = interp.get_tensor(o["index"]).reshape(-1)
    return out


def _tflm_interpreter(tflite: bytes, arena_bytes: int, where: str):
    from tflite_micro.python.tflite_micro import runtime

    with _captured_stderr() as err:
        try:
            return runtime.Interpreter.from_bytes(tflite, arena_size=int(arena_bytes))
        except RuntimeError:
            pass
    text = err.getvalue()
    missing = re.search(r"Didn't find op for builtin opcode '([^']+)'", text)
    if missing:
        raise KwsError(f"{where}: uses operator {missing.group(1)}, which the TFLite-Micro "
                       f"interpreter has no kernel for; change the layer that produces it in "
                       f"the model")
    last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "no message")
    raise KwsError(f"{where}: TFLite-Micro could not load the model with a {arena_bytes}-byte "
                   f"arena ({last}); re-run `kwstool quantize`")


def run_tflm(tflite: bytes, inputs: np.ndarray, arena_bytes: int | None = None,
             where: str = "model") -> np.ndarray:
    """int8 outputs ``(N, labels)`` of the TFLite-Micro interpreter, one clip per invoke."""
    arena = arena_bytes or max(2 * 1024 * 1024, 10 * len(tflite))
    interp = _tflm_interpreter(tflite, arena, where)
    rows = []
    failed = False
    with _captured_stderr() as err:
        try:
            for x in inputs:
                interp.set_input(x, 0)
                interp.invoke()
                rows.append(np.array(interp.get_output(0)).reshape(-1))
        except RuntimeError:
            failed = True
    if failed:
        last = next((ln.strip() for ln in reversed(err.getvalue().splitlines()) if ln.strip()),
                    "no message")
        raise KwsError(f"{where}: TFLite-Micro failed to run the model ({last}); "
                       f"re-run `kwstool quantize`")
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
    with _captured_stderr() as err:
        interp.print_allocations()
    found = re.search(r"Arena allocation total (\d+) bytes", err.getvalue())
    if not found:
        raise KwsError(f"{where}: the installed tflite-micro did not report its arena use; "
                       f"install the version pinned in pyproject.toml")
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
                raise KwsError(f"{where}: TFLite-Micro cannot run the model even with a "
                               f"{_ARENA_CEILING}-byte arena; the model is far too large")
        lo, hi = lo // 16 * 16, (hi + 15) // 16 * 16
        while hi - lo > 16:
            mid = (lo + hi) // 32 * 16
            if _arena_fits(model_file, sample_file, mid):
                hi = mid
            else:
                lo = mid
        return hi, True


#: Largest output difference (int8 steps) accepted between TFLite-Micro and LiteRT; see
#: :func:`check_parity`.
PARITY_MAX_LSB = 1
ROUNDING_NOTE = ("LiteRT's PyPI build requantizes some layers (seen in FULLY_CONNECTED) with a "
                 "single rounding step where TFLite-Micro, like CMSIS-NN on the board, rounds "
                 "twice; the two can differ by one step at a rounding tie")


def compare_outputs(tflm: np.ndarray, litert: np.ndarray) -> dict:
    """Agreement figures of two int8 output arrays ``(N, labels)``."""
    diff = np.abs(tflm.astype(np.int32) - litert.astype(np.int32))
    same_clip = ~np.any(diff, axis=1)
    same_top1 = np.argmax(tflm, axis=1) == np.argmax(litert, axis=1)
    stats = {
        "clips": int(len(tflm)),
        "identical_clips": int(np.sum(same_clip)),
        "max_abs_diff": int(diff.max()) if diff.size else 0,
        "top1_agreement": round(float(np.mean(same_top1)), 6) if len(tflm) else 1.0,
    }
    if stats["identical_clips"] != stats["clips"]:
        stats["note"] = (f"{stats['clips'] - stats['identical_clips']} of {stats['clips']} clips "
                         f"differ by at most {stats['max_abs_diff']} int8 step(s): {ROUNDING_NOTE}")
    return stats


def check_parity(stats: dict, strict: bool, where: str) -> None:
    """Fail unless TFLite-Micro and LiteRT agree.

    Bit-identical outputs pass. Otherwise a difference of at most :data:`PARITY_MAX_LSB` int8
    step passes (and is recorded) unless ``strict``: that is the known requantization-rounding
    difference between the two builds, not a portability problem. Anything larger fails.
    """
    if stats["identical_clips"] == stats["clips"]:
        return
    differ = stats["clips"] - stats["identical_clips"]
    if strict or stats["max_abs_diff"] > PARITY_MAX_LSB:
        raise KwsError(f"{where}: TFLite-Micro and LiteRT outputs differ on {differ} of "
                       f"{stats['clips']} clips (max difference {stats['max_abs_diff']}); "
                       + ("the int8 model does not run the same in TFLite-Micro, report this "
                          "with the run folder" if stats["max_abs_diff"] > PARITY_MAX_LSB
                          else "only rounding ties (re-run without --strict to accept them)"))


# --- conversion --------------------------------------------------------------------------------
def representative_features(train_features: np.ndarray, count: int = REPRESENTATIVE_COUNT,
                            seed: int = 0) -> np.ndarray:
    """A seeded draw of ``count`` training clips; the first gets one -128 and one 127 value.

    Those two extreme values make the calibrated input range exactly -128..127 (scale 1.0, zero
    point 0) without shifting the ranges the rest of the network sees.
    """
    feats = np.asarray(train_features)
    if len(feats) == 0:
        raise KwsError("training split is empty; cannot draw a representative set")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(feats), size=min(count, len(feats)), replace=False)
    rep = feats[np.sort(idx)].astype(np.int8).copy()
    rep[0, 0, 0] = -128
    rep[0, 0, 1] = 127
    return rep


def convert(model, representative: np.ndarray) -> bytes:
    """Full-integer int8 TFLite bytes of a Keras ``model`` calibrated on ``representative``,
    names stripped (:func:`strip_names`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    shape = (1,) + tuple(int(d) for d in model.input_shape[1:])
    rep = np.asarray(representative, dtype=np.float32)

    def dataset():
        for x in rep:
            yield [x.reshape(shape)]

    # A fixed batch of 1 (as on the board) keeps shape arithmetic for a dynamic batch
    # (SHAPE/STRIDED_SLICE/PACK) out of the graph.
    import keras

    fixed_input = keras.Input(batch_shape=shape, name="features")
    fixed = keras.Model(fixed_input, model(fixed_input, training=False), name=model.name)
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    # The Keras exporter prints its signature and the converter its settings: keep them quiet.
    with contextlib.redirect_stdout(io.StringIO()), _captured_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Statistics for quantized inputs were expected": fine
        try:
            tflite = bytes(converter.convert())
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise KwsError(f"TFLite converter failed ({first[:300]}); the model uses a layer "
                           f"without an int8 TFLite kernel, change it in the model") from None
    return strip_names(tflite)


def strip_names(tflite: bytes) -> bytes:
    """The model without its tensor/subgraph names and signatures (often a third of the file).

    TFLite-Micro never reads these strings; on the board they would only take flash. The
    flatbuffer is rebuilt with every weight buffer 16-byte aligned, as the converter writes it;
    that is checked, and the original is returned should any buffer end up misaligned.
    """
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    class AlignedBuffer(schema.BufferT):
        def Pack(self, builder):  # noqa: N802 - flatbuffers' naming
            data = None
            if self.data is not None and len(self.data):
                payload = np.asarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(payload), 16)
                builder.head -= len(payload)
                builder.Bytes[builder.head:builder.head + len(payload)] = payload
                data = builder.EndVector()
            schema.BufferStart(builder)
            if data is not None:
                schema.BufferAddData(builder, data)
            schema.BufferAddOffset(builder, self.offset)
            schema.BufferAddSize(builder, self.size)
            return schema.BufferEnd(builder)

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(tflite), 0))
    model.description = None
    model.signatureDefs = None
    for graph in model.subgraphs:
        graph.name = None
        for tensor in graph.tensors:
            tensor.name = None
    for i, buf in enumerate(model.buffers or []):
        aligned = AlignedBuffer()
        aligned.data, aligned.offset, aligned.size = buf.data, buf.offset, buf.size
        model.buffers[i] = aligned
    builder = flatbuffers.Builder(len(tflite))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out = bytearray(builder.Output())
    base = np.frombuffer(out, dtype=np.uint8).__array_interface__["data"][0]
    check = schema.Model.GetRootAsModel(out, 0)
    for i in range(check.BuffersLength()):
        buf = check.Buffers(i)
        if buf.DataLength() and (buf.DataAsNumpy().__array_interface__["data"][0] - base) % 16:
            return tflite
    return bytes(out)


def _load_keras(path: Path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    with contextlib.suppress(ImportError):
        from . import models  # noqa: F401  registers kwstool's custom layers, if any
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise KwsError(f"{path}: cannot load the Keras model ({first[:200]}); "
                       f"re-run `kwstool train`") from None


def float_outputs(model, features: np.ndarray, batch: int = 256) -> np.ndarray:
    """Float model outputs for int8 features (fed as their float values)."""
    shape = tuple(int(d) for d in model.input_shape[1:])
    out = []
    for s in range(0, len(features), batch):
        x = np.asarray(features[s:s + batch], dtype=np.float32).reshape((-1,) + shape)
        out.append(np.asarray(model(x, training=False)))
    n_out = int(model.output_shape[-1])
    return np.concatenate(out) if out else np.empty((0, n_out), dtype=np.float32)


def _top1(scores: np.ndarray, labels: np.ndarray) -> float | None:
    if len(labels) == 0:
        return None
    return round(float(np.mean(np.argmax(scores, axis=1) == labels)), 6)


# --- the command -------------------------------------------------------------------------------
def _read_json(path: Path, hint: str) -> dict:
    if not path.exists():
        raise KwsError(f"{path}: not found; {hint}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KwsError(f"{path}: unreadable JSON ({exc}); {hint}") from None


def _config_data_dir(config: dict) -> Path | None:
    """The prepared-data folder a run was trained on (``config.json`` ``data.path``)."""
    value = config.get("data")
    if isinstance(value, dict):
        value = value.get("path")
    return Path(value) if isinstance(value, str) and value else None


def quantize(run_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None, *,
             representative_count: int = REPRESENTATIVE_COUNT, strict: bool = False,
             log: Callable[[str], None] | None = None) -> QuantizeResult:
    """Convert ``run_dir/best.keras`` to int8 TFLite, check it in TFLM and LiteRT, measure it.

    ``data_dir`` defaults to the prepared-data folder named in ``run_dir/config.json``. Every
    validation and test clip goes through both interpreters; see :func:`check_parity` for what
    counts as agreement (``strict``: only bit-identical outputs). The int8 accuracy is
    TFLite-Micro's (the board's arithmetic). Writes ``model_int8.tflite`` and ``quantize.json``
    into ``run_dir``.
    """
    from . import __version__
    from .data import load_prepared
    from .fileio import write_bytes, write_json

    say = log or (lambda _msg: None)
    run = Path(run_dir)
    keras_path = run / KERAS_FILE
    if not keras_path.exists():
        raise KwsError(f"{keras_path}: not found; train a model into {run} first (`kwstool train`)")
    config = _read_json(run / "config.json", f"train a model into {run} first (`kwstool train`)")
    if data_dir is None:
        data_dir = _config_data_dir(config)
        if data_dir is None:
            raise KwsError(f"{run / 'config.json'}: names no prepared-data folder; "
                           f"pass it with `kwstool quantize {run} --data DATA`")
    data_dir = Path(data_dir)
    data = load_prepared(data_dir)
    labels = list(config.get("labels") or data.labels)
    if list(data.labels) != labels:
        raise KwsError(f"{data_dir}: labels {list(data.labels)} differ from the model's {labels} "
                       f"in {run / 'config.json'}; pass the data the model was trained on")
    features_params = config.get("features") or data.manifest.get("features")
    if data.manifest.get("features") and features_params != data.manifest.get("features"):
        raise KwsError(f"{data_dir}: features differ from those the model in {run} was trained "
                       f"on; re-run `kwstool prepare` with this kwstool")
    seed = int(config.get("seed", 0) or 0)

    say(f"loading {keras_path}")
    model = _load_keras(keras_path)
    if int(model.output_shape[-1]) != len(labels):
        raise KwsError(f"{keras_path}: model has {model.output_shape[-1]} outputs but the run has "
                       f"{len(labels)} labels; re-run `kwstool train`")
    train = data.split("train")
    rep = representative_features(train.features, representative_count, seed)
    say(f"converting to int8 TFLite ({len(rep)} representative clips)")
    tflite = convert(model, rep)
    where = str(run / MODEL_FILE)
    info = model_info(tflite, where)
    methods = resolver_methods(info.ops, where)
    if info.input_dtype != "int8" or info.output_dtype != "int8":
        raise KwsError(f"{where}: converter produced {info.input_dtype} input / "
                       f"{info.output_dtype} output, expected int8; re-run `kwstool quantize`")

    splits = {name: data.split(name) for name in ("validation", "test")}
    inputs = {name: to_model_input(s.features, info) for name, s in splits.items()}
    if sum(len(x) for x in inputs.values()) == 0:
        raise KwsError(f"{data_dir}: validation and test splits are empty; nothing to check the "
                       f"model on, prepare more data")
    say("running LiteRT (int8, reference kernels) on validation and test")
    litert = {name: run_litert(tflite, x) for name, x in inputs.items()}
    say("running TFLite-Micro on the same clips")
    tflm = {name: run_tflm(tflite, x, where=where) for name, x in inputs.items()}
    parity = compare_outputs(np.concatenate([tflm["validation"], tflm["test"]]),
                             np.concatenate([litert["validation"], litert["test"]]))
    check_parity(parity, strict, where)
    if parity["identical_clips"] != parity["clips"]:
        say(f"note: {parity['note']}")
    say("measuring the TFLite-Micro arena")
    sample = inputs["validation"][0] if len(inputs["validation"]) else inputs["test"][0]
    arena, arena_minimal = measure_arena(tflite, sample, where)

    say("float accuracy (Keras)")
    accuracy: dict = {"float": {}, "int8": {}}
    for name, s in splits.items():
        y = np.asarray(s.labels, dtype=np.int64)
        accuracy["float"][name] = _top1(float_outputs(model, s.features), y)
        accuracy["int8"][name] = _top1(tflm[name].astype(np.int32), y)

    from tflite_micro.python.tflite_micro import _version as tflm_version

    report = {
        "format": 1,
        "kwstool_version": __version__,
        "model": config.get("model"),
        "model_file": MODEL_FILE,
        "model_bytes": len(tflite),
        "model_sha256": hashlib.sha256(tflite).hexdigest(),
        "arena_bytes": arena,
        "arena_measurement": {
            "method": "TFLite-Micro recording allocator total after one invoke (host build, "
                      "64-bit), confirmed in a child interpreter",
            "verified_minimal": arena_minimal},
        "ops": list(info.ops),
        "op_resolver": methods,
        "input": {"shape": list(info.input_shape), "dtype": info.input_dtype,
                  "scale": info.input_scale, "zero_point": info.input_zero_point},
        "output": {"shape": list(info.output_shape), "dtype": info.output_dtype,
                   "scale": info.output_scale, "zero_point": info.output_zero_point},
        "input_spans_int8": info.input_scale == 1.0 and info.input_zero_point == 0,
        "labels": labels,
        "features": features_params,
        "data_dir": str(data_dir),
        "representative": {"split": "train", "count": int(len(rep)), "seed": seed,
                           "range_sample": "first clip holds one -128 and one 127"},
        "accuracy": accuracy,
        "tflm_matches_litert": parity["identical_clips"] == parity["clips"],
        "parity": {**parity, "litert_kernels": "reference (BUILTIN_REF)",
                   "tflite_micro_version": tflm_version.__version__},
    }
    tflite_path = run / MODEL_FILE
    json_path = run / REPORT_FILE
    try:
        write_bytes(tflite_path, tflite)
        write_json(json_path, report)  # last: the commit point
    except OSError as exc:
        raise KwsError(f"{run}: cannot write {MODEL_FILE}/{REPORT_FILE} ({exc.strerror or exc}); "
                       f"make the run folder writable") from None
    return QuantizeResult(run_dir=run, tflite_path=tflite_path, json_path=json_path,
                          model_bytes=len(tflite), arena_bytes=arena, ops=list(info.ops),
                          resolver_methods=methods, input=report["input"], output=report["output"],
                          labels=labels, accuracy=accuracy,
                          tflm_matches_litert=report["tflm_matches_litert"],
                          compared=parity["clips"], report=report)


def load_report(tflite_path: str | os.PathLike) -> dict:
    """``quantize.json`` beside a .tflite, checked to describe that very file."""
    p = Path(tflite_path)
    report = _read_json(p.with_name(REPORT_FILE), f"run `kwstool quantize` on the run folder "
                        f"holding {p.name}, or pass --labels")
    data = p.read_bytes()
    if report.get("model_sha256") and report["model_sha256"] != hashlib.sha256(data).hexdigest():
        raise KwsError(f"{p.with_name(REPORT_FILE)}: describes a different {p.name} (checksum "
                       f"differs); re-run `kwstool quantize`")
    return report
