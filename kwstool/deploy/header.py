"""The C text of an export: ``kws_model_data.h`` (:func:`render_header`) and ``.cc``
(:func:`render_source`), and the header's settings -- the inference period and the recognizer
defaults -- checked as the firmware's ``kws_recognizer`` needs them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kwstool.core.boards import Board, arena_margin, arena_total
from kwstool.core.recognizer import RECOGNIZER_DEFAULTS
from kwstool.deploy.profile import LATENCY_MARGIN
from kwstool.errors import KwsError

#: The feature parameters the header states (the firmware static-asserts them).
FEATURE_KEYS = ("sample_rate", "window_ms", "stride_ms", "num_channels", "num_frames")

#: micro_speech's RecognizeCommands defaults, in time (kwstool.core.recognizer, shared with
#: `kwstool listen` and `stream-eval`).
#: The live loop runs the model every this many ms of audio unless export is told otherwise:
#: the smallest multiple of the stride >= 100 ms (kws_recognizer covers 50..3000 ms windows).
MIN_DEFAULT_PERIOD_MS = 100
#: kws_recognizer's limits (firmware/lib/kws_recognizer/kws_recognizer.h).
MAX_WINDOW_MS = 3000


# --- C text ------------------------------------------------------------------------------------
def _c_float(x: float) -> str:
    """Shortest decimal that reads back as the same float32, as a C float literal."""
    s = str(np.float32(x))
    if "e" not in s and "." not in s and "inf" not in s and "nan" not in s:
        s += ".0"
    return s + "f"


def _c_int(x: int) -> str:
    return f"({x})" if x < 0 else str(x)


def _c_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def default_period_ms(stride_ms: int) -> int:
    """The smallest multiple of the stride >= MIN_DEFAULT_PERIOD_MS."""
    return -(-MIN_DEFAULT_PERIOD_MS // stride_ms) * stride_ms


def _threshold_u8(value: object, what: str) -> int:
    """A threshold as 0..255: a float in [0, 1] is a probability, an int 0..255 is as is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KwsError(f"recognizer {what}: {value!r} is not a number; give 0..1 or 0..255")
    if isinstance(value, float):
        if not 0.0 <= value <= 1.0:
            raise KwsError(
                f"recognizer {what}: {value} is outside 0..1 (a probability); give "
                f"0..1, or an integer 0..255"
            )
        return round(value * 255)
    if not 0 <= value <= 255:
        raise KwsError(f"recognizer {what}: {value} is outside 0..255")
    return int(value)


def recognizer_settings(
    recognizer: dict[str, Any], labels: list[str], period_ms: int
) -> dict[str, Any]:
    """The recognizer macros' values: window, suppression, coverage and one threshold per label.

    ``recognizer`` holds ``threshold`` (every label) and/or ``thresholds`` ({label: value});
    a legacy ``minimum_count`` becomes ``(count - 1) * period_ms`` of coverage.
    """
    rec = {**RECOGNIZER_DEFAULTS, **recognizer}
    if "minimum_count" in recognizer and "minimum_coverage_ms" not in recognizer:
        rec["minimum_coverage_ms"] = max(0, int(recognizer["minimum_count"]) - 1) * period_ms
    default = _threshold_u8(rec["threshold"], "threshold")
    per_label = dict(rec.get("thresholds") or {})
    unknown = sorted(set(per_label) - set(labels))
    if unknown:
        raise KwsError(
            f"recognizer thresholds: {', '.join(unknown)} not among the model's labels "
            f"({', '.join(labels)})"
        )
    thresholds = [
        _threshold_u8(per_label[lab], f"threshold of {lab!r}") if lab in per_label else default
        for lab in labels
    ]
    window, coverage = int(rec["average_window_ms"]), int(rec["minimum_coverage_ms"])
    if not 0 < window <= MAX_WINDOW_MS or not 0 <= coverage < window:
        raise KwsError(
            f"recognizer: window {window} ms / coverage {coverage} ms; need 0 < window "
            f"<= {MAX_WINDOW_MS} ms and 0 <= coverage < window"
        )
    return {
        "average_window_ms": window,
        "suppression_ms": int(rec["suppression_ms"]),
        "minimum_coverage_ms": coverage,
        "threshold": default,
        "thresholds": thresholds,
    }


def check_period(period_ms: int, stride_ms: int) -> int:
    """``period_ms`` if it is a positive multiple of the stride of at most 1 s, else KwsError."""
    p = int(period_ms)
    if p <= 0 or p % stride_ms != 0 or p > 1000:
        raise KwsError(
            f"inference period {period_ms} ms: must be a multiple of the {stride_ms} ms "
            f"stride, {stride_ms}..1000 ms"
        )
    return p


def _block(defs: dict[str, Any]) -> str:
    """``#define`` lines, the values aligned."""
    width = max(len(k) for k in defs)
    return "".join(f"#define {k.ljust(width)} {v}\n" for k, v in defs.items())


