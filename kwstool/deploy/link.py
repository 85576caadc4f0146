"""A board in the serial test mode (:class:`BoardLink`): requests, replies, and the audio stream.

The frames and payloads are those of :mod:`kwstool.deploy.protocol`; ``kwstool device-test``
(:mod:`kwstool.deploy.device`) drives a board through this link.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from kwstool.core.contract import (
    NUM_CHANNELS as CHANNELS,
)
from kwstool.deploy.protocol import (
    ACK,
    AUDIO,
    BYE,
    DETECTION,
    ERR_MODEL,
    ERROR,
    ERROR_NAMES,
    FEATURES,
    HELLO,
    INFO,
    MAX_PAYLOAD,
    MESSAGE_NAMES,
    PROTOCOL_VERSION,
    RESET,
    SCORES,
    SEND_FEATURES,
    SEND_SCORES,
    STATS,
    STATS_REPLY,
    Detection,
    Frame,
    FrameParser,
    ScoreEvent,
    StreamResult,
    encode_frame,
    info_recognizer,
    parse_key_values,
    reset_payload,
    resolve_recognizer,
)
from kwstool.errors import KwsError


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
