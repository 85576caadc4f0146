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

Every setting and output folder is checked before the first stage starts. The work folder is
locked while it runs (a second ``kwstool run`` there is refused). A work folder that already
holds a run is refused unless ``resume`` (continue it: the prepared data is reused, training
goes on from its last finished epoch, the later stages run again) or ``overwrite`` (the old
run's files are first moved out of the way in one rename each and deleted, so the folder never
holds a mix of two runs). An interrupt (Ctrl-C) raises :class:`RunInterrupted`, which names the
stage and what was kept.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kwstool.core.folders import folder_lock, write_errors
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


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``stage``; ``kept`` says what the work folder ``work`` holds (all
    resumable)."""

    def __init__(self, stage: str, kept: str, work: Path) -> None:
        super().__init__(stage)
        self.stage, self.kept, self.work = stage, kept, work


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
    demo: bool = False  # trained and tested on the shipped synthetic demo clips


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
    demo: bool = False


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
    return _Plan(src, words, epochs, batch_size, work, work / "data", work / "run", out_dir, demo)


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
        resume = opts["resume"] and (plan.run_dir / "config.json").is_file()
        if opts["resume"] and not resume:
            say(f"      nothing to resume in {plan.run_dir}: training from the start")
        return train_mod.train(
            plan.data_dir, plan.run_dir, model=opts["model"], epochs=plan.epochs,
            batch_size=plan.batch_size, seed=opts["seed"], resume=resume,
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
    resume: bool = False,
    overwrite: bool = False,
) -> RunResult:
    """Run every stage on ``source`` (default: the shipped demo dataset) under ``work_dir``.

    ``words`` default to yes,no on the demo and to ``kwstool prepare``'s default otherwise;
    ``model``/``epochs``/``batch_size`` default to ``kwstool train``'s (on the demo:
    ``DEMO_EPOCHS`` epochs of ``DEMO_BATCH_SIZE``). ``resume``/``overwrite``: see the module
    documentation.
    """
    say = log or (lambda _msg: None)
    t0 = time.perf_counter()
    plan = _plan(source, work_dir, export_dir, words, epochs, batch_size)
    opts = {"model": model, "board": board, "seed": seed, "runtime": runtime,
            "validation_pct": validation_pct, "testing_pct": testing_pct,
            "progress": progress, "resume": resume}  # fmt: skip
    _check(plan, opts, overwrite)
    times: dict[str, float] = {}
    results: dict[str, Any] = {}  # one result type per stage
    with folder_lock(plan.work, "kwstool run", "--work-dir"), write_errors(plan.work, "--work-dir"):
        if overwrite:
            _remove_earlier(plan)
        for i, (key, what, step) in enumerate(_steps(plan, opts, say), start=1):
            say(f"[{i}/{len(STAGES)}] {what}")
            t = time.perf_counter()
            try:
                results[key] = step()
            except KeyboardInterrupt:
                raise RunInterrupted(key, _kept(plan, key), plan.work) from None
            times[key] = time.perf_counter() - t
    return RunResult(
        work_dir=plan.work, data_dir=plan.data_dir, run_dir=plan.run_dir,
        export_dir=plan.out_dir, quantize=results["quantize"], export=results["export"],
        evaluation=results["evaluate"], seconds=time.perf_counter() - t0, stage_seconds=times,
        demo=plan.demo,
    )  # fmt: skip


def has_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds (part of) a run: a training config, checkpoint or model."""
    from kwstool.core.tflite import MODEL_FILE

    return any((run_dir / n).exists() for n in ("config.json", "checkpoint", MODEL_FILE))


def _check(plan: _Plan, opts: dict[str, Any], overwrite: bool) -> None:
    """Every setting and output folder, before any stage starts (one-line KwsErrors)."""
    from kwstool.core.boards import BOARDS
    from kwstool.core.folders import check_writable
    from kwstool.model.config import TrainConfig

    if opts["resume"] and overwrite:
        raise KwsError(
            "--resume continues the run in the work folder and --overwrite replaces it; "
            "pass only one of them"
        )
    TrainConfig().replace(model=opts["model"], epochs=plan.epochs, batch_size=plan.batch_size,
                          seed=opts["seed"])  # fmt: skip
    if opts["board"] not in BOARDS:
        raise KwsError(f"--board {opts['board']}: unknown; choose one of {', '.join(BOARDS)}")
    if opts["runtime"] not in ("litert", "tflm"):
        raise KwsError(f"runtime {opts['runtime']!r}: use litert or tflm")
    check_writable(plan.work, "--work-dir")
    check_writable(plan.out_dir, "--export-dir")
    if has_run(plan.run_dir) and not (opts["resume"] or overwrite):
        raise KwsError(
            f"{plan.run_dir} holds an earlier run; continue it with --resume, replace it "
            f"with --overwrite, or choose another --work-dir"
        )


def _remove_earlier(plan: _Plan) -> None:
    """Move the earlier run's outputs aside (one rename each), then delete them: the new run's
    files never sit beside the old ones. The prepared data stays (it is a cache), and so does
    an ``--export-dir`` outside the work folder (the new export replaces its two files)."""
    names = ("evaluation.json", "confusion.png", "export")  # export: the default --export-dir
    old = [plan.run_dir, *(plan.work / n for n in names)]
    trash = plan.work / f".earlier-run-{os.getpid()}"
    trash.mkdir(parents=True, exist_ok=True)
    for path in old:
        if path.exists():
            os.replace(path, trash / path.name)
    shutil.rmtree(trash)


def _kept(plan: _Plan, stage: str) -> str:
    """What the work folder holds after an interrupt during ``stage``."""
    if stage == "prepare":
        return f"the prepared files finished so far in {plan.data_dir}"
    if stage == "train":
        return f"the prepared data and the last finished epoch in {plan.run_dir}"
    return f"the prepared data and the trained model in {plan.run_dir}"
