"""Quiet TensorFlow: its C++ log lines (oneDNN banners, ``E0000 ... NodeDef mentions attribute``
warnings of tf.data, absl start-up notes) are noise in a command-line tool.

:func:`quiet` must run before TensorFlow is first imported; every kwstool module that imports
TensorFlow calls it. ``kwstool --verbose`` (or an explicit ``TF_CPP_MIN_LOG_LEVEL``) keeps them.
"""

from __future__ import annotations

import os

#: 3: TensorFlow's C++ code prints nothing below FATAL.
QUIET_LEVEL = "3"


def quiet() -> None:
    """Silence TensorFlow's C++ logging unless the user chose a level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LEVEL)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def verbose() -> None:
    """Show TensorFlow's C++ log lines (warnings and up)."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "1"
