"""Progress output of `kwstool train`: one line per epoch, a live bar with clips/s."""

from __future__ import annotations

import time
from typing import Any

from kwstool.core.console import make_console


class Reporter:
    """Per-epoch lines (Rich); a live batch bar with clips/s only on an interactive terminal."""

    def __init__(self, enabled: bool, console: Any = None) -> None:
        self.enabled = enabled
        self.console = console or make_console()
        self.live = enabled and self.console.is_terminal

    def line(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False, soft_wrap=True)

    def batch_callback(self, epoch: int, epochs: int, steps: int, batch_size: int) -> Any:
        import keras

        if not self.live:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        console = self.console

        class _Bar(keras.callbacks.Callback):  # type: ignore[misc]
            def on_epoch_begin(self, epoch_index: int, logs: Any = None) -> None:
                self.progress = Progress(
                    TextColumn(f"epoch {epoch}/{epochs}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"),
                    TimeRemainingColumn(),
                    console=console,
                    transient=True,
                )
                self.progress.start()
                self.task = self.progress.add_task("train", total=steps, info="")
                self.t0 = time.perf_counter()

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                logs = logs or {}
                rate = (batch + 1) * batch_size / max(1e-9, time.perf_counter() - self.t0)
                info = (
                    f"loss {logs.get('loss', float('nan')):.3f} "
                    f"acc {logs.get('accuracy', float('nan')):.3f} {rate:,.0f} clips/s"
                )
                self.progress.update(self.task, completed=batch + 1, info=info)

            def on_epoch_end(self, epoch_index: int, logs: Any = None) -> None:
                self.progress.stop()

        return _Bar()
