"""Recognizer defaults shared by export (the firmware header), listen and stream-eval.

micro_speech's RecognizeCommands defaults, in time: the threshold is on the averaged score
* 255 (one value for every label unless ``thresholds`` names some), and micro_speech's
"minimum 3 results" at the default period of 100 ms is 200 ms of coverage.
"""

from __future__ import annotations

from typing import Any

from kwstool.core.labels import is_filler

#: The highest threshold (score * 255). A keyword set to it never fires: calibration leaves a
#: keyword there when no lower threshold keeps its false accepts within the budget.
THRESHOLD_OFF = 255

RECOGNIZER_DEFAULTS: dict[str, Any] = {
    "average_window_ms": 1000,
    "threshold": 200,
    "suppression_ms": 1500,
    "minimum_coverage_ms": 200,
}


def muted_keywords(thresholds: dict[str, int]) -> list[str]:
    """Keywords (not the filler labels) whose threshold is :data:`THRESHOLD_OFF`."""
    return sorted(n for n, t in thresholds.items() if not is_filler(n) and int(t) >= THRESHOLD_OFF)
