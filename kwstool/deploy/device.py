"""The host side of the firmware's serial test mode, and ``kwstool device-test``.

The board (or the host board of the tests, ``tests/firmware/host_board.c``) speaks the framed
protocol of ``firmware/lib/kws_protocol``::

    0xA5 0x5A | type | seq | length (u16 LE) | payload | CRC-16/CCITT-FALSE (u16 LE)

The host sends one request and waits for its final reply before the next (stop-and-wait), so
the board never buffers more than one frame: HELLO -> INFO (enter test mode), RESET -> ACK
(new stream), AUDIO (int16 PCM) -> FEATURES / SCORES / DETECTION ... ACK, STATS -> STATS,
BYE -> ACK. Everything the board computes -- features, model scores, detections -- comes from
its own code; this module only streams audio, collects the answers and scores them.

``device_test`` measures on-device accuracy and latency on a folder of clips (the folder name is
the label, as in Speech Commands), or, with ``stream=True``, plays each WAV whole and lists the
detections. ``host_reference`` computes what the board should answer with the host's copy of the
same C code (``kwstool._native``) and the tflite-micro interpreter, for comparisons.
"""

from __future__ import annotations

import binascii
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.contract import CLIP_SAMPLES, SAMPLE_RATE, STRIDE_SAMPLES, WINDOW_SAMPLES
from kwstool.core.contract import NUM_CHANNELS as CHANNELS
from kwstool.core.contract import NUM_FRAMES as WINDOW_FRAMES
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


