"""The `kwstool` command line: a thin Typer layer over the library.

Each command parses options, calls one library function and renders its result with Rich.
A :class:`~kwstool.errors.KwsError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from . import __version__
from .errors import KwsError

app = typer.Typer(
    name="kwstool",
    help="Keyword spotting for microcontrollers: prepare, train, quantize, export, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"kwstool {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """kwstool: from Speech Commands to an int8 keyword model on your board."""


# --- features -------------------------------------------------------------------------------
@app.command()
def features(
    paths: List[Path] = typer.Argument(..., help="WAV files and/or folders of WAV files."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npy: (49,40) int8 for one WAV, "
                             "(N,49,40) plus OUT.files.txt for several."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also render the spectrogram(s) to this PNG."),
) -> None:
    """Compute micro_speech features (49x40 int8) with the same C front end as the firmware."""
    from .features import features_for_paths

    result = features_for_paths(paths, out, png=png)
    for bad in result.skipped:
        err_console.print(f"[yellow]skipped[/] {bad['file']}: {bad['reason']}", highlight=False)
    console.print(f"wrote {result.out} shape={tuple(result.shape)}"
                  + (f" and {result.png}" if result.png else ""), highlight=False)
    if result.count == 0:
        raise KwsError("no readable WAV among the inputs; nothing written")


# --- prepare (issue: data) -------------------------------------------------------------------
@app.command()
def prepare(
    source: str = typer.Option(
        "tfds", "--source", "-s",
        help="'tfds' (TFDS speech_commands, downloads v0.02), an http(s) URL or path of a "
             "Speech Commands .tar.gz, an extracted archive folder, the canonical test-set "
             "folder, or your own folder-per-label tree of WAVs."),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", "-d", help="Output folder [default: ./data/<source name>]."),
    words: str = typer.Option(
        "yes,no,up,down,left,right,on,off,stop,go", "--words", "-w",
        help="Comma-separated keywords (folder names). Labels: _silence_, _unknown_, then these."),
    silence_share: float = typer.Option(
        10.0, "--silence-share", help="Silence examples per split, % of its keyword count."),
    unknown_share: float = typer.Option(
        10.0, "--unknown-share", help="Unknown-word examples per split, % of its keyword count."),
    validation_pct: float = typer.Option(
        10.0, "--validation-pct", help="Speakers hashed into validation, % (without list files)."),
    testing_pct: float = typer.Option(
        10.0, "--testing-pct", help="Speakers hashed into test, % (without list files)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the unknown/silence draws."),
    download_dir: Optional[Path] = typer.Option(
        None, "--download-dir", help="Where archives are downloaded and extracted "
                                     "[default: ./data/downloads]."),
    sha256: Optional[str] = typer.Option(
        None, "--sha256", help="Expected sha256 of the archive (default: the official checksum "
                               "for known Speech Commands archive names)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the cache matches."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
) -> None:
    """Prepare keyword data: speaker-disjoint train/validation/test splits as cached features."""
    from rich.table import Table

    from .data import prepare as run_prepare

    result = run_prepare(
        source, data_dir, words=words, silence_share=silence_share, unknown_share=unknown_share,
        validation_pct=validation_pct, testing_pct=testing_pct, seed=seed,
        download_dir=download_dir, sha256=sha256, force=force, progress=not no_progress)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    names = list(result.splits)
    table = Table(title=f"class counts in {result.data_dir}")
    table.add_column("label")
    for s in names:
        table.add_column(s, justify="right")
    table.add_column("total", justify="right")
    for label in result.labels:
        row = [result.splits[s]["per_class"][label] for s in names]
        table.add_row(label, *map(str, row), str(sum(row)))
    totals = [result.splits[s]["count"] for s in names]
    table.add_section()
    table.add_row("all", *map(str, totals), str(sum(totals)), style="bold")
    console.print(table)
    console.print(f"source: {result.source} ({result.source_kind})", highlight=False,
                  soft_wrap=True)
    for w in result.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    if result.skipped:
        err_console.print(f"[yellow]skipped {len(result.skipped)} unreadable clip(s)[/] "
                          f"(listed in {result.data_dir / 'manifest.json'}):", highlight=False)
        for bad in result.skipped[:10]:
            err_console.print(f"  {bad['reason']}", highlight=False, soft_wrap=True)
    how = ("up to date, nothing to do" if result.cached
           else f"{result.clips_decoded} clips read of {result.clips_found}")
    console.print(f"{how} in {result.seconds:.1f} s", highlight=False)


# --- end prepare ----------------------------------------------------------------------------

# --- train / quantize / export / evaluate / run (issue: models) ------------------------------
def _default(key: str) -> str:
    """'(default X)' for a `kwstool train` option, read from kwstool.train.DEFAULTS."""
    from .train import DEFAULTS

    value = DEFAULTS[key]
    if isinstance(value, bool):
        value = "on" if value else "off"
    elif isinstance(value, float):
        value = f"{value:g}"
    return f"(default {value})"


@app.command()
def train(
    data: Path = typer.Argument(..., help="Prepared data folder (`kwstool prepare` output)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (or to resume)."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m",
        help=f"tiny_conv, ds_cnn, tc_resnet or bc_resnet {_default('model')}."),
    epochs: Optional[int] = typer.Option(
        None, "--epochs", help=f"Maximum epochs {_default('epochs')}."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help=f"Clips per step {_default('batch_size')}."),
    lr: Optional[float] = typer.Option(
        None, "--lr", help=f"Peak learning rate of AdamW: warm-up, then cosine decay "
                           f"{_default('lr')}."),
    seed: Optional[int] = typer.Option(
        None, "--seed", help=f"Same seed, same weights on the same machine {_default('seed')}."),
    patience: Optional[int] = typer.Option(
        None, "--patience", help=f"Stop after this many epochs without a better validation "
                                 f"accuracy {_default('patience')}."),
    noise_prob: Optional[float] = typer.Option(
        None, "--noise-prob", help=f"Share of clips mixed with background noise "
                                   f"{_default('noise_prob')}."),
    noise_volume: Optional[float] = typer.Option(
        None, "--noise-volume", help=f"Maximum noise volume {_default('noise_volume')}."),
    time_shift_ms: Optional[float] = typer.Option(
        None, "--time-shift-ms", help=f"Maximum random time shift either way "
                                      f"{_default('time_shift_ms')}."),
    speed_perturb: Optional[float] = typer.Option(
        None, "--speed-perturb", help=f"Random speed change of up to +- this fraction "
                                      f"{_default('speed_perturb')}."),
    spec_augment: Optional[bool] = typer.Option(
        None, "--spec-augment/--no-spec-augment",
        help=f"SpecAugment time/frequency masking {_default('spec_augment')}."),
    class_balance: Optional[bool] = typer.Option(
        None, "--class-balance/--no-class-balance",
        help=f"Weight the loss so every label counts the same {_default('class_balance')}."),
    weight_decay: Optional[float] = typer.Option(
        None, "--weight-decay", help=f"AdamW weight decay {_default('weight_decay')}."),
    label_smoothing: Optional[float] = typer.Option(
        None, "--label-smoothing", help=f"{_default('label_smoothing')}"),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run already in --out."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No per-epoch output."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Train a keyword model; augmentation (shift, noise, masking) runs through our front end."""
    from .train import train as do_train

    try:
        result = do_train(data, out, model=model, epochs=epochs, batch_size=batch_size, lr=lr,
                          seed=seed, resume=resume, overwrite=overwrite, patience=patience,
                          noise_prob=noise_prob, noise_volume=noise_volume,
                          time_shift_ms=time_shift_ms, spec_augment=spec_augment,
                          weight_decay=weight_decay, label_smoothing=label_smoothing,
                          class_balance=class_balance, speed_perturb=speed_perturb,
                          progress=not (no_progress or as_json))
    except KeyboardInterrupt:
        err_console.print(f"[bold red]interrupted[/]; the last finished epoch is saved, continue "
                          f"with `kwstool train {data} --out {out} --resume`", highlight=False,
                          soft_wrap=True)
        raise typer.Exit(130) from None
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    how = "stopped early" if result.stopped_early else "finished"
    console.print(f"{result.model}: best validation accuracy {result.best_val_accuracy:.4f} at "
                  f"epoch {result.best_epoch} ({how} after {result.epochs_run} epochs); "
                  f"{out / 'best.keras'}", highlight=False)


