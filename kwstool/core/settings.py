"""The one place a run's numeric settings are checked, before any work starts.

Each setting a user can give (``--suppression-ms``, ``--hours``, ``--calibrate``, ...) has one
:class:`Limit` here: the option that sets it and its allowed range. The library functions call
:func:`check` on their arguments first thing (so the CLI, which only calls them, and Python
users get the same one-line error), and :func:`check_recognizer` on every recognizer dict,
whichever stage builds it. Training's hyper-parameters keep their ranges in
:class:`kwstool.model.config.TrainConfig` (the same kind of check, on their own record).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kwstool.errors import KwsError

#: The recognizer's longest averaging window (firmware/lib/kws_recognizer).
MAX_WINDOW_MS = 3000


@dataclass(frozen=True)
class Limit:
    """A setting's option name and allowed range (``lo < value`` when ``lo_open``)."""

    option: str
    lo: float | None = None
    hi: float | None = None
    integer: bool = False
    lo_open: bool = False
    unit: str = ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (None when it is)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "not a number"
        if not math.isfinite(value):
            return "not a finite number"
        if self.integer and not float(value).is_integer():
            return "not a whole number"
        low = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        high = self.hi is not None and value > self.hi
        return f"out of range; give {self.range_text()}" if low or high else None

    def range_text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        kind = "a whole number" if self.integer else "a number"
        if self.hi is None:
            return f"{kind} {'above' if self.lo_open else '>='} {self.lo:g}{unit}"
        if self.lo_open:
            return f"{kind} above {self.lo:g} and at most {self.hi:g}{unit}"
        return f"{kind} from {self.lo:g} to {self.hi:g}{unit}"


LIMITS: dict[str, Limit] = {
    # the recognizer (listen, stream-eval, export, calibration.json)
    "threshold": Limit("--threshold", 0, 255, integer=True),
    "suppression_ms": Limit("--suppression-ms", 0, 60_000, integer=True, unit="ms"),
    "average_window_ms": Limit("average_window_ms", 0, MAX_WINDOW_MS, True, True, "ms"),
    "minimum_coverage_ms": Limit("minimum_coverage_ms", 0, MAX_WINDOW_MS, integer=True, unit="ms"),
    # stream-eval's streams and calibration
    "hours": Limit("--hours", 0, 24, lo_open=True, unit="h"),
    "negative_hours": Limit("--negative-hours", 0, 24, unit="h"),
    "calibrate": Limit("--calibrate", 0, 3600, unit="false accepts per hour"),
    "threads": Limit("--threads", 1, 1024, integer=True),
    # record: one take
    "seconds": Limit("--seconds", 1, 60, unit="s"),
}


def check(**values: Any) -> None:
    """Raise a one-line KwsError (``--OPTION VALUE: out of range; give ...``) for the first
    value outside its :data:`LIMITS`; None values (not given) are skipped."""
    for name, value in values.items():
        if value is None:
            continue
        limit = LIMITS[name]
        problem = limit.problem(value)
        if problem:
            raise KwsError(f"{limit.option} {value!r}: {problem}")


def check_recognizer(rec: dict[str, Any], where: str | None = None) -> None:
    """Check a recognizer dict (``threshold``, ``thresholds`` {label: 0..255},
    ``suppression_ms``, ``average_window_ms``, ``minimum_coverage_ms``; absent keys are
    skipped). ``where`` (a file) prefixes the message when the values come from one."""
    keys = ("threshold", "suppression_ms", "average_window_ms", "minimum_coverage_ms")
    try:
        check(**{k: rec.get(k) for k in keys})
        for label, value in (rec.get("thresholds") or {}).items():
            problem = LIMITS["threshold"].problem(value)
            if problem:
                raise KwsError(f"threshold of {label!r} {value!r}: {problem}")
        window, coverage = rec.get("average_window_ms"), rec.get("minimum_coverage_ms")
        if window is not None and coverage is not None and coverage >= window:
            raise KwsError(
                f"minimum_coverage_ms {coverage} is not below average_window_ms {window}; "
                f"give a shorter coverage"
            )
    except KwsError as exc:
        if where is None:
            raise
        raise KwsError(f"{where}: {exc}") from None
