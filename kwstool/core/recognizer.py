"""Recognizer defaults shared by export (the firmware header), listen and stream-eval.

micro_speech's RecognizeCommands defaults, in time: the threshold is on the averaged score
* 255 (one value for every label unless ``thresholds`` names some), and micro_speech's
"minimum 3 results" at the default period of 100 ms is 200 ms of coverage.
"""

from __future__ import annotations

from typing import Any

RECOGNIZER_DEFAULTS: dict[str, Any] = {
    "average_window_ms": 1000,
    "threshold": 200,
    "suppression_ms": 1500,
    "minimum_coverage_ms": 200,
}
