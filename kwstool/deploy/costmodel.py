"""Latency cost model: per-operator cycle estimates from a .tflite's shapes, no toolchain needed.

Each operator of the model is mapped to the kernel TFLite-Micro will run for it on the board
(:func:`classify`), following the conditions in the pinned library's CMSIS-NN wrappers
(``tensorflow/lite/micro/kernels/cmsis_nn/*.cpp`` and CMSIS-NN's ``arm_*_wrapper_s8.c``):

- CONV_2D int8 -> ``arm_convolve_wrapper_s8``: 1x1, stride 1, no padding, no dilation ->
  ``arm_convolve_1x1_s8_fast``; input height 1, kernel height 1, output width % 4 == 0, no
  dilation -> ``arm_convolve_1_x_n_s8``; otherwise ``arm_convolve_s8`` (im2col + mat-mult).
- DEPTHWISE_CONV_2D int8 -> ``arm_depthwise_conv_wrapper_s8``: depth multiplier 1 and no
  dilation -> ``arm_depthwise_conv_3x3_s8`` (3x3, padding <= 1) or ``arm_depthwise_conv_s8_opt``;
  a depth multiplier > 1 or a dilation -> the generic ``arm_depthwise_conv_s8``.
- FULLY_CONNECTED int8 -> ``arm_fully_connected_s8`` (``arm_convolve_1x1_s8_fast`` for a 3-D/4-D
  output whose depth is a multiple of 4).
- ADD / MUL int8: equal input shapes -> ``arm_elementwise_add_s8`` / ``_mul_s8``; any broadcast
  -> TFLM's reference ``BroadcastAdd4DSlow`` / ``BroadcastMul4DSlow`` (slow: index arithmetic per
  element).
- AVERAGE_POOL_2D / MAX_POOL_2D int8 -> ``arm_avgpool_s8`` / ``arm_max_pool_s8``; SOFTMAX int8 ->
  ``arm_softmax_s8``.
- RESHAPE, SQUEEZE, EXPAND_DIMS: a copy at most. Everything else: TFLM's reference kernel.

The cost of a kernel is ``fixed + sum(coef * feature)`` Cortex-M4 *instructions* with features
such as MACs, output elements or im2col elements (:data:`M4_COST`, fitted on measured
instructions, see its comment). Board cycles are instructions times a board factor and board
milliseconds cycles / MHz (:data:`BOARD_TIMING`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kwstool.core.boards import BOARDS
from kwstool.deploy.kernels import choose_kernel

# --- board timing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardTiming:
    """How a board turns the cost model's Cortex-M4 instruction counts into time."""

    clock_mhz: float
    cycles_per_instruction: float  # board cycles per (QEMU-counted) Cortex-M4 instruction
    cycles_note: str  # where the factor comes from
    frontend_instructions_per_frame: int  # kws_frontend, one 20 ms frame (M4 instructions)
    measured: bool  # True: QEMU --measure reproduces this board's kernels
    note: str


#: Per-board timing calibration (the clock comes from kwstool.core.boards; this table could be
#: folded into its Board records).
BOARD_TIMING: dict[str, BoardTiming] = {
    "nano33ble": BoardTiming(
        clock_mhz=float(BOARDS["nano33ble"].clock_mhz),  # 64 MHz
        # nRF52840 Cortex-M4F @ 64 MHz. QEMU counts instructions; the M4 core needs > 1 cycle
        # for some (LDR 2 cycles unless pipelined with the next load, taken branches 1 + 1..3
        # refill cycles, LDM/STM 1 + n), and code runs from flash through the NVMC's 2 KiB
        # instruction cache (flash wait states on each miss). Issue 10's estimate for the shipped
        # bc_resnet, 11.96 M instructions ~ 220-280 ms at 64 MHz, is a CPI of 1.18-1.50; 1.35 is
        # its middle. Not yet checked on a board: replace it with the ratio of the board's
        # `STATS inference_us` (kwstool device-test) to the m4sim count when one is measured.
        cycles_per_instruction=1.35,
        cycles_note="CPI 1.35: middle of issue 10's 220-280 ms for 11.96 M instructions at "
        "64 MHz (2-cycle loads, branch refills, flash cache misses); unverified on "
        "hardware",
        # m4sim (firmware/m4sim, QEMU mps2-an386 -icount shift=0, -Os, arm-none-eabi-gcc 12.2):
        # 108,744 instructions per frame on 1 s of tone + noise (issue 10: 106.6 k).
        frontend_instructions_per_frame=108_744,
        measured=True,
        note="cost model fitted on m4sim (QEMU Cortex-M4) instruction counts of the pinned "
        "TFLM + CMSIS-NN",
    ),
    "esp32dev": BoardTiming(
        clock_mhz=float(BOARDS["esp32dev"].clock_mhz),  # 240 MHz
        # ESP32 (Xtensa LX6 @ 240 MHz). No emulator here: an ESTIMATE. The pinned library
        # (Chirale_TensorFlowLite) builds CMSIS-NN's portable C paths on the ESP32 (no ARM DSP
        # SIMD, no ESP-NN), so an int8 MAC costs a load-multiply-add sequence instead of half an
        # SMLAD: ~2 LX6 cycles per M4 instruction of the same kernel is assumed (Espressif's
        # esp-tflite-micro README reports ESP-NN speeding person_detection up ~10x over the
        # plain TFLM kernels on the ESP32, i.e. the plain kernels are far from SIMD speed).
        cycles_per_instruction=2.0,
        cycles_note="ESTIMATE: 2.0 LX6 cycles per M4 instruction (portable C kernels, no SIMD); "
        "not measured",
        frontend_instructions_per_frame=108_744,
        measured=False,
        note="estimate: Cortex-M4 cost model x 2.0 cycles/instruction at 240 MHz; no emulator, "
        "verify with kwstool device-test",
    ),
}