def _print_plain(text: str) -> None:
    console.print(text, highlight=False)


def _print_quantize(q) -> None:
    acc = q.accuracy
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    parity = q.report.get("parity", {})
    _print_plain(f"wrote {q.tflite_path} ({q.model_bytes} bytes) and {q.json_path}")
    _print_plain(f"  input scale {q.input['scale']:g} zero point {q.input['zero_point']}, output "
         f"scale {q.output['scale']:g} zero point {q.output['zero_point']}")
    _print_plain(f"  TFLite-Micro arena {q.arena_bytes} bytes; ops: {', '.join(q.ops)}")
    _print_plain(f"  TFLite-Micro vs LiteRT: {parity.get('identical_clips')} of {q.compared} clips "
         f"identical" + ("" if q.tflm_matches_litert else
                         f", max difference {parity.get('max_abs_diff')} (rounding ties)"))
    _print_plain(f"  top-1 float: validation {fmt(acc['float']['validation'])} test "
         f"{fmt(acc['float']['test'])}; int8: validation {fmt(acc['int8']['validation'])} "
         f"test {fmt(acc['int8']['test'])}")


def _print_export(e) -> None:
    _print_plain(f"wrote {e.header} and {e.source}")
    _print_plain(f"  {e.model_name}: {e.model_bytes} bytes flash (budget {e.board.model_budget}), arena "
         f"{e.arena_bytes} bytes = {e.arena_used_bytes} measured + {e.arena_margin_bytes} margin "
         f"(budget {e.board.arena_budget}) on {e.board.name}")


