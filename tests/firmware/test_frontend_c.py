"""The C front end as C: warning-free builds for host and Cortex-M4F, streaming behaviour,
sanitizers, and generated tables that match their generator."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "firmware/lib/kws_frontend"
SOURCES = sorted(str(p) for p in LIB.glob("*.c"))
WARN = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def test_host_build_and_streaming(tmp_path):
    exe = tmp_path / "stream_test"
    run(
        [
            "gcc",
            *WARN,
            "-O2",
            "-I",
            str(LIB),
            str(REPO / "tests/firmware/frontend_stream_test.c"),
            *SOURCES,
            "-o",
            str(exe),
        ]
    )
    out = run([str(exe)]).stdout
    assert out.strip().splitlines()[-1] == "12 passed, 0 failed"


def test_host_build_under_sanitizers(tmp_path):
    exe = tmp_path / "stream_test_asan"
    run(
        [
            "gcc",
            *WARN,
            "-O1",
            "-g",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-I",
            str(LIB),
            str(REPO / "tests/firmware/frontend_stream_test.c"),
            *SOURCES,
            "-o",
            str(exe),
        ]
    )
    out = run([str(exe)]).stdout
    assert out.strip().splitlines()[-1] == "12 passed, 0 failed"


def test_cortex_m4f_build(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip(
            "arm-none-eabi-gcc not installed"
            " (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"
        )
    for src in SOURCES:
        run(
            [
                "arm-none-eabi-gcc",
                *WARN,
                "-mcpu=cortex-m4",
                "-mthumb",
                "-mfpu=fpv4-sp-d16",
                "-mfloat-abi=hard",
                "-Os",
                "-I",
                str(LIB),
                "-c",
                src,
                "-o",
                str(tmp_path / (Path(src).stem + ".o")),
            ]
        )
    sizes = run(["arm-none-eabi-size", *map(str, sorted(tmp_path.glob("*.o")))]).stdout
    text = sum(int(line.split()[0]) for line in sizes.splitlines()[1:])
    data_bss = sum(int(line.split()[1]) + int(line.split()[2]) for line in sizes.splitlines()[1:])
    assert text <= 8192 and data_bss == 0


def test_no_malloc_or_host_headers():
    banned = [
        "malloc",
        "calloc",
        "free(",
        "<stdio.h>",
        "<stdlib.h>",
        "<math.h>",
        "static int16_t state",
    ]
    for path in LIB.glob("*.[ch]"):
        text = path.read_text()
        for word in banned:
            assert word not in text, f"{path.name} uses {word}"


def test_tables_match_generator(tmp_path):
    gen = tmp_path / "gen"
    run(
        [
            "gcc",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            str(REPO / "scripts/frontend_tables/gen_frontend_tables.c"),
            "-o",
            str(gen),
            "-lm",
        ]
    )
    assert run([str(gen)]).stdout == (LIB / "kws_frontend_tables.c").read_text()
