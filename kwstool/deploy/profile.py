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

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kwstool.deploy.costmodel import (
    BOARD_TIMING,
    BoardTiming,
    instructions,
    model_ops,
)
from kwstool.deploy.measure import (
    APT_TOOLCHAIN as APT_TOOLCHAIN,
    CXX as CXX,
    HARNESS_DIR as HARNESS_DIR,
    QEMU as QEMU,
    QEMU_TIMEOUT_S as QEMU_TIMEOUT_S,
    REPO_ROOT as REPO_ROOT,
    TFLM_LIB as TFLM_LIB,
    check_tools as check_tools,
    measure_m4 as measure_m4,
    parse_output as parse_output,
)
from kwstool.errors import KwsError

#: Feature stride of the front end: the inference period is a multiple of it.
FEATURE_STRIDE_MS = 20
#: Headroom on the inference time when picking the period (interrupts, audio copies, jitter).
LATENCY_MARGIN = 1.25
#: Longest inference period still useful for keyword spotting (a 1 s window, >= 2 looks/word).
MAX_PERIOD_MS = 500


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
