"""Compiling the firmware's portable C for the host tests (gcc) and for Cortex-M4F
(arm-none-eabi-gcc): which libraries, which flags."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "firmware" / "lib"
HERE = Path(__file__).resolve().parent
#: The hardware-independent firmware: everything in firmware/lib, in dependency order.
LIBS = [
    "kws_frontend",
    "kws_recognizer",
    "kws_protocol",
    "kws_feature_provider",
    "kws_pipeline",
    "kws_session",
    "kws_listener",
]
INCLUDES = [f"-I{LIB / name}" for name in LIBS]
WARN = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
#: What the brief asks of every Cortex-M4F build of the portable C.
CORTEX_M4F = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-Os"]
#: The Arduino mbed core's own flags for the Nano 33 BLE (ArduinoCore-mbed
#: variants/ARDUINO_NANO33BLE/cflags.txt and cxxflags.txt: -mcpu=cortex-m4 -mfloat-abi=softfp
#: -mfpu=fpv4-sp-d16 -mthumb -funsigned-char -Os, rechecked for issue 10.5): the softfp ABI
#: (floats passed in integer registers, FPU instructions used) -- not -mfloat-abi=soft, which
#: would leave the FPU unused -- and unsigned plain char. firmware/README.md states the same.
NANO33BLE = [
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfpu=fpv4-sp-d16",
    "-mfloat-abi=softfp",
    "-Os",
    "-funsigned-char",
    "-fdata-sections",
    "-ffunction-sections",
]


def micro_speech_dir() -> Path | None:
    """../shared/data/micro_speech (TFLM's example model and clips), or None when absent."""
    shared = Path(os.environ.get("KWSTOOL_SHARED", REPO.parent / "shared")) / "data"
    p = shared / "micro_speech"
    return p if (p / "micro_speech_quantized.tflite").exists() else None


def lib_sources() -> list[str]:
    return [str(p) for name in LIBS for p in sorted((LIB / name).glob("*.c"))]


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def build(exe: Path, main: str, flags: list[str], extra_sources: list[str] | None = None) -> Path:
    """gcc -Wall -Wextra -Wpedantic -Werror main + all of firmware/lib -> exe."""
    run(
        [
            "gcc",
            *WARN,
            *flags,
            *INCLUDES,
            f"-I{HERE}",
            str(HERE / main),
            *lib_sources(),
            *(extra_sources or []),
            "-o",
            str(exe),
        ]
    )
    return exe


def have_arm() -> bool:
    return (
        shutil.which("arm-none-eabi-gcc") is not None
        and shutil.which("arm-none-eabi-g++") is not None
    )


def micro_speech_model_files(
    tflite: Path,
    out_dir: Path,
    labels: tuple[str, ...] = ("_silence_", "_unknown_", "yes", "no"),
    arena_bytes: int = 8192,
) -> Path:
    """model/kws_model_data.{h,cc} for micro_speech's int8 model, rendered by `kwstool export`'s
    own code (the export contract), into out_dir/model. Returns out_dir."""
    import hashlib

    from kwstool.deploy import export
    from kwstool.model import quantize

    data = Path(tflite).read_bytes()
    info = quantize.model_info(data, str(tflite))
    report = {
        "labels": list(labels),
        "features": {
            "num_frames": 49,
            "num_channels": 40,
            "sample_rate": 16000,
            "window_ms": 30,
            "stride_ms": 20,
        },
        "input": {
            "shape": list(info.input_shape),
            "scale": info.input_scale,
            "zero_point": info.input_zero_point,
        },
        "output": {
            "shape": list(info.output_shape),
            "scale": info.output_scale,
            "zero_point": info.output_zero_point,
        },
        "arena_bytes": arena_bytes,
        "op_resolver": quantize.resolver_methods(info.ops, str(tflite)),
    }
    sha = hashlib.sha256(data).hexdigest()
    model_dir = Path(out_dir) / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / export.HEADER_FILE).write_text(
        export.render_header(
            report,
            "micro_speech",
            sha,
            len(data),
            export.BOARDS["nano33ble"],
            dict(export.RECOGNIZER_DEFAULTS),
        )
    )
    (model_dir / export.SOURCE_FILE).write_text(
        export.render_source(data, list(labels), "micro_speech", sha)
    )
    return Path(out_dir)