def _feature_shape(report: dict[str, Any]) -> tuple[dict[str, Any], int, int]:
    """The report's feature parameters, frames and channels, checked against the model input."""
    feats = report.get("features")
    if not isinstance(feats, dict) or any(k not in feats for k in FEATURE_KEYS):
        raise KwsError(
            f"quantize.json: no complete feature parameters ({', '.join(FEATURE_KEYS)});"
            f" re-run `kwstool quantize`"
        )
    frames = int(feats["num_frames"])
    channels = int(feats["num_channels"])
    in_size = int(np.prod(report["input"]["shape"][1:]))
    if in_size != frames * channels:
        raise KwsError(
            f"quantize.json: model input {report['input']['shape']} does not hold "
            f"{frames}x{channels} features; re-run `kwstool quantize`"
        )
    return feats, frames, channels


def _model_defs(
    report: dict[str, Any],
    model_name: str,
    sha256: str,
    model_bytes: int,
    frames: int,
    channels: int,
) -> dict[str, str]:
    """The ``KWS_MODEL_*`` macros: identity, shape, quantization, arena, operator count."""
    used = int(report["arena_bytes"])
    return {
        "KWS_MODEL_NAME": _c_string(model_name),
        "KWS_MODEL_SHA256": _c_string(sha256),
        "KWS_MODEL_DATA_BYTES": str(model_bytes),
        "KWS_MODEL_NUM_LABELS": str(len(report["labels"])),
        "KWS_MODEL_INPUT_FRAMES": str(frames),
        "KWS_MODEL_INPUT_CHANNELS": str(channels),
        "KWS_MODEL_INPUT_SCALE": _c_float(report["input"]["scale"]),
        "KWS_MODEL_INPUT_ZERO_POINT": _c_int(int(report["input"]["zero_point"])),
        "KWS_MODEL_OUTPUT_SCALE": _c_float(report["output"]["scale"]),
        "KWS_MODEL_OUTPUT_ZERO_POINT": _c_int(int(report["output"]["zero_point"])),
        "KWS_MODEL_ARENA_USED_BYTES": str(used),
        "KWS_MODEL_ARENA_MARGIN_BYTES": str(arena_margin(used)),
        "KWS_MODEL_ARENA_BYTES": str(arena_total(used)),
        "KWS_MODEL_OP_COUNT": str(len(report["op_resolver"])),
    }


def _recognizer_defs(
    feats: dict[str, Any],
    labels: list[str],
    recognizer: dict[str, Any],
    inference_period_ms: int | None,
) -> dict[str, str]:
    """The live loop's period and the recognizer defaults, checked."""
    stride = int(feats["stride_ms"])
    period = check_period(
        default_period_ms(stride) if inference_period_ms is None else inference_period_ms, stride
    )
    rs = recognizer_settings(recognizer, labels, period)
    return {
        "KWS_INFERENCE_PERIOD_MS": str(period),
        "KWS_RECOGNIZER_AVERAGE_WINDOW_MS": str(rs["average_window_ms"]),
        "KWS_RECOGNIZER_SUPPRESSION_MS": str(rs["suppression_ms"]),
        "KWS_RECOGNIZER_MINIMUM_COVERAGE_MS": str(rs["minimum_coverage_ms"]),
        "KWS_RECOGNIZER_THRESHOLD": str(rs["threshold"]),
        "KWS_RECOGNIZER_THRESHOLDS": "{ " + ", ".join(str(t) for t in rs["thresholds"]) + " }",
    }


def _timing_text(timing: dict[str, Any] | None) -> str:
    """The estimated-inference-time block (empty without ``timing``)."""
    if timing is None:
        return ""
    timing_defs = {"KWS_MODEL_INFERENCE_US_ESTIMATE": str(int(timing["inference_us"]))}
    late = (
        " * EXPORTED WITH --force: the inference does not keep KWS_INFERENCE_PERIOD_MS.\n"
        if timing.get("problem")
        else ""
    )
    return (
        f"\n/* Estimated inference time on {timing['board']} (kwstool.deploy.profile cost\n"
        " * model; `kwstool profile --measure` counts it on QEMU, `kwstool device-test`\n"
        " * on the board).\n"
        f" * KWS_INFERENCE_PERIOD_MS holds it x {LATENCY_MARGIN} plus the front end's frames.\n"
        + late
        + " */\n"
        + _block(timing_defs)
    )


