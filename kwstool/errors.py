"""User-facing errors.

A :class:`KwsError` is a problem with the user's input or environment (a bad WAV, a missing
folder, a model that does not fit). The CLI prints its message as one line and exits with code 2;
it never shows a traceback for these. The message names the file or thing at fault and the fix.
"""


class KwsError(Exception):
    """An error caused by input or environment, reported to the user as one line."""

    exit_code = 2
