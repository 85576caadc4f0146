"""Recognizer defaults shared by export (the firmware header), listen and stream-eval.

micro_speech's RecognizeCommands defaults; the threshold is on the averaged score * 255.
"""

from __future__ import annotations

from typing import Any

RECOGNIZER_DEFAULTS: dict[str, Any] = {
    "average_window_ms": 1000,
    "threshold": 200,
    "suppression_ms": 1500,
    "minimum_count": 3,
}
