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

The framing, CRC, parser and payload layouts live in :mod:`kwstool.deploy.protocol`, the board
link (:class:`BoardLink`) in :mod:`kwstool.deploy.link` and ``host_reference`` in
:mod:`kwstool.deploy.reference`; their public names are re-exported here.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.contract import (
    CLIP_SAMPLES,
    NUM_FRAMES as WINDOW_FRAMES,
    SAMPLE_RATE,
)
from kwstool.deploy.link import BoardLink as BoardLink
from kwstool.deploy.protocol import (
    ACK as ACK,
    AUDIO as AUDIO,
    BYE as BYE,
    CRC_BYTES as CRC_BYTES,
    DETECTION as DETECTION,
    ERR_BAD_LENGTH as ERR_BAD_LENGTH,
    ERR_BAD_VALUE as ERR_BAD_VALUE,
    ERR_MODEL as ERR_MODEL,
    ERR_NOT_IN_TEST_MODE as ERR_NOT_IN_TEST_MODE,
    ERR_UNKNOWN_TYPE as ERR_UNKNOWN_TYPE,
    ERROR as ERROR,
    ERROR_NAMES as ERROR_NAMES,
    FEATURES as FEATURES,
    HEADER_BYTES as HEADER_BYTES,
    HELLO as HELLO,
    INFO as INFO,
    MAX_PAYLOAD as MAX_PAYLOAD,
    MESSAGE_NAMES as MESSAGE_NAMES,
    PROTOCOL_VERSION as PROTOCOL_VERSION,
    RECOGNIZER_KEYS as RECOGNIZER_KEYS,
    RESET as RESET,
    SCORES as SCORES,
    SEND_FEATURES as SEND_FEATURES,
    SEND_SCORES as SEND_SCORES,
    STATS as STATS,
    STATS_REPLY as STATS_REPLY,
    SYNC as SYNC,
    Detection as Detection,
    Frame as Frame,
    FrameParser as FrameParser,
    ScoreEvent as ScoreEvent,
    StreamResult as StreamResult,
    crc16 as crc16,
    encode_frame as encode_frame,
    info_recognizer as info_recognizer,
    parse_key_values as parse_key_values,
    reset_payload as reset_payload,
    resolve_recognizer as resolve_recognizer,
)
from kwstool.deploy.reference import (
    TflmModel as TflmModel,
    feature_windows as feature_windows,
    frame_time_ms as frame_time_ms,
    host_reference as host_reference,
    requant_table as requant_table,
)
from kwstool.errors import KwsError


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


def _clip_fields(f: Path, r: StreamResult, labels: Sequence[str]) -> dict[str, Any]:
    """A clip-mode row's label, prediction and latency (the last inference of the clip)."""
    rt_ms = None if r.inference_round_trip_s is None else r.inference_round_trip_s * 1000.0
    truth = truth_label(f, labels)
    last = r.scores[-1] if r.scores else None
    predicted = labels[int(np.argmax(last.raw))] if last is not None else None
    return {
        "label": truth,
        "predicted": predicted,
        "correct": None if truth is None or predicted is None else predicted == truth,
        "scores": [int(s) for s in last.scores] if last is not None else None,
        "invoke_us": last.invoke_us if last is not None else None,
        "round_trip_ms": None if rt_ms is None else round(rt_ms, 3),
    }


def _file_row(f: Path, samples: np.ndarray, r: StreamResult, stream: bool) -> dict[str, Any]:
    """One file's row of ``device_test.json`` (without the clip-mode fields)."""
    row: dict[str, Any] = {
        "file": str(f),
        "frames": len(r.features),
        "detections": [d.as_dict() for d in r.detections],
        "model_errors": r.model_errors,
    }
    if stream:
        row["duration_s"] = round(len(samples) / SAMPLE_RATE, 3)
        row["inferences"] = len(r.scores)
    return row


def _score_clips(
    result: DeviceTestResult, labels: Sequence[str], round_trip_ms: list[float]
) -> None:
    """Clip mode: round-trip latency, top-1 accuracy, per-class accuracy."""
    rows = result.files
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


def _write_result(result: DeviceTestResult, out: Path, n_files: int) -> None:
    """``device_test.json``, and the features (``features.npy``/``features.files.txt``)."""
    from kwstool.fileio import save_npy, write_json, write_text

    result.json_path = out / "device_test.json"
    if result.features is not None:
        single = len(result.features) == 1 and n_files == 1
        result.features_path = out / "features.npy"
        save_npy(result.features_path, result.features[0] if single else result.features)
        if not single:
            write_text(out / "features.files.txt", "".join(r["file"] + "\n" for r in result.files))
    write_json(result.json_path, result.as_dict())


@dataclass
class _Collected:
    """What the files of one device test gave, in file order."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    feats: list[np.ndarray] = field(default_factory=list)
    invoke_us: list[float] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)


def _run_files(
    board: BoardLink,
    files: Sequence[Path],
    stream: bool,
    every: int,
    recognizer: dict[str, Any] | None,
) -> _Collected:
    """Each file on a fresh stream of ``board``; unreadable files are skipped (unless alone)."""
    from kwstool.core.audio import load_wav, skipped_entry

    got = _Collected()
    for f in files:
        try:
            samples = load_wav(f, clip_samples=None if stream else CLIP_SAMPLES)
        except KwsError as exc:
            if len(files) == 1:
                raise
            got.skipped.append(skipped_entry(f, exc))
            continue
        board.reset(SEND_FEATURES | SEND_SCORES, every, recognizer)
        r = board.stream(samples)
        got.invoke_us += [s.invoke_us for s in r.scores]
        row = _file_row(f, samples, r, stream)
        if not stream:
            got.feats.append(r.features)
            if r.inference_round_trip_s is not None:
                got.round_trip_ms.append(r.inference_round_trip_s * 1000.0)
            row.update(_clip_fields(f, r, board.labels))
        got.rows.append(row)
    return got


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
    from kwstool.data.features import list_wavs

    files = list_wavs(paths)
    every = int(infer_every) if infer_every is not None else (1 if stream else WINDOW_FRAMES)
    if every < 1 or every > 0xFFFF:
        raise KwsError(f"--infer-every {every}: must be 1..65535 frames")
    with BoardLink(port, baudrate=baudrate, timeout=timeout) as board:
        labels = board.labels
        got = _run_files(board, files, stream, every, recognizer)
        stats = board.stats()
        info = dict(board.info)

    result = DeviceTestResult(
        port=board.name,
        info=info,
        mode="stream" if stream else "clips",
        files=got.rows,
        stats=stats,
        skipped=got.skipped,
    )
    result.latency = {
        "invoke_us": _summary(got.invoke_us),
        "feature_us_per_frame": stats.get("feature_us_avg"),
    }
    if not stream:
        _score_clips(result, labels, got.round_trip_ms)
        if got.feats:
            result.features = np.stack(got.feats)
    if out is not None:
        _write_result(result, Path(out), len(files))
    return result
