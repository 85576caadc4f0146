"""`kwstool run`: prepare -> train -> quantize -> export -> evaluate in one call.

With no arguments it runs on the demo dataset shipped in ``datasets/demo`` (synthesized speech,
see its README), offline, and leaves everything under the work folder (default
``runs/<source name>``)::

    runs/demo/
      data/          prepared features (kwstool prepare)
      run/           config, history, best.keras, model_int8.tflite, quantize.json, ...
      export/        kws_model_data.h / .cc (the firmware's model files)
      evaluation.json, confusion.png   test-split figures of the int8 model

The export goes to ``work_dir/export`` unless ``export_dir`` is given: the firmware's own model
folder (``firmware/src/model``) holds the shipped real-speech model and is only replaced when
asked for explicitly. Each stage is the library function the single-stage command calls.
Running again in the same work folder reuses the prepared data when its inputs are unchanged
and trains afresh (replacing the earlier run).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kwstool.errors import KwsError

DEMO_DIR = Path(__file__).resolve().parents[1] / "datasets" / "demo"
DEMO_WORDS = ("yes", "no")
#: The demo speakers are few; 20 % each for validation and test keeps both splits meaningful.
RUN_VALIDATION_PCT = 20.0
RUN_TESTING_PCT = 20.0
#: Training on the demo data: 40 epochs of batches of 16 (the demo's ~250 training clips give
#: only a few steps per epoch; smaller batches give batch normalisation enough steps to settle).
DEMO_EPOCHS = 40
DEMO_BATCH_SIZE = 16
STAGES = ("prepare", "train", "quantize", "export", "evaluate")


@dataclass
class RunResult:
    work_dir: Path
    data_dir: Path
    run_dir: Path
    export_dir: Path
    quantize: object      # kwstool.quantize.QuantizeResult
    export: object        # kwstool.export.ExportResult
    evaluation: object    # kwstool.evaluate.EvalResult
    seconds: float
    stage_seconds: dict = field(default_factory=dict)


def run(source: str | os.PathLike | None = None, work_dir: str | os.PathLike | None = None, *,
        words: str | list[str] | None = None, model: str | None = None,
        epochs: int | None = None, batch_size: int | None = None,
        export_dir: str | os.PathLike | None = None,
        board: str = "nano33ble", seed: int = 0, runtime: str = "litert",
        validation_pct: float = RUN_VALIDATION_PCT, testing_pct: float = RUN_TESTING_PCT,
        progress: bool = True, log: Callable[[str], None] | None = None) -> RunResult:
    """Run every stage on ``source`` (default: the shipped demo dataset) under ``work_dir``.

    ``words`` default to yes,no on the demo and to ``kwstool prepare``'s default otherwise;
    ``model``/``epochs``/``batch_size`` default to ``kwstool train``'s (on the demo:
    ``DEMO_EPOCHS`` epochs of ``DEMO_BATCH_SIZE``).
    """
    from kwstool import data as data_mod
    from kwstool.model import train as train_mod
    from kwstool.model.evaluate import evaluate
    from kwstool.deploy.export import export
    from kwstool.core.tflite import MODEL_FILE
    from kwstool.model.quantize import quantize

    say = log or (lambda _msg: None)
    t0 = time.perf_counter()
    demo = source is None or Path(str(source)).resolve() == DEMO_DIR
    if demo:
        if not DEMO_DIR.is_dir():
            raise KwsError(f"{DEMO_DIR}: demo dataset missing (it ships in the kwstool checkout); "
                           f"pass a SOURCE or run `python scripts/make_demo_dataset.py`")
        source = DEMO_DIR
        if words is None:
            words = list(DEMO_WORDS)
        if epochs is None:
            epochs = DEMO_EPOCHS
        if batch_size is None:
            batch_size = DEMO_BATCH_SIZE
    src = str(source)
    name = Path(src.rstrip("/")).name.split(":")[-1] or "run"
    work = Path(work_dir) if work_dir is not None else Path("runs") / name
    data_dir, run_dir = work / "data", work / "run"
    out_dir = Path(export_dir) if export_dir is not None else work / "export"
    times: dict[str, float] = {}

    def stage(i: int, what: str) -> float:
        say(f"[{i}/{len(STAGES)}] {what}")
        return time.perf_counter()

    t = stage(1, f"prepare {src} -> {data_dir}")
    data_mod.prepare(src, data_dir, words=words, seed=seed, validation_pct=validation_pct,
                     testing_pct=testing_pct, progress=progress)
    times["prepare"] = time.perf_counter() - t

    t = stage(2, f"train -> {run_dir}")
    train_mod.train(data_dir, run_dir, model=model, epochs=epochs, batch_size=batch_size, seed=seed,
                    overwrite=True, progress=progress)
    times["train"] = time.perf_counter() - t

    t = stage(3, "quantize to int8, check in TFLite-Micro and LiteRT")
    q = quantize(run_dir, data_dir, log=lambda m: say(f"      {m}"))
    times["quantize"] = time.perf_counter() - t

    t = stage(4, f"export for {board} -> {out_dir}")
    e = export(run_dir, out_dir, board=board)
    times["export"] = time.perf_counter() - t

    t = stage(5, f"evaluate on the test split ({runtime})")
    ev = evaluate(run_dir / MODEL_FILE, data_dir, runtime=runtime, split="test",
                  json_out=work / "evaluation.json", png_out=work / "confusion.png")
    times["evaluate"] = time.perf_counter() - t
    return RunResult(work_dir=work, data_dir=data_dir, run_dir=run_dir, export_dir=out_dir,
                     quantize=q, export=e, evaluation=ev, seconds=time.perf_counter() - t0,
                     stage_seconds=times)
