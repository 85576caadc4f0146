"""export: kws_model_data.h/.cc for the firmware: deterministic, compilable, within budget."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from conftest import TINY_METHODS, make_run

from kwstool.errors import KwsError

ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]


def defines(header: str) -> dict[str, str]:
    """Simple ``#define NAME value`` lines of a header (the X-macro is read separately)."""
    out = {}
    for m in re.finditer(r"^#define (KWS_\w+) +(.+)$", header, flags=re.M):
        out[m.group(1)] = m.group(2).strip()
    return out


@pytest.fixture(scope="module")
def exported(quantized_run, tmp_path_factory):
    from kwstool.deploy.export import export

    run, q = quantized_run
    out = tmp_path_factory.mktemp("export")
    return run, q, export(run, out)


def test_header_follows_the_contract(exported):
    from kwstool.core.boards import arena_margin

    run, q, e = exported
    header = e.header.read_text()
    d = defines(header)
    margin = arena_margin(q.arena_bytes)
    assert margin == max(2048, (q.arena_bytes // 4 + 15) // 16 * 16)
    expected = {
        "KWS_MODEL_NAME": '"test_tiny"',
        "KWS_MODEL_DATA_BYTES": str(q.model_bytes),
        "KWS_MODEL_NUM_LABELS": "4",
        "KWS_MODEL_INPUT_FRAMES": "49",
        "KWS_MODEL_INPUT_CHANNELS": "40",
        "KWS_MODEL_INPUT_SCALE": "1.0f",
        "KWS_MODEL_INPUT_ZERO_POINT": "0",
        "KWS_MODEL_OUTPUT_SCALE": "0.00390625f",
        "KWS_MODEL_OUTPUT_ZERO_POINT": "(-128)",
        "KWS_MODEL_ARENA_USED_BYTES": str(q.arena_bytes),
        "KWS_MODEL_ARENA_MARGIN_BYTES": str(margin),
        "KWS_MODEL_ARENA_BYTES": str(q.arena_bytes + margin),
        "KWS_MODEL_OP_COUNT": "5",
        "KWS_FEATURE_SAMPLE_RATE": "16000",
        "KWS_FEATURE_WINDOW_MS": "30",
        "KWS_FEATURE_STRIDE_MS": "20",
        "KWS_FEATURE_CHANNELS": "40",
        # the default cadence: 100 ms unless the model's estimated inference needs longer
        "KWS_INFERENCE_PERIOD_MS": str(max(100, e.inference_period_ms)),
        "KWS_RECOGNIZER_AVERAGE_WINDOW_MS": "1000",
        "KWS_RECOGNIZER_THRESHOLD": "200",
        "KWS_RECOGNIZER_THRESHOLDS": "{ 200, 200, 200, 200 }",
        "KWS_RECOGNIZER_SUPPRESSION_MS": "1500",
        "KWS_RECOGNIZER_MINIMUM_COVERAGE_MS": "200",
    }
    for name, value in expected.items():
        assert d[name] == value, name
    assert int(d["KWS_MODEL_ARENA_BYTES"]) % 16 == 0
    ops = re.search(r"#define KWS_MODEL_FOR_EACH_OP\(X\) \\\n((?:  X\(\w+\)(?: \\\n)?)+)", header)
    assert re.findall(r"X\((\w+)\)", ops.group(1)) == TINY_METHODS
    assert "extern const char *const kws_model_labels[KWS_MODEL_NUM_LABELS];" in header
    assert "extern const unsigned char kws_model_data[];" in header
    assert "extern const unsigned int kws_model_data_len;" in header
    source = e.source.read_text()
    assert "alignas(16) const unsigned char kws_model_data[] = {" in source
    assert f"const unsigned int kws_model_data_len = {q.model_bytes};" in source
    assert '  "_silence_",\n  "_unknown_",\n  "yes",\n  "no",\n};' in source
    # The C array holds exactly the .tflite bytes.
    body = source.split("kws_model_data[] = {", 1)[1].split("};", 1)[0]
    data = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))
    assert data == (run / "model_int8.tflite").read_bytes()


