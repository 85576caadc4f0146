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
# --- end prepare ----------------------------------------------------------------------------

# --- train / quantize / export / evaluate / run (issue: models) ------------------------------
# --- end models -----------------------------------------------------------------------------

# --- device-test (issue: firmware) ------------------------------------------------------------
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
