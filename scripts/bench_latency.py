"""Latency of every zoo model on the Nano 33 BLE: cost model vs m4sim (QEMU Cortex-M4) counts.

    python scripts/bench_latency.py --tflm-src DIR            # zoo models, cost model vs QEMU
    python scripts/bench_latency.py --tflm-src DIR --fit      # + probe layers, refit M4_COST
    python scripts/bench_latency.py --no-measure              # cost model only (no toolchain)

Each zoo model (kwstool.model.zoo.MODELS) is built untrained (initialised weights) and converted to
int8 with kwstool.model.quantize.convert on random int8 features: enough for latency, which depends
on shapes and kernels, not on weights. ``--fit`` adds single-purpose probe models (1x1 convs of
several widths, depthwise kxk / kx1 / 1xk / dilated, convs on the 1-channel input, pools, adds,
fully connected) and fits the cost model's per-kernel constants (non-negative least squares),
printing them as the ``M4_COST`` table for kwstool/deploy/costmodel.py. Prints numbers only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from kwstool.deploy import costmodel, profile as prof

#: Features each kernel's cost is fitted on (besides the fixed per-call term).
FIT_FEATURES = {
    "arm_convolve_1x1_s8_fast": ["macs", "out", "px"],
    "arm_convolve_1_x_n_s8": ["macs", "col", "out"],
    "arm_convolve_s8": ["macs", "col", "out"],
    "arm_convolve_s8/cin1": ["macs", "col", "out"],
    "arm_depthwise_conv_3x3_s8": ["macs", "out"],
    "arm_depthwise_conv_s8_opt": ["macs", "out"],
    "arm_depthwise_conv_s8": ["macs", "out"],
    "arm_fully_connected_s8": ["macs", "out"],
    "arm_elementwise_add_s8": ["el"],
    "arm_elementwise_mul_s8": ["el"],
    "BroadcastAdd4DSlow": ["el"],
    "BroadcastMul4DSlow": ["el"],
    "arm_avgpool_s8": ["win", "out"],
    "arm_max_pool_s8": ["win", "out"],
    "arm_softmax_s8": ["el"],
    "copy": ["bytes"],
    "reference": ["el"],
}


def representative(shape, n=8, seed=0):
    rng = np.random.default_rng(seed)
    rep = rng.integers(-128, 128, size=(n, *tuple(shape))).astype(np.float32)
    rep.reshape(n, -1)[0, :2] = (-128, 127)
    return rep


def zoo_models():
    from kwstool.model.zoo import MODELS, build_model

    for name in MODELS:
        yield name, build_model(name, 12, batch_size=1)


def probe_models():
    """Small models whose layers span the shapes the cost model must cover."""
    import keras
    from keras import layers as L

    def chain(name, shape, make):
        inp = keras.Input(shape=shape, batch_size=1)
        return name, keras.Model(inp, make(inp), name=name)

    def pw_chain(x, widths):
        for w in widths:
            x = L.Conv2D(w, 1, activation="relu")(x)
        return x

    yield chain("probe_pw_25x20", (25, 20, 8), lambda x: pw_chain(x, [16, 32, 64, 64, 16, 48]))
    yield chain("probe_pw_13x10", (13, 10, 64), lambda x: pw_chain(x, [64, 128, 32, 96]))
    yield chain("probe_pw_25x1", (25, 1, 24), lambda x: pw_chain(x, [24, 48, 96, 12]))

    def dw(x, k, d=(1, 1), m=1, s=(1, 1)):
        return L.DepthwiseConv2D(
            k, strides=s, dilation_rate=d, depth_multiplier=m, padding="same", activation="relu"
        )(x)

    def dw_chain(x):
        for k, d in [
            ((3, 3), (1, 1)),
            ((1, 3), (1, 1)),
            ((3, 1), (1, 1)),
            ((5, 1), (1, 1)),
            ((1, 5), (1, 1)),
            ((3, 1), (2, 1)),
            ((3, 3), (2, 2)),
            ((5, 5), (1, 1)),
        ]:
            x = dw(x, k, d)
        x = dw(x, (3, 3), s=(2, 2))
        return dw(x, (3, 3), m=2)

    yield chain("probe_dw_25x20x32", (25, 20, 32), dw_chain)
    yield chain("probe_dw_13x10x64", (13, 10, 64), dw_chain)
    yield chain(
        "probe_dw_25x1x48", (25, 1, 48), lambda x: dw(dw(dw(x, (3, 1)), (5, 1)), (3, 1), (2, 1))
    )
    for k, f, s in [
        ((10, 8), 8, (2, 2)),
        ((3, 3), 16, (1, 1)),
        ((10, 4), 64, (2, 2)),
        ((3, 3), 32, (2, 2)),
    ]:
        yield chain(
            f"probe_c1_{k[0]}x{k[1]}_{f}_s{s[0]}",
            (49, 40, 1),
            lambda x, k=k, f=f, s=s: L.Conv2D(f, k, strides=s, padding="same", activation="relu")(
                x
            ),
        )

    # The 1-channel stem alternative: RESHAPE 49x40x1 -> 49x1x40 (free), then a kx1 conv with
    # the 40 frequency bins as input channels.
    for k, f, st in [(3, 12, 1), (3, 32, 2), (5, 24, 2)]:
        yield chain(
            f"probe_reshape_stem_{k}x1_{f}_s{st}",
            (49, 40, 1),
            lambda x, k=k, f=f, st=st: L.Conv2D(
                f, (k, 1), strides=(st, 1), padding="same", activation="relu"
            )(L.Reshape((49, 1, 40))(x)),
        )

    def kxk_chain(x):
        x = L.Conv2D(16, 3, padding="same", activation="relu")(x)
        x = L.Conv2D(32, 3, padding="same", activation="relu")(x)
        x = L.Conv2D(32, (3, 1), padding="same", activation="relu")(x)
        x = L.Conv2D(32, (1, 3), padding="same", activation="relu")(x)
        return L.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)

    yield chain("probe_conv_25x20x16", (25, 20, 16), kxk_chain)
    yield chain(
        "probe_conv_1xn",
        (1, 48, 16),
        lambda x: L.Conv2D(16, (1, 5), padding="same", activation="relu")(
            L.Conv2D(32, (1, 3), padding="same", activation="relu")(x)
        ),
    )

    def pool_add(x):
        f = L.AveragePooling2D((1, 20))(x)
        b = L.Add()([x, f])  # broadcast ADD (reference)
        c = L.Conv2D(24, 1)(b)
        e = L.Add()([b, c])  # equal-shape ADD (CMSIS-NN)
        m = L.Multiply()([e, L.AveragePooling2D((25, 1))(e)])  # broadcast MUL
        m2 = L.Multiply()([m, L.Conv2D(24, 1)(m)])  # equal-shape MUL
        p = L.MaxPooling2D((2, 2))(m2)
        return L.AveragePooling2D(tuple(p.shape[1:3]))(p)

    yield chain("probe_pool_add_25x20x24", (25, 20, 24), pool_add)
    yield chain(
        "probe_pool_add_13x10x64",
        (13, 10, 64),
        lambda x: L.Add()([x, L.AveragePooling2D((1, 10))(x)]),
    )

    yield chain(
        "probe_mean_25x20x32", (25, 20, 32), lambda x: L.GlobalAveragePooling2D(keepdims=True)(x)
    )  # MEAN (reference)

    def fc(x):
        x = L.Flatten()(x)
        x = L.Dense(64, activation="relu")(x)
        return L.Softmax()(L.Dense(12)(x))

    yield chain("probe_fc", (25, 20, 8), fc)


def build_all(work: Path, with_probes: bool) -> list[tuple[str, Path]]:
    from kwstool.model.quantize import convert

    work.mkdir(parents=True, exist_ok=True)
    out = []
    gens = [zoo_models()] + ([probe_models()] if with_probes else [])
    for gen in gens:
        for name, model in gen:
            path = work / f"{name}.tflite"
            if not path.exists():
                shape = tuple(int(d) for d in model.input_shape[1:])
                path.write_bytes(convert(model, representative(shape)))
            out.append((name, path))
    return out


def nnls_fit(samples):
    """samples: [(features dict, measured)] -> (fixed, {feature: coef}) for one kernel."""
    from scipy.optimize import nnls

    kernel_feats = samples[0][2]
    a = np.array([[1.0] + [float(f.get(k, 0)) for k in kernel_feats] for f, _, _ in samples])
    y = np.array([m for _, m, _ in samples], dtype=float)
    # Relative error matters (small ops must not be ignored): weight rows by 1 / measured;
    # columns scaled to unit maximum so the solver's tolerance suits every feature.
    w = 1.0 / np.maximum(y, 1.0)
    if len(samples) <= a.shape[1] or np.linalg.matrix_rank(a) < a.shape[1]:
        # Too few distinct shapes to separate a fixed cost: all of it per unit of the main
        # feature (the first), which is what extrapolates to other shapes.
        main = a[:, 1]
        return 0.0, {
            k: (float(np.sum(y * w) / np.sum(main * w)) if i == 0 else 0.0)
            for i, k in enumerate(kernel_feats)
        }
    aw = a * w[:, None]
    scale = np.maximum(np.abs(aw).max(axis=0), 1e-30)
    sol, _ = nnls(aw / scale, y * w)
    sol = sol / scale
    return float(sol[0]), {k: float(c) for k, c in zip(kernel_feats, sol[1:])}


def fmt_coef(c: float) -> str:
    return f"{c:.3g}" if c < 100 else f"{c:.0f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/kwstool_bench_latency"))
    ap.add_argument("--tflm-src", default=None)
    ap.add_argument("--board", default="nano33ble")
    ap.add_argument("--fit", action="store_true", help="add probe models and refit M4_COST")
    ap.add_argument("--no-measure", action="store_true")
    args = ap.parse_args(argv)

    models = build_all(args.work, with_probes=args.fit)
    results = {}
    for name, path in models:
        results[name] = prof.profile(
            path, board=args.board, measure=not args.no_measure, tflm_src=args.tflm_src
        )
    t = costmodel.BOARD_TIMING[args.board]
    table = dict(costmodel.M4_COST)

    if args.fit and not args.no_measure:
        samples = defaultdict(list)
        for r in results.values():
            for o in r.ops:
                info = next(
                    i
                    for i in costmodel.model_ops(Path(r.model_path).read_bytes())
                    if i.index == o.index
                )
                feats = FIT_FEATURES.get(o.kernel, ["el"])  # "reference <OP>": per element
                feats = FIT_FEATURES.get(info.cost_key, feats)
                samples[info.cost_key].append((info.features, o.measured_instructions, feats))
        print("## Fitted M4_COST (instructions = fixed + sum coef * feature)\n")
        print("```python")
        for kernel, s in samples.items():
            fixed, coef = nnls_fit(s)
            table[kernel] = costmodel.KernelCost(fixed, coef, "fit")
            cs = ", ".join(f'"{k}": {fmt_coef(v)}' for k, v in coef.items())
            print(
                f'    "{kernel}": KernelCost({fmt_coef(fixed)}, {{{cs}}}, '
                f'"m4sim fit, {len(s)} ops"),'
            )
        print("```\n")
        for r in results.values():  # re-estimate with the fitted table
            fresh = prof.estimate(Path(r.model_path).read_bytes(), args.board, r.model_path, table)
            for o, f in zip(r.ops, fresh.ops):
                o.est_instructions, o.est_cycles, o.est_ms = (
                    f.est_instructions,
                    f.est_cycles,
                    f.est_ms,
                )
            r.est_instructions, r.est_cycles, r.est_ms = (
                fresh.est_instructions,
                fresh.est_cycles,
                fresh.est_ms,
            )

    print("## Cost model constants in use (M4 instructions = fixed + sum coef * feature)\n")
    print("| kernel | fixed | per feature | source |")
    print("|---|---|---|---|")
    for kernel, c in table.items():
        coef = ", ".join(f"{fmt_coef(v)}/{k}" for k, v in c.coef.items() if v) or "-"
        print(f"| {kernel} | {fmt_coef(c.fixed)} | {coef} | {c.source} |")
    print()
    for name, bt in costmodel.BOARD_TIMING.items():
        print(
            f"- {name}: {bt.clock_mhz:.0f} MHz, {bt.cycles_per_instruction} cycles/instruction: "
            f"{bt.cycles_note}"
        )
    print()
    print(
        f"## {args.board}: {t.clock_mhz:.0f} MHz, {t.cycles_per_instruction} cycles per "
        f"instruction ({t.cycles_note})\n"
    )
    print(
        f"Front end: {results[models[0][0]].frontend_instructions_per_frame:,} instructions "
        f"per 20 ms frame = {results[models[0][0]].frontend_ms_per_frame:.2f} ms\n"
    )
    print(
        "| model | ops | MACs | cost model M instr | QEMU M instr | error | est ms | "
        "measured ms | period ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        macs = sum(o.macs for o in r.ops)
        meas = r.measured_instructions
        err = f"{(r.est_instructions / meas - 1) * 100:+.1f} %" if meas else "-"
        period = prof.inference_period_ms(r.latency_ms, r.frontend_ms_per_frame)
        print(
            f"| {name} | {len(r.ops)} | {macs / 1e6:.2f} M | {r.est_instructions / 1e6:.3f} | "
            f"{f'{meas / 1e6:.3f}' if meas else '-'} | {err} | {r.est_ms:.1f} | "
            f"{f'{r.measured_ms:.1f}' if r.measured_ms is not None else '-'} | "
            f"{period if period else 'too slow'} |"
        )
    print()

    if args.no_measure:
        return 0
    # Per model, per op class.
    for name, r in results.items():
        if name.startswith("probe_"):
            continue
        by = defaultdict(lambda: [0, 0.0, 0, 0])
        for o in r.ops:
            b = by[f"{o.op_class} ({o.kernel})"]
            b[0] += 1
            b[1] += o.est_instructions
            b[2] += o.measured_instructions
            b[3] += o.macs
        print(f"### {name}\n")
        print("| op class (kernel) | n | cost model k instr | QEMU k instr | error | share |")
        print("|---|---|---|---|---|---|")
        total = sum(b[2] for b in by.values())
        for k, (n, est, meas, _) in sorted(by.items(), key=lambda kv: -kv[1][2]):
            print(
                f"| {k} | {n} | {est / 1e3:.1f} | {meas / 1e3:.1f} | "
                f"{(est / meas - 1) * 100 if meas else 0:+.1f} % | {meas / total * 100:.1f} % |"
            )
        print()

    # Unit costs per op class over every measured op (zoo + probes).
    print(
        "### Unit costs on the Cortex-M4 (QEMU instructions; x "
        f"{t.cycles_per_instruction} for {args.board} cycles)\n"
    )
    print(
        "| op class | kernel | shape examples (in -> out, kernel) | instr/MAC | "
        "instr/output element | n |"
    )
    print("|---|---|---|---|---|---|")
    rows = defaultdict(list)
    for name, r in results.items():
        for o in r.ops:
            rows[(o.op_class, o.kernel)].append((name, o))
    for (cls, kernel), lst in sorted(rows.items()):
        per_mac = [o.measured_instructions / o.macs for _, o in lst if o.macs]
        per_out = [o.measured_instructions / max(1, int(np.prod(o.output_shape))) for _, o in lst]
        ex = "; ".join(
            f"{'x'.join(map(str, o.input_shapes[0][1:]))}->"
            f"{'x'.join(map(str, o.output_shape[1:]))}"
            + (f" k{o.params['kernel'][0]}x{o.params['kernel'][1]}" if "kernel" in o.params else "")
            + (f": {o.measured_instructions / o.macs:.2f}/MAC" if o.macs else "")
            for _, o in lst[:4]
        )
        pm = (
            f"{min(per_mac):.2f}-{max(per_mac):.2f} (median {statistics.median(per_mac):.2f})"
            if per_mac
            else "-"
        )
        po = f"{min(per_out):.0f}-{max(per_out):.0f} (median {statistics.median(per_out):.0f})"
        print(f"| {cls} | {kernel} | {ex} | {pm} | {po} | {len(lst)} |")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
