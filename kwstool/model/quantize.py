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
The interpreter helpers it uses live a floor below, in :mod:`kwstool.core.tflite`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from kwstool.core.tflite import (
    MODEL_FILE,
    REPORT_FILE,
    captured_stderr,
    load_report,
    measure_arena,
    model_info,
    read_json,
    resolver_methods,
    run_litert,
    run_tflm,
    to_model_input,
)
from kwstool.core import tfenv
from kwstool.errors import KwsError

__all__ = ["MODEL_FILE", "REPORT_FILE", "load_report", "quantize", "convert"]

KERAS_FILE = "best.keras"

#: Representative samples drawn from the training split (plus the range-setting first one).
REPRESENTATIVE_COUNT = 300

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
    tfenv.quiet()
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
    with contextlib.redirect_stdout(io.StringIO()), captured_stderr(), warnings.catch_warnings():
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
    tfenv.quiet()
    import keras

    from kwstool.model.zoo import register_custom_layers

    try:
        return keras.models.load_model(path, compile=False, custom_objects=register_custom_layers())
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
    from kwstool import __version__
    from kwstool.data import load_prepared
    from kwstool.fileio import write_bytes, write_json

    say = log or (lambda _msg: None)
    run = Path(run_dir)
    keras_path = run / KERAS_FILE
    if not keras_path.exists():
        raise KwsError(f"{keras_path}: not found; train a model into {run} first (`kwstool train`)")
    config = read_json(run / "config.json", f"train a model into {run} first (`kwstool train`)")
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

    from kwstool.deploy.profile import latency_report

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
        "latency": latency_report(tflite, where),
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


