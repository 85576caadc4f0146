"""Rich consoles that behave when piped: a terminal gets its own width and live progress bars;
a file or pipe gets wide lines (no 80-column wrapping of tables) and no cursor tricks, so a log
shows one line per finished step. :func:`fitted_table`: tables that fit any width without
cutting a number."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from rich.table import Table

#: Width of output that goes to a file or pipe (``COLUMNS`` overrides it).
PIPED_WIDTH = 160


def make_console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr) sized for where that stream goes."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    width = int(os.environ.get("COLUMNS") or PIPED_WIDTH)
    return Console(stderr=stderr, width=width, soft_wrap=False)


def fitted_table(
    headers: Sequence[tuple[str, bool]], rows: Sequence[Sequence[str]], **table_args: Any
) -> Table:
    """A Rich table for any width: ``headers`` are (title, is_number). A number column keeps
    the width of its longest cell (never wrapped or cut with an ellipsis); text columns wrap."""
    from rich.table import Table

    table = Table(**table_args)
    for i, (title, number) in enumerate(headers):
        if number:
            cells = [r[i] for r in rows] + title.split("\n")
            table.add_column(
                title, justify="right", no_wrap=True, min_width=max(len(c) for c in cells)
            )
        else:
            table.add_column(title, overflow="fold", min_width=max(map(len, title.split())))
    return table
