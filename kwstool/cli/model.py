"""`kwstool train`, `quantize`, `evaluate` and `run`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from kwstool.cli.app import app, console, err_console
from kwstool.cli.deploy import print_export

def _default(key: str) -> str:
    """'(default X)' for a `kwstool train` option, read from kwstool.train.DEFAULTS."""
    from kwstool.model.train import DEFAULTS

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
    from kwstool.model.train import train as do_train

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


def _print_evaluation(r) -> None:
    from rich.table import Table

    from kwstool.model.evaluate import format_score

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
    from kwstool.model.quantize import quantize as do_quantize

    with console.status("quantizing") as status:
        result = do_quantize(run, data, strict=strict, log=lambda m: status.update(m))
    _print_quantize(result)


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
    from kwstool.model.evaluate import evaluate as do_evaluate

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
    from kwstool.pipeline import run as do_run

    result = do_run(source, work_dir, words=words, model=model, epochs=epochs,
                    batch_size=batch_size, export_dir=export_dir, board=board, seed=seed,
                    log=lambda m: console.print(f"[bold cyan]{m}[/]", highlight=False))
    _print_quantize(result.quantize)
    print_export(result.export)
    _print_evaluation(result.evaluation)
    stages = ", ".join(f"{k} {v:.0f}s" for k, v in result.stage_seconds.items())
    console.print(f"done in {result.seconds:.0f}s ({stages}); everything is in {result.work_dir}",
                  highlight=False)


