"""The live view of `kwstool listen` (Rich): input level, top labels, detections.

On a terminal a :class:`rich.live.Live` panel redraws a few times a second; piped (tests, logs)
only one line per detection is printed, ``DETECTED yes score=0.93 t=12.84s``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from kwstool.stream.listen import ListenState

#: Redraws per second of the live panel.
REFRESH_HZ = 8


def _meter(dbfs: float, width: int = 36) -> Text:
    fill = round((min(0.0, max(-80.0, dbfs)) + 80) / 80 * width)
    style = "red" if dbfs > -3 else "yellow" if dbfs > -20 else "green"
    return Text.assemble(("█" * fill, style), ("░" * (width - fill), "dim"), f" {dbfs:6.1f} dBFS")


def render(state: ListenState, top: int = 3) -> Panel:
    rows: list[Any] = [Text.assemble("level ", _meter(state.level_dbfs))]
    scores = Table.grid(padding=(0, 2))
    if state.scores is not None:
        order = np.argsort(-state.scores.astype(np.int16), kind="stable")[:top]
        for i in order:
            scores.add_row(state.labels[i], f"{state.scores[i] / 255:.2f}")
    rows.append(Text("top labels (last window)"))
    rows.append(scores)
    det = Table("t (s)", "word", "score", box=None, padding=(0, 2))
    for t, label, score in state.detections[-8:]:
        det.add_row(f"{t:8.2f}", label, f"{score / 255:.2f}")
    rows.append(Text(f"detections ({len(state.detections)})"))
    rows.append(det)
    return Panel(
        Group(*rows),
        title=f"kwstool listen: {state.source}",
        subtitle=f"{state.audio_s:.1f} s of audio - Ctrl-C ends",
    )


class View:
    """Callable the listening loop updates after every block."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Any = None
        self._printed = 0
        self._last = 0.0
        self._state: ListenState | None = None

    def __enter__(self) -> View:
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(console=self.console, auto_refresh=False, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            if self._state is not None:
                self.live.update(render(self._state), refresh=True)  # the final state
            self.live.__exit__(None, None, None)

    def __call__(self, state: ListenState) -> None:
        self._state = state
        if self.live is None:
            for t, label, score in state.detections[self._printed :]:
                self.console.print(
                    f"DETECTED {label} score={score / 255:.2f} t={t:.2f}s",
                    highlight=False,
                )
            self._printed = len(state.detections)
            return
        now = time.monotonic()
        if now - self._last >= 1 / REFRESH_HZ:
            self._last = now
            self.live.update(render(state), refresh=True)
