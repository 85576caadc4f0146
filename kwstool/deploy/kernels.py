"""Which kernel the pinned TFLite-Micro + CMSIS-NN run for one operator, with its cost features
and parameters (:func:`choose_kernel`; the conditions are listed in
:mod:`kwstool.deploy.costmodel`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple


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
KernelChoice = tuple[str, str, str, dict[str, Any], dict[str, Any]]


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


def _conv(w: _Window, feats: dict[str, Any]) -> KernelChoice:
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


def _depthwise(w: _Window, feats: dict[str, Any]) -> KernelChoice:
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
) -> KernelChoice:
    out_el = feats["out"]
    cout, depth = filt[0], filt[-1]
    feats.update(macs=cout * depth * max(out_el // max(cout, 1), 1))
    kernel = (
        "arm_convolve_1x1_s8_fast"
        if len(out_shape) > 2 and depth % 4 == 0
        else "arm_fully_connected_s8"
    )
    return kernel, "cmsis-nn", "fully connected", feats, {}


def _elementwise(op: str, in_shapes: list[Any], out_el: int) -> KernelChoice:
    shapes = [tuple(s) for s in in_shapes]
    feats = {"el": out_el, "out": out_el}
    same = len(shapes) == 2 and shapes[0] == shapes[1]
    params = {"broadcast": not same}
    name = "add" if op == "ADD" else "mul"
    if same:
        return f"arm_elementwise_{name}_s8", "cmsis-nn", f"{name} equal-shape", feats, params
    kernel = "BroadcastAdd4DSlow" if op == "ADD" else "BroadcastMul4DSlow"
    return kernel, "reference", f"{name} broadcast", feats, params


def _pool(op: str, opts: Any, feats: dict[str, Any]) -> KernelChoice:
    kh, kw = opts.filterHeight, opts.filterWidth
    params = {"window": (kh, kw), "stride": (opts.strideH, opts.strideW)}
    feats.update(win=feats["out"] * kh * kw)
    kernel = "arm_avgpool_s8" if op == "AVERAGE_POOL_2D" else "arm_max_pool_s8"
    cls = "average pool" if op == "AVERAGE_POOL_2D" else "max pool"
    return kernel, "cmsis-nn", cls, feats, params


def choose_kernel(
    op: str,
    in_shapes: list[Any],
    out_shape: tuple[Any, ...],
    filt: tuple[Any, ...] | None,
    opts: Any,
) -> KernelChoice:
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
