"""`kwstool train`, `quantize`, `evaluate` and `run`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kwstool.model.evaluate import EvalResult
    from kwstool.model.quantize import QuantizeResult

import typer

from kwstool.cli.app import app, console, err_console
from kwstool.cli.deploy import print_export


def _default(key: str) -> str:
    """'(default X)' for a `kwstool train` option, read from TrainConfig."""
    from kwstool.model.config import DEFAULTS

    value = DEFAULTS[key]
    if isinstance(value, bool):
        value = "on" if value else "off"
    elif isinstance(value, float):
        value = f"{value:g}"
    return f"(default {value})"


def _opt(name: str, *flags: str) -> Any:
    """A `kwstool train` option for TrainConfig field ``name``: help and default from the field's
    metadata; None (not given) means the default for a new run, the stored value on --resume."""
    from kwstool.model.config import FIELDS

    f = FIELDS[name]
    dashed = "--" + name.replace("_", "-")
    if f.type in ("bool", bool):
        decls: tuple[str, ...] = (f"{dashed}/--no-{name.replace('_', '-')}",)
    else:
        decls = (dashed, *flags)
    return typer.Option(None, *decls, help=f"{f.metadata['help']} {_default(name)}")


#: Options of `kwstool train` that are not TrainConfig fields (checked by tests/model).
TRAIN_EXTRA_OPTIONS = (
    "data",
    "out",
    "preset",
    "threads",
    "resume",
    "overwrite",
    "no_progress",
    "as_json",
)


@app.command()
def train(
    data: Path = typer.Argument(..., help="Prepared data folder (`kwstool prepare` output)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (or to resume)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run already in --out."),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="Named recipe ('full': whole Speech Commands, docs/SCALING.md); options override.",
    ),
    model: str | None = _opt("model", "-m"),
    epochs: int | None = _opt("epochs"),
    batch_size: int | None = _opt("batch_size"),
    lr: float | None = _opt("lr"),
    seed: int | None = _opt("seed"),
    patience: int | None = _opt("patience"),
    warmup_epochs: int | None = _opt("warmup_epochs"),
    noise_prob: float | None = _opt("noise_prob"),
    noise_volume: float | None = _opt("noise_volume"),
    time_shift_ms: float | None = _opt("time_shift_ms"),
    speed_perturb: float | None = _opt("speed_perturb"),
    ema: float | None = _opt("ema"),
    mixup: float | None = _opt("mixup"),
    teacher: str | None = _opt("teacher"),
    teacher_streams: float | None = _opt("teacher_streams"),
    teachers: str | None = _opt("teachers"),
    distill: float | None = _opt("distill"),
    distill_temperature: float | None = _opt("distill_temperature"),
    spec_augment: bool | None = _opt("spec_augment"),
    class_balance: bool | None = _opt("class_balance"),
    negative_weight: float | None = _opt("negative_weight"),
    stream_windows: float | None = _opt("stream_windows"),
    hard_negatives: bool | None = _opt("hard_negatives"),
    select_by: str | None = _opt("select_by"),
    distribute: str | None = _opt("distribute"),
    devices: str | None = _opt("devices"),
    weight_decay: float | None = _opt("weight_decay"),
    label_smoothing: float | None = _opt("label_smoothing"),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: all cores)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No per-epoch output."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Train a keyword model; augmentation (shift, noise, masking) runs through our front end."""
    from kwstool.model.config import FIELD_NAMES, preset as preset_values
    from kwstool.model.train import train as do_train

    given = {k: v for k, v in locals().items() if k in FIELD_NAMES}
    values = (
        dict(preset_values(preset), **{k: v for k, v in given.items() if v is not None})
        if preset
        else given
    )
    try:
        result = do_train(
            data,
            out,
            resume=resume,
            overwrite=overwrite,
            threads=threads,
            progress=not (no_progress or as_json),
            **values,
        )
    except KeyboardInterrupt:
        err_console.print(
            f"[bold red]interrupted[/]; the last finished epoch is saved, continue "
            f"with `kwstool train {data} --out {out} --resume`",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    how = "stopped early" if result.stopped_early else "finished"
    console.print(
        f"{result.model}: best validation accuracy {result.best_val_accuracy:.4f} at "
        f"epoch {result.best_epoch} ({how} after {result.epochs_run} epochs); "
        f"{out / 'best.keras'}",
        highlight=False,
    )


def _print_plain(text: str) -> None:
    console.print(text, highlight=False)


def _print_quantize(q: QuantizeResult) -> None:
    acc = q.accuracy

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    parity = q.report.get("parity", {})
    _print_plain(f"wrote {q.tflite_path} ({q.model_bytes} bytes) and {q.json_path}")
    _print_plain(
        f"  input scale {q.input['scale']:g} zero point {q.input['zero_point']}, output "
        f"scale {q.output['scale']:g} zero point {q.output['zero_point']}"
    )
    _print_plain(f"  TFLite-Micro arena {q.arena_bytes} bytes; ops: {', '.join(q.ops)}")
    _print_plain(
        f"  TFLite-Micro vs LiteRT: {parity.get('identical_clips')} of {q.compared} clips "
        f"identical"
        + (
            ""
            if q.tflm_matches_litert
            else f", max difference {parity.get('max_abs_diff')} (rounding ties)"
        )
    )
    _print_plain(
        f"  top-1 float: validation {fmt(acc['float']['validation'])} test "
        f"{fmt(acc['float']['test'])}; int8: validation {fmt(acc['int8']['validation'])} "
        f"test {fmt(acc['int8']['test'])}"
    )


def _print_evaluation(r: EvalResult) -> None:
    from rich.table import Table

    from kwstool.model.evaluate import format_score

    where = f"{r.data}" + (f" ({r.split})" if r.split else "")
    table = Table(title=f"{r.model.name} on {where}, {r.runtime}")
    table.add_column("label")
    for col in ("precision", "recall", "F1", "support"):
        table.add_column(col, justify="right")
    for c in r.per_class:
        table.add_row(
            c.label,
            format_score(c.precision),
            format_score(c.recall),
            format_score(c.f1),
            str(c.support),
        )
    console.print(table)
    console.print(
        f"top-1 {r.top1:.4f} on {r.count} clips, macro F1 {format_score(r.macro_f1)}",
        highlight=False,
    )
    for bad in r.skipped:
        err_console.print(f"[yellow]skipped[/] {bad['file']}: {bad['reason']}", highlight=False)
    for path in (r.json_path, r.png_path):
        if path is not None:
            console.print(f"wrote {path}", highlight=False)


@app.command()
def quantize(
    run: Path = typer.Argument(..., help="Run folder written by `kwstool train` (best.keras)."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Prepared data (default: the folder named in RUN/config.json).",
    ),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Require bit-identical TFLite-Micro and LiteRT outputs (no rounding-tie differences).",
    ),
) -> None:
    """Convert the trained model to int8 TFLite, check it in TFLite-Micro and LiteRT, measure it."""
    from kwstool.model.quantize import quantize as do_quantize

    with console.status("quantizing") as status:
        result = do_quantize(run, data, strict=strict, log=lambda m: status.update(m))
    _print_quantize(result)