def test_period_and_per_label_thresholds(exported, tmp_path):
    """inference_period_ms and the recognizer dict reach the header; bad values are one-line
    errors naming the setting."""
    from kwstool.deploy.export import default_period_ms, export

    run, _, _ = exported
    e = export(
        run,
        tmp_path,
        inference_period_ms=240,
        recognizer={
            "threshold": 0.8,
            "thresholds": {"yes": 0.9, "no": 230},
            "average_window_ms": 1500,
            "minimum_coverage_ms": 480,
        },
    )
    d = defines(e.header.read_text())
    assert d["KWS_INFERENCE_PERIOD_MS"] == "240"
    assert (
        d["KWS_RECOGNIZER_THRESHOLDS"] == "{ 204, 204, 230, 230 }"
    )  # _silence_, _unknown_, yes, no
    assert d["KWS_RECOGNIZER_THRESHOLD"] == "204"
    assert d["KWS_RECOGNIZER_AVERAGE_WINDOW_MS"] == "1500"
    assert d["KWS_RECOGNIZER_MINIMUM_COVERAGE_MS"] == "480"
    # micro_speech's minimum_count, from older callers: (count - 1) periods
    e = export(run, tmp_path, inference_period_ms=200, recognizer={"minimum_count": 3})
    assert defines(e.header.read_text())["KWS_RECOGNIZER_MINIMUM_COVERAGE_MS"] == "400"
    assert default_period_ms(20) == 100 and default_period_ms(30) == 120
    for kw, match in (
        ({"inference_period_ms": 90}, "multiple of the 20 ms stride"),
        ({"recognizer": {"thresholds": {"maybe": 0.5}}}, "maybe"),
        ({"recognizer": {"threshold": 1.5}}, "outside 0..1"),
        ({"recognizer": {"threshold": 300}}, "outside 0..255"),
        ({"recognizer": {"minimum_coverage_ms": 1000}}, "coverage"),
    ):
        with pytest.raises(KwsError, match=match) as err:
            export(run, tmp_path / "bad", **kw)
        assert "\n" not in str(err.value)


def test_reexport_is_byte_identical(exported, tmp_path):
    from kwstool.deploy.export import export

    run, _, e = exported
    export(run, tmp_path / "a")
    export(run, e.header.parent)  # over the existing files
    for name in ("kws_model_data.h", "kws_model_data.cc"):
        assert (tmp_path / "a" / name).read_bytes() == (e.header.parent / name).read_bytes()
    written = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert written == ["kws_model_data.cc", "kws_model_data.h"]


HOST_CHECK = r"""
#include <cstdint>
#include <cstdio>
#include <cstring>
#include "kws_model_data.h"

static const char *const kOps[] = {
#define KWS_NAME_OP(m) #m,
  KWS_MODEL_FOR_EACH_OP(KWS_NAME_OP)
};
static_assert(sizeof(kOps) / sizeof(kOps[0]) == KWS_MODEL_OP_COUNT, "op count");
static_assert(KWS_MODEL_ARENA_BYTES % 16 == 0, "arena multiple of 16");

int main() {
  if (reinterpret_cast<uintptr_t>(kws_model_data) % 16 != 0) return 1;
  if (kws_model_data_len != KWS_MODEL_DATA_BYTES) return 2;
  if (std::memcmp(kws_model_data + 4, "TFL3", 4) != 0) return 3;
  std::printf("%s %u", KWS_MODEL_NAME, kws_model_data_len);
  for (const char *label : kws_model_labels) std::printf(" %s", label);
  for (const char *op : kOps) std::printf(" %s", op);
  std::printf(" %g %d\n", (double)KWS_MODEL_OUTPUT_SCALE, KWS_MODEL_OUTPUT_ZERO_POINT);
  return 0;
}
"""

C_CHECK = r"""
#include "kws_model_data.h"
unsigned int kws_check_len(void) { return kws_model_data_len + KWS_MODEL_NUM_LABELS; }
"""


