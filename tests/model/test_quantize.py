"""quantize: int8 TFLite checked in the real TFLite-Micro interpreter against LiteRT.

The demo data and the quantized tiny run are session fixtures of conftest.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO, LABELS, TINY_METHODS, TINY_OPS, WORDS, make_run, prepare_demo, tiny_model  # noqa: F401

from kwstool.errors import KwsError


# --- quantize ------------------------------------------------------------------------------------
def test_quantize_writes_int8_model_checked_in_tflm(quantized_run, demo_data):
    from kwstool.data import load_prepared

    run, q = quantized_run
    tflite = (run / "model_int8.tflite").read_bytes()
    report = json.loads((run / "quantize.json").read_text())
    data = load_prepared(demo_data)
    n_val_test = len(data.split("validation").labels) + len(data.split("test").labels)

    assert q.tflite_path == run / "model_int8.tflite"
    assert report["model_bytes"] == q.model_bytes == len(tflite)
    assert report["model_sha256"] == hashlib.sha256(tflite).hexdigest()
    assert report["input"]["dtype"] == report["output"]["dtype"] == "int8"
    # The representative set's extremes give the identity input quantization.
    assert (report["input"]["scale"], report["input"]["zero_point"]) == (1.0, 0)
    assert report["input_spans_int8"] is True
    assert (report["output"]["scale"], report["output"]["zero_point"]) == (0.00390625, -128)
    assert report["ops"] == TINY_OPS
    assert report["op_resolver"] == TINY_METHODS
    assert report["labels"] == LABELS
    assert report["tflm_matches_litert"] is True
    parity = report["parity"]
    assert parity["clips"] == parity["identical_clips"] == q.compared == n_val_test
    assert report["parity"]["max_abs_diff"] == 0 and report["parity"]["top1_agreement"] == 1.0
    assert report["arena_measurement"]["verified_minimal"] is True
    assert 1024 < report["arena_bytes"] < 64 * 1024 and report["arena_bytes"] % 16 == 0
    for kind in ("float", "int8"):
        for split in ("validation", "test"):
            assert 0.0 <= report["accuracy"][kind][split] <= 1.0
    # The tiny model learned something, and int8 stays close to float.
    assert report["accuracy"]["float"]["test"] > 0.5
    assert abs(report["accuracy"]["int8"]["test"] - report["accuracy"]["float"]["test"]) <= 0.05
    # quantize.json is a typed, versioned record carrying the front end's hash
    from kwstool.core.artifacts import QuantizeReport
    from kwstool.core.contract import FRONTEND_HASH

    assert (report["schema"], report["version"]) == ("kwstool.quantize_report", 2)
    assert QuantizeReport.from_json(run / "quantize.json").to_dict() == report
    assert report["features"]["frontend_hash"] == FRONTEND_HASH


def test_stripped_model_is_aligned_and_runs_the_same(quantized_run, demo_data, monkeypatch):
    """Names stripped, every weight buffer 16-byte aligned, outputs unchanged."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    from kwstool.core.tflite import model_info, run_tflm, to_model_input
    from kwstool.data import load_prepared
    from kwstool.model import convert as qmod

    run, _ = quantized_run
    tflite = (run / "model_int8.tflite").read_bytes()
    raw = bytearray(tflite)
    base = np.frombuffer(raw, np.uint8).__array_interface__["data"][0]
    model = schema.Model.GetRootAsModel(raw, 0)
    graph = model.Subgraphs(0)
    assert {graph.Tensors(i).Name() for i in range(graph.TensorsLength())} == {None}
    assert model.SignatureDefsLength() == 0
    offsets = [
        model.Buffers(i).DataAsNumpy().__array_interface__["data"][0] - base
        for i in range(model.BuffersLength())
        if model.Buffers(i).DataLength()
    ]
    assert offsets and all(o % 16 == 0 for o in offsets)
    assert qmod.strip_names(tflite) == tflite  # idempotent
    # The converter's own output (names kept) is larger and computes the same.
    data = load_prepared(demo_data)
    rep = qmod.representative_features(data.split("train").features, seed=0)
    monkeypatch.setattr(qmod, "strip_names", lambda b: b)
    named = qmod.convert(qmod.load_keras(run / "best.keras"), rep)
    assert len(tflite) < len(named)
    x = to_model_input(data.split("test").features, model_info(tflite))
    assert np.array_equal(run_tflm(tflite, x), run_tflm(named, x))


