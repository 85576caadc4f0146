"""`kwstool export` and `kwstool device-test`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kwstool.cli.app import app, console, err_console

if TYPE_CHECKING:
    from kwstool.deploy.export import ExportResult


@app.command("device-test")
def device_test_cmd(
    data: list[Path] = typer.Argument(
        ...,
        help="WAV files and/or folders; a clip's folder name "
        "is its label (Speech Commands layout).",
    ),
    port: str = typer.Option(
        ...,
        "--port",
        "-p",
        help="The board's serial port (`pio device "
        "list`: /dev/ttyACM0, COM5, ...) or the host board's pty.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for device_test.json (and the board's features.npy in clip mode).",
    ),
    baud: int = typer.Option(
        921600,
        "--baud",
        help="UART speed of the ESP32 firmware (the Nano's USB serial ignores it).",
    ),
    stream: bool = typer.Option(
        False,
        "--stream",
        help="Play each WAV whole as one stream and "
        "list the detections (default: 1 s clips, top-1 accuracy).",
    ),
    infer_every: int | None = typer.Option(
        None,
        "--infer-every",
        help="Frames (20 ms) between inferences [default: 49 for clips, 1 for --stream].",
    ),
    threshold: int | None = typer.Option(
        None, "--threshold", help="Recognizer threshold 0..255 [default: the model's]."
    ),
    window_ms: int | None = typer.Option(
        None, "--window-ms", help="Recognizer averaging window [default: the model's]."
    ),
    suppression_ms: int | None = typer.Option(
        None, "--suppression-ms", help="Quiet time after a detection [default: the model's]."
    ),
    min_count: int | None = typer.Option(
        None, "--min-count", help="Minimum results in the window [default: the model's]."
    ),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for each answer."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Measure the board itself: stream clips to it over serial, read back its features, scores
    and detections (the firmware's serial test mode)."""
    from kwstool.deploy.device import device_test

    overrides = {
        k: v
        for k, v in (
            ("threshold", threshold),
            ("average_window_ms", window_ms),
            ("suppression_ms", suppression_ms),
            ("minimum_count", min_count),
        )
        if v is not None
    }
    result = device_test(
        port,
        data,
        out=out,
        baudrate=baud,
        stream=stream,
        infer_every=infer_every,
        recognizer=overrides or None,
        timeout=timeout,
    )
    for bad in result.skipped:
        err_console.print(
            f"[yellow]skipped[/] {bad['file']}: {bad['reason']}", highlight=False, soft_wrap=True
        )
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict(), indent=2) + "\n")
        return
    info = result.info
    console.print(
        f"board {info.get('board')} on {result.port}: model {info.get('model')} "
        f"({info.get('model_bytes')} bytes, arena {info.get('arena_used')}/"
        f"{info.get('arena_bytes')} bytes used)",
        highlight=False,
        soft_wrap=True,
    )
    lat = result.latency
    inv = lat.get("invoke_us") or {}
    console.print(
        f"  on the board: {lat.get('feature_us_per_frame')} us per feature frame, "
        f"{inv.get('mean', '-')} us per inference (max {inv.get('max', '-')})",
        highlight=False,
        soft_wrap=True,
    )
    if result.mode == "stream":
        for row in result.files:
            found = (
                ", ".join(
                    f"{d['label']}@{d['time_ms']}ms({d['score']:.2f})" for d in row["detections"]
                )
                or "none"
            )
            console.print(
                f"  {row['file']}: {row['duration_s']} s, detections: {found}",
                highlight=False,
                soft_wrap=True,
            )
    else:
        rt = lat.get("round_trip_ms") or {}
        console.print(
            f"  host round trip of the clip's last window: p50 {rt.get('p50', '-')} ms,"
            f" p95 {rt.get('p95', '-')} ms",
            highlight=False,
            soft_wrap=True,
        )
        acc = "-" if result.accuracy is None else f"{result.accuracy:.4f}"
        scored = sum(r["correct"] is not None for r in result.files)
        console.print(
            f"  top-1 accuracy on the board: {acc} ({scored} labelled clips of "
            f"{len(result.files)})",
            highlight=False,
            soft_wrap=True,
        )
        for lab, v in result.per_class.items():
            console.print(
                f"    {lab}: {v['accuracy']:.4f} ({v['count']})", highlight=False, soft_wrap=True
            )
    for path in (result.json_path, result.features_path):
        if path is not None:
            console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def print_export(e: ExportResult) -> None:
    console.print(f"wrote {e.header} and {e.source}", highlight=False)
    if e.replaced:
        console.print(
            f"  replaced the earlier {' and '.join(p.name for p in e.replaced)} in "
            f"{e.header.parent}"
            + (
                " (`git checkout -- firmware/src/model` restores the shipped model)"
                if e.header.parent.parts[-3:] == ("firmware", "src", "model")
                else ""
            ),
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"  {e.model_name}: {e.model_bytes} bytes flash (budget {e.board.model_budget}), arena "
        f"{e.arena_bytes} bytes = {e.arena_used_bytes} measured + {e.arena_margin_bytes} margin "
        f"(budget {e.board.arena_budget}) on {e.board.name}",
        highlight=False,
    )
    if e.inference_period_ms is not None:
        console.print(
            f"  inference ~{e.inference_ms:.0f} ms (cost model), one every "
            f"{e.inference_period_ms} ms (KWS_INFERENCE_PERIOD_MS)",
            highlight=False,
        )
    if e.muted:
        err_console.print(
            f"warning: {', '.join(e.muted)} calibrated to threshold 255 and will never fire; "
            f"see `kwstool stream-eval --calibrate` (a larger budget) or train with more data",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def export(
    run: Path = typer.Argument(..., help="Run folder after `kwstool quantize` (or its .tflite)."),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for kws_model_data.h/.cc [default: firmware/src/model of the kwstool "
        "checkout you are in; outside one, required].",
    ),
    board: str = typer.Option("nano33ble", "--board", help="Budget: nano33ble or esp32dev."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Export even when the estimated inference cannot keep the board's real-time cadence.",
    ),
    period_ms: int | None = typer.Option(
        None,
        "--period-ms",
        help="Inference period (a "
        "multiple of 20 ms, <= 1000) [default: the larger "
        "of 100 ms and the shortest the model keeps].",
    ),
) -> None:
    """Write the firmware's model files (C array, labels, quantization, arena, op list,
    inference period)."""
    from kwstool.deploy.export import export as do_export

    e = do_export(run, out, board=board, inference_period_ms=period_ms, force=force)
    print_export(e)
    if e.realtime_problem:
        err_console.print(
            f"[yellow]warning (--force):[/] {e.realtime_problem}", highlight=False, soft_wrap=True
        )