def test_export_compiles_and_runs_with_host_gcc(exported, tmp_path):
    _, q, e = exported
    if shutil.which("g++") is None or shutil.which("gcc") is None:
        pytest.skip("host g++/gcc not installed")
    (tmp_path / "main.cc").write_text(HOST_CHECK)
    (tmp_path / "c_check.c").write_text(C_CHECK)
    inc = f"-I{e.header.parent}"
    strict = ["-Wall", "-Wextra", "-Werror", "-pedantic"]
    subprocess.run(
        ["gcc", "-std=c99", *strict, inc, "-c", "c_check.c", "-o", "c_check.o"],
        cwd=tmp_path,
        check=True,
    )
    subprocess.run(
        ["g++", "-std=c++11", *strict, inc, "main.cc", str(e.source), "c_check.o", "-o", "check"],
        cwd=tmp_path,
        check=True,
    )
    out = subprocess.run(
        [str(tmp_path / "check")], capture_output=True, text=True, check=True
    ).stdout
    assert out == (
        f"test_tiny {q.model_bytes} _silence_ _unknown_ yes no "
        + " ".join(TINY_METHODS)
        + " 0.00390625 -128\n"
    )


def test_export_compiles_for_cortex_m4(exported, tmp_path):
    _, _, e = exported
    if shutil.which("arm-none-eabi-g++") is None:
        pytest.skip("arm-none-eabi-g++ not installed (apt-get install gcc-arm-none-eabi)")
    obj = tmp_path / "kws_model_data.o"
    subprocess.run(
        [
            "arm-none-eabi-g++",
            *ARM_FLAGS,
            "-std=gnu++17",
            "-Os",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fno-exceptions",
            "-fno-rtti",
            f"-I{e.header.parent}",
            "-c",
            str(e.source),
            "-o",
            str(obj),
        ],
        check=True,
    )
    readelf = shutil.which("arm-none-eabi-readelf")
    if readelf:  # the model bytes land in read-only data (flash), 16-byte aligned
        syms = subprocess.run(
            [readelf, "-sW", str(obj)], capture_output=True, text=True, check=True
        ).stdout
        assert re.search(r"\bkws_model_data\b", syms)
        sections = subprocess.run(
            [readelf, "-SW", str(obj)], capture_output=True, text=True, check=True
        ).stdout
        rodata = [ln for ln in sections.splitlines() if ".rodata" in ln]
        assert rodata and max(int(ln.split()[-1]) for ln in rodata) >= 16


def test_over_budget_arena_is_refused_with_numbers(quantized_run, tmp_path):
    from kwstool.core.boards import BOARDS, arena_total
    from kwstool.deploy.export import export

    run, q = quantized_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    report = json.loads((copy / "quantize.json").read_text())
    report["arena_bytes"] = 200_000
    (copy / "quantize.json").write_text(json.dumps(report))
    nano = BOARDS["nano33ble"]
    with pytest.raises(KwsError) as exc:
        export(copy, tmp_path / "out")
    assert str(exc.value) == (
        f"{copy / 'model_int8.tflite'}: does not fit nano33ble: arena {arena_total(200_000)} B > "
        f"{nano.arena_budget} B RAM budget (262144 B RAM - 98304 B firmware reserve); train a "
        f"smaller model (e.g. --model tiny_conv) or choose another board"
    )
    assert arena_total(200_000) == 250_000
    assert not (tmp_path / "out").exists()