class BoardLink:
    """A board in the serial test mode, over pyserial (a port name, or an open serial object)."""

    def __init__(self, port: str | Any, baudrate: int = 921600, timeout: float = 10.0) -> None:
        self.name = port if isinstance(port, str) else getattr(port, "port", "serial port")
        self.timeout = timeout
        self.parser = FrameParser()
        self.seq = 0
        self._own = isinstance(port, str)
        if self._own:
            import serial

            try:
                self.port = serial.serial_for_url(
                    port, baudrate=baudrate, timeout=0.05, write_timeout=timeout
                )
            except (serial.SerialException, OSError, ValueError) as exc:
                raise KwsError(
                    f"{port}: cannot open the serial port ({exc}); check the port "
                    f"name (`pio device list`) and that no monitor holds it"
                ) from None
        else:
            self.port = port
        self.info: dict[str, Any] = {}
        self.labels: list[str] = []

    # context manager: HELLO on enter, BYE on exit
    def __enter__(self) -> BoardLink:
        try:
            self.connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.info:
                self.request(BYE, timeout=2.0)
        except KwsError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        if self._own:
            self.port.close()

    def connect(self, attempts: int = 3) -> dict[str, Any]:
        """HELLO (repeated while the board boots): enter test mode, read INFO."""
        self.port.reset_input_buffer()
        last: KwsError | None = None
        for _ in range(attempts):
            try:
                reply, _ = self.request(HELLO, final=(INFO,), timeout=self.timeout / attempts)
                break
            except KwsError as exc:
                last = exc
        else:
            assert last is not None
            raise last
        self.info = parse_key_values(reply.payload)
        if self.info.get("proto") != PROTOCOL_VERSION:
            raise KwsError(
                f"{self.name}: board speaks test protocol {self.info.get('proto')!r}, "
                f"this kwstool speaks {PROTOCOL_VERSION}; flash the firmware of this "
                f"kwstool version"
            )
        self.labels = str(self.info.get("labels", "")).split(",")
        return self.info

    def _send(self, msg_type: int, payload: bytes) -> int:
        self.seq = (self.seq + 1) & 0xFF
        self.port.write(encode_frame(msg_type, self.seq, payload))
        return self.seq

    def request(
        self,
        msg_type: int,
        payload: bytes = b"",
        final: Sequence[int] = (ACK,),
        timeout: float | None = None,
    ) -> tuple[Frame, list[Frame]]:
        """Send one request; return its final reply and the frames that came before it.

        ERROR replies raise KwsError, except model failures, which are collected as frames.
        """
        seq = self._send(msg_type, payload)
        events: list[Frame] = []
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            data = self.port.read(self.port.in_waiting or 1)
            if not data:
                continue
            for f in self.parser.feed(data):
                if f.seq != seq:
                    continue  # a late answer to an earlier, abandoned request
                if f.type == ERROR and not (len(f.payload) >= 2 and f.payload[1] == ERR_MODEL):
                    code = f.payload[1] if len(f.payload) >= 2 else 0
                    text = f.payload[2:].decode("utf-8", "replace")
                    raise KwsError(
                        f"{self.name}: board rejected {MESSAGE_NAMES.get(msg_type, msg_type)}: "
                        f"{ERROR_NAMES.get(code, code)} ({text})"
                    )
                if f.type in final:
                    return f, events
                events.append(f)
        said = self.parser.text.decode("utf-8", "replace").strip().splitlines()[-3:]
        hint = f"; it last printed: {' | '.join(said)}" if said else ""
        raise KwsError(
            f"{self.name}: no answer to {MESSAGE_NAMES.get(msg_type, msg_type)} within "
            f"{self.timeout if timeout is None else timeout:.1f} s; is the kwstool "
            f"firmware running on it, and is this its port (and baud rate)?{hint}"
        )

    def reset(
        self,
        flags: int = SEND_FEATURES | SEND_SCORES,
        infer_every: int = 1,
        recognizer: dict[str, Any] | None = None,
    ) -> None:
        try:
            rec = resolve_recognizer(
                info_recognizer(self.info), recognizer, self.labels, infer_every
            )
        except KwsError as exc:
            raise KwsError(f"{self.name}: {exc}") from None
        self.request(RESET, reset_payload(flags, infer_every, rec))

    def stats(self) -> dict[str, Any]:
        reply, _ = self.request(STATS, final=(STATS_REPLY,))
        return parse_key_values(reply.payload)

    def stream(self, samples: np.ndarray, chunk: int | None = None) -> StreamResult:
        """Send samples (after a RESET) and collect the board's answers."""
        chunk = min(
            int(chunk or self.info.get("max_audio_samples", MAX_PAYLOAD // 2)), MAX_PAYLOAD // 2
        )
        pcm = np.ascontiguousarray(samples, dtype="<i2")
        frames: list[bytes] = []
        result = StreamResult(features=np.zeros((0, CHANNELS), np.int8))
        for start in range(0, len(pcm), chunk):
            t0 = time.perf_counter()
            _, events = self.request(AUDIO, pcm[start : start + chunk].tobytes())
            elapsed = time.perf_counter() - t0
            for f in events:
                self._collect(f, frames, result)
            if any(f.type == SCORES for f in events):
                result.inference_round_trip_s = elapsed
        result.features = (
            np.frombuffer(b"".join(frames), np.int8).reshape(-1, CHANNELS).copy()
            if frames
            else result.features
        )
        return result

    def _collect(self, f: Frame, frames: list[bytes], result: StreamResult) -> None:
        p = f.payload
        if f.type == FEATURES and len(p) == 8 + CHANNELS:
            index = int.from_bytes(p[0:4], "little")
            if index != len(frames):
                raise KwsError(
                    f"{self.name}: feature frame {index} arrived, expected {len(frames)}; "
                    f"the serial link loses data"
                )
            frames.append(p[8:])
        elif f.type == SCORES and len(p) >= 13 and len(p) == 13 + 2 * p[12]:
            n = p[12]
            result.scores.append(
                ScoreEvent(
                    frame=int.from_bytes(p[0:4], "little"),
                    time_ms=int.from_bytes(p[4:8], "little"),
                    invoke_us=int.from_bytes(p[8:12], "little"),
                    raw=np.frombuffer(p[13 : 13 + n], np.int8).copy(),
                    scores=np.frombuffer(p[13 + n : 13 + 2 * n], np.uint8).copy(),
                )
            )
        elif f.type == DETECTION and len(p) >= 7:
            index = p[4]
            name = p[7:].decode("utf-8", "replace") or (
                self.labels[index] if index < len(self.labels) else str(index)
            )
            result.detections.append(
                Detection(
                    label=name,
                    index=index,
                    time_ms=int.from_bytes(p[0:4], "little"),
                    score=p[5],
                    count=p[6],
                )
            )
        elif f.type == ERROR:
            result.model_errors += 1


# --- device-test ------------------------------------------------------------------------------
def truth_label(path: Path, labels: Sequence[str]) -> str | None:
    """The label a clip stands for: its folder's name if that is a label, else ``_unknown_``
    (any other word) -- None for noise recordings or without an ``_unknown_`` label."""
    folder = path.parent.name
    if folder in labels:
        return folder
    if folder == "_background_noise_" or "_unknown_" not in labels:
        return None
    return "_unknown_"


def _summary(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {}
    v = sorted(values)
    return {
        "mean": round(statistics.fmean(v), 3),
        "p50": round(v[len(v) // 2], 3),
        "p95": round(v[min(len(v) - 1, int(0.95 * len(v)))], 3),
        "max": round(v[-1], 3),
        "count": len(v),
    }


@dataclass
class DeviceTestResult:
    port: str
    info: dict[str, Any]
    mode: str  # "clips" or "stream"
    files: list[dict[str, Any]]
    stats: dict[str, Any]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    accuracy: float | None = None
    per_class: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    features: np.ndarray | None = None  # (N, 49, 40) in clip mode
    json_path: Path | None = None
    features_path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "board": self.info,
            "mode": self.mode,
            "accuracy": self.accuracy,
            "per_class": self.per_class,
            "latency": self.latency,
            "board_stats": self.stats,
            "files": self.files,
            "skipped": self.skipped,
        }


def device_test(
    port: str | Any,
    paths: Sequence[Path],
    out: Path | None = None,
    baudrate: int = 921600,
    stream: bool = False,
    infer_every: int | None = None,
    recognizer: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> DeviceTestResult:
    """Run WAV files through the board's own pipeline over the serial test protocol.

    Clip mode (default): each file is one 1 s clip (padded/cut like ``kwstool features``) on a
    fresh stream; the board returns its 49 feature frames and one inference at the end of the
    clip (``infer_every`` 49): top-1 accuracy against the folder labels, per class, and latency
    -- the board's own microseconds per inference and per feature frame, and the host's round
    trip for the audio chunk that completed the clip's window (transfer + features + inference
    + replies). Stream mode: each file plays whole, inference every
    ``infer_every`` frames (default 1), and the recognizer's detections are listed.
    Writes ``device_test.json`` (and ``features.npy``/``features.files.txt`` in clip mode) to
    ``out``.
    """
    from kwstool.core.audio import load_wav, skipped_entry
    from kwstool.data.features import list_wavs
    from kwstool.fileio import save_npy, write_json, write_text

    files = list_wavs(paths)
    every = int(infer_every) if infer_every is not None else (1 if stream else WINDOW_FRAMES)
    if every < 1 or every > 0xFFFF:
        raise KwsError(f"--infer-every {every}: must be 1..65535 frames")
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    feats: list[np.ndarray] = []
    invoke_us: list[float] = []
    round_trip_ms: list[float] = []
    with BoardLink(port, baudrate=baudrate, timeout=timeout) as board:
        labels = board.labels
        for f in files:
            try:
                samples = load_wav(f, clip_samples=None if stream else CLIP_SAMPLES)
            except KwsError as exc:
                if len(files) == 1:
                    raise
                skipped.append(skipped_entry(f, exc))
                continue
            board.reset(SEND_FEATURES | SEND_SCORES, every, recognizer)
            r = board.stream(samples)
            invoke_us += [s.invoke_us for s in r.scores]
            row: dict[str, Any] = {
                "file": str(f),
                "frames": len(r.features),
                "detections": [d.as_dict() for d in r.detections],
                "model_errors": r.model_errors,
            }
            if stream:
                row["duration_s"] = round(len(samples) / SAMPLE_RATE, 3)
                row["inferences"] = len(r.scores)
            else:
                feats.append(r.features)
                rt_ms = (
                    None if r.inference_round_trip_s is None else r.inference_round_trip_s * 1000.0
                )
                if rt_ms is not None:
                    round_trip_ms.append(rt_ms)
                truth = truth_label(f, labels)
                last = r.scores[-1] if r.scores else None
                predicted = labels[int(np.argmax(last.raw))] if last is not None else None
                row.update(
                    {
                        "label": truth,
                        "predicted": predicted,
                        "correct": None
                        if truth is None or predicted is None
                        else predicted == truth,
                        "scores": [int(s) for s in last.scores] if last is not None else None,
                        "invoke_us": last.invoke_us if last is not None else None,
                        "round_trip_ms": None if rt_ms is None else round(rt_ms, 3),
                    }
                )
            rows.append(row)
        stats = board.stats()
        info = dict(board.info)

    result = DeviceTestResult(
        port=board.name,
        info=info,
        mode="stream" if stream else "clips",
        files=rows,
        stats=stats,
        skipped=skipped,
    )
    result.latency = {
        "invoke_us": _summary(invoke_us),
        "feature_us_per_frame": stats.get("feature_us_avg"),
    }
    if not stream:
        result.latency["round_trip_ms"] = _summary(round_trip_ms)
        scored = [r for r in rows if r["correct"] is not None]
        if scored:
            result.accuracy = round(sum(r["correct"] for r in scored) / len(scored), 4)
        for lab in labels:
            mine = [r for r in scored if r["label"] == lab]
            if mine:
                result.per_class[lab] = {
                    "count": len(mine),
                    "accuracy": round(sum(r["correct"] for r in mine) / len(mine), 4),
                }
        if feats:
            result.features = np.stack(feats)
    if out is not None:
        out = Path(out)
        result.json_path = out / "device_test.json"
        if result.features is not None:
            single = len(result.features) == 1 and len(files) == 1
            result.features_path = out / "features.npy"
            save_npy(result.features_path, result.features[0] if single else result.features)
            if not single:
                write_text(out / "features.files.txt", "".join(r["file"] + "\n" for r in rows))
        write_json(result.json_path, result.as_dict())
    return result


# --- what the board should answer, computed on the host -----------------------------------------
class TflmModel:
    """An int8 .tflite in the TFLite Micro interpreter of the tflite-micro Python package (the
    same interpreter code the board runs, compiled for the host)."""

    def __init__(self, path: str | Path) -> None:
        try:
            from tflite_micro.python.tflite_micro import runtime
        except ImportError as exc:  # pragma: no cover - a dependency of kwstool
            raise KwsError(
                f"tflite-micro is not installed ({exc}); `pip install tflite-micro`"
            ) from None
        self.path = Path(path)
        self.interpreter = runtime.Interpreter.from_file(str(self.path))
        inp = self.interpreter.get_input_details(0)
        outp = self.interpreter.get_output_details(0)
        self.input_shape = tuple(int(d) for d in inp["shape"])
        self.input_scale = float(inp["quantization_parameters"]["scales"][0])
        self.input_zero_point = int(inp["quantization_parameters"]["zero_points"][0])
        self.output_scale = float(outp["quantization_parameters"]["scales"][0])
        self.output_zero_point = int(outp["quantization_parameters"]["zero_points"][0])
        self.num_outputs = int(np.prod(outp["shape"]))
        if int(np.prod(self.input_shape)) != WINDOW_FRAMES * CHANNELS:
            raise KwsError(f"{self.path}: input {self.input_shape} is not 49x40 features")

    def __call__(self, window: np.ndarray) -> np.ndarray:
        """int8 input (1960 values, already in the model's quantization) -> int8 outputs."""
        self.interpreter.set_input(np.asarray(window, np.int8).reshape(self.input_shape), 0)
        self.interpreter.invoke()
        return np.asarray(self.interpreter.get_output(0), np.int8).reshape(-1)


def requant_table(scale: float, zero_point: int) -> np.ndarray:
    """The firmware's kws_feature_requant_lut in float32 numpy (same operations, same result)."""
    v = np.arange(-128, 128, dtype=np.float32)
    x = v / np.float32(scale)
    r = np.where(x >= 0, x + np.float32(0.5), x - np.float32(0.5))
    q = np.clip(r, -1000, 1000).astype(np.int64) + int(zero_point)
    table: np.ndarray = np.clip(q, -128, 127).astype(np.int8)
    return table


def feature_windows(feats: np.ndarray, every: int) -> Iterable[tuple[int, np.ndarray]]:
    """(frames so far, 49x40 window) after every ``every``-th frame, silence (-128) before the
    first frame -- the feature provider's ring buffer."""
    padded = np.concatenate([np.full((WINDOW_FRAMES, CHANNELS), -128, np.int8), feats])
    for k in range(every, len(feats) + 1, every):
        yield k, padded[k : k + WINDOW_FRAMES]


def frame_time_ms(k: int) -> int:
    """Audio time when frame k (1-based) completes: after 480 + 320 (k - 1) samples."""
    return (WINDOW_SAMPLES + STRIDE_SAMPLES * (k - 1)) * 1000 // SAMPLE_RATE


def host_reference(
    samples: np.ndarray,
    model: TflmModel,
    labels: Sequence[str],
    infer_every: int,
    recognizer: dict[str, Any],
    input_scale: float | None = None,
    input_zero_point: int | None = None,
) -> StreamResult:
    """What the board computes for ``samples`` as one stream: features via the C front end
    (``kwstool._native``), the model via TFLite Micro, the recognizer via ``kwstool._native``.
    ``input_scale``/``input_zero_point`` override the model's (micro_speech's model, for one,
    takes the int8 features unchanged)."""
    from kwstool import _native
    from kwstool.core.frontend import compute_raw, to_int8

    feats = to_int8(compute_raw(np.asarray(samples, np.int16)))
    scale = model.input_scale if input_scale is None else input_scale
    zero = model.input_zero_point if input_zero_point is None else input_zero_point
    lut = requant_table(scale, zero)
    result = StreamResult(features=feats)
    for k, window in feature_windows(feats, infer_every):
        raw = model(lut[window.astype(np.int16) + 128])
        scores = np.zeros(len(raw), np.uint8)
        _native.scores_u8(raw.tobytes(), model.output_scale, model.output_zero_point, scores)
        result.scores.append(
            ScoreEvent(frame=k, time_ms=frame_time_ms(k), invoke_us=0, raw=raw, scores=scores)
        )
    if result.scores:
        mask = sum(1 << i for i, lab in enumerate(labels) if lab.startswith("_"))
        rec = resolve_recognizer({}, recognizer, labels, infer_every)
        found = _native.recognize(
            np.stack([s.scores for s in result.scores]).tobytes(),
            np.array([s.time_ms for s in result.scores], np.uint32).tobytes(),
            len(labels),
            rec["average_window_ms"],
            bytes(rec["thresholds"]),
            rec["suppression_ms"],
            rec["minimum_coverage_ms"],
            mask,
        )
        result.detections = [
            Detection(label=labels[lab], index=lab, time_ms=t, score=score, count=count)
            for _, t, lab, score, count in found
        ]
    return result