def _header_comment(
    report: dict[str, Any], model_name: str, sha256: str, model_bytes: int, board: Board
) -> str:
    """The header's opening comment: model, accuracy, board, arena."""
    used = int(report["arena_bytes"])
    acc = (report.get("accuracy") or {}).get("int8") or {}
    acc_text = ", ".join(f"{k} {v:.4f}" for k, v in sorted(acc.items()) if v is not None) or "n/a"
    return (
        "/* kws_model_data.h: generated by `kwstool export`; do not edit, re-export instead.\n"
        f" * Model {model_name}, {model_bytes} bytes, sha256 {sha256}.\n"
        f" * int8 top-1 (TFLite-Micro): {acc_text}.\n"
        f" * Budget checked for {board.name} ({board.description}).\n"
        f" * Arena: {used} bytes measured in the TFLite-Micro interpreter + {arena_margin(used)}"
        " bytes margin\n"
        " * (max(2 KiB, 25%) for optimized-kernel scratch buffers), rounded to 16.\n"
        " */\n"
    )


def render_header(
    report: dict[str, Any],
    model_name: str,
    sha256: str,
    model_bytes: int,
    board: Board,
    recognizer: dict[str, Any],
    inference_period_ms: int | None = None,
    timing: dict[str, Any] | None = None,
) -> str:
    """Text of ``kws_model_data.h``; the period defaults to :func:`default_period_ms`."""
    labels = report["labels"]
    feats, frames, channels = _feature_shape(report)
    d = _model_defs(report, model_name, sha256, model_bytes, frames, channels)
    op_lines = " \\\n".join(f"  X({m})" for m in report["op_resolver"])
    feature_defs = {
        "KWS_FEATURE_SAMPLE_RATE": str(int(feats["sample_rate"])),
        "KWS_FEATURE_WINDOW_MS": str(int(feats["window_ms"])),
        "KWS_FEATURE_STRIDE_MS": str(int(feats["stride_ms"])),
        "KWS_FEATURE_CHANNELS": str(channels),
    }
    rec_defs = _recognizer_defs(feats, list(labels), recognizer, inference_period_ms)
    timing_text = _timing_text(timing)
    return (
        _header_comment(report, model_name, sha256, model_bytes, board)
        + "#ifndef KWS_MODEL_DATA_H_\n#define KWS_MODEL_DATA_H_\n\n"
        + _block(d)
        + "\n/* One X(method) per tflite::MicroMutableOpResolver method the model needs, e.g.\n"
        " *   #define KWS_ADD_OP(m) resolver.m();\n *   KWS_MODEL_FOR_EACH_OP(KWS_ADD_OP)\n */\n"
        f"#define KWS_MODEL_FOR_EACH_OP(X) \\\n{op_lines}\n\n"
        "/* Front-end parameters the model was trained with (checked against kws_frontend). */\n"
        + _block(feature_defs)
        + '\n/* Live loop and recognizer (docs/ARCHITECTURE.md, "Export contract"): the model'
        " runs\n"
        " * every KWS_INFERENCE_PERIOD_MS of audio; scores are averaged over the last\n"
        " * AVERAGE_WINDOW_MS; a detection needs the top label's average >= its entry of\n"
        " * THRESHOLDS (score*255, one per label; THRESHOLD: the value for labels not set\n"
        " * separately), the averaged results to span >= MINIMUM_COVERAGE_MS of audio, and\n"
        " * SUPPRESSION_MS since the last detection. */\n"
        + _block(rec_defs)
        + timing_text
        + '\n#ifdef __cplusplus\nextern "C" {\n#endif\n\n'
        "extern const char *const kws_model_labels[KWS_MODEL_NUM_LABELS];\n"
        "extern const unsigned char kws_model_data[]; /* alignas(16) */\n"
        "extern const unsigned int kws_model_data_len;\n"
        '\n#ifdef __cplusplus\n}  /* extern "C" */\n#endif\n\n'
        "#endif  /* KWS_MODEL_DATA_H_ */\n"
    )


def render_source(tflite: bytes, labels: list[str], model_name: str, sha256: str) -> str:
    """Text of ``kws_model_data.cc``: the model bytes (12 per line) and the labels."""
    lines = []
    for i in range(0, len(tflite), 12):
        lines.append("  " + ", ".join(f"0x{b:02x}" for b in tflite[i : i + 12]) + ",")
    label_text = "".join(f"  {_c_string(lab)},\n" for lab in labels)
    return (
        "/* kws_model_data.cc: generated by `kwstool export`; do not edit, re-export instead.\n"
        f" * Model {model_name}, {len(tflite)} bytes, sha256 {sha256}. */\n"
        '#include "kws_model_data.h"\n\n'
        "const char *const kws_model_labels[KWS_MODEL_NUM_LABELS] = {\n" + label_text + "};\n\n"
        "/* TFLite flatbuffer; TFLite-Micro needs it 16-byte aligned. */\n"
        "alignas(16) const unsigned char kws_model_data[] = {\n" + "\n".join(lines) + "\n};\n\n"
        f"const unsigned int kws_model_data_len = {len(tflite)};\n\n"
        "static_assert(sizeof(kws_model_data) == KWS_MODEL_DATA_BYTES,\n"
        '              "kws_model_data.h and kws_model_data.cc come from different exports");\n'
    )
