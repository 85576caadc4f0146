"""Rich consoles that behave when piped: a terminal gets its own width and live progress bars;
a file or pipe gets wide lines (no 80-column wrapping of tables) and no cursor tricks, so a log
shows one line per finished step."""

from __future__ import annotations

import os
import sys

from rich.console import Console

#: Width of output that goes to a file or pipe (``COLUMNS`` overrides it).
PIPED_WIDTH = 160


def make_console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr) sized for where that stream goes."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    width = int(os.environ.get("COLUMNS") or PIPED_WIDTH)
    return Console(stderr=stderr, width=width, soft_wrap=False)