def test_over_budget_model_is_refused_for_nano_but_fits_esp32(demo_data, tmp_path):
    """A ~0.6 MB model: over the Nano 33 BLE's flash budget, within the ESP32's."""
    from kwstool.core.boards import BOARDS
    from kwstool.deploy.export import export
    from kwstool.model.quantize import quantize

    run = make_run(tmp_path / "run", demo_data, epochs=0, dense=170)
    q = quantize(run)
    nano, esp = BOARDS["nano33ble"], BOARDS["esp32dev"]
    assert nano.model_budget < q.model_bytes < esp.model_budget
    with pytest.raises(KwsError) as exc:
        export(run, tmp_path / "nano")
    assert str(exc.value) == (
        f"{run / 'model_int8.tflite'}: does not fit nano33ble: model {q.model_bytes} B > 589824 B "
        f"flash budget (983040 B 1 MiB flash less the 64 KiB bootloader - 393216 B firmware "
        f"reserve); train a smaller model (e.g. --model tiny_conv) or choose another board"
    )
    assert not (tmp_path / "nano").exists()
    e = export(run, tmp_path / "esp", board="esp32dev")
    assert e.header.exists() and e.board.name == "esp32dev"


def test_export_errors_are_one_line(exported, tmp_path):
    from kwstool.deploy.export import export

    run, _, _ = exported
    with pytest.raises(KwsError, match=r"^unknown board 'uno'; choose one of nano33ble, esp32dev$"):
        export(run, tmp_path, board="uno")
    with pytest.raises(KwsError, match=r"model_int8.tflite: not found; run `kwstool quantize"):
        export(tmp_path / "empty", tmp_path / "out")
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "model_int8.tflite").write_bytes((copy / "model_int8.tflite").read_bytes() + b"\0")
    with pytest.raises(KwsError, match=r"quantize.json: describes a different model_int8.tflite"):
        export(copy, tmp_path / "out")


def test_cli_export(exported, tmp_path, capsys):
    from kwstool.cli import main

    run, q, e = exported
    assert main(["export", str(run), "--out", str(tmp_path / "fw"), "--board", "esp32dev"]) == 0
    assert f"{q.model_bytes} bytes flash" in capsys.readouterr().out
    assert (tmp_path / "fw" / "kws_model_data.cc").read_bytes() == e.source.read_bytes()
    assert main(["export", str(run), "--out", str(tmp_path / "fw"), "--board", "uno"]) == 2


def test_keywords_calibrated_to_255_are_reported_as_muted():
    from kwstool.deploy.export import muted_keywords

    thresholds = {"_silence_": 255, "_unknown_": 200, "yes": 180, "go": 255}
    assert muted_keywords(thresholds) == ["go"]
    assert muted_keywords({"yes": 254}) == []


# --- issue 23: where export writes, and the fix its errors name ----------------------------------
def test_run_without_labels_names_the_real_fix(tmp_path, capsys):
    from kwstool.cli import main

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model_int8.tflite").write_bytes(b"TFL3")  # quantize.json is missing
    for args in (["export", "--out", str(tmp_path / "o")], ["listen", "--wav", "x.wav"]):
        assert main([args[0], str(tmp_path / "run"), *args[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert "--labels" not in err and "run `kwstool quantize RUN`" in err, err


def test_export_without_out_outside_a_checkout_asks_for_it(tmp_path, monkeypatch, capsys):
    from kwstool.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["export", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("is not in a kwstool checkout, so there is no firmware/src/model to "
                        "export into; pass --out FOLDER for kws_model_data.h/.cc")  # fmt: skip
    assert not (tmp_path / "firmware").exists()


def test_export_without_out_inside_a_checkout_says_what_it_replaced(
    exported, tmp_path, monkeypatch, capsys
):
    from kwstool.cli import main

    run, _, _ = exported
    checkout = tmp_path / "checkout"  # the two files that make a folder a kwstool checkout
    (checkout / "firmware").mkdir(parents=True)
    (checkout / "firmware" / "platformio.ini").write_text("[env]\n")
    (checkout / "kwstool").mkdir()
    (checkout / "kwstool" / "__init__.py").write_text("")
    (checkout / "docs").mkdir()
    monkeypatch.chdir(checkout / "docs")  # anywhere inside it
    model_dir = checkout / "firmware" / "src" / "model"
    assert main(["export", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {model_dir / 'kws_model_data.h'}" in out and "replaced" not in out
    assert main(["export", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"replaced the earlier kws_model_data.h and kws_model_data.cc in {model_dir}" in out
    assert "git checkout -- firmware/src/model" in out