# --- kernel costs (Cortex-M4 instructions) -----------------------------------------------------
@dataclass(frozen=True)
class KernelCost:
    fixed: float  # per call: setup, requant tables, loop entry
    coef: dict[str, Any] = field(default_factory=dict)  # feature name -> instructions per unit
    source: str = ""


#: Instructions per kernel = fixed + sum(coef[f] * features[f]). Fitted (non-negative least
#: squares) by ``scripts/bench_latency.py --fit`` on m4sim per-op instruction counts of the four
#: zoo models plus single-layer probe models (firmware/m4sim, QEMU mps2-an386 -icount shift=0,
#: pinned Chirale_TensorFlowLite 46da2f9, arm-none-eabi-gcc 12.2 -Os); the fit's residuals are in
#: docs/m4_op_costs.md. Features: macs (multiply-accumulates), out (output elements), px (output
#: pixels), col (im2col elements = output pixels x kernel area x input channels), win (pooling
#: window reads = output elements x window area), el (elements), bytes (copied bytes).
M4_COST: dict[str, KernelCost] = {
    # CONV_2D. 1x1: ~1.7 instr/MAC in the mat-mult plus ~58 per output (requantization) and ~42
    # per pixel; im2col convs ~2.4/MAC + ~12 per im2col element; on a 1-channel input im2col
    # dominates (~54 per kernel tap and output pixel).
    "arm_convolve_1x1_s8_fast": KernelCost(
        3273, {"macs": 1.72, "out": 57.4, "px": 38.6}, "m4sim fit, 39 ops"
    ),
    "arm_convolve_s8": KernelCost(
        3695, {"macs": 2.46, "col": 11.7, "out": 45.9}, "m4sim fit, 19 ops"
    ),
    "arm_convolve_s8/cin1": KernelCost(
        0, {"macs": 2.44, "col": 53.6, "out": 60.9}, "m4sim fit, 8 ops"
    ),
    "arm_convolve_1_x_n_s8": KernelCost(0, {"macs": 3.57}, "m4sim fit, 2 ops"),
    # DEPTHWISE_CONV_2D: 3x3 ~10.8/MAC; other kernels (_opt) ~10/MAC + ~49 per output; dilated
    # or depth-multiplier > 1 (generic) ~17/MAC + ~200 per output.
    "arm_depthwise_conv_3x3_s8": KernelCost(0, {"macs": 10.8}, "m4sim fit, 8 ops"),
    "arm_depthwise_conv_s8_opt": KernelCost(5086, {"macs": 9.85, "out": 50.2}, "m4sim fit, 25 ops"),
    "arm_depthwise_conv_s8": KernelCost(3811, {"macs": 17.3, "out": 203}, "m4sim fit, 11 ops"),
    "arm_fully_connected_s8": KernelCost(0, {"macs": 3.39}, "m4sim fit, 2 ops"),
    # Elementwise: the CMSIS-NN add requantizes both inputs and the output per element (~82);
    # the reference broadcast add adds 4-D index arithmetic (~159 per output element).
    "arm_elementwise_add_s8": KernelCost(820, {"el": 81.7}, "m4sim fit, 10 ops"),
    "arm_elementwise_mul_s8": KernelCost(0, {"el": 36.8}, "m4sim fit, 1 op"),
    "BroadcastAdd4DSlow": KernelCost(18637, {"el": 153}, "m4sim fit, 8 ops"),
    "BroadcastMul4DSlow": KernelCost(0, {"el": 58.3}, "m4sim fit, 1 op"),
    "arm_avgpool_s8": KernelCost(377, {"win": 13.8, "out": 16.3}, "m4sim fit, 14 ops"),
    "arm_max_pool_s8": KernelCost(0, {"win": 11.1}, "m4sim fit, 1 op"),
    "arm_softmax_s8": KernelCost(0, {"el": 297}, "m4sim fit, 6 ops (all 12 classes)"),
    "copy": KernelCost(194, {"bytes": 0.533}, "m4sim fit, 10 ops"),
    # TFLM reference kernels (el = the larger of input and output elements). MEAN (Keras'
    # GlobalAveragePooling2D) is ~12x an AVERAGE_POOL_2D over the same map.
    "reference STRIDED_SLICE": KernelCost(0, {"el": 2}, "m4sim fit, 2 ops"),
    "reference MEAN": KernelCost(0, {"el": 174}, "m4sim fit, 1 op"),
    "reference": KernelCost(
        500, {"el": 40.0}, "GUESS, not measured: other TFLM reference kernels, ~40 per element"
    ),
}