@app.command()
def evaluate(
    model: Path = typer.Argument(..., help="int8 .tflite (labels from quantize.json beside it)."),
    data: Path = typer.Argument(
        ...,
        help="Prepared data folder, or a folder with one subfolder "
        "of WAVs per label (_silence_, _unknown_ included).",
    ),
    split: str = typer.Option("test", "--split", help="Split of prepared data."),
    runtime: str = typer.Option(
        "litert", "--runtime", help="litert, or tflm (the board's interpreter)."
    ),
    labels: str | None = typer.Option(
        None,
        "--labels",
        help="Comma-separated labels overriding quantize.json, e.g. silence,unknown,yes,no.",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the figures as JSON here."),
    png: Path | None = typer.Option(
        None,
        "--png",
        help="Confusion-matrix PNG (default: confusion.png beside the model).",
    ),
) -> None:
    """Top-1, per-class precision/recall/F1 and a confusion matrix of an int8 model."""
    import os

    from kwstool.model.evaluate import evaluate as do_evaluate

    model_file = model / "model_int8.tflite" if model.is_dir() else model
    png_out = png
    if png_out is None:  # beside the model, or here when that folder is read-only
        beside = model_file.with_name("confusion.png")
        png_out = beside if os.access(beside.parent, os.W_OK) else Path("confusion.png")
    with console.status("evaluating"):
        result = do_evaluate(
            model,
            data,
            runtime=runtime,
            json_out=json_out,
            png_out=png_out,
            split=split,
            labels=labels,
        )
    _print_evaluation(result)


@app.command("run")
def run_all(
    source: str | None = typer.Argument(
        None,
        help="Data source as for `kwstool prepare` (default: the shipped demo dataset, offline).",
    ),
    work_dir: Path | None = typer.Option(
        None,
        "--work-dir",
        "-w",
        help="Where everything goes (default: runs/<source name>).",
    ),
    words: str | None = typer.Option(
        None, "--words", help="Keywords, comma-separated (demo default: yes,no)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="ds_tcn (default), bc_resnet, tc_resnet, ds_cnn or tiny_conv."
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Training epochs (demo: 40)."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Training batch size (demo: 16)."
    ),
    export_dir: Path | None = typer.Option(
        None,
        "--export-dir",
        help="Export folder (default: "
        "WORK_DIR/export; firmware/src/model replaces the "
        "firmware's shipped model).",
    ),
    board: str = typer.Option("nano33ble", "--board", help="nano33ble or esp32dev."),
    seed: int = typer.Option(0, "--seed", help="Seed for splits, training and calibration."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the interrupted (or finished) run in the work folder."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the run already in the work folder."
    ),
) -> None:
    """Prepare -> train -> quantize -> export -> evaluate in one go (the demo needs no network)."""
    import shlex

    from kwstool.pipeline import RunInterrupted, run as do_run

    given = {"--words": words, "--model": model, "--epochs": epochs,
             "--batch-size": batch_size, "--export-dir": export_dir,
             "--board": None if board == "nano33ble" else board,
             "--seed": seed or None}  # fmt: skip
    try:
        result = do_run(
            source,
            work_dir,
            words=words,
            model=model,
            epochs=epochs,
            batch_size=batch_size,
            export_dir=export_dir,
            board=board,
            seed=seed,
            resume=resume,
            overwrite=overwrite,
            log=lambda m: console.print(f"[bold cyan]{m}[/]", highlight=False),
        )
    except RunInterrupted as stop:
        args = [*([source] if source else []), "--work-dir", str(stop.work)]
        args += [str(x) for k, v in given.items() if v is not None for x in (k, v)]
        err_console.print(
            f"[bold red]interrupted[/] during {stop.stage}; kept {stop.kept}; continue with "
            f"`{shlex.join(['kwstool', 'run', *args, '--resume'])}`",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    _print_quantize(result.quantize)
    print_export(result.export)
    _print_evaluation(result.evaluation)
    if result.demo:
        err_console.print(
            "[yellow]note:[/] these figures are on the demo's synthetic (espeak-ng) clips; "
            "they say little about real voices. Train on real recordings for a model you "
            "use (README: Using it on your data).",
            highlight=False,
            soft_wrap=True,
        )
    stages = ", ".join(f"{k} {v:.0f}s" for k, v in result.stage_seconds.items())
    console.print(f"done in {result.seconds:.0f}s ({stages})", highlight=False)
    print_what_now(result.run_dir, result.data_dir, result.export_dir, board, result.demo)


def print_what_now(run: Path, data: Path, export_dir: Path, board: str, demo: bool) -> None:
    """The short block `kwstool run` ends with: where the model is and the next commands."""
    word = "yes" if demo else "WORD"
    env = "esp32dev" if board == "esp32dev" else "nano33ble"
    lines = [
        f"  model       {run / 'model_int8.tflite'} (firmware files in {export_dir})",
        f"  calibrate   kwstool stream-eval {run} {data} --split validation --calibrate 2",
        f"  listen      kwstool listen {run} --on {word} --open https://example.org",
        "  12 words    kwstool listen --on go --open https://example.org  (the packaged model)",
        f"  export      kwstool export {run} --board {board} --out firmware/src/model",
        f"  flash       cd firmware && pio run -e {env} -t upload && pio device monitor",
    ]
    console.print("what now:\n" + "\n".join(lines), highlight=False, soft_wrap=True)
