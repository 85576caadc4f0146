"""`kwstool listen` and `kwstool stream-eval`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kwstool.cli.app import app, console, err_console

if TYPE_CHECKING:
    from kwstool.stream.evaluate import StreamEvalResult


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def listen(
    ctx: typer.Context,
    run: Path | None = typer.Argument(
        None,
        help="Run folder after `kwstool quantize` (or its .tflite) [default: the 12-word "
        "Speech Commands model packaged with kwstool].",
    ),
    wav: Path | None = typer.Option(
        None,
        "--wav",
        help="Replay this WAV file instead of the microphone (same path, real time unless --fast).",
    ),
    fast: bool = typer.Option(False, "--fast", help="With --wav: as fast as possible."),
    device: str | None = typer.Option(
        None, "--device", help="Microphone: index or name (see --list-devices)."
    ),
    list_devices: bool = typer.Option(False, "--list-devices", help="List microphones, exit."),
    on: str | None = typer.Option(None, "--on", help="Word that triggers --exec."),
    exec_: str | None = typer.Option(
        None,
        "--exec",
        help="Command run on each detection "
        "of --on WORD; the arguments after it belong to it "
        "(`--exec xdg-open https://example.org`). Gets "
        "KWS_LABEL, KWS_SCORE, KWS_TIME_MS in its environment.",
    ),
    shell: bool = typer.Option(
        False,
        "--shell",
        help="--exec is one shell line, given to the shell unchanged "
        "(--exec 'echo $KWS_TIME_MS >> times.txt').",
    ),
    open_url: str | None = typer.Option(
        None,
        "--open",
        metavar="URL",
        help="Open URL in the default web browser on each detection of --on WORD.",
    ),
    threshold: int | None = typer.Option(
        None,
        "--threshold",
        help="Threshold 0..255 for "
        "every word [default: calibration.json, else the "
        "export default].",
    ),
    suppression_ms: int | None = typer.Option(
        None, "--suppression-ms", help="Quiet time after a detection."
    ),
    runtime: str = typer.Option(
        "litert",
        "--runtime",
        help="litert (reference kernels) or tflm: the same int8 outputs.",
    ),
    model: str = typer.Option(
        "board",
        "--model",
        help="board: the run's int8 model on the board's path; embedding (laptop only): the "
        "pretrained speech embedding with the head `kwstool train --teacher embedding` saved "
        "in the run (needs `pip install 'kwstool[teacher]'`).",
    ),
) -> None:
    """Listen to the microphone like the board: C front end, int8 model, C recognizer."""
    from kwstool.errors import KwsError
    from kwstool.stream.listen import list_devices as devices, listen as do_listen

    if list_devices:
        found = devices()
        for d in found:
            console.print(
                f"{d['index']:3d}  {d['name']}  ({d['channels']} ch, "
                f"{d['default_samplerate']:.0f} Hz)",
                highlight=False,
            )
        if not found:
            console.print("no microphones found", highlight=False)
        return
    if ctx.args and exec_ is None:
        raise KwsError(f"unexpected arguments {' '.join(ctx.args)}; see `kwstool listen --help`")
    # the words after --exec, as kwstool.cli.exec_rest passed them (with --shell: one shell line,
    # unquoted, so the shell expands $KWS_TIME_MS, >>, |)
    command = [] if exec_ is None else [*_split(exec_), *ctx.args]
    result = do_listen(
        run,
        wav=wav,
        fast=fast,
        device=device,
        on=on,
        command=command,
        shell=shell,
        open_url=open_url,
        runtime=runtime,
        recognizer={"threshold": threshold, "suppression_ms": suppression_ms},
        console=console,
        detector=model,
    )
    console.print(
        f"listened to {result.audio_s:.1f} s of audio: {len(result.detections)} "
        f"detections" + (f", {result.commands_started} actions started" if on else ""),
        highlight=False,
    )


def _split(command: str) -> list[str]:
    import shlex

    return shlex.split(command)


@app.command("stream-eval")
def stream_eval(
    run: Path = typer.Argument(..., help="Run folder after `kwstool quantize` (or its .tflite)."),
    data: Path = typer.Argument(
        ...,
        help="Prepared data (`kwstool prepare` output) whose "
        "split gives the words and whose noise the background.",
    ),
    hours: float = typer.Option(1.0, "--hours", help="Length of the positive stream."),
    negative_hours: float = typer.Option(
        1.0,
        "--negative-hours",
        help="Length of the negative stream (noise + unknown words only).",
    ),
    split: str = typer.Option("test", "--split", help="Split the words come from."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same streams."),
    noise: Path | None = typer.Option(
        None,
        "--noise",
        help="Folder of background WAVs [default: the prepared data's].",
    ),
    snr: str = typer.Option("5:25", "--snr", help="Word-to-noise SNR range in dB, LO:HI."),
    gap: str = typer.Option("1.5:3", "--gap", help="Seconds between words, LO:HI."),
    calibrate: float | None = typer.Option(
        None,
        "--calibrate",
        help="False accepts per "
        "hour allowed per word: pick thresholds, store "
        "them in RUN/calibration.json.",
    ),
    suppression_ms: int | None = typer.Option(
        None, "--suppression-ms", help="Recognizer suppression time."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for stream_eval.json and det.png [default: RUN/stream_eval].",
    ),
    runtime: str = typer.Option(
        "litert",
        "--runtime",
        help="litert (reference kernels, "
        "checked against TFLite-Micro), tflm, or litert-fast "
        "(optimized kernels: faster, not bit-exact).",
    ),
    threads: int | None = typer.Option(None, "--threads", help="Interpreters in parallel."),
    save_wav: bool = typer.Option(False, "--save-wav", help="Also write the streams as WAV."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """False accepts per hour, misses and latency on long streams; DET curve; calibration."""
    from kwstool.stream.evaluate import stream_eval as do_eval
    from kwstool.stream.synth import StreamDesign

    design = StreamDesign(
        seed=seed,
        hours=hours,
        negative_hours=negative_hours,
        split=split,
        gap_s=_range(gap, "--gap"),
        snr_db=_range(snr, "--snr"),
    )
    say = (
        (lambda m: err_console.print(m, highlight=False))
        if as_json
        else (lambda m: console.print(m, highlight=False))
    )
    result = do_eval(
        run,
        data,
        design=design,
        noise_dir=noise,
        calibrate_fa=calibrate,
        recognizer={"suppression_ms": suppression_ms},
        out_dir=out,
        runtime=runtime,
        threads=threads,
        save_wav=save_wav,
        log=say,
        progress=not as_json,
    )
    if as_json:
        sys.stdout.write(json.dumps(result.report, indent=2) + "\n")
        return
    print_stream_eval(result)


def _range(text: str, name: str) -> tuple[float, float]:
    from kwstool.errors import KwsError

    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise KwsError(f"{name} {text!r}: give a range LO:HI, e.g. 1.5:3") from None
    if lo > hi:
        raise KwsError(f"{name} {text!r}: LO must not exceed HI")
    return lo, hi


def print_stream_eval(result: StreamEvalResult) -> None:
    from rich import box

    from kwstool.core.console import fitted_table
    from kwstool.stream.det import budget_warning

    rep = result.report
    figures = (rep.get("calibration") or {}).get("figures") or rep["per_keyword"]
    thresholds = rep["recognizer"]["thresholds"]
    if rep.get("calibration"):
        thresholds = {k: v["threshold"] for k, v in rep["calibration"]["picks"].items()}
    rows = []
    for name, f in figures.items():
        rows.append(
            [
                name,
                str(thresholds.get(name)),
                str(f["words"]),
                str(f["hits"]),
                "-" if f["frr"] is None else f"{f['frr']:.3f}",
                "-" if f["fa_per_hour"] is None else f"{f['fa_per_hour']:.2f}",
                "-"
                if f["false_per_hour_positive"] is None
                else f"{f['false_per_hour_positive']:.2f}",
                str(f["latency_ms"]["median"]),
                str(f["latency_ms"]["p95"]),
            ]
        )
    headers = [("word", False), ("thr", True), ("words", True), ("hits", True),
               ("FRR", True), ("FA/h\n(neg)", True), ("false/h\n(pos)", True),
               ("p50\nms", True), ("p95\nms", True)]  # fmt: skip
    table = fitted_table(headers, rows, box=box.SIMPLE_HEAD)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    cal = rep.get("calibration") or {}
    warning = budget_warning(cal.get("picks") or {}, cal.get("fa_per_hour_budget", 0.0))
    if warning:
        err_console.print(warning, highlight=False, soft_wrap=True)
    p = rep["parity"]
    if p.get("windows"):
        console.print(
            f"TFLite-Micro check: {p['identical']}/{p['windows']} windows identical "
            f"(max diff {p['max_abs_diff']})",
            highlight=False,
        )
    s = rep["seconds"]
    console.print(
        f"{rep['positive']['hours']:.2f} h positive + {rep['negative']['hours']:.2f} h "
        f"negative in {s['total']:.1f} s (build {s['build']:.1f}, stream "
        f"{s['stream']:.1f}, sweep {s['sweep']:.1f})",
        highlight=False,
    )
    for path in (result.json_path, result.det_path, result.calibration_path):
        if path is not None:
            console.print(f"wrote {path}", highlight=False)
