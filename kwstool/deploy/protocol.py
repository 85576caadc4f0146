"""The framed serial test protocol of ``firmware/lib/kws_protocol``, host side.

Framing, CRC, the incremental parser with the firmware's resynchronisation rules, the payload
layouts of INFO/STATS/RESET, the recognizer settings a RESET carries, and the records the board's
FEATURES/SCORES/DETECTION replies decode into. :class:`kwstool.deploy.link.BoardLink` talks to a
board with them.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kwstool.core.contract import (
    SAMPLE_RATE,
    STRIDE_SAMPLES,
)
from kwstool.errors import KwsError

# --- protocol constants (mirror firmware/lib/kws_protocol/kws_protocol.h) ----------------------
SYNC = b"\xa5\x5a"
HEADER_BYTES = 6
CRC_BYTES = 2
MAX_PAYLOAD = 1024
PROTOCOL_VERSION = 2

HELLO, RESET, AUDIO, STATS, BYE = 0x01, 0x02, 0x03, 0x04, 0x05
INFO, ACK, FEATURES, SCORES, DETECTION, STATS_REPLY, ERROR = (
    0x81,
    0x82,
    0x83,
    0x84,
    0x85,
    0x86,
    0xFF,
)
MESSAGE_NAMES = {
    HELLO: "HELLO",
    RESET: "RESET",
    AUDIO: "AUDIO",
    STATS: "STATS",
    BYE: "BYE",
    INFO: "INFO",
    ACK: "ACK",
    FEATURES: "FEATURES",
    SCORES: "SCORES",
    DETECTION: "DETECTION",
    STATS_REPLY: "STATS",
    ERROR: "ERROR",
}
ERR_UNKNOWN_TYPE, ERR_BAD_LENGTH, ERR_NOT_IN_TEST_MODE, ERR_BAD_VALUE, ERR_MODEL = 1, 2, 3, 4, 5
ERROR_NAMES = {
    ERR_UNKNOWN_TYPE: "unknown request type",
    ERR_BAD_LENGTH: "bad payload length",
    ERR_NOT_IN_TEST_MODE: "not in test mode",
    ERR_BAD_VALUE: "bad value",
    ERR_MODEL: "model invocation failed",
}
SEND_FEATURES, SEND_SCORES = 0x01, 0x02


#: The recognizer settings a RESET carries (names as in INFO and the exported header), besides
#: the thresholds (INFO ``thresholds=200,180,...``, one per label).
RECOGNIZER_KEYS = ("average_window_ms", "suppression_ms", "minimum_coverage_ms")


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), as the firmware computes it."""
    return binascii.crc_hqx(data, 0xFFFF)


