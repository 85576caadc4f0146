"""`kwstool profile`: per-operator latency of an int8 model on a board (thin CLI layer).

``register(app)`` adds the command to a Typer app; the work is
:func:`kwstool.deploy.profile.profile`. A KwsError propagates to the app's entry point, which
prints it as one line and exits 2.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from kwstool.deploy.profile import OpProfile, ProfileResult


def _shape(s: Sequence[int] | None) -> str:
    return "x".join(str(d) for d in s[1:]) if s and len(s) > 1 else "x".join(map(str, s or ()))


def _op_row(o: OpProfile, measured: bool) -> list[str]:
    """One operator's cells."""
    shapes = ", ".join(_shape(s) for s in o.input_shapes) + " -> " + _shape(o.output_shape)
    if o.params.get("kernel"):
        shapes += f" k{o.params['kernel'][0]}x{o.params['kernel'][1]}"
    row = [
        str(o.index),
        o.op,
        o.kernel,
        o.path,
        shapes,
        f"{o.macs:,}" if o.macs else "",
        f"{o.est_cycles:,.0f}",
    ]
    if measured:
        row.append(f"{o.measured_instructions:,}")
    row.append(f"{o.measured_ms if measured else o.est_ms:.2f}")
    return row


def _total_row(result: ProfileResult, measured: bool) -> list[str]:
    total = [
        "",
        "total",
        "",
        "",
        "",
        f"{sum(o.macs for o in result.ops):,}",
        f"{result.est_cycles:,.0f}",
    ]
    if measured:
        total.append(f"{result.measured_instructions:,}")
    total.append(f"{result.latency_ms:.1f}")
    return total


def _table(result: ProfileResult) -> Table:
    """The per-operator table with its totals; at 80 columns the text columns wrap and the
    numbers stay whole (:func:`kwstool.core.console.fitted_table`)."""
    from rich import box

    from kwstool.core.console import fitted_table

    measured = result.measured
    headers = [("#", True), ("op", False), ("kernel", False), ("path", False),
               ("in -> out", False), ("MACs", True), ("est.\ncycles", True)]  # fmt: skip
    if measured:
        headers.append(("measured\ninstr", True))
    headers.append(("ms", True))
    rows = [_op_row(o, measured) for o in result.ops]
    total = _total_row(result, measured)
    table = fitted_table(
        headers,
        [*rows, total],
        title=f"{result.model_path} on {result.board} ({result.clock_mhz:.0f} MHz, "
        f"{result.cycles_per_instruction} cycles/instruction)",
        box=box.SIMPLE_HEAD,
    )
    for o, row in zip(result.ops, rows):
        style = "red" if o.path == "reference" and o.est_ms >= 1.0 else None
        table.add_row(*row, style=style)
    table.add_row(*total, style="bold")
    return table


def render(result: ProfileResult, console: Console) -> None:
    """The Rich table of a ProfileResult: one row per operator, then the totals."""
    from kwstool.deploy.profile import inference_period_ms

    console.print(_table(result))
    period = inference_period_ms(result.latency_ms, result.frontend_ms_per_frame)
    console.print(
        f"inference {result.latency_ms:.1f} ms ({result.source}; cost model "
        f"{result.est_ms:.1f} ms), front end {result.frontend_ms_per_frame:.2f} ms per "
        f"20 ms frame; inference period "
        + (f"{period} ms" if period else "none: cannot keep real time"),
        highlight=False,
    )
    console.print(f"[dim]{result.estimate_note}; {result.cycles_note}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `profile` to ``app``."""

    @app.command("profile")
    def profile_command(
        model: Path = typer.Argument(..., help="int8 .tflite, or a run folder after quantize."),
        board: str = typer.Option("nano33ble", "--board", help="nano33ble or esp32dev."),
        measure: bool = typer.Option(
            False,
            "--measure",
            help="Also count instructions on QEMU (Cortex-M4 boards; "
            "needs arm-none-eabi-g++, qemu-system-arm, TFLM "
            "sources).",
        ),
        tflm_src: Path | None = typer.Option(
            None,
            "--tflm-src",
            help="Chirale_TensorFlowLite folder (default: firmware/.pio/libdeps after `pio run`).",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Per-operator latency on the board: kernel path, cycles, milliseconds."""
        from rich.console import Console

        from kwstool.deploy.profile import profile

        result = profile(model, board=board, measure=measure, tflm_src=tflm_src)
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=1, default=list))
        else:
            render(result, Console())


def _register_on_the_app() -> None:
    from kwstool.cli.app import app

    register(app)


_register_on_the_app()
