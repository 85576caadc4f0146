"""The Typer app and the consoles the command modules share."""

from __future__ import annotations

import typer

from kwstool import __version__
from kwstool.core import tfenv
from kwstool.core.console import make_console

app = typer.Typer(
    name="kwstool",
    help="Keyword spotting for microcontrollers: prepare, train, quantize, export, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = make_console()
err_console = make_console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"kwstool {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Also show TensorFlow's own log lines."),
) -> None:
    """kwstool: from Speech Commands to an int8 keyword model on your board."""
    if verbose:
        tfenv.verbose()
    else:
        tfenv.quiet()