def _print_evaluation(r) -> None:
    from rich.table import Table

    from .evaluate import format_score

    where = f"{r.data}" + (f" ({r.split})" if r.split else "")
    table = Table(title=f"{r.model.name} on {where}, {r.runtime}")
    table.add_column("label")
    for col in ("precision", "recall", "F1", "support"):
        table.add_column(col, justify="right")
    for c in r.per_class:
        table.add_row(c.label, format_score(c.precision), format_score(c.recall),
                      format_score(c.f1), str(c.support))
    console.print(table)
    console.print(f"top-1 {r.top1:.4f} on {r.count} clips, macro F1 {format_score(r.macro_f1)}",
                  highlight=False)
    for bad in r.skipped:
        err_console.print(f"[yellow]skipped[/] {bad['file']}: {bad['reason']}", highlight=False)
    for path in (r.json_path, r.png_path):
        if path is not None:
            console.print(f"wrote {path}", highlight=False)


@app.command()
def quantize(
    run: Path = typer.Argument(..., help="Run folder written by `kwstool train` (best.keras)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Prepared data (default: the folder "
                                        "named in RUN/config.json)."),
    strict: bool = typer.Option(False, "--strict", help="Require bit-identical TFLite-Micro and "
                                "LiteRT outputs (no rounding-tie differences)."),
) -> None:
    """Convert the trained model to int8 TFLite, check it in TFLite-Micro and LiteRT, measure it."""
    from .quantize import quantize as do_quantize

    with console.status("quantizing") as status:
        result = do_quantize(run, data, strict=strict, log=lambda m: status.update(m))
    _print_quantize(result)


