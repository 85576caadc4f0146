"""The `kwstool` command line: a thin Typer layer over the library.

Each command parses options, calls one library function and renders its result with Rich.
A :class:`~kwstool.errors.KwsError` becomes one line on stderr and exit code 2. The commands are
registered by the modules of this package, one per stage (data, model, deploy, stream).
"""

from __future__ import annotations

import shlex
import sys

import typer
from rich.markup import escape

# isort: off
from kwstool.cli import data, wakeword, model, deploy, profile, stream  # noqa: F401  (command order)

# isort: on
from kwstool.cli.app import app, console, err_console
from kwstool.errors import KwsError

__all__ = ["app", "console", "err_console", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the Typer app, turning KwsError into a one-line message and exit 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rc = app(args=exec_rest(args), standalone_mode=False)
    except KwsError as exc:
        # the message is plain text: brackets in it (`pip install 'kwstool[kokoro]'`) are no markup
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print(
            f"[bold red]interrupted[/]; the outputs written so far are complete, continue with "
            f"`{shlex.join(['kwstool', *args])}`",
            highlight=False,
            soft_wrap=True,
        )
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 1
    except Exception as exc:  # click usage errors and the like
        if _is_click_exception(exc):
            exc.show()  # type: ignore[attr-defined]  # a ClickException (usage line + error)
            return int(exc.exit_code)  # type: ignore[attr-defined]
        raise
    # standalone_mode=False: click returns a command's typer.Exit(code) instead of raising it
    return rc if isinstance(rc, int) else 0


def exec_rest(argv: list[str]) -> list[str]:
    """``kwstool listen ... --exec CMD ARG...``: every word after ``--exec`` belongs to CMD, even
    one that looks like an option or like listen's optional RUN argument; they travel as one
    shell-quoted ``--exec`` value (the listen command splits it again)."""
    if not argv or argv[0] != "listen" or "--exec" not in argv:
        return argv
    i = argv.index("--exec")
    if i + 1 >= len(argv):
        return argv
    return [*argv[:i], "--exec", shlex.join(argv[i + 1 :])]


def _is_click_exception(exc: BaseException) -> bool:
    """A ClickException of click or of the copy of click that newer Typer releases carry
    (``typer._click``, a different class with the same name)."""
    return any(
        c.__name__ == "ClickException" and c.__module__.endswith("click.exceptions")
        for c in type(exc).__mro__
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
