"""Latency profile of an int8 model on a board: a budget like flash and RAM.

``profile(model_path, board)`` always gives the cost model's per-operator estimate
(:mod:`kwstool.deploy.costmodel`: shapes from the flatbuffer, the kernel the pinned TFLM +
CMSIS-NN will pick, fitted instruction costs, the board's cycles per instruction and clock).
``measure=True`` also runs the model through the m4sim harness (``firmware/m4sim``): the pinned
TFLite-Micro + CMSIS-NN sources cross-compiled for Cortex-M4F, one inference on QEMU
``mps2-an386`` with ``-icount shift=0``, instructions counted per operator. Instructions become
board cycles with the board's documented factor and milliseconds at its clock.

:func:`inference_period_ms` and :func:`check_realtime` turn a latency into the firmware's
inference cadence (a multiple of the 20 ms feature stride) and refuse what cannot keep up.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kwstool.deploy.costmodel import (
    BOARD_TIMING,
    BoardTiming,
    instructions,
    model_ops,
)
from kwstool.errors import KwsError

#: Feature stride of the front end: the inference period is a multiple of it.
FEATURE_STRIDE_MS = 20
#: Headroom on the inference time when picking the period (interrupts, audio copies, jitter).
LATENCY_MARGIN = 1.25
#: Longest inference period still useful for keyword spotting (a 1 s window, >= 2 looks/word).
MAX_PERIOD_MS = 500

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = REPO_ROOT / "firmware" / "m4sim"
QEMU = "qemu-system-arm"
CXX = "arm-none-eabi-g++"
APT_TOOLCHAIN = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib"
TFLM_LIB = "Chirale_TensorFlowLite"
QEMU_TIMEOUT_S = 120


@dataclass
class OpProfile:
    index: int
    op: str
    kernel: str
    path: str  # cmsis-nn / reference / copy
    op_class: str
    input_shapes: list[Any]
    output_shape: tuple[Any, ...]
    filter_shape: tuple[Any, ...] | None
    params: dict[str, Any]
    macs: int
    est_instructions: float
    est_cycles: float
    est_ms: float
    measured_instructions: int | None = None
    measured_cycles: float | None = None
    measured_ms: float | None = None


@dataclass
class ProfileResult:
    model_path: str
    board: str
    clock_mhz: float
    cycles_per_instruction: float
    cycles_note: str
    estimate_note: str
    ops: list[OpProfile]
    est_instructions: float
    est_cycles: float
    est_ms: float
    frontend_instructions_per_frame: int
    frontend_ms_per_frame: float
    measured: bool = False
    measured_instructions: int | None = None  # whole Invoke (includes interpreter overhead)
    measured_cycles: float | None = None
    measured_ms: float | None = None
    measurement: dict[str, Any] = field(default_factory=dict)

    @property
    def latency_ms(self) -> float:
        """The measured figure when there is one, else the cost model's."""
        return self.measured_ms if self.measured_ms is not None else self.est_ms

    @property
    def source(self) -> str:
        return "m4sim (QEMU instruction count)" if self.measured else "cost model"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency_ms"] = self.latency_ms
        d["source"] = self.source
        return d


def _ms(cycles: float, mhz: float) -> float:
    return cycles / (mhz * 1000.0)


def board_timing(board: str) -> BoardTiming:
    if board not in BOARD_TIMING:
        raise KwsError(f"unknown board {board!r}; choose one of {', '.join(BOARD_TIMING)}")
    return BOARD_TIMING[board]


def estimate(
    tflite: bytes,
    board: str = "nano33ble",
    where: str = "model",
    table: dict[str, Any] | None = None,
) -> ProfileResult:
    """The cost model's profile of ``tflite`` bytes on ``board``."""
    t = board_timing(board)
    ops = []
    for info in model_ops(tflite, where):
        ins = instructions(info, table)
        cyc = ins * t.cycles_per_instruction
        ops.append(
            OpProfile(
                index=info.index,
                op=info.op,
                kernel=info.kernel,
                path=info.path,
                op_class=info.op_class,
                input_shapes=info.input_shapes,
                output_shape=info.output_shape,
                filter_shape=info.filter_shape,
                params=info.params,
                macs=info.macs,
                est_instructions=ins,
                est_cycles=cyc,
                est_ms=_ms(cyc, t.clock_mhz),
            )
        )
    total_ins = sum(o.est_instructions for o in ops)
    total_cyc = total_ins * t.cycles_per_instruction
    fe_cyc = t.frontend_instructions_per_frame * t.cycles_per_instruction
    return ProfileResult(
        model_path=where,
        board=board,
        clock_mhz=t.clock_mhz,
        cycles_per_instruction=t.cycles_per_instruction,
        cycles_note=t.cycles_note,
        estimate_note=t.note,
        ops=ops,
        est_instructions=total_ins,
        est_cycles=total_cyc,
        est_ms=_ms(total_cyc, t.clock_mhz),
        frontend_instructions_per_frame=t.frontend_instructions_per_frame,
        frontend_ms_per_frame=_ms(fe_cyc, t.clock_mhz),
    )


