"""Measured latency: the m4sim harness (``firmware/m4sim``) on QEMU.

The pinned TFLite-Micro + CMSIS-NN sources cross-compiled for Cortex-M4F, one inference on QEMU
``mps2-an386`` with ``-icount shift=0``, instructions counted per operator (:func:`measure_m4`);
:mod:`kwstool.deploy.profile` turns them into board cycles and milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from kwstool.errors import KwsError

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = REPO_ROOT / "firmware" / "m4sim"
QEMU = "qemu-system-arm"
CXX = "arm-none-eabi-g++"
APT_TOOLCHAIN = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib"
TFLM_LIB = "Chirale_TensorFlowLite"
QEMU_TIMEOUT_S = 120


# --- measurement (m4sim on QEMU) ---------------------------------------------------------------
def _find_tflm_src(tflm_src: str | os.PathLike[str] | None) -> Path:
    """The pinned library's ``src/`` folder (holding tensorflow/lite/micro)."""
    candidates = []
    if tflm_src:
        candidates.append(Path(tflm_src))
    elif os.environ.get("KWSTOOL_TFLM_SRC"):
        candidates.append(Path(os.environ["KWSTOOL_TFLM_SRC"]))
    else:
        libdeps = REPO_ROOT / "firmware" / ".pio" / "libdeps"
        candidates += sorted(libdeps.glob(f"*/{TFLM_LIB}"))
    for c in candidates:
        for root in (c / "src", c):
            if (root / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").exists() and (
                root / "third_party" / "cmsis_nn"
            ).is_dir():
                return root.resolve()
    if tflm_src or os.environ.get("KWSTOOL_TFLM_SRC"):
        raise KwsError(
            f"{candidates[0]}: not the {TFLM_LIB} library (no src/tensorflow/lite/micro "
            f"with third_party/cmsis_nn); pass the folder `pio run` put in "
            f"firmware/.pio/libdeps/nano33ble/{TFLM_LIB}"
        )
    raise KwsError(
        f"--measure needs the TFLite-Micro sources the firmware pins: run `pio run -e "
        f"nano33ble` in firmware/ once (fetches {TFLM_LIB}), or pass --tflm-src DIR "
        f"(or set KWSTOOL_TFLM_SRC)"
    )


def check_tools() -> None:
    """KwsError naming what is missing to measure (one line)."""
    missing = [t for t in (CXX, "arm-none-eabi-gcc", "make") if shutil.which(t) is None]
    if missing:
        raise KwsError(
            f"--measure needs {', '.join(missing)}: install them (apt-get install "
            f"{APT_TOOLCHAIN} make)"
        )
    if shutil.which(QEMU) is None:
        raise KwsError(f"--measure needs {QEMU}: install it (apt-get install qemu-system-arm)")
    if not (HARNESS_DIR / "Makefile").exists():
        raise KwsError(
            f"--measure needs the m4sim harness in {HARNESS_DIR} (a kwstool source "
            f"checkout); it is not part of an installed wheel"
        )


def _build_dir(src: Path) -> Path:
    """A cache folder per (TFLM sources, harness sources) pair."""
    h = hashlib.sha256(str(src).encode())
    for f in sorted(HARNESS_DIR.iterdir()):
        if (f.is_file() and f.suffix in (".c", ".cpp", ".h", ".ld")) or f.name == "Makefile":
            h.update(f.name.encode() + f.read_bytes())
    base = os.environ.get("KWSTOOL_M4SIM_BUILD")
    root = (
        Path(base)
        if base
        else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kwstool"
    )
    return root / "m4sim" / h.hexdigest()[:16]