def test_tflm_outputs_identical_to_litert_on_every_clip(quantized_run, demo_data):
    from kwstool.core.tflite import model_info, run_litert, run_tflm, to_model_input
    from kwstool.data import load_prepared

    run, q = quantized_run
    tflite = (run / "model_int8.tflite").read_bytes()
    feats = load_prepared(demo_data).split("test").features
    x = to_model_input(feats, model_info(tflite))
    tflm, litert = run_tflm(tflite, x, q.arena_bytes), run_litert(tflite, x)
    assert tflm.dtype == litert.dtype == np.int8
    assert tflm.shape == litert.shape == (len(feats), 4)
    assert np.array_equal(tflm, litert)
    # The int8 accuracy on record is exactly what these outputs give.
    y = np.asarray(load_prepared(demo_data).split("test").labels)
    assert round(float(np.mean(np.argmax(litert, axis=1) == y)), 6) == q.accuracy["int8"]["test"]


def test_measured_arena_is_exactly_the_minimum(quantized_run, tmp_path):
    from kwstool.core.tflite import _arena_fits

    run, q = quantized_run
    model = run / "model_int8.tflite"
    sample = tmp_path / "x.npy"
    np.save(sample, np.zeros((1, 49, 40, 1), np.int8))
    assert _arena_fits(model, sample, q.arena_bytes)
    assert not _arena_fits(model, sample, q.arena_bytes - 16)


def test_quantize_twice_gives_identical_bytes(quantized_run, tmp_path):
    from kwstool.model.quantize import quantize

    run, q = quantized_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "model_int8.tflite").unlink()
    (copy / "quantize.json").unlink()
    again = quantize(copy)
    assert (copy / "model_int8.tflite").read_bytes() == (run / "model_int8.tflite").read_bytes()
    assert again.arena_bytes == q.arena_bytes
    assert again.accuracy == q.accuracy


@pytest.mark.slow
def test_same_seed_training_gives_identical_tflite(demo_data, tmp_path):
    """`kwstool train` with the same seed twice, then quantize: identical .tflite bytes."""
    from kwstool.model.quantize import quantize
    from kwstool.model.train import train

    blobs = []
    for name in ("a", "b"):
        run = tmp_path / name
        train(demo_data, run, model="tiny_conv", epochs=2, seed=7, progress=False)
        quantize(run)
        blobs.append((run / "model_int8.tflite").read_bytes())
    assert blobs[0] == blobs[1]


@pytest.mark.parametrize(
    "delta,strict,outcome",
    [
        (1, False, "accepted"),  # a rounding tie: recorded, not an error
        (
            1,
            True,
            r"differ on 1 of \d+ clips \(max difference 1\); only rounding ties \(re-run "
            r"without --strict to accept them\)$",
        ),
        (
            3,
            False,
            r"differ on 1 of \d+ clips \(max difference 3\); the int8 model does not run "
            r"the same in TFLite-Micro, report this with the run folder$",
        ),
    ],
)
def test_interpreter_disagreement(quantized_run, tmp_path, monkeypatch, delta, strict, outcome):
    from kwstool.model import quantize as qmod

    run, q = quantized_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for name in ("model_int8.tflite", "quantize.json"):
        (copy / name).unlink()
    real = qmod.run_tflm
    calls = []

    def nudged(tflite, inputs, arena_bytes=None, where="model"):
        out = real(tflite, inputs, arena_bytes, where).copy()
        if not calls:  # validation split: change one output of clip 3
            out[3, 0] = np.int8(int(out[3, 0]) + (delta if out[3, 0] < 100 else -delta))
        calls.append(len(inputs))
        return out

    monkeypatch.setattr(qmod, "run_tflm", nudged)
    if outcome == "accepted":
        result = qmod.quantize(copy, strict=strict)
        parity = json.loads((copy / "quantize.json").read_text())["parity"]
        assert result.tflm_matches_litert is False
        assert parity["identical_clips"] == parity["clips"] - 1 == q.compared - 1
        assert parity["max_abs_diff"] == 1
        assert parity["note"].startswith(
            f"1 of {q.compared} clips differ by at most 1 int8 step(s)"
        )
    else:
        with pytest.raises(KwsError, match=outcome):
            qmod.quantize(copy, strict=strict)
        assert sorted(p.name for p in copy.iterdir()) == ["best.keras", "config.json"]


