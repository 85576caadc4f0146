"""The feature contract: one source of truth (the C header), and a hash that tracks it."""

from __future__ import annotations

import ast
import tokenize
from pathlib import Path

import pytest

from kwstool import _native
from kwstool.core import contract, frontend, srchash

REPO = Path(__file__).resolve().parents[2]

#: The contract's numbers, which only kwstool/core/contract.py may name (it reads them from C).
CONTRACT_NUMBERS = {16000, 480, 320, 49, 40}

#: Code that uses one of those numbers for something else, with the reason.
ALLOWED = {
    ("kwstool/core/boards.py", "ram_bytes=320 * KIB,"): "the ESP32's 320 KiB of RAM",
    ("kwstool/pipeline.py", "DEMO_EPOCHS = 40"): "epochs of the demo run",
    (
        "kwstool/deploy/costmodel.py",
        '500, {"el": 40.0}, "GUESS, not measured: other TFLM reference kernels, ~40 per element"',
    ): "instructions per element of a generic TFLM reference kernel",
}


def contract_literals(root: Path) -> list[str]:
    """``path:line: code`` for each contract number written as a literal in ``root/kwstool``.

    Python tokens are read, so numbers in docstrings, strings and comments do not count.
    """
    found = []
    for path in sorted((root / "kwstool").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "kwstool/core/contract.py":
            continue
        with open(path, "rb") as fh:
            for tok in tokenize.tokenize(fh.readline):
                if tok.type != tokenize.NUMBER:
                    continue
                value = ast.literal_eval(tok.string)
                if value in CONTRACT_NUMBERS and (rel, tok.line.strip()) not in ALLOWED:
                    found.append(f"{rel}:{tok.start[0]}: {tok.line.strip()}")
    return found


def test_no_contract_numbers_outside_contract_py():
    assert contract_literals(REPO) == []


def test_literal_scan_finds_a_planted_number(tmp_path):
    """The scan sees code literals (any spelling) and ignores docstrings and comments."""
    pkg = tmp_path / "kwstool"
    pkg.mkdir()
    (pkg / "contract_free.py").write_text('"""16000 Hz, 49 frames"""\n# 480 samples\nX = "320"\n')
    assert contract_literals(tmp_path) == []
    (pkg / "planted.py").write_text("RATE = 16_000\nFRAMES = 49.0\n")
    assert contract_literals(tmp_path) == [
        "kwstool/planted.py:1: RATE = 16_000",
        "kwstool/planted.py:2: FRAMES = 49.0",
    ]


def test_native_hash_matches_the_sources_in_the_checkout():
    """A stale build (C sources changed, extension not rebuilt) fails here."""
    assert srchash.frontend_hash(REPO) == _native.FRONTEND_HASH, (
        "kwstool._native was built from other front-end sources; rebuild it: "
        "python setup.py build_ext --inplace"
    )
    assert contract.FRONTEND_HASH == _native.FRONTEND_HASH
    assert frontend.FEATURE_PARAMS["frontend_hash"] == _native.FRONTEND_HASH


def test_hash_covers_code_and_parameters(tmp_path):
    """Any byte of any .c/.h changes the hash; line endings and other files do not."""
    lib = tmp_path / srchash.FRONTEND_DIR
    lib.mkdir(parents=True)
    for path in srchash.frontend_files(REPO):
        (lib / path.name).write_bytes(path.read_bytes())
    assert srchash.frontend_hash(tmp_path) == srchash.frontend_hash(REPO)
    (lib / "README.md").write_text("notes")
    assert srchash.frontend_hash(tmp_path) == srchash.frontend_hash(REPO)
    header = lib / "kws_frontend.h"
    text = header.read_bytes()
    header.write_bytes(text.replace(b"\n", b"\r\n"))
    assert srchash.frontend_hash(tmp_path) == srchash.frontend_hash(REPO)
    header.write_bytes(text.replace(b"PCAN_OFFSET 80.0", b"PCAN_OFFSET 81.0"))
    assert srchash.frontend_hash(tmp_path) != srchash.frontend_hash(REPO)


def test_feature_params_come_from_the_header():
    """FEATURE_PARAMS holds the header's values; the C code's Q14 coefficients truncate them."""
    header = (REPO / srchash.FRONTEND_DIR / "kws_frontend.h").read_text()
    macros = {}
    for line in header.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "#define" and parts[1].startswith("KWS_FRONTEND_"):
            macros[parts[1].removeprefix("KWS_FRONTEND_")] = parts[2]
    p = frontend.FEATURE_PARAMS
    nr, pcan = p["noise_reduction"], p["pcan"]
    assert p["lower_band_hz"] == int(macros["LOWER_BAND_HZ"]) == 125
    assert p["upper_band_hz"] == int(macros["UPPER_BAND_HZ"]) == 7500
    assert nr["smoothing_bits"] == int(macros["NOISE_SMOOTHING_BITS"])
    assert nr["even_smoothing"] == float(macros["NOISE_EVEN_SMOOTHING"])
    assert nr["odd_smoothing"] == float(macros["NOISE_ODD_SMOOTHING"])
    assert nr["min_signal_remaining"] == float(macros["NOISE_MIN_SIGNAL_REMAINING"])
    assert pcan == {
        "strength": float(macros["PCAN_STRENGTH"]),
        "offset": float(macros["PCAN_OFFSET"]),
        "gain_bits": int(macros["PCAN_GAIN_BITS"]),
    }
    assert p["log_scale_shift"] == int(macros["LOG_SCALE_SHIFT"])
    # TensorFlow's defaults, as Q14 integers the way kws_frontend.c truncates them
    q14 = [
        int(v * (1 << 14))
        for v in (nr["even_smoothing"], nr["odd_smoothing"], nr["min_signal_remaining"])
    ]
    assert q14 == [409, 983, 819]
    assert (p["sample_rate"], p["window_ms"], p["stride_ms"]) == (
        contract.SAMPLE_RATE,
        contract.WINDOW_MS,
        contract.STRIDE_MS,
    )


@pytest.mark.parametrize(
    "name", ["SAMPLE_RATE", "WINDOW_SAMPLES", "STRIDE_SAMPLES", "NUM_CHANNELS", "CLIP_SAMPLES"]
)
def test_contract_reads_native(name):
    assert getattr(contract, name) == getattr(_native, name)