def profile(
    model_path: str | os.PathLike[str],
    board: str = "nano33ble",
    measure: bool = False,
    tflm_src: str | os.PathLike[str] | None = None,
) -> ProfileResult:
    """Per-operator and total cycles and milliseconds of an int8 .tflite on ``board``.

    ``model_path`` is a .tflite or a run folder holding ``model_int8.tflite``. ``measure``: also
    count instructions on QEMU (needs arm-none-eabi-g++, qemu-system-arm and the pinned TFLM
    sources: ``tflm_src``, ``$KWSTOOL_TFLM_SRC`` or firmware/.pio after ``pio run``).
    """
    from kwstool.core.tflite import MODEL_FILE

    p = Path(model_path)
    if p.is_dir():
        p = p / MODEL_FILE
    if not p.exists():
        raise KwsError(f"{p}: not found; pass a .tflite or a run folder after `kwstool quantize`")
    tflite = p.read_bytes()
    result = estimate(tflite, board, str(p))
    if measure:
        t = board_timing(board)
        if not t.measured:
            raise KwsError(
                f"--measure: no emulator for {board} ({t.note}); the cost model's "
                f"estimate is all kwstool has, drop --measure"
            )
        apply_measurement(result, measure_m4(tflite, tflm_src, str(p)))
    return result


def apply_measurement(result: ProfileResult, m: dict[str, Any]) -> ProfileResult:
    """Fill the measured columns of ``result`` from :func:`measure_m4`'s output."""
    per_op = m["ops"]
    if len(per_op) != len(result.ops):
        raise KwsError(
            f"{result.model_path}: m4sim reported {len(per_op)} operators for a model "
            f"with {len(result.ops)}; rebuild the harness (delete its build folder)"
        )
    cpi, mhz = result.cycles_per_instruction, result.clock_mhz
    for op, (_name, ins) in zip(result.ops, per_op):
        op.measured_instructions = ins
        op.measured_cycles = ins * cpi
        op.measured_ms = _ms(ins * cpi, mhz)
    result.measured = True
    result.measured_instructions = m["invoke_instructions"]
    result.measured_cycles = m["invoke_instructions"] * cpi
    result.measured_ms = _ms(result.measured_cycles, mhz)
    result.frontend_instructions_per_frame = m["frontend_instructions_per_frame"]
    result.frontend_ms_per_frame = _ms(m["frontend_instructions_per_frame"] * cpi, mhz)
    result.measurement = {k: v for k, v in m.items() if k != "ops"}
    return result


# --- real time ---------------------------------------------------------------------------------
def inference_period_ms(
    latency_ms: float, frontend_ms_per_frame: float = 0.0, max_period_ms: int = MAX_PERIOD_MS
) -> int | None:
    """The firmware's inference period: the smallest multiple of the 20 ms feature stride that
    holds the inference (with :data:`LATENCY_MARGIN` headroom) plus the front end's frames of
    that period; ``None`` when that exceeds ``max_period_ms`` (cannot keep real time)."""
    if frontend_ms_per_frame >= FEATURE_STRIDE_MS:
        return None  # the front end alone cannot keep up
    period = FEATURE_STRIDE_MS
    while period <= max_period_ms:
        frames = period // FEATURE_STRIDE_MS
        if latency_ms * LATENCY_MARGIN + frames * frontend_ms_per_frame <= period:
            return period
        period += FEATURE_STRIDE_MS
    return None


def check_realtime(
    result: ProfileResult, board: str | None = None, period_ms: int | None = None
) -> int:
    """The inference period for ``result`` on its board, or KwsError with a one-line reason.

    ``period_ms`` asks for a specific cadence (a multiple of 20 ms) and refuses when the model
    cannot keep it; otherwise the smallest period that works is returned.
    """
    board = board or result.board
    if board != result.board:
        raise KwsError(f"profile is for {result.board}, not {board}; profile on {board}")
    lat, fe = result.latency_ms, result.frontend_ms_per_frame
    what = f"{result.model_path}: inference {lat:.0f} ms on {board} ({result.source})"
    if period_ms is not None:
        if period_ms <= 0 or period_ms % FEATURE_STRIDE_MS:
            raise KwsError(
                f"inference period {period_ms} ms is not a positive multiple of the "
                f"{FEATURE_STRIDE_MS} ms feature stride"
            )
        need = lat * LATENCY_MARGIN + (period_ms // FEATURE_STRIDE_MS) * fe
        if need > period_ms:
            raise KwsError(
                f"{what} x {LATENCY_MARGIN} + front end {fe:.1f} ms/frame needs "
                f"{need:.0f} ms > the {period_ms} ms period; choose a longer period, "
                f"a smaller model, or --force"
            )
        return period_ms
    period = inference_period_ms(lat, fe)
    if period is None:
        raise KwsError(
            f"{what} cannot keep real time: x {LATENCY_MARGIN} + front end needs more "
            f"than the {MAX_PERIOD_MS} ms longest period; train a smaller model "
            f"(see docs/m4_op_costs.md) or export with --force"
        )
    return period


def latency_report(tflite: bytes, where: str = "model") -> dict[str, Any]:
    """Cost-model latency of ``tflite`` on every board, for ``quantize.json`` (``latency``)."""
    out = {}
    for board in BOARD_TIMING:
        r = estimate(tflite, board, where)
        out[board] = {
            "inference_ms": round(r.est_ms, 2),
            "inference_cycles": round(r.est_cycles),
            "m4_instructions": round(r.est_instructions),
            "frontend_ms_per_frame": round(r.frontend_ms_per_frame, 3),
            "inference_period_ms": inference_period_ms(r.est_ms, r.frontend_ms_per_frame),
            "clock_mhz": r.clock_mhz,
            "source": "cost model (kwstool.deploy.costmodel)",
            "note": r.estimate_note,
        }
    return out


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