# --- operators ---------------------------------------------------------------------------------
@dataclass
class OpInfo:
    """One operator of subgraph 0 as the cost model sees it."""

    index: int
    op: str  # builtin name, e.g. CONV_2D
    kernel: str  # e.g. arm_convolve_1x1_s8_fast, BroadcastAdd4DSlow
    path: str  # "cmsis-nn", "reference" or "copy"
    input_shapes: list[Any]  # activation inputs (weights excluded)
    output_shape: tuple[Any, ...]
    filter_shape: tuple[Any, ...] | None
    params: dict[str, Any]
    features: dict[str, Any]  # the KernelCost feature values
    op_class: str = ""  # coarse class for reports, e.g. "conv 1x1"
    cost_key: str = ""  # the M4_COST entry (the kernel, or a kernel variant)

    @property
    def macs(self) -> int:
        return int(self.features.get("macs", 0))


def classify(
    index: int,
    op: str,
    in_shapes: list[Any],
    out_shape: tuple[Any, ...],
    filt: tuple[Any, ...] | None,
    opts: Any,  # the tflite flatbuffer builtin options object (untyped)
    const_inputs: list[Any],
) -> OpInfo:
    """The kernel that will run one operator, with its cost features."""
    kernel, path, cls, feats, params = choose_kernel(op, in_shapes, out_shape, filt, opts)
    # arm_convolve_s8 on a 1-channel input is its own cost regime: im2col copies one byte per
    # kernel tap (a call per tap), so its cost follows the im2col size, not the MACs.
    cost_key = kernel + ("/cin1" if cls == "conv cin=1" else "")
    return OpInfo(
        index=index,
        op=op,
        kernel=kernel,
        path=path,
        cost_key=cost_key,
        input_shapes=[tuple(s) for s in in_shapes],
        output_shape=tuple(out_shape),
        filter_shape=tuple(filt) if filt is not None else None,
        params=params,
        features=feats,
        op_class=cls,
    )


def model_ops(tflite: bytes, where: str = "model") -> list[OpInfo]:
    """The operators of subgraph 0, in execution order, classified."""
    from tflite_micro.python.tflite_micro import runtime
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    from kwstool.core.tflite import _check_tflite_bytes
    from kwstool.errors import KwsError

    _check_tflite_bytes(tflite, where)
    try:
        model = runtime.convert_bytearray_to_object(bytearray(tflite))
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        codes = [runtime.get_builtin_code_from_operator_code(oc) for oc in model.operatorCodes]
        graph = model.subgraphs[0]
        buffers = model.buffers or []

        def is_const(t: int) -> bool:
            b = graph.tensors[t].buffer
            return b < len(buffers) and buffers[b].data is not None and len(buffers[b].data) > 0

        ops = []
        for i, o in enumerate(graph.operators or []):
            name = names.get(codes[o.opcodeIndex], f"BUILTIN_{codes[o.opcodeIndex]}")
            inputs = [t for t in (o.inputs if o.inputs is not None else []) if t >= 0]
            act = [tuple(int(d) for d in graph.tensors[t].shape) for t in inputs if not is_const(t)]
            const = [tuple(int(d) for d in graph.tensors[t].shape) for t in inputs if is_const(t)]
            out = tuple(int(d) for d in graph.tensors[o.outputs[0]].shape)
            filt = None
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(inputs) > 1:
                filt = tuple(int(d) for d in graph.tensors[inputs[1]].shape)
                act = [tuple(int(d) for d in graph.tensors[inputs[0]].shape)]
            if name in ("ADD", "MUL"):  # a constant operand still takes part in the broadcast
                act = [tuple(int(d) for d in graph.tensors[t].shape) for t in inputs[:2]]
            ops.append(classify(i, name, act or [out], out, filt, o.builtinOptions, const))
    except KwsError:
        raise
    except Exception as exc:
        raise KwsError(
            f"{where}: cannot read the operators of the TFLite flatbuffer "
            f"({type(exc).__name__}: {exc}); re-run `kwstool quantize`"
        ) from None
    return ops


def instructions(op: OpInfo, table: dict[str, KernelCost] | None = None) -> float:
    """Estimated Cortex-M4 instructions of one operator."""
    t = table or M4_COST
    cost = (
        t.get(op.cost_key or op.kernel)
        or t.get(op.kernel)
        or t.get("reference")
        or M4_COST["reference"]
    )
    total: float = cost.fixed + sum(c * float(op.features.get(f, 0)) for f, c in cost.coef.items())
    return total
