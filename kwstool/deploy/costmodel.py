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

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kwstool.core.boards import BOARDS

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


def _padding(padding: int, in_size: int, out_size: int, stride: int, k: int, dil: int) -> int:
    """TFLM's padding (kernels/padding.h) for SAME (0) / VALID (1)."""
    if padding != 0:
        return 0
    eff = (k - 1) * dil + 1
    total = max((out_size - 1) * stride + eff - in_size, 0)
    return total // 2


def _prod(shape: Iterable[Any]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


#: What :func:`classify` decides for one operator: kernel, path, op class, cost features, params.
_Choice = tuple[str, str, str, dict[str, Any], dict[str, Any]]


class _Window(NamedTuple):
    """The geometry of a (depthwise) convolution: input, output, kernel, stride, dilation, pad."""

    ih: int
    iw: int
    cin: int
    oh: int
    ow: int
    cout: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    ph: int
    pw: int

    def params(self) -> dict[str, Any]:
        return {
            "kernel": (self.kh, self.kw),
            "stride": (self.sh, self.sw),
            "dilation": (self.dh, self.dw),
            "pad": (self.ph, self.pw),
        }


def _window(in_shape: Any, out_shape: tuple[Any, ...], filt: tuple[Any, ...], opts: Any) -> _Window:
    _, ih, iw, cin = in_shape
    _, oh, ow, cout = out_shape
    kh, kw = filt[1], filt[2]
    sh, sw = opts.strideH, opts.strideW
    dh, dw = opts.dilationHFactor or 1, opts.dilationWFactor or 1
    ph = _padding(opts.padding, ih, oh, sh, kh, dh)
    pw = _padding(opts.padding, iw, ow, sw, kw, dw)
    return _Window(ih, iw, cin, oh, ow, cout, kh, kw, sh, sw, dh, dw, ph, pw)


def _conv(w: _Window, feats: dict[str, Any]) -> _Choice:
    feats.update(
        macs=w.oh * w.ow * w.cout * w.kh * w.kw * w.cin,
        px=w.oh * w.ow,
        col=w.oh * w.ow * w.kh * w.kw * w.cin,
    )
    pointwise = w.ph == 0 and w.pw == 0 and w.sh == 1 and w.sw == 1 and w.kh == 1 and w.kw == 1
    if pointwise and w.dh == w.dw == 1:
        kernel, cls = "arm_convolve_1x1_s8_fast", "conv 1x1"
    elif w.ih == 1 and w.ow % 4 == 0 and w.dw == 1 and w.kh == 1:
        kernel, cls = "arm_convolve_1_x_n_s8", "conv 1xn"
    else:
        kernel = "arm_convolve_s8"
        cls = "conv cin=1" if w.cin == 1 else ("conv head" if w.oh * w.ow == 1 else "conv kxk")
    return kernel, "cmsis-nn", cls, feats, w.params()


def _depthwise(w: _Window, feats: dict[str, Any]) -> _Choice:
    mult = w.cout // max(w.cin, 1)
    params = {**w.params(), "depth_multiplier": mult}
    feats.update(
        macs=w.oh * w.ow * w.cout * w.kh * w.kw,
        px=w.oh * w.ow,
        col=w.oh * w.ow * w.kh * w.kw * w.cin,
    )
    if mult == 1 and w.dh == w.dw == 1:
        if w.kh == 3 and w.kw == 3 and w.ph <= 1 and w.pw <= 1:
            kernel = "arm_depthwise_conv_3x3_s8"
        else:
            kernel = "arm_depthwise_conv_s8_opt"
    else:
        kernel = "arm_depthwise_conv_s8"
    shape = "kxk" if w.kh > 1 and w.kw > 1 else ("kx1" if w.kh > 1 else "1xk")
    cls = f"dwconv {shape}" + (" dilated/mult" if kernel == "arm_depthwise_conv_s8" else "")
    return kernel, "cmsis-nn", cls, feats, params


def _fully_connected(
    out_shape: tuple[Any, ...], filt: tuple[Any, ...], feats: dict[str, Any]
) -> _Choice:
    out_el = feats["out"]
    cout, depth = filt[0], filt[-1]
    feats.update(macs=cout * depth * max(out_el // max(cout, 1), 1))
    kernel = (
        "arm_convolve_1x1_s8_fast"
        if len(out_shape) > 2 and depth % 4 == 0
        else "arm_fully_connected_s8"
    )
    return kernel, "cmsis-nn", "fully connected", feats, {}


def _elementwise(op: str, in_shapes: list[Any], out_el: int) -> _Choice:
    shapes = [tuple(s) for s in in_shapes]
    feats = {"el": out_el, "out": out_el}
    same = len(shapes) == 2 and shapes[0] == shapes[1]
    params = {"broadcast": not same}
    name = "add" if op == "ADD" else "mul"
    if same:
        return f"arm_elementwise_{name}_s8", "cmsis-nn", f"{name} equal-shape", feats, params
    kernel = "BroadcastAdd4DSlow" if op == "ADD" else "BroadcastMul4DSlow"
    return kernel, "reference", f"{name} broadcast", feats, params


def _pool(op: str, opts: Any, feats: dict[str, Any]) -> _Choice:
    kh, kw = opts.filterHeight, opts.filterWidth
    params = {"window": (kh, kw), "stride": (opts.strideH, opts.strideW)}
    feats.update(win=feats["out"] * kh * kw)
    kernel = "arm_avgpool_s8" if op == "AVERAGE_POOL_2D" else "arm_max_pool_s8"
    cls = "average pool" if op == "AVERAGE_POOL_2D" else "max pool"
    return kernel, "cmsis-nn", cls, feats, params


def _choose(
    op: str,
    in_shapes: list[Any],
    out_shape: tuple[Any, ...],
    filt: tuple[Any, ...] | None,
    opts: Any,
) -> _Choice:
    """The kernel TFLM + CMSIS-NN picks for ``op``, with its cost features and parameters."""
    out_el = _prod(out_shape)
    feats: dict[str, Any] = {"out": out_el}
    if op == "CONV_2D" and filt is not None:
        return _conv(_window(in_shapes[0], out_shape, filt, opts), feats)
    if op == "DEPTHWISE_CONV_2D" and filt is not None:
        return _depthwise(_window(in_shapes[0], out_shape, filt, opts), feats)
    if op == "FULLY_CONNECTED" and filt is not None:
        return _fully_connected(out_shape, filt, feats)
    if op in ("ADD", "MUL"):
        return _elementwise(op, in_shapes, out_el)
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return _pool(op, opts, feats)
    if op == "SOFTMAX":
        return "arm_softmax_s8", "cmsis-nn", "softmax", {"el": out_el, "out": out_el}, {}
    if op in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
        return "copy", "copy", "reshape", {"bytes": out_el}, {}
    # TFLM's reference kernel; its M4_COST entry is "reference <OP>" when one was measured,
    # else the generic "reference" guess.
    feats = {"el": max(out_el, _prod(in_shapes[0]) if in_shapes else 0), "out": out_el}
    return f"reference {op}", "reference", op.lower(), feats, {}


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
    kernel, path, cls, feats, params = _choose(op, in_shapes, out_shape, filt, opts)
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
