"""The firmware's hardware-independent C on the host and for Cortex-M4F: warning-free builds,
unit tests, sanitizers, fuzzing, the board sources against a stub Arduino API, and the
PlatformIO project configuration."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import fwbuild
import pytest

MY_LIBS = [
    "kws_recognizer",
    "kws_protocol",
    "kws_feature_provider",
    "kws_pipeline",
    "kws_session",
    "kws_listener",
]
#: test_units.c runs over 600 checks; fewer means a test function is no longer called.
UNIT_MIN_CHECKS = 600


def assert_all_passed(out: str, minimum: int) -> None:
    """The harness's last line is "N passed, 0 failed" with N >= minimum."""
    lines = out.strip().splitlines()
    m = re.fullmatch(r"(\d+) passed, (\d+) failed", lines[-1] if lines else "")
    assert m is not None, out
    assert int(m[2]) == 0, out
    assert int(m[1]) >= minimum, out


def test_unit_tests(tmp_path):
    exe = fwbuild.build(tmp_path / "test_units", "test_units.c", ["-O2"])
    assert_all_passed(fwbuild.run([str(exe)]).stdout, UNIT_MIN_CHECKS)


def test_unit_tests_under_sanitizers(tmp_path):
    exe = fwbuild.build(tmp_path / "test_units_asan", "test_units.c", fwbuild.SANITIZE)
    assert_all_passed(fwbuild.run([str(exe)]).stdout, UNIT_MIN_CHECKS)


def test_protocol_fuzz_under_sanitizers(tmp_path):
    """Random bytes, truncated frames, huge lengths, corrupted frames and random requests into
    the parser and the session under AddressSanitizer + UBSan: no error, every valid frame
    recovered, every request answered once."""
    exe = fwbuild.build(tmp_path / "fuzz_protocol", "fuzz_protocol.c", fwbuild.SANITIZE)
    assert_all_passed(fwbuild.run([str(exe), "4"]).stdout, 12)


@pytest.mark.skipif(
    not fwbuild.have_arm(),
    reason="arm-none-eabi-gcc not installed "
    "(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)",
)
def test_cortex_m4f_build(tmp_path):
    """Every C file of firmware/lib compiles warning-free for Cortex-M4F -- with the brief's
    flags and with the Nano 33 BLE core's own (softfp, unsigned char) -- and has no writable
    globals (no .data/.bss: all state is caller-owned)."""
    for name, flags in (("hard", fwbuild.CORTEX_M4F), ("nano", fwbuild.NANO33BLE)):
        objs = []
        for src in fwbuild.lib_sources():
            obj = tmp_path / f"{name}_{src.rsplit('/', 1)[1]}.o"
            fwbuild.run(
                [
                    "arm-none-eabi-gcc",
                    *fwbuild.WARN,
                    *flags,
                    *fwbuild.INCLUDES,
                    "-c",
                    src,
                    "-o",
                    str(obj),
                ]
            )
            objs.append(str(obj))
        sizes = fwbuild.run(["arm-none-eabi-size", *objs]).stdout.splitlines()[1:]
        assert sum(int(line.split()[1]) + int(line.split()[2]) for line in sizes) == 0, sizes
    # the headers are C++-clean (main.cpp includes them) for the mbed core's C++ dialect
    tu = tmp_path / "headers.cpp"
    tu.write_text(
        "".join(
            f'#include "{h.name}"\n'
            for lib in fwbuild.LIBS
            for h in sorted((fwbuild.LIB / lib).glob("*.h"))
        )
        + "int main() { return 0; }\n"
    )
    fwbuild.run(
        [
            "arm-none-eabi-g++",
            "-std=gnu++14",
            "-fno-rtti",
            "-fno-exceptions",
            "-Wall",
            "-Wextra",
            "-Werror",
            *fwbuild.NANO33BLE,
            *fwbuild.INCLUDES,
            "-c",
            str(tu),
            "-o",
            str(tmp_path / "headers.o"),
        ]
    )


def _model_dir(tmp_path):
    """The shipped default model if firmware/src/model has one, else micro_speech's model
    rendered by `kwstool export`'s code."""
    shipped = fwbuild.REPO / "firmware" / "src" / "model" / "kws_model_data.h"
    if shipped.exists():
        return fwbuild.REPO / "firmware" / "src"
    micro_speech = fwbuild.micro_speech_dir()
    if micro_speech is None:
        pytest.skip("no exported model in firmware/src/model and no ../shared/data/micro_speech")
    return fwbuild.micro_speech_model_files(
        micro_speech / "micro_speech_quantized.tflite", tmp_path / "gen"
    )


