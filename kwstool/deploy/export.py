"""Export: an int8 model from ``kwstool quantize`` -> ``kws_model_data.h``/``.cc`` for the firmware.

The header carries everything the firmware must not guess (see docs/ARCHITECTURE.md, "Export
contract"): labels, feature constants, input/output quantization, the TFLite-Micro arena size
(measured by ``quantize`` plus :func:`arena_margin`), the operator list as an X-macro the firmware
expands into its ``MicroMutableOpResolver`` registrations, and the recognizer defaults. The
``.cc`` holds the model bytes (``alignas(16)``, as TFLite-Micro requires) and the label strings.

Before writing, the model is checked against the chosen board's budget (:data:`BOARDS`): model
bytes against flash and the arena against RAM, each after a reserve for the rest of the firmware.
A model that does not fit is refused with the numbers. Output is deterministic (no timestamps or
paths), so exporting the same model twice gives byte-identical files. The C text is rendered by
:mod:`kwstool.deploy.header` (its names are re-exported here).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.boards import BOARDS, Board, arena_margin, arena_total
from kwstool.core.calibration import load_calibration
from kwstool.core.recognizer import (
    RECOGNIZER_DEFAULTS as RECOGNIZER_DEFAULTS,
    muted_keywords as muted_keywords,
)
from kwstool.deploy.header import (
    FEATURE_KEYS as FEATURE_KEYS,
    MAX_WINDOW_MS as MAX_WINDOW_MS,
    MIN_DEFAULT_PERIOD_MS as MIN_DEFAULT_PERIOD_MS,
    check_period as check_period,
    default_period_ms as default_period_ms,
    recognizer_settings as recognizer_settings,
    render_header as render_header,
    render_source as render_source,
)
from kwstool.deploy.profile import LATENCY_MARGIN as LATENCY_MARGIN
from kwstool.errors import KwsError

HEADER_FILE = "kws_model_data.h"
SOURCE_FILE = "kws_model_data.cc"
DEFAULT_OUT = Path("firmware") / "src" / "model"


@dataclass
class ExportResult:
    header: Path
    source: Path
    board: Board
    model_name: str
    model_bytes: int
    arena_used_bytes: int
    arena_margin_bytes: int
    arena_bytes: int
    resolver_methods: list[str]
    labels: list[str]
    inference_ms: float | None = None  # cost-model latency on the board
    inference_period_ms: int | None = None  # KWS_INFERENCE_PERIOD_MS
    realtime_problem: str | None = None  # why it cannot keep real time (exported with force)
    muted: list[str] = field(default_factory=list)  # keywords at threshold 255: they never fire
    replaced: list[Path] = field(default_factory=list)  # model files that were there before


def default_out(cwd: Path | None = None) -> Path:
    """``firmware/src/model`` of the kwstool checkout ``cwd`` (default: the current folder) is
    in; outside a checkout a KwsError asks for ``--out`` (never a stray ``firmware/`` here)."""
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "firmware" / "platformio.ini").is_file() and (
            folder / "kwstool" / "__init__.py"
        ).is_file():
            return folder / DEFAULT_OUT
    raise KwsError(
        f"{here} is not in a kwstool checkout, so there is no firmware/src/model to export "
        f"into; pass --out FOLDER for kws_model_data.h/.cc"
    )


def check_budget(model_bytes: int, arena_bytes: int, board: Board, where: str) -> None:
    """Refuse a model that does not fit ``board``, with the numbers."""
    problems = []
    if model_bytes > board.model_budget:
        problems.append(
            f"model {model_bytes} B > {board.model_budget} B flash budget "
            f"({board.flash_bytes} B {board.flash_note} - {board.flash_reserve} B "
            f"firmware reserve)"
        )
    if arena_bytes > board.arena_budget:
        problems.append(
            f"arena {arena_bytes} B > {board.arena_budget} B RAM budget "
            f"({board.ram_bytes} B RAM - {board.ram_reserve} B firmware reserve)"
        )
    if problems:
        raise KwsError(
            f"{where}: does not fit {board.name}: "
            + "; ".join(problems)
            + "; train a smaller model (e.g. --model tiny_conv) or choose another board"
        )


def check_timing(
    tflite: bytes,
    board: str,
    where: str,
    stride_ms: int,
    inference_period_ms: int | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """The live loop's period, checked against the cost model's inference time on ``board``.

    Without ``inference_period_ms`` the period is the larger of :func:`default_period_ms` and
    the shortest the model keeps (:func:`kwstool.deploy.profile.inference_period_ms`: a multiple
    of the stride >= inference x 1.25 + the front end's frames, at most 500 ms). A model that
    cannot keep real time, or a requested period it cannot keep, is refused (KwsError, one line)
    unless ``force``; then ``problem`` says why it is late and the period is the requested one or
    the one it needs (at most :func:`check_period`'s 1000 ms).
    """
    from kwstool.deploy import profile as prof

    result = prof.estimate(tflite, board, where)
    problem = None
    requested = (
        None if inference_period_ms is None else check_period(inference_period_ms, stride_ms)
    )
    try:
        needed = prof.check_realtime(result, board, requested)
        period = requested if requested is not None else max(default_period_ms(stride_ms), needed)
    except KwsError as exc:
        if not force:
            raise KwsError(f"{exc}".replace(", or --force", ", or export with --force")) from None
        problem = str(exc)
        need = prof.inference_period_ms(
            result.est_ms, result.frontend_ms_per_frame, max_period_ms=1000
        )
        period = requested if requested is not None else (need or 1000)
    return {
        "inference_ms": result.est_ms,
        "inference_us": round(result.est_ms * 1000),
        "period_ms": int(period),
        "problem": problem,
        "board": board,
        "frontend_ms_per_frame": result.frontend_ms_per_frame,
        "note": result.estimate_note,
    }


# --- the command -------------------------------------------------------------------------------
def _load_model(run_dir: str | os.PathLike[str]) -> tuple[Path, bytes, dict[str, Any], list[str]]:
    """The .tflite of ``run_dir``, its bytes, its quantize.json and resolver methods, checked
    to agree."""
    from kwstool.core.tflite import MODEL_FILE, load_report, model_info, resolver_methods

    run = Path(run_dir)
    tflite_path = run if run.suffix == ".tflite" else run / MODEL_FILE
    if not tflite_path.exists():
        raise KwsError(f"{tflite_path}: not found; run `kwstool quantize {run}` first")
    tflite = tflite_path.read_bytes()
    report = load_report(tflite_path)
    info = model_info(tflite, str(tflite_path))
    methods = resolver_methods(info.ops, str(tflite_path))
    if methods != report.get("op_resolver") or report.get("model_bytes") != len(tflite):
        raise KwsError(
            f"{tflite_path.with_name('quantize.json')}: does not describe "
            f"{tflite_path.name}; re-run `kwstool quantize`"
        )
    if len(report["labels"]) != int(np.prod(info.output_shape[1:])):
        raise KwsError(
            f"{tflite_path.with_name('quantize.json')}: {len(report['labels'])} labels "
            f"for a model with {info.output_shape} outputs; re-run `kwstool quantize`"
        )
    return tflite_path, tflite, report, methods


def _write_files(out: Path, header: str, source: str) -> None:
    from kwstool.fileio import write_text

    try:
        write_text(out / SOURCE_FILE, source)
        write_text(out / HEADER_FILE, header)
    except OSError as exc:
        raise KwsError(
            f"{out}: cannot write the model files ({exc.strerror or exc}); choose a "
            f"writable folder with --out"
        ) from None


def export(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    board: str = "nano33ble",
    recognizer: dict[str, Any] | None = None,
    inference_period_ms: int | None = None,
    *,
    force: bool = False,
) -> ExportResult:
    """Write ``kws_model_data.h``/``.cc`` for the quantized model in ``run_dir`` into ``out_dir``.

    ``recognizer`` may hold ``average_window_ms``, ``suppression_ms``, ``minimum_coverage_ms``,
    ``threshold`` and ``thresholds`` ({label: 0..1 float or 0..255 int}); the rest are
    :data:`RECOGNIZER_DEFAULTS`. ``inference_period_ms`` (a multiple of the 20 ms stride) is the
    live loop's cadence, ``KWS_INFERENCE_PERIOD_MS``; by default the larger of 100 ms and the
    shortest the model's estimated inference keeps (:func:`check_timing`). A model whose
    inference cannot keep the period (or real time at all) is refused unless ``force``.

    ``run_dir`` is a run folder holding ``model_int8.tflite`` and ``quantize.json`` (or the path of
    the ``.tflite`` itself). Refuses (KwsError) when the model does not fit ``board``.
    ``out_dir`` defaults to the firmware's model folder of the checkout (:func:`default_out`);
    ``replaced`` in the result lists the files that were overwritten there.
    """
    out = Path(out_dir) if out_dir is not None else default_out()
    if board not in BOARDS:
        raise KwsError(f"unknown board {board!r}; choose one of {', '.join(BOARDS)}")
    target = BOARDS[board]
    tflite_path, tflite, report, methods = _load_model(run_dir)

    sha256 = hashlib.sha256(tflite).hexdigest()
    model_name = str(report.get("model") or "custom")
    used = int(report["arena_bytes"])
    margin = arena_margin(used)
    arena = arena_total(used)
    check_budget(len(tflite), arena, target, str(tflite_path))
    stride = int((report.get("features") or {}).get("stride_ms", 20))
    timing = check_timing(tflite, target.name, str(tflite_path), stride, inference_period_ms, force)

    # stream-eval --calibrate's per-label thresholds (RUN/calibration.json), then the caller's
    rec = {**(load_calibration(tflite_path) or {}), **(recognizer or {})}
    header = render_header(
        report, model_name, sha256, len(tflite), target, rec, timing["period_ms"], timing
    )
    source = render_source(tflite, list(report["labels"]), model_name, sha256)
    replaced = [p for p in (out / HEADER_FILE, out / SOURCE_FILE) if p.exists()]
    _write_files(out, header, source)
    return ExportResult(
        header=out / HEADER_FILE,
        source=out / SOURCE_FILE,
        board=target,
        model_name=model_name,
        model_bytes=len(tflite),
        arena_used_bytes=used,
        arena_margin_bytes=margin,
        arena_bytes=arena,
        resolver_methods=methods,
        labels=list(report["labels"]),
        inference_ms=timing["inference_ms"],
        inference_period_ms=timing["period_ms"],
        realtime_problem=timing["problem"],
        muted=muted_keywords(rec.get("thresholds") or {}),
        replaced=replaced,
    )