def _run(cmd: list[Any], what: str, timeout: float, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise KwsError(
            f"m4sim: {what} took more than {timeout:.0f} s; see firmware/m4sim/README.md"
        ) from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        err = next((ln for ln in tail if "error" in ln.lower()), tail[-1] if tail else "")
        raise KwsError(f"m4sim: {what} failed (exit {proc.returncode}): {err[:300]}")
    # QEMU writes semihosting output to stdout on a terminal, to stderr otherwise.
    return proc.stdout + "\n" + proc.stderr


def parse_output(text: str) -> dict[str, Any]:
    """The ``M4SIM ...`` lines of the runner -> dict (see firmware/m4sim/README.md)."""
    out: dict[str, Any] = {"ops": [], "invoke": []}
    for line in text.splitlines():
        if not line.startswith("M4SIM "):
            continue
        kind, _, rest = line[6:].partition(" ")
        kv = dict(re.findall(r"(\w+)=(\S+)", rest))
        if kind == "error":
            raise KwsError(f"m4sim: the runner failed on the board emulator: {rest}")
        if kind == "calibration":
            out["calibration"] = {k: int(v) for k, v in kv.items()}
        elif kind == "op":
            out["ops"].append((kv["name"], int(kv["instructions"])))
        elif kind == "invoke":
            out["invoke"].append(int(kv["instructions"]))
        elif kind == "frontend":
            out["frontend_instructions_per_frame"] = int(kv["instructions_per_frame"])
        elif kind == "arena":
            out["arena_used_bytes"] = int(kv["used_bytes"])
        elif kind == "profiler":
            out["profiler_pair_instructions"] = int(kv["pair_instructions_x64"]) / 64.0
        elif kind == "done":
            out["done"] = True
    if not out.get("done") or not out["invoke"]:
        raise KwsError(
            "m4sim: the runner stopped before the end of its output; see firmware/m4sim/README.md"
        )
    cal = out.get("calibration") or {}
    if cal.get("loop_instructions") != cal.get("measured_instructions"):
        raise KwsError(
            f"m4sim: timer calibration off ({cal}); QEMU must run with -icount "
            f"shift=0 on mps2-an386"
        )
    out["invoke_instructions"] = out["invoke"][-1]
    return out


def measure_m4(
    tflite: bytes, tflm_src: str | os.PathLike[str] | None = None, where: str = "model"
) -> dict[str, Any]:
    """Run ``tflite`` on m4sim; per-op instructions, whole-invoke instructions, front end."""
    from kwstool.core.tflite import model_info, resolver_methods

    check_tools()
    src = _find_tflm_src(tflm_src)
    build = _build_dir(src)
    build.mkdir(parents=True, exist_ok=True)
    methods = resolver_methods(model_info(tflite, where).ops, where)
    ops_text = "#define M4SIM_FOR_EACH_OP(X) " + " ".join(f"X({m})" for m in methods) + "\n"
    tag = hashlib.sha256(ops_text.encode()).hexdigest()[:12]
    ops_h = build / f"ops_{tag}.h"
    if not ops_h.exists() or ops_h.read_text() != ops_text:
        ops_h.write_text(ops_text)
    jobs = str(max(1, min(4, os.cpu_count() or 1)))
    make = [
        "make",
        "-s",
        "-C",
        str(HARNESS_DIR),
        f"-j{jobs}",
        f"TFLM_SRC={src}",
        f"BUILD={build}",
        f"OPS={ops_h}",
        f"TAG={tag}",
    ]
    _run([*make, "all"], "build (first time: compiles TFLM + CMSIS-NN, a few minutes)", 3600)
    model_file = build / f"model_{hashlib.sha256(tflite).hexdigest()[:16]}.tflite"
    model_file.write_bytes(tflite)
    qemu = [
        QEMU,
        "-M",
        "mps2-an386",
        "-icount",
        "shift=0",
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-semihosting-config",
        f"enable=on,target=native,arg=m4sim,arg={model_file}",
        "-kernel",
        str(build / f"m4sim_{tag}.elf"),
    ]
    text = _run(qemu, "QEMU run", QEMU_TIMEOUT_S)
    result = parse_output(text)
    result["tflm_src"] = str(src)
    result["build_dir"] = str(build)
    return result