def _with_op(tflite: bytes, old: str, new: str) -> bytes:
    """The model with operator ``old`` relabelled as builtin ``new`` in its opcode table."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(tflite), 0))
    codes = vars(schema.BuiltinOperator)
    for oc in model.operatorCodes:
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == codes[old]:
            oc.builtinCode = codes[new]
            oc.deprecatedBuiltinCode = min(codes[new], 127)
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_operator_without_tflm_kernel_is_named(quantized_run):
    from kwstool.core.tflite import _tflm_interpreter, model_info, resolver_methods

    tflite = (quantized_run[0] / "model_int8.tflite").read_bytes()
    patched = _with_op(tflite, "SOFTMAX", "TOPK_V2")
    ops = model_info(patched).ops
    assert ops == ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "RESHAPE", "TOPK_V2"]
    with pytest.raises(KwsError) as exc:
        resolver_methods(ops, "m.tflite")
    assert str(exc.value) == (
        "m.tflite: uses operator TOPK_V2, which TFLite-Micro has no kernel "
        "for; change the layer that produces it in the model"
    )
    # The interpreter itself refuses it too, and the message names the operator.
    with pytest.raises(
        KwsError,
        match=r"^m.tflite: uses operator TOPK_V2, which the TFLite-Micro "
        r"interpreter has no kernel for",
    ):
        _tflm_interpreter(patched, 1 << 20, "m.tflite")


def test_resolver_table_only_names_kernels_tflm_has():
    """Every op in the table has a Register_<OP> kernel in the installed TFLite-Micro."""
    from tflite_micro.python.tflite_micro import runtime

    from kwstool.core.tflite import TFLM_RESOLVER_METHODS

    so = next(Path(runtime.__file__).parent.glob("_runtime*.so")).read_bytes()
    missing = [op for op in TFLM_RESOLVER_METHODS if f"Register_{op}Ev".encode() not in so]
    assert missing == []
    assert all(m.startswith("Add") for m in TFLM_RESOLVER_METHODS.values())


def test_not_a_tflite_file_is_a_clear_error(tmp_path):
    from kwstool.core.tflite import model_info

    with pytest.raises(KwsError, match=r"^bad.tflite: not a TFLite flatbuffer"):
        model_info(b"\x00" * 64, "bad.tflite")


def test_quantize_without_training_is_a_clear_error(tmp_path):
    from kwstool.model.quantize import quantize

    with pytest.raises(KwsError) as exc:
        quantize(tmp_path / "nothing")
    assert str(exc.value) == (
        f"{tmp_path / 'nothing' / 'best.keras'}: not found; train a model "
        f"into {tmp_path / 'nothing'} first (`kwstool train`)"
    )


def test_run_from_another_front_end_is_refused(quantized_run, tmp_path):
    """A run trained on another C front end's features is refused before converting."""
    from kwstool.core.contract import FRONTEND_HASH
    from kwstool.model.quantize import quantize

    run, _ = quantized_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["features"]["frontend_hash"] = "0" * 64
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(KwsError) as exc:
        quantize(copy)
    assert str(exc.value) == (
        f"{copy / 'config.json'}: features were computed by another C front end (hash "
        f"000000000000, this kwstool {FRONTEND_HASH[:12]}); re-run `kwstool prepare --force`, "
        f"then `kwstool train`"
    )
    del config["data"]
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        KwsError,
        match=r"config.json: field 'data' missing; re-run `kwstool "
        r"train`$",
    ):
        quantize(copy)


def test_cli_quantize(quantized_run, tmp_path, capsys):
    from kwstool.cli import main

    run, q = quantized_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert main(["quantize", str(copy)]) == 0
    out = capsys.readouterr().out
    assert f"TFLite-Micro arena {q.arena_bytes} bytes" in out
    assert (copy / "model_int8.tflite").read_bytes() == (run / "model_int8.tflite").read_bytes()
    assert main(["quantize", str(tmp_path / "missing")]) == 2
    assert "best.keras: not found" in capsys.readouterr().err
