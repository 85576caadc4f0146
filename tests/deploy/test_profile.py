"""Latency profile: cost model on every zoo model, kernel classification, real-time period, the
missing-tool errors, the CLI command, and (when the toolchain, QEMU and the TFLM sources are
here) the m4sim measurement against the cost model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kwstool.deploy import costmodel, measure, profile as prof
from kwstool.errors import KwsError


def _representative(shape, n=4, seed=0):
    rng = np.random.default_rng(seed)
    rep = rng.integers(-128, 128, size=(n,) + tuple(shape)).astype(np.float32)
    rep.reshape(n, -1)[0, :2] = (-128, 127)
    return rep


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    """Every zoo model, untrained, converted to int8 (latency depends on shapes only)."""
    from kwstool.model.quantize import convert
    from kwstool.model.zoo import MODELS, build_model

    out = tmp_path_factory.mktemp("zoo")
    paths = {}
    for name in MODELS:
        model = build_model(name, 12, batch_size=1)
        p = out / f"{name}.tflite"
        p.write_bytes(convert(model, _representative(model.input_shape[1:])))
        paths[name] = p
    return paths


def test_cost_model_every_zoo_model(zoo):
    for name, path in zoo.items():
        r = prof.profile(path, board="nano33ble")
        assert r.ops and not r.measured, name
        assert r.est_cycles > 0 and r.est_ms > 0, name
        assert all(o.est_cycles > 0 for o in r.ops), name
        mhz = costmodel.BOARD_TIMING["nano33ble"].clock_mhz
        assert r.est_ms == pytest.approx(r.est_cycles / mhz / 1000.0)
        for o in r.ops:
            assert o.est_ms == pytest.approx(o.est_cycles / mhz / 1000.0)
        assert r.est_cycles == pytest.approx(sum(o.est_cycles for o in r.ops))
        assert r.latency_ms == r.est_ms
        d = r.to_dict()
        assert d["source"] == "cost model" and len(d["ops"]) == len(r.ops)
        json.dumps(d, default=list)


def test_kernel_paths_bc_resnet(zoo):
    ops = prof.profile(zoo["bc_resnet"]).ops
    adds = [o for o in ops if o.op == "ADD"]
    broadcast = [o for o in adds if len(set(o.input_shapes)) > 1]
    equal = [o for o in adds if len(set(o.input_shapes)) == 1]
    assert broadcast and equal
    assert all(o.path == "reference" and o.kernel == "BroadcastAdd4DSlow" for o in broadcast)
    assert all(o.path == "cmsis-nn" and o.kernel == "arm_elementwise_add_s8" for o in equal)
    # per element, the reference broadcast costs more than the CMSIS-NN add
    per_el = {o.kernel: o.est_instructions / np.prod(o.output_shape) for o in adds}
    assert per_el["BroadcastAdd4DSlow"] > per_el["arm_elementwise_add_s8"]
    convs = [o for o in ops if o.op == "CONV_2D"]
    assert convs[0].op_class == "conv cin=1" and convs[0].kernel == "arm_convolve_s8"
    assert any(o.kernel == "arm_convolve_1x1_s8_fast" for o in convs)
    dilated = [o for o in ops if o.op == "DEPTHWISE_CONV_2D" and o.params["dilation"] != (1, 1)]
    assert dilated and all(o.kernel == "arm_depthwise_conv_s8" for o in dilated)


def test_kernel_paths_ds_cnn(zoo):
    ops = prof.profile(zoo["ds_cnn"]).ops
    dw = [o for o in ops if o.op == "DEPTHWISE_CONV_2D"]
    assert dw and all(o.kernel == "arm_depthwise_conv_3x3_s8" for o in dw)
    assert ops[-1].kernel == "arm_softmax_s8"


def test_esp32_is_an_estimate(zoo):
    r = prof.profile(zoo["tc_resnet"], board="esp32dev")
    assert r.clock_mhz == 240.0 and "estimate" in r.estimate_note.lower()
    assert r.est_ms == pytest.approx(r.est_cycles / 240.0 / 1000.0)
    with pytest.raises(KwsError, match="no emulator for esp32dev"):
        prof.profile(zoo["tc_resnet"], board="esp32dev", measure=True)
    with pytest.raises(KwsError, match="unknown board"):
        prof.profile(zoo["tc_resnet"], board="uno")


def test_inference_period():
    assert prof.inference_period_ms(10.0) == 20
    assert prof.inference_period_ms(16.0) == 20  # 16 * 1.25 = 20
    assert prof.inference_period_ms(16.1) == 40
    assert prof.inference_period_ms(250.0) == 320
    # the front end's frames of the period count too: 250*1.25 + 16 * 2.3 = 349.3 -> 360
    assert prof.inference_period_ms(250.0, 2.3) == 360
    assert prof.inference_period_ms(400.0) == 500
    assert prof.inference_period_ms(400.1) is None
    for lat in (1, 33, 99, 151, 333):
        p = prof.inference_period_ms(lat, 2.0)
        assert p % prof.FEATURE_STRIDE_MS == 0 and p >= lat * prof.LATENCY_MARGIN


def test_check_realtime(zoo):
    fast = prof.profile(zoo["tc_resnet"])
    assert prof.check_realtime(fast, "nano33ble") == prof.inference_period_ms(
        fast.latency_ms, fast.frontend_ms_per_frame
    )
    slow = prof.profile(zoo["ds_cnn"])  # ~40 M instructions: ~850 ms on the Nano
    with pytest.raises(KwsError) as exc:
        prof.check_realtime(slow, "nano33ble")
    msg = str(exc.value)
    assert "\n" not in msg and "cannot keep real time" in msg and "--force" in msg
    with pytest.raises(KwsError, match="needs .* > the 20 ms period"):
        prof.check_realtime(fast, "nano33ble", period_ms=20)
    with pytest.raises(KwsError, match="multiple of the 20 ms"):
        prof.check_realtime(fast, "nano33ble", period_ms=30)
    assert prof.check_realtime(fast, "nano33ble", period_ms=200) == 200


# --- measurement: errors when something is missing --------------------------------------------
def test_missing_tflm_sources(zoo, monkeypatch, tmp_path):
    monkeypatch.delenv("KWSTOOL_TFLM_SRC", raising=False)
    monkeypatch.setattr(measure, "REPO_ROOT", tmp_path)  # no firmware/.pio here
    monkeypatch.setattr(measure, "check_tools", lambda: None)  # the one measure_m4 calls
    with pytest.raises(KwsError) as exc:
        prof.profile(zoo["tc_resnet"], measure=True)
    msg = str(exc.value)
    assert "\n" not in msg and "pio run" in msg and "--tflm-src" in msg
    with pytest.raises(KwsError, match="not the Chirale_TensorFlowLite library"):
        prof.profile(zoo["tc_resnet"], measure=True, tflm_src=tmp_path)


@pytest.mark.parametrize(
    "missing, expect",
    [
        ("qemu-system-arm", "apt-get install qemu-system-arm"),
        ("arm-none-eabi-g++", "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"),
    ],
)
def test_missing_tools(zoo, monkeypatch, missing, expect):
    real = shutil.which
    monkeypatch.setattr(measure.shutil, "which", lambda t: None if t == missing else real(t) or t)
    with pytest.raises(KwsError) as exc:
        prof.profile(zoo["tc_resnet"], measure=True, tflm_src="/nonexistent")
    msg = str(exc.value)
    assert "\n" not in msg and missing in msg and expect in msg


def test_parse_output_checks_calibration():
    good = (
        "M4SIM calibration loop_instructions=100 measured_instructions=100\n"
        "M4SIM invoke run=1 instructions=5000 ops=1\n"
        "M4SIM op index=0 name=CONV_2D instructions=4800\n"
        "M4SIM frontend frames=49 instructions_per_frame=108000 instructions_max=1\n"
        "M4SIM done\n"
    )
    out = prof.parse_output(good)
    assert out["ops"] == [("CONV_2D", 4800)] and out["invoke_instructions"] == 5000
    with pytest.raises(KwsError, match="calibration"):
        prof.parse_output(good.replace("measured_instructions=100", "measured_instructions=4"))
    with pytest.raises(KwsError, match="stopped before the end"):
        prof.parse_output(good.replace("M4SIM done\n", ""))
    with pytest.raises(KwsError, match="AllocateTensors"):
        prof.parse_output("M4SIM error AllocateTensors failed\n")


# --- CLI ---------------------------------------------------------------------------------------
def test_cli_profile(zoo):
    import typer
    from typer.testing import CliRunner

    from kwstool.cli.profile import register

    app = typer.Typer()

    @app.callback()
    def _main():
        pass

    register(app)
    runner = CliRunner()
    res = runner.invoke(app, ["profile", str(zoo["bc_resnet"]), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["board"] == "nano33ble" and d["source"] == "cost model"
    assert any(o["kernel"] == "BroadcastAdd4DSlow" for o in d["ops"])
    res = runner.invoke(app, ["profile", str(zoo["tc_resnet"])], terminal_width=200)
    assert res.exit_code == 0 and "total" in res.output and "inference period" in res.output
    res = runner.invoke(app, ["profile", "/nonexistent.tflite"])
    assert isinstance(res.exception, KwsError)


def test_profile_table_fits_80_columns_and_never_cuts_a_number(zoo):
    """Issue 23: at 80 columns the text columns wrap; every number is printed whole."""
    import io

    from rich.console import Console

    from kwstool.cli.profile import render

    for name in ("ds_tcn", "bc_resnet"):
        result = prof.profile(zoo[name])
        buf = io.StringIO()
        render(result, Console(file=buf, width=80, soft_wrap=False))
        text = buf.getvalue()
        assert max(len(line) for line in text.splitlines()) <= 80
        assert "\u2026" not in text  # no ellipsis anywhere
        for o in result.ops:
            assert f" {o.est_cycles:,.0f} " in text and f" {o.est_ms:.2f}" in text
        assert f" {result.est_cycles:,.0f} " in text


# --- measurement on QEMU -----------------------------------------------------------------------
def _tflm_src() -> str | None:
    src = os.environ.get("KWSTOOL_TFLM_SRC")
    if src:
        return src
    libdeps = prof.REPO_ROOT / "firmware" / ".pio" / "libdeps"
    found = sorted(libdeps.glob(f"*/{prof.TFLM_LIB}"))
    return str(found[0]) if found else None


def test_measure_agrees_with_cost_model(zoo):
    missing = [t for t in (prof.CXX, prof.QEMU, "make") if shutil.which(t) is None]
    if missing:
        pytest.skip(
            f"--measure needs {', '.join(missing)} (apt-get install "
            f"{prof.APT_TOOLCHAIN} qemu-system-arm)"
        )
    src = _tflm_src()
    if src is None:
        pytest.skip(
            "TFLite-Micro sources absent: set KWSTOOL_TFLM_SRC to the pinned "
            "Chirale_TensorFlowLite checkout, or `pio run` in firmware/ once"
        )
    r = prof.profile(zoo["tc_resnet"], measure=True, tflm_src=src)
    assert r.measured and r.source.startswith("m4sim")
    assert all(o.measured_instructions and o.measured_instructions > 0 for o in r.ops)
    per_op = sum(o.measured_instructions for o in r.ops)
    assert per_op <= r.measured_instructions  # Invoke = ops + interpreter overhead
    assert r.measured_instructions < per_op * 1.05
    assert r.est_instructions == pytest.approx(r.measured_instructions, rel=0.15)
    assert r.latency_ms == r.measured_ms
    assert r.measured_ms == pytest.approx(
        r.measured_instructions * r.cycles_per_instruction / r.clock_mhz / 1000.0
    )
    assert 50_000 < r.frontend_instructions_per_frame < 200_000
    assert (
        r.measurement["calibration"]["loop_instructions"]
        == r.measurement["calibration"]["measured_instructions"]
    )


# --- export and quantize carry the latency -----------------------------------------------------
def test_quantize_report_has_latency_per_board(quantized_run):
    _, q = quantized_run
    lat = q.report["latency"]
    assert set(lat) == set(costmodel.BOARD_TIMING)
    for board, d in lat.items():
        assert d["inference_ms"] > 0 and d["source"].startswith("cost model"), board
        assert d["inference_period_ms"] % prof.FEATURE_STRIDE_MS == 0
    assert "estimate" in lat["esp32dev"]["note"].lower()


def _define(header: str, name: str) -> str:
    import re

    m = re.search(rf"^#define {name} +(\S+)$", header, flags=re.MULTILINE)
    return m.group(1) if m else ""


def test_export_writes_the_inference_period(quantized_run, tmp_path):
    from kwstool.deploy.export import export

    run, _ = quantized_run
    from kwstool.deploy.export import MIN_DEFAULT_PERIOD_MS

    e = export(run, tmp_path / "out")
    header = e.header.read_text()
    t = costmodel.BOARD_TIMING["nano33ble"]
    needed = prof.inference_period_ms(
        e.inference_ms, t.frontend_instructions_per_frame * t.cycles_per_instruction / 64_000.0
    )
    # the default cadence: 100 ms unless the model needs longer
    assert e.inference_period_ms == max(MIN_DEFAULT_PERIOD_MS, needed)
    assert e.realtime_problem is None
    assert _define(header, "KWS_INFERENCE_PERIOD_MS") == str(e.inference_period_ms)
    assert _define(header, "KWS_MODEL_INFERENCE_US_ESTIMATE") == str(round(e.inference_ms * 1000))
    assert "--force" not in header


def test_export_refuses_what_cannot_keep_up(quantized_run, tmp_path, monkeypatch, capsys):
    import dataclasses

    from kwstool.cli import main
    from kwstool.deploy.export import export

    run, _ = quantized_run
    out = tmp_path / "out"
    # a period shorter than the inference: refused, nothing written; --force writes it
    with pytest.raises(KwsError) as exc:
        export(run, out, inference_period_ms=20)
    assert "\n" not in str(exc.value) and "--force" in str(exc.value)
    assert not out.exists()
    assert main(["export", str(run), "--out", str(out), "--period-ms", "20"]) == 2
    err = capsys.readouterr().err
    assert "> the 20 ms period" in err and "--force" in err and not out.exists()
    assert main(["export", str(run), "--out", str(out), "--period-ms", "20", "--force"]) == 0
    assert _define((out / "kws_model_data.h").read_text(), "KWS_INFERENCE_PERIOD_MS") == "20"
    assert "EXPORTED WITH --force" in (out / "kws_model_data.h").read_text()
    assert "warning (--force)" in capsys.readouterr().err
    # a board 100x slower (front end aside): no period up to 500 ms works; forced, the header
    # gets the longest period export allows (1000 ms)
    slow = dataclasses.replace(
        costmodel.BOARD_TIMING["nano33ble"],
        cycles_per_instruction=135.0,
        frontend_instructions_per_frame=0,
    )
    monkeypatch.setitem(costmodel.BOARD_TIMING, "nano33ble", slow)
    with pytest.raises(KwsError, match="cannot keep real time"):
        export(run, tmp_path / "slow")
    e = export(run, tmp_path / "slow", force=True)
    assert e.realtime_problem and e.inference_period_ms == 1000