def test_board_sources_compile(tmp_path):
    """main.cpp and responder.cpp against a stub of the Arduino calls they use and an exported
    model header (both boards; host g++ and, when present, arm-none-eabi-g++ with the Nano's
    flags). model_runner.cpp needs the TFLite Micro library; firmware/README.md says how it was
    checked against the pinned library's sources."""
    model_dir = _model_dir(tmp_path)
    compilers = [["g++"]]
    if fwbuild.have_arm():
        compilers.append(["arm-none-eabi-g++", "-fno-rtti", "-fno-exceptions", *fwbuild.NANO33BLE])
    src = fwbuild.REPO / "firmware" / "src"
    for cxx in compilers:
        for board in ("KWS_BOARD_NANO33BLE", "KWS_BOARD_ESP32DEV"):
            for name in ("main.cpp", "responder.cpp"):
                fwbuild.run(
                    [
                        *cxx,
                        "-std=gnu++14",
                        "-Wall",
                        "-Wextra",
                        "-Werror",
                        f"-D{board}",
                        f"-I{fwbuild.HERE / 'stubs'}",
                        f"-I{model_dir}",
                        f"-I{src}",
                        *fwbuild.INCLUDES,
                        "-c",
                        str(src / name),
                        "-o",
                        str(tmp_path / f"{board}_{name}.o"),
                    ]
                )
        fwbuild.run(
            [
                *cxx,
                "-std=gnu++14",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-c",
                str(model_dir / "model" / "kws_model_data.cc"),
                "-o",
                str(tmp_path / "model.o"),
            ]
        )


def test_portable_code_has_no_heap_or_stdio():
    for lib in MY_LIBS:
        for path in (fwbuild.LIB / lib).glob("*.[ch]"):
            text = path.read_text()
            for word in (
                "malloc",
                "calloc",
                "realloc",
                "free(",
                "<stdio.h>",
                "<stdlib.h>",
                "printf",
            ):
                assert word not in text, f"{path.name} uses {word}"


def test_platformio_project_config():
    """`pio project config` parses the project offline; the environments name the right
    platforms (pinned), boards, framework and the TFLite Micro library pinned to a commit."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "platformio",
            "project",
            "config",
            "-d",
            str(fwbuild.REPO / "firmware"),
            "--json-output",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    envs = {name: dict(options) for name, options in json.loads(proc.stdout)}
    nano, esp = envs["env:nano33ble"], envs["env:esp32dev"]
    assert nano["platform"] == "platformio/nordicnrf52@10.10.0"
    assert nano["board"] == "nano33ble"
    assert esp["platform"] == "platformio/espressif32@6.12.0"
    assert esp["board"] == "esp32dev"
    for env in (nano, esp):
        assert env["framework"] == ["arduino"]
        assert env["lib_deps"] == [
            "https://github.com/spaziochirale/Chirale_TensorFlowLite.git"
            "#46da2f989205a9216229d38cd3d1c657d79d6781"
        ]
        assert re.fullmatch(r"[0-9a-f]{40}", env["lib_deps"][0].rsplit("#", 1)[1])
    assert "-DKWS_BOARD_NANO33BLE" in nano["build_flags"]
    assert "-DKWS_BOARD_ESP32DEV" in esp["build_flags"]
    assert {"-DKWS_I2S_SCK_PIN=26", "-DKWS_I2S_WS_PIN=25", "-DKWS_I2S_SD_PIN=33"} <= set(
        esp["build_flags"]
    )
    assert nano["build_src_filter"] == [
        "+<*> -<audio_provider_*.cpp> +<audio_provider_nano33ble.cpp>"
    ]
    assert esp["build_src_filter"] == ["+<*> -<audio_provider_*.cpp> +<audio_provider_esp32.cpp>"]


@pytest.mark.parametrize("macro", ["KWS_INFERENCE_PERIOD_MS", "KWS_RECOGNIZER_THRESHOLDS"])
def test_main_refuses_a_header_without_the_live_loop_macros(tmp_path, macro):
    """A kws_model_data.h from before the period/threshold macros: main.cpp stops the build with
    the fix ("re-export the model")."""
    src_model = _model_dir(tmp_path) / "model"
    model = tmp_path / "old" / "model"
    model.mkdir(parents=True)
    header = (src_model / "kws_model_data.h").read_text()
    assert f"#define {macro} " in header
    (model / "kws_model_data.h").write_text(
        "\n".join(line for line in header.splitlines() if not line.startswith(f"#define {macro} "))
    )
    src = fwbuild.REPO / "firmware" / "src"
    # main.cpp includes "model/kws_model_data.h" beside itself first: compile a copy
    (tmp_path / "old" / "main.cpp").write_text((src / "main.cpp").read_text())
    proc = subprocess.run(
        [
            "g++",
            "-std=gnu++14",
            "-DKWS_BOARD_NANO33BLE",
            f"-I{fwbuild.HERE / 'stubs'}",
            f"-I{src}",
            *fwbuild.INCLUDES,
            "-c",
            str(tmp_path / "old" / "main.cpp"),
            "-o",
            str(tmp_path / "main.o"),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert f"defines no {macro}: re-export the model" in proc.stderr