@app.command()
def export(
    run: Path = typer.Argument(..., help="Run folder after `kwstool quantize` (or its .tflite)."),
    out: Path = typer.Option(Path("firmware/src/model"), "--out", "-o",
                             help="Folder for kws_model_data.h/.cc."),
    board: str = typer.Option("nano33ble", "--board", help="Budget: nano33ble or esp32dev."),
) -> None:
    """Write the firmware's model files (C array, labels, quantization, arena, op list)."""
    from .export import export as do_export

    _print_export(do_export(run, out, board=board))


@app.command()
def evaluate(
    model: Path = typer.Argument(..., help="int8 .tflite (labels from quantize.json beside it)."),
    data: Path = typer.Argument(..., help="Prepared data folder, or a folder with one subfolder "
                                "of WAVs per label (_silence_, _unknown_ included)."),
    split: str = typer.Option("test", "--split", help="Split of prepared data."),
    runtime: str = typer.Option("litert", "--runtime", help="litert, or tflm (the board's "
                                "interpreter)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated labels overriding "
                                         "quantize.json, e.g. silence,unknown,yes,no."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the figures as JSON here."),
    png: Optional[Path] = typer.Option(None, "--png", help="Confusion-matrix PNG (default: "
                                       "confusion.png beside the model)."),
) -> None:
    """Top-1, per-class precision/recall/F1 and a confusion matrix of an int8 model."""
    from .evaluate import evaluate as do_evaluate

    import os

    model_file = model / "model_int8.tflite" if model.is_dir() else model
    png_out = png
    if png_out is None:  # beside the model, or here when that folder is read-only
        beside = model_file.with_name("confusion.png")
        png_out = beside if os.access(beside.parent, os.W_OK) else Path("confusion.png")
    with console.status("evaluating"):
        result = do_evaluate(model, data, runtime=runtime, json_out=json_out, png_out=png_out,
                             split=split, labels=labels)
    _print_evaluation(result)


@app.command("run")
def run_all(
    source: Optional[str] = typer.Argument(None, help="Data source as for `kwstool prepare` "
                                           "(default: the shipped demo dataset, offline)."),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", "-w", help="Where everything goes "
                                            "(default: runs/<source name>)."),
    words: Optional[str] = typer.Option(None, "--words", help="Keywords, comma-separated "
                                        "(demo default: yes,no)."),
    model: Optional[str] = typer.Option(None, "--model", help="tiny_conv, ds_cnn or bc_resnet."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs (demo: 40)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Training batch size "
                                             "(demo: 16)."),
    export_dir: Optional[Path] = typer.Option(None, "--export-dir", help="Export folder (default: "
                                              "WORK_DIR/export; firmware/src/model replaces the "
                                              "firmware's shipped model)."),
    board: str = typer.Option("nano33ble", "--board", help="nano33ble or esp32dev."),
    seed: int = typer.Option(0, "--seed", help="Seed for splits, training and calibration."),
) -> None:
    """Prepare -> train -> quantize -> export -> evaluate in one go (the demo needs no network)."""
    from .pipeline import run as do_run

    result = do_run(source, work_dir, words=words, model=model, epochs=epochs,
                    batch_size=batch_size, export_dir=export_dir, board=board, seed=seed,
                    log=lambda m: console.print(f"[bold cyan]{m}[/]", highlight=False))
    _print_quantize(result.quantize)
    _print_export(result.export)
    _print_evaluation(result.evaluation)
    stages = ", ".join(f"{k} {v:.0f}s" for k, v in result.stage_seconds.items())
    console.print(f"done in {result.seconds:.0f}s ({stages}); everything is in {result.work_dir}",
                  highlight=False)


# --- end models -----------------------------------------------------------------------------

