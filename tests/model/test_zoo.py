"""The model zoo: shapes, int8 conversion with only TFLite-Micro ops, the default's budgets."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kwstool.errors import KwsError
from kwstool.model import zoo as models

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: Kernels the firmware's TFLite-Micro build registers for keyword models.
TFLM_OPS = {
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "RESHAPE",
    "SOFTMAX",
    "ADD",
    "MUL",
    "MEAN",
    "RELU",
    "STRIDED_SLICE",
}
MODEL_BUDGET_BYTES = 64 * 1024
ARENA_BUDGET_BYTES = 32 * 1024


def to_int8_tflite(model) -> bytes:
    """Full-integer int8 conversion (kwstool.quantize.convert), calibrated on random features
    spanning -128..127."""
    from kwstool.model.quantize import convert

    rng = np.random.default_rng(0)
    rep = rng.integers(-128, 128, size=(8, 49, 40)).astype(np.int8)
    rep[0, 0, 0], rep[0, 0, 1] = -128, 127
    return convert(model, rep)


def op_names(tflite: bytes) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    return [op["op_name"] for op in Interpreter(model_content=tflite)._get_ops_details()]


@pytest.fixture(scope="module", params=sorted(models.MODELS))
def converted(request):
    import keras

    name = request.param
    keras.utils.set_random_seed(0)
    model = models.build_model(name, 12, batch_size=1)
    return name, model, to_int8_tflite(model)


def test_registry():
    assert sorted(models.MODELS) == ["bc_resnet", "ds_cnn", "ds_tcn", "tc_resnet", "tiny_conv"]
    assert models.DEFAULT_MODEL == "ds_tcn"


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_model_shapes(name):
    model = models.build_model(name, 7)
    assert model.name == name
    assert model.input_shape == (None, 49, 40, 1)
    assert model.output_shape == (None, 7)
    x = np.random.default_rng(1).integers(-128, 128, size=(3, 49, 40, 1)).astype(np.float32)
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert models.build_model(name, 7, batch_size=1).input_shape == (1, 49, 40, 1)


def test_conversion_uses_only_tflm_ops(converted):
    name, model, tflite = converted
    ops = op_names(tflite)
    assert set(ops) <= TFLM_OPS, f"{name}: {sorted(set(ops) - TFLM_OPS)}"
    # The input scaling is folded into the first convolution and BN into the convolutions.
    first = next(op for op in ops if op != "RESHAPE")  # ds_tcn reshapes its input first
    assert first == "CONV_2D" and "MUL" not in ops
    # Every ADD is a residual/broadcast add of the architecture (none is a leftover BN shift).
    adds = sum(type(layer).__name__ == "Add" for layer in model.layers)
    assert ops.count("ADD") == adds
    assert ops[-1] == "SOFTMAX"
    assert "FULLY_CONNECTED" not in ops and "MEAN" not in ops


def test_int8_input_is_the_feature_values_unchanged(converted):
    from ai_edge_litert.interpreter import Interpreter

    _, _, tflite = converted
    interp = Interpreter(model_content=tflite)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert inp["dtype"] == np.int8 and tuple(inp["shape"]) == (1, 49, 40, 1)
    assert inp["quantization"] == (1.0, 0)
    assert out["dtype"] == np.int8 and tuple(out["shape"]) == (1, 12)
    assert out["quantization"] == (1 / 256, -128)


def test_tflm_and_litert_reference_kernels_give_identical_outputs(converted):
    """Every op of every model runs bit-identically in TFLite-Micro and in LiteRT's reference
    kernels. (The output layer is a CONV_2D because int8 FULLY_CONNECTED is not exact even
    there; LiteRT's optimized kernels may still differ by one in a few softmax outputs.)"""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    name, _, tflite = converted
    x = np.random.default_rng(3).integers(-128, 128, size=(40, 1, 49, 40, 1)).astype(np.int8)
    litert = Interpreter(
        model_content=tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_REF
    )
    litert.allocate_tensors()
    tflm = runtime.Interpreter.from_bytes(tflite, arena_size=512 * 1024)
    for clip in x:
        litert.set_tensor(litert.get_input_details()[0]["index"], clip)
        litert.invoke()
        tflm.set_input(clip, 0)
        tflm.invoke()
        expected = litert.get_tensor(litert.get_output_details()[0]["index"])
        assert np.array_equal(np.asarray(tflm.get_output(0)), expected), name


def test_default_model_fits_the_board_budget():
    from tflite_micro.python.tflite_micro import runtime

    tflite = to_int8_tflite(models.build_model(models.DEFAULT_MODEL, 12, batch_size=1))
    assert len(tflite) <= MODEL_BUDGET_BYTES
    interp = runtime.Interpreter.from_bytes(tflite, arena_size=ARENA_BUDGET_BYTES)
    interp.set_input(np.zeros((1, 49, 40, 1), np.int8), 0)
    interp.invoke()
    assert np.asarray(interp.get_output(0)).shape == (1, 12)


def test_unknown_model_and_bad_label_count_are_clear_errors():
    with pytest.raises(KwsError) as exc:
        models.build_model("lstm", 12)
    assert str(exc.value) == (
        "unknown model 'lstm'; choose one of: bc_resnet, ds_cnn, ds_tcn, tc_resnet, tiny_conv"
    )
    with pytest.raises(KwsError) as exc:
        models.build_model("tiny_conv", 1)
    assert str(exc.value) == "a model needs at least 2 labels, got 1"


_ONE_STEP = """
import numpy as np, keras
from kwstool.model import zoo as models
keras.utils.set_random_seed(0)
x = np.random.default_rng(0).integers(-128, 128, size=(8, 49, 40, 1)).astype("float32")
y = keras.utils.to_categorical(np.arange(8) % 12, 12)
for name in sorted(models.MODELS):
    net = models.build_model(name, 12)
    net.compile(optimizer="adam", loss="categorical_crossentropy")
    loss = net.train_on_batch(x, y)
    assert np.isfinite(loss), name
    print("trained", name)
"""


@pytest.mark.slow
def test_every_model_trains_a_step_on_stock_kernels():
    """One training step of every zoo model with TensorFlow's stock CPU kernels (oneDNN off),
    what most users' CPUs run (AMD, older Intel, arm64), whatever this machine would pick."""
    import subprocess
    import sys

    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", _ONE_STEP], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [w for n in sorted(models.MODELS) for w in ("trained", n)]
