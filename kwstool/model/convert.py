"""Keras model -> full-integer int8 TFLite bytes (the conversion step of ``kwstool quantize``).

The representative set is drawn (seeded) from the training split; its first sample carries one
feature value -128 and one 127, so the input tensor's calibrated range is exactly the int8
feature range: scale 1.0, zero point 0 (the board then feeds its int8 features unchanged). The
batch is fixed at 1 (no shape arithmetic in the graph) and tensor names are stripped
(:func:`strip_names`; often a third of the file, never read by TFLite-Micro).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core import tfenv
from kwstool.core.tflite import captured_stderr
from kwstool.errors import KwsError

#: Representative samples drawn from the training split (plus the range-setting first one).
REPRESENTATIVE_COUNT = 300


def representative_features(
    train_features: np.ndarray, count: int = REPRESENTATIVE_COUNT, seed: int = 0
) -> np.ndarray:
    """A seeded draw of ``count`` training clips; the first gets one -128 and one 127 value.

    Those two extreme values make the calibrated input range exactly -128..127 (scale 1.0, zero
    point 0) without shifting the ranges the rest of the network sees.
    """
    feats = np.asarray(train_features)
    if len(feats) == 0:
        raise KwsError("training split is empty; cannot draw a representative set")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(feats), size=min(count, len(feats)), replace=False)
    rep: np.ndarray = feats[np.sort(idx)].astype(np.int8)
    rep[0, 0, 0] = -128
    rep[0, 0, 1] = 127
    return rep


def convert(model: Any, representative: np.ndarray) -> bytes:
    """Full-integer int8 TFLite bytes of a Keras ``model`` calibrated on ``representative``,
    names stripped (:func:`strip_names`)."""
    tfenv.quiet()
    import tensorflow as tf

    shape = (1, *(int(d) for d in model.input_shape[1:]))
    rep = np.asarray(representative, dtype=np.float32)

    def dataset() -> Iterator[list[np.ndarray]]:
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
    with (
        contextlib.redirect_stdout(io.StringIO()),
        captured_stderr(),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # "Statistics for quantized inputs were expected": fine
        try:
            tflite = bytes(converter.convert())
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise KwsError(
                f"TFLite converter failed ({first[:300]}); the model uses a layer "
                f"without an int8 TFLite kernel, change it in the model"
            ) from None
    return strip_names(tflite)


def strip_names(tflite: bytes) -> bytes:
    """The model without its tensor/subgraph names and signatures (often a third of the file).

    TFLite-Micro never reads these strings; on the board they would only take flash. The
    flatbuffer is rebuilt with every weight buffer 16-byte aligned, as the converter writes it;
    that is checked, and the original is returned should any buffer end up misaligned.
    """
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    class AlignedBuffer(schema.BufferT):  # type: ignore[misc]  # generated, untyped
        def Pack(self, builder: Any) -> Any:  # noqa: N802 - flatbuffers' naming
            data = None
            if self.data is not None and len(self.data):
                payload = np.asarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(payload), 16)
                builder.head -= len(payload)
                builder.Bytes[builder.head : builder.head + len(payload)] = payload
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


def load_keras(path: Path) -> Any:
    tfenv.quiet()
    import keras

    from kwstool.model.zoo import register_custom_layers

    try:
        return keras.models.load_model(path, compile=False, custom_objects=register_custom_layers())
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise KwsError(
            f"{path}: cannot load the Keras model ({first[:200]}); re-run `kwstool train`"
        ) from None


def float_outputs(model: Any, features: np.ndarray, batch: int = 256) -> np.ndarray:
    """Float model outputs for int8 features (fed as their float values)."""
    shape = tuple(int(d) for d in model.input_shape[1:])
    out = []
    for s in range(0, len(features), batch):
        x = np.asarray(features[s : s + batch], dtype=np.float32).reshape((-1, *shape))
        out.append(np.asarray(model(x, training=False)))
    n_out = int(model.output_shape[-1])
    return np.concatenate(out) if out else np.empty((0, n_out), dtype=np.float32)