def encode_frame(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    """One frame on the wire."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = bytes((msg_type & 0xFF, seq & 0xFF)) + len(payload).to_bytes(2, "little") + payload
    return SYNC + body + crc16(body).to_bytes(2, "little")


@dataclass
class Frame:
    type: int
    seq: int
    payload: bytes


class FrameParser:
    """Incremental frame parser with the firmware parser's resynchronisation rules.

    Bytes outside frames (the board's text lines, line noise) are skipped; the last of them are
    kept in ``text`` for error messages. A bad length or CRC drops one byte and rescans.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.stats = {"frames": 0, "crc_errors": 0, "length_errors": 0, "garbage_bytes": 0}
        self.text = bytearray()

    def _garbage(self, n: int) -> None:
        self.stats["garbage_bytes"] += n
        self.text += self.buf[:n]
        del self.text[:-2048]
        del self.buf[:n]

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        return self._scan()

    def flush(self) -> list[Frame]:
        """The stream went idle: give up on a partial frame, keep what follows its first byte."""
        frames = []
        while self.buf:
            frames += self._scan()
            if self.buf:
                del self.buf[:1]
        return frames

    def _scan(self) -> list[Frame]:
        frames = []
        buf = self.buf
        while buf:
            i = buf.find(SYNC[0])
            if i != 0:
                self._garbage(len(buf) if i < 0 else i)
                continue
            if len(buf) < 2:
                break
            if buf[1] != SYNC[1]:
                self._garbage(1)
                continue
            if len(buf) < HEADER_BYTES:
                break
            length = int.from_bytes(buf[4:6], "little")
            if length > MAX_PAYLOAD:
                self.stats["length_errors"] += 1
                del buf[:1]
                continue
            total = HEADER_BYTES + length + CRC_BYTES
            if len(buf) < total:
                break
            body = bytes(buf[2 : HEADER_BYTES + length])
            if crc16(body) != int.from_bytes(buf[HEADER_BYTES + length : total], "little"):
                self.stats["crc_errors"] += 1
                del buf[:1]
                continue
            frames.append(Frame(buf[2], buf[3], body[4:]))
            self.stats["frames"] += 1
            del buf[:total]
        return frames


def parse_key_values(payload: bytes) -> dict[str, Any]:
    """INFO/STATS payload ("key=value" lines) -> dict, integers converted."""
    out: dict[str, Any] = {}
    for line in payload.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    return out


def _threshold_u8(value: Any) -> int:
    """0..1 float (a probability) or 0..255 int -> 0..255."""
    v = round(float(value) * 255) if isinstance(value, float) else int(value)
    if not 0 <= v <= 255:
        raise KwsError(f"recognizer threshold {value!r}: give 0..1 or 0..255")
    return v


def resolve_recognizer(
    defaults: dict[str, Any],
    overrides: dict[str, Any] | None,
    labels: Sequence[str],
    infer_every: int,
) -> dict[str, Any]:
    """The settings of one RESET: the board's defaults (from INFO) with ``overrides`` applied.

    ``overrides`` may hold the keys of :data:`RECOGNIZER_KEYS`, ``threshold`` (every label),
    ``thresholds`` ({label: value} or one value per label) and, from older command lines,
    ``minimum_count`` -- converted to ``(count - 1) * infer_every * stride`` of coverage.
    Returns the keys of RECOGNIZER_KEYS and ``thresholds`` (one 0..255 int per label).
    """
    over = dict(overrides or {})
    rec = {k: int(defaults[k]) for k in RECOGNIZER_KEYS if k in defaults}
    rec.update({k: int(over[k]) for k in RECOGNIZER_KEYS if k in over})
    if "minimum_count" in over and "minimum_coverage_ms" not in over:
        stride_ms = STRIDE_SAMPLES * 1000 // SAMPLE_RATE
        rec["minimum_coverage_ms"] = (
            max(0, int(over["minimum_count"]) - 1) * infer_every * stride_ms
        )
    thresholds = [_threshold_u8(t) for t in defaults.get("thresholds", [])]
    if "threshold" in over:
        thresholds = [_threshold_u8(over["threshold"])] * len(labels)
    given = over.get("thresholds")
    if isinstance(given, dict):
        unknown = sorted(set(given) - set(labels))
        if unknown:
            raise KwsError(
                f"recognizer thresholds: {', '.join(unknown)} not among the board's "
                f"labels ({', '.join(labels)})"
            )
        thresholds = [
            _threshold_u8(given[lab]) if lab in given else t for lab, t in zip(labels, thresholds)
        ]
    elif given is not None:
        thresholds = [_threshold_u8(t) for t in given]
    missing = [k for k in RECOGNIZER_KEYS if k not in rec]
    if missing or len(thresholds) != len(labels):
        raise KwsError(
            f"recognizer settings lack {', '.join(missing) or 'one threshold per label'}"
            f"; reflash the firmware of this kwstool version"
        )
    return {**rec, "thresholds": thresholds}


def info_recognizer(info: dict[str, Any]) -> dict[str, Any]:
    """The recognizer defaults an INFO reply states."""
    rec: dict[str, Any] = {k: int(info[k]) for k in RECOGNIZER_KEYS if k in info}
    text = str(info.get("thresholds", "")).strip()
    rec["thresholds"] = [int(t) for t in text.split(",")] if text else []
    return rec


def reset_payload(flags: int, infer_every: int, recognizer: dict[str, Any]) -> bytes:
    """RESET payload: u8 flags, u16 infer_every, u32 window, u32 suppression, u32 coverage,
    u8 n, u8 thresholds[n] (``recognizer`` as :func:`resolve_recognizer` returns it)."""
    thresholds = bytes(int(t) for t in recognizer["thresholds"])
    return (
        bytes([flags])
        + int(infer_every).to_bytes(2, "little")
        + int(recognizer["average_window_ms"]).to_bytes(4, "little")
        + int(recognizer["suppression_ms"]).to_bytes(4, "little")
        + int(recognizer["minimum_coverage_ms"]).to_bytes(4, "little")
        + bytes([len(thresholds)])
        + thresholds
    )


# --- talking to a board -----------------------------------------------------------------------
@dataclass
class Detection:
    label: str
    index: int
    time_ms: int
    score: int  # averaged score 0..255
    count: int = 0  # results in the recognizer window

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "index": self.index,
            "time_ms": self.time_ms,
            "score": round(self.score / 255, 4),
            "count": self.count,
        }


@dataclass
class ScoreEvent:
    frame: int
    time_ms: int
    invoke_us: int
    raw: np.ndarray  # int8 model outputs
    scores: np.ndarray  # uint8 recognizer scores


@dataclass
class StreamResult:
    features: np.ndarray  # (frames, 40) int8
    scores: list[ScoreEvent] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    model_errors: int = 0
    inference_round_trip_s: float | None = None  # host round trip of the AUDIO request that
    # ran the last inference