# --- device-test (issue: firmware) ------------------------------------------------------------
@app.command("device-test")
def device_test_cmd(
    data: List[Path] = typer.Argument(..., help="WAV files and/or folders; a clip's folder name "
                                      "is its label (Speech Commands layout)."),
    port: str = typer.Option(..., "--port", "-p", help="The board's serial port (`pio device "
                             "list`: /dev/ttyACM0, COM5, ...) or the host board's pty."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for device_test.json "
                                       "(and the board's features.npy in clip mode)."),
    baud: int = typer.Option(921600, "--baud", help="UART speed of the ESP32 firmware (the "
                             "Nano's USB serial ignores it)."),
    stream: bool = typer.Option(False, "--stream", help="Play each WAV whole as one stream and "
                                "list the detections (default: 1 s clips, top-1 accuracy)."),
    infer_every: Optional[int] = typer.Option(None, "--infer-every", help="Frames (20 ms) "
                                              "between inferences [default: 49 for clips, 1 "
                                              "for --stream]."),
    threshold: Optional[int] = typer.Option(None, "--threshold", help="Recognizer threshold "
                                            "0..255 [default: the model's]."),
    window_ms: Optional[int] = typer.Option(None, "--window-ms", help="Recognizer averaging "
                                            "window [default: the model's]."),
    suppression_ms: Optional[int] = typer.Option(None, "--suppression-ms", help="Quiet time "
                                                 "after a detection [default: the model's]."),
    min_count: Optional[int] = typer.Option(None, "--min-count", help="Minimum results in the "
                                            "window [default: the model's]."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for each answer."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Measure the board itself: stream clips to it over serial, read back its features, scores
    and detections (the firmware's serial test mode)."""
    from .device import device_test

    overrides = {k: v for k, v in (("threshold", threshold), ("average_window_ms", window_ms),
                                   ("suppression_ms", suppression_ms),
                                   ("minimum_count", min_count)) if v is not None}
    result = device_test(port, data, out=out, baudrate=baud, stream=stream,
                         infer_every=infer_every, recognizer=overrides or None, timeout=timeout)
    for bad in result.skipped:
        err_console.print(f"[yellow]skipped[/] {bad['file']}: {bad['reason']}", highlight=False, soft_wrap=True)
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict(), indent=2) + "\n")
        return
    info = result.info
    console.print(f"board {info.get('board')} on {result.port}: model {info.get('model')} "
                  f"({info.get('model_bytes')} bytes, arena {info.get('arena_used')}/"
                  f"{info.get('arena_bytes')} bytes used)", highlight=False, soft_wrap=True)
    lat = result.latency
    inv = lat.get("invoke_us") or {}
    console.print(f"  on the board: {lat.get('feature_us_per_frame')} us per feature frame, "
                  f"{inv.get('mean', '-')} us per inference (max {inv.get('max', '-')})",
                  highlight=False, soft_wrap=True)
    if result.mode == "stream":
        for row in result.files:
            found = ", ".join(f"{d['label']}@{d['time_ms']}ms({d['score']:.2f})"
                              for d in row["detections"]) or "none"
            console.print(f"  {row['file']}: {row['duration_s']} s, detections: {found}",
                          highlight=False, soft_wrap=True)
    else:
        rt = lat.get("round_trip_ms") or {}
        console.print(f"  host round trip of the clip's last window: p50 {rt.get('p50', '-')} ms,"
                      f" p95 {rt.get('p95', '-')} ms", highlight=False, soft_wrap=True)
        acc = "-" if result.accuracy is None else f"{result.accuracy:.4f}"
        scored = sum(r["correct"] is not None for r in result.files)
        console.print(f"  top-1 accuracy on the board: {acc} ({scored} labelled clips of "
                      f"{len(result.files)})", highlight=False, soft_wrap=True)
        for lab, v in result.per_class.items():
            console.print(f"    {lab}: {v['accuracy']:.4f} ({v['count']})", highlight=False, soft_wrap=True)
    for path in (result.json_path, result.features_path):
        if path is not None:
            console.print(f"wrote {path}", highlight=False, soft_wrap=True)
# --- end device-test --------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: run the Typer app, turning KwsError into a one-line message and exit 2."""
    try:
        app(args=argv, standalone_mode=False)
    except KwsError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]; outputs written so far are complete, "
                          "re-run to continue")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 1
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
