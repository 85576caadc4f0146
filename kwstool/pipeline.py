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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kwstool.errors import KwsError

if TYPE_CHECKING:
    from kwstool.deploy.export import ExportResult
    from kwstool.model.evaluate import EvalResult
    from kwstool.model.quantize import QuantizeResult

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
    quantize: QuantizeResult
    export: ExportResult
    evaluation: EvalResult
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Plan:
    """What ``run`` does: the source, the stage settings and where everything goes."""

    source: str
    words: str | list[str] | None
    epochs: int | None
    batch_size: int | None
    work: Path
    data_dir: Path
    run_dir: Path
    out_dir: Path


def _plan(
    source: str | os.PathLike[str] | None,
    work_dir: str | os.PathLike[str] | None,
    export_dir: str | os.PathLike[str] | None,
    words: str | list[str] | None,
    epochs: int | None,
    batch_size: int | None,
) -> _Plan:
    """The demo's defaults when the source is the demo, and the folders under the work folder."""
    demo = source is None or Path(str(source)).resolve() == DEMO_DIR
    if demo:
        if not DEMO_DIR.is_dir():
            raise KwsError(
                f"{DEMO_DIR}: demo dataset missing (it ships in the kwstool checkout); "
                f"pass a SOURCE or run `python scripts/make_demo_dataset.py`"
            )
        source = DEMO_DIR
        words = list(DEMO_WORDS) if words is None else words
        epochs = DEMO_EPOCHS if epochs is None else epochs
        batch_size = DEMO_BATCH_SIZE if batch_size is None else batch_size
    src = str(source)
    name = Path(src.rstrip("/")).name.split(":")[-1] or "run"
    work = Path(work_dir) if work_dir is not None else Path("runs") / name
    out_dir = Path(export_dir) if export_dir is not None else work / "export"
    return _Plan(src, words, epochs, batch_size, work, work / "data", work / "run", out_dir)


def _steps(
    plan: _Plan, opts: dict[str, Any], say: Callable[[str], None]
) -> list[tuple[str, str, Callable[[], object]]]:
    """(key, message, call) of each stage, in order; ``opts`` are ``run``'s stage settings."""
    from kwstool import data as data_mod
    from kwstool.core.tflite import MODEL_FILE
    from kwstool.deploy.export import export
    from kwstool.model import train as train_mod
    from kwstool.model.evaluate import evaluate
    from kwstool.model.quantize import quantize

    def prepare() -> object:
        return data_mod.prepare(
            plan.source, plan.data_dir, words=plan.words, seed=opts["seed"],
            validation_pct=opts["validation_pct"], testing_pct=opts["testing_pct"],
            progress=opts["progress"],
        )  # fmt: skip

    def train() -> object:
        return train_mod.train(
            plan.data_dir, plan.run_dir, model=opts["model"], epochs=plan.epochs,
            batch_size=plan.batch_size, seed=opts["seed"], overwrite=True,
            progress=opts["progress"],
        )  # fmt: skip

    def evaluate_test() -> object:
        return evaluate(
            plan.run_dir / MODEL_FILE, plan.data_dir, runtime=opts["runtime"], split="test",
            json_out=plan.work / "evaluation.json", png_out=plan.work / "confusion.png",
        )  # fmt: skip

    return [
        ("prepare", f"prepare {plan.source} -> {plan.data_dir}", prepare),
        ("train", f"train -> {plan.run_dir}", train),
        ("quantize", "quantize to int8, check in TFLite-Micro and LiteRT",
         lambda: quantize(plan.run_dir, plan.data_dir, log=lambda m: say(f"      {m}"))),
        ("export", f"export for {opts['board']} -> {plan.out_dir}",
         lambda: export(plan.run_dir, plan.out_dir, board=opts["board"])),
        ("evaluate", f"evaluate on the test split ({opts['runtime']})", evaluate_test),
    ]  # fmt: skip


def run(
    source: str | os.PathLike[str] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    *,
    words: str | list[str] | None = None,
    model: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    export_dir: str | os.PathLike[str] | None = None,
    board: str = "nano33ble",
    seed: int = 0,
    runtime: str = "litert",
    validation_pct: float = RUN_VALIDATION_PCT,
    testing_pct: float = RUN_TESTING_PCT,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Run every stage on ``source`` (default: the shipped demo dataset) under ``work_dir``.

    ``words`` default to yes,no on the demo and to ``kwstool prepare``'s default otherwise;
    ``model``/``epochs``/``batch_size`` default to ``kwstool train``'s (on the demo:
    ``DEMO_EPOCHS`` epochs of ``DEMO_BATCH_SIZE``).
    """
    say = log or (lambda _msg: None)
    t0 = time.perf_counter()
    plan = _plan(source, work_dir, export_dir, words, epochs, batch_size)
    opts = {"model": model, "board": board, "seed": seed, "runtime": runtime,
            "validation_pct": validation_pct, "testing_pct": testing_pct,
            "progress": progress}  # fmt: skip
    times: dict[str, float] = {}
    results: dict[str, Any] = {}  # one result type per stage
    for i, (key, what, step) in enumerate(_steps(plan, opts, say), start=1):
        say(f"[{i}/{len(STAGES)}] {what}")
        t = time.perf_counter()
        results[key] = step()
        times[key] = time.perf_counter() - t
    return RunResult(
        work_dir=plan.work, data_dir=plan.data_dir, run_dir=plan.run_dir,
        export_dir=plan.out_dir, quantize=results["quantize"], export=results["export"],
        evaluation=results["evaluate"], seconds=time.perf_counter() - t0, stage_seconds=times,
    )  # fmt: skip
