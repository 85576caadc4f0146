"""Quiet TensorFlow: its C++ log lines (oneDNN banners, ``E0000 ... NodeDef mentions attribute``
warnings of tf.data, absl start-up notes) are noise in a command-line tool.

:func:`quiet` must run before TensorFlow is first imported; every kwstool module that imports
TensorFlow or Keras calls it first. It sets ``TF_CPP_MIN_LOG_LEVEL`` (TensorFlow's own log
threshold) and imports TensorFlow with file descriptor 2 filtered: TensorFlow 2.21 logs its
oneDNN banner through absl before absl's logging is initialised, which no environment variable
silences. Lines that are not TensorFlow log lines are passed through unchanged.
``kwstool --verbose`` (or an explicit ``TF_CPP_MIN_LOG_LEVEL``) keeps everything.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

#: 3: TensorFlow's C++ code prints nothing below FATAL.
QUIET_LEVEL = "3"
#: What TensorFlow's C++ logging writes: "I0000 00:00:...", "E0000 ...", absl's start-up note.
TF_LOG_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)")


def _wanted() -> bool:
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL") == QUIET_LEVEL


def quiet() -> None:
    """Silence TensorFlow's C++ logging (unless the user chose a level) and import it quietly."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LEVEL)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if "tensorflow" in sys.modules or not _wanted():
        return
    with filtered_stderr():
        import tensorflow  # noqa: F401


def verbose() -> None:
    """Show TensorFlow's C++ log lines (info and up)."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Run the block with file descriptor 2 captured; re-emit what is not a TF log line."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            keep = [ln for ln in text.splitlines(keepends=True) if not TF_LOG_LINE.match(ln)]
            if keep:
                sys.stderr.write("".join(keep))
