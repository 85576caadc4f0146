"""`kwstool stream-eval`: false accepts per hour, misses and latency on long streams.

1. :mod:`kwstool.stream.synth` builds a positive stream (keywords and ``_unknown_`` words in
   background noise at known times) and a negative one (noise and ``_unknown_`` words only)
   from a split of prepared data, seeded.
2. Each stream goes through the board's streaming path in bulk (:func:`engine.batch_results`):
   features once over the whole stream (the C front end, one continuous state), the int8
   model over every window at the board's cadence (LiteRT reference kernels on all cores;
   a sample of windows is re-run in TFLite-Micro and must give the same int8 outputs), then
   the C recognizer over the score sequence.
3. The recognizer is replayed for every threshold 0..255 and several suppression times: a
   DET curve per keyword (FRR against false accepts per hour of the negative stream), PNG and
   JSON. ``calibrate=FA_PER_HOUR`` picks per keyword the threshold with the fewest misses
   among those within the budget and stores it in the run folder (``calibration.json``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kwstool import __version__
from kwstool.core.contract import SAMPLE_RATE
from kwstool.core.labels import is_filler
from kwstool.errors import KwsError
from kwstool.stream import engine, native, scoring, synth
from kwstool.stream.det import calibrate, plot_det, sweep

JSON_FILE = "stream_eval.json"
DET_FILE = "det.png"
#: Windows re-run in TFLite-Micro to check the bulk outputs.
PARITY_WINDOWS = 256


@dataclass
class StreamEvalResult:
    report: dict[str, Any]
    json_path: Path
    det_path: Path
    calibration_path: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def recognizer_defaults(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Export's recognizer defaults with ``overrides`` (the same values the header gets)."""
    from kwstool.core.recognizer import RECOGNIZER_DEFAULTS

    rec: dict[str, Any] = dict(RECOGNIZER_DEFAULTS)
    rec.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return rec


def load_noise(data: Any, noise_dir: str | os.PathLike[str] | None) -> list[np.ndarray]:
    """Background recordings: the WAVs of ``noise_dir``, else the prepared data's."""
    from kwstool.core.audio import is_audio_file, load_wav

    if noise_dir is None:
        return [np.asarray(v, np.int16) for _, v in sorted(data.background_noise.items()) if len(v)]
    folder = Path(noise_dir)
    files = sorted(f for f in folder.iterdir() if is_audio_file(f.name)) if folder.is_dir() else []
    if not files:
        raise KwsError(
            f"{folder}: no audio files of background noise; pass a folder of WAV/FLAC/OGG/MP3"
        )
    return [load_wav(f, None) for f in files]


def _clips(data: Any, split: str, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    s = data.split(split)
    names = [data.labels[int(i)] for i in s.labels]
    missing = sorted(set(names) - set(labels))
    if missing:
        raise KwsError(
            f"{data.path}: labels {', '.join(missing)} are not among the model's "
            f"({', '.join(labels)}); pass data prepared for this model's words"
        )
    return np.asarray(s.audio), names


#: Where the stream's keyword clips come from when the chosen split holds none, in order, and
#: what that costs (said with the warning).
FALLBACK_SPLITS = {
    "validation": ("test", "train"),
    "test": ("validation", "train"),
    "train": ("validation", "test"),
}
_CAVEAT = {
    "train": "the model was trained on these clips, so misses are optimistic and calibrated "
    "thresholds may sit too low; record more takes (prepare then puts some in validation)",
    "test": "these takes no longer measure unseen audio afterwards",
    "validation": "these takes also picked the best checkpoint",
}


def keyword_split(
    data: Any, design: synth.StreamDesign, say: Callable[[str], None]
) -> synth.StreamDesign:
    """``design``, or a copy naming the first of :data:`FALLBACK_SPLITS` that holds keyword
    clips when ``design.split`` holds none (a warning with the caveat is said); the same design
    when no split has any (the stream builder then says so)."""
    from dataclasses import replace

    def has_keywords(split: str) -> bool:  # from the manifest's counts: no audio is loaded
        per = data.manifest["splits"][split]["per_class"]
        return any(n and not is_filler(label) for label, n in per.items())

    if has_keywords(design.split):
        return design
    for alt in FALLBACK_SPLITS.get(design.split, ()):
        if has_keywords(alt):
            say(
                f"warning: the {design.split} split holds no keyword clips; using the {alt} "
                f"split's instead ({_CAVEAT[alt]})"
            )
            return replace(design, split=alt)
    return design


def parity_check(
    model: engine.StreamModel, samples: np.ndarray, res: engine.StreamScores
) -> dict[str, Any]:
    """Re-run a spread of windows in TFLite-Micro; their int8 outputs must equal the bulk's."""
    if len(res.times_ms) == 0:
        return {"windows": 0}
    feats = native.stream_features(samples)
    ends = engine.window_ends(len(feats), model.every_frames)
    pick = np.unique(np.linspace(0, len(ends) - 1, min(PARITY_WINDOWS, len(ends))).astype(int))
    tflm = engine.StreamModel(
        model.path,
        model.tflite,
        model.sha256,
        model.labels,
        model.info,
        model.period_ms,
        "tflm",
    ).invoker()
    ref = tflm(engine.windows_of(feats, ends[pick]))
    diff = np.abs(ref.astype(np.int16) - res.raw[pick].astype(np.int16))
    return {
        "windows": len(pick),
        "identical": int(np.sum(~diff.any(axis=1))),
        "max_abs_diff": int(diff.max()),
        "bulk_runtime": model.runtime,
        "reference": "tflite-micro",
    }


def _evaluate_at(
    settings: native.RecognizerSettings,
    pos: engine.StreamScores,
    neg: engine.StreamScores | None,
    words: scoring.WordTable,
    pos_hours: float,
    neg_hours: float,
) -> dict[str, Any]:
    po = scoring.match(native.recognize(pos.scores, pos.times_ms, settings), words)
    ne = None
    if neg is not None:
        ne = scoring.match(
            native.recognize(neg.scores, neg.times_ms, settings),
            scoring.WordTable.of([], settings.labels, SAMPLE_RATE),
        )
    return scoring.keyword_figures(settings.labels, words, po, ne, pos_hours, neg_hours)


def stream_eval(
    run_or_model: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    design: synth.StreamDesign | None = None,
    noise_dir: str | os.PathLike[str] | None = None,
    recognizer: dict[str, Any] | None = None,
    calibrate_fa: float | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    runtime: str = "litert",
    threads: int | None = None,
    save_wav: bool = False,
    log: Callable[[str], None] | None = None,
    use_calibration: bool = True,
    progress: bool = False,
) -> StreamEvalResult:
    """Evaluate a model on long synthetic streams; see the module doc. Without ``recognizer``
    and ``calibrate_fa``, the run's calibrated settings (``calibration.json``) are evaluated
    when it has them (``use_calibration``), so a calibration can be checked on other speakers.
    ``progress``: Rich progress bars on stderr. The settings and the output folder are checked
    before any work starts; the run folder is locked while the calibration is written."""
    from kwstool.core import settings as limits
    from kwstool.core.folders import check_writable, folder_lock, write_errors

    design = design or synth.StreamDesign()
    limits.check(hours=design.hours, negative_hours=design.negative_hours,
                 calibrate=calibrate_fa, threads=threads)  # fmt: skip
    limits.check_recognizer(recognizer or {})
    run_dir = Path(run_or_model).parent if Path(run_or_model).suffix == ".tflite" else None
    run_dir = run_dir or Path(run_or_model)
    out = Path(out_dir) if out_dir else run_dir / "stream_eval"
    check_writable(out, "--out")
    if calibrate_fa is not None:
        check_writable(run_dir, "RUN (calibration.json)")
    with (
        folder_lock(run_dir, "kwstool stream-eval", "run folder")
        if calibrate_fa is not None or out_dir is None
        else contextlib.nullcontext(),
        write_errors(out, "--out"),
        _Bars(progress) as bars,
    ):
        return _stream_eval(run_or_model, data_dir, design, noise_dir, recognizer, calibrate_fa,
                            out, runtime, threads, save_wav, log or (lambda _m: None),
                            use_calibration, bars)  # fmt: skip


class _Bars:
    """Rich progress bars on stderr while stream-eval runs (or nothing)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __enter__(self) -> _Bars:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            from kwstool.core.console import make_console

            self.bar = Progress(
                TextColumn("{task.description:<24}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=make_console(stderr=True),
            )
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def complete(self) -> None:
        """Show every bar full (the window count rounds the audio seconds down a little)."""
        if self.bar is not None:
            for t in self.bar.tasks:
                self.bar.update(t.id, completed=t.total)

    def task(self, description: str, total: float) -> Callable[[float], None] | None:
        """A bar of ``total`` units; the function that advances it (None when disabled)."""
        if self.bar is None:
            return None
        bar, t = self.bar, self.bar.add_task(description, total=total)
        return lambda n: bar.advance(t, n)


def _stream_eval(
    run_or_model: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    design: synth.StreamDesign,
    noise_dir: str | os.PathLike[str] | None,
    recognizer: dict[str, Any] | None,
    calibrate_fa: float | None,
    out: Path,
    runtime: str,
    threads: int | None,
    save_wav: bool,
    say: Callable[[str], None],
    use_calibration: bool,
    bars: _Bars,
) -> StreamEvalResult:
    from kwstool.core.calibration import load_calibration
    from kwstool.data.prepared import load_prepared

    if use_calibration and recognizer is None and calibrate_fa is None:
        recognizer = load_calibration(run_or_model)
        if recognizer:
            say("evaluating the calibrated recognizer settings of calibration.json")
    tick = time.perf_counter()
    seconds: dict[str, float] = {}
    model = engine.StreamModel.load(run_or_model, runtime)
    data = load_prepared(data_dir)
    design = keyword_split(data, design, say)
    clips, names = _clips(data, design.split, model.labels)
    say(
        f"building {design.hours:g} h positive + {design.negative_hours:g} h negative streams "
        f"(seed {design.seed}) from {len(names)} {design.split} clips"
    )
    positive, negative = synth.build_streams(clips, names, load_noise(data, noise_dir), design)
    seconds["build"] = time.perf_counter() - tick
    results = _run_streams(model, positive, negative, threads, say, seconds, bars)
    if save_wav:
        from kwstool.core.audio import save_wav as write_wav

        write_wav(out / "positive.wav", positive.samples)
        write_wav(out / "negative.wav", negative.samples)
    return _report(
        model,
        data,
        design,
        positive,
        negative,
        results,
        recognizer,
        calibrate_fa,
        out,
        say,
        seconds,
        tick,
        bars,
    )


def _run_streams(
    model: engine.StreamModel,
    positive: synth.Stream,
    negative: synth.Stream,
    threads: int | None,
    say: Callable[[str], None],
    seconds: dict[str, float],
    bars: _Bars,
) -> tuple[engine.StreamScores, engine.StreamScores | None, dict[str, Any]]:
    t0, c0 = time.perf_counter(), time.process_time()
    hours = positive.hours + negative.hours
    say(
        f"running {hours:.2f} h of audio through the front end, the model ({model.runtime}, "
        f"every {model.period_ms} ms) and the recognizer"
    )
    bar = bars.task("streams (audio seconds)", round(hours * 3600))
    step_s = model.period_ms / 1000
    advance = (lambda n: bar(n * step_s)) if bar is not None else None
    pos = engine.batch_results(model, positive.samples, threads, advance)
    neg = (
        engine.batch_results(model, negative.samples, threads, advance)
        if len(negative.samples)
        else None
    )
    bars.complete()
    seconds["stream"] = time.perf_counter() - t0
    seconds["stream_cpu"] = time.process_time() - c0  # all threads: independent of other load
    t0 = time.perf_counter()
    parity = parity_check(model, positive.samples, pos)
    seconds["parity_check"] = time.perf_counter() - t0
    if parity.get("windows") and parity["max_abs_diff"] != 0:
        say(
            f"warning: {parity['windows'] - parity['identical']} of {parity['windows']} windows "
            f"differ from TFLite-Micro (max {parity['max_abs_diff']} int8 steps)"
        )
    return pos, neg, parity


def _report_record(
    model: engine.StreamModel,
    data: Any,
    design: synth.StreamDesign,
    positive: synth.Stream,
    negative: synth.Stream,
    rec: dict[str, Any],
    settings: native.RecognizerSettings,
    results: dict[str, Any],
) -> dict[str, Any]:
    """``stream_eval.json`` without the calibration and the timings; ``results`` holds
    ``per_keyword``, ``parity`` and ``sweep``."""
    return {
        "kwstool_version": __version__,
        "model_file": str(model.path),
        "model_sha256": model.sha256,
        "labels": model.labels,
        "inference_period_ms": model.period_ms,
        "runtime": model.runtime,
        "recognizer": {k: v for k, v in rec.items() if k != "thresholds"}
        | {"thresholds": dict(zip(model.labels, settings.thresholds))},
        "data": str(data.path),
        "design": design.as_dict(),
        "positive": {
            "hours": round(positive.hours, 4),
            "words": _word_counts(positive),
        },
        "negative": {
            "hours": round(negative.hours, 4),
            "words": _word_counts(negative),
        },
        **results,
    }


def refuse_all_muted(thresholds: dict[str, int], keywords: list[str], calibrate_fa: float) -> None:
    """A calibration whose thresholds mute every keyword is refused (KwsError, one line)."""
    from kwstool.core.recognizer import muted_keywords

    if keywords and set(keywords) <= set(muted_keywords(thresholds)):
        raise KwsError(
            f"--calibrate {calibrate_fa:g}: no threshold keeps any keyword within "
            f"{calibrate_fa:g} false accepts per hour on these streams, so every keyword would "
            f"be muted; calibration.json not written. Give a larger budget, or train with "
            f"more examples of the keywords and of other words"
        )


def _calibrate_into(
    report: dict[str, Any],
    model: engine.StreamModel,
    settings: native.RecognizerSettings,
    rec: dict[str, Any],
    curves: Any,
    calibrate_fa: float,
    scores: tuple[engine.StreamScores, engine.StreamScores | None],
    words: scoring.WordTable,
    hours: tuple[float, float],
) -> Path:
    """Pick per-label thresholds for ``calibrate_fa``, add them to ``report`` and save them."""
    from kwstool.core.calibration import save_calibration

    pos, neg = scores
    picks = calibrate(curves, calibrate_fa)
    thresholds = {name: p["threshold"] for name, p in picks.items()}
    refuse_all_muted(thresholds, [lab for lab in model.labels if not is_filler(lab)], calibrate_fa)
    at = settings.__class__.build(model.labels, rec | {"thresholds": thresholds})
    joint = _evaluate_at(at, pos, neg, words, *hours)
    report["calibration"] = {
        "fa_per_hour_budget": calibrate_fa,
        "picks": picks,
        "figures": joint,
    }
    return save_calibration(
        model.path.parent,
        calibration_record(model, report, calibrate_fa, thresholds, picks, joint),
    )


def _report(
    model: engine.StreamModel,
    data: Any,
    design: synth.StreamDesign,
    positive: synth.Stream,
    negative: synth.Stream,
    results: tuple[engine.StreamScores, engine.StreamScores | None, dict[str, Any]],
    recognizer: dict[str, Any] | None,
    calibrate_fa: float | None,
    out: Path,
    say: Callable[[str], None],
    seconds: dict[str, float],
    tick: float,
    bars: _Bars,
) -> StreamEvalResult:
    from kwstool.fileio import write_json
    from kwstool.stream.det import sweep_steps

    pos, neg, parity = results
    rec = recognizer_defaults(recognizer)
    settings = native.RecognizerSettings.build(model.labels, rec)
    words = scoring.WordTable.of(positive.words, model.labels, SAMPLE_RATE)
    t0 = time.perf_counter()
    figures = _evaluate_at(settings, pos, neg, words, positive.hours, negative.hours)
    bar = bars.task("threshold sweep", sweep_steps(settings.suppression_ms))
    swept = sweep(settings, pos, neg, words, negative.hours, bar)
    seconds["sweep"] = time.perf_counter() - t0
    curves = swept["suppression_ms"][str(settings.suppression_ms)]
    found = {"per_keyword": figures, "parity": parity, "sweep": swept}
    report = _report_record(model, data, design, positive, negative, rec, settings, found)
    cal_path, refused = None, None
    if calibrate_fa is not None:
        hours = (positive.hours, negative.hours)
        try:
            cal_path = _calibrate_into(
                report, model, settings, rec, curves, calibrate_fa, (pos, neg), words, hours
            )
            say(f"wrote {cal_path}")
        except KwsError as exc:  # refused: the report and the DET curve are still written
            refused = exc
    seconds["total"] = time.perf_counter() - tick
    report["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    json_path, det_path = out / JSON_FILE, out / DET_FILE
    plot_det(
        curves,
        det_path,
        f"{model.path.name}: {positive.hours:.2f} h positive, "
        f"{negative.hours:.2f} h negative, suppression {settings.suppression_ms} ms",
    )
    write_json(json_path, report)
    if refused is not None:
        raise KwsError(f"{refused} (the curves are in {json_path} and {det_path})")
    return StreamEvalResult(report, json_path, det_path, cal_path, seconds)


def _word_counts(stream: synth.Stream) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in stream.words:
        counts[w.label] = counts.get(w.label, 0) + 1
    return dict(sorted(counts.items()))


def calibration_record(
    model: engine.StreamModel,
    report: dict[str, Any],
    budget: float,
    thresholds: dict[str, int],
    picks: dict[str, Any],
    joint: dict[str, Any],
    stream: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The calibration.json record of thresholds picked on the streams of ``report`` (or on
    the streams ``stream`` describes, e.g. several folds' pooled)."""
    rec = {k: v for k, v in report["recognizer"].items() if k != "thresholds"}
    return {
        "kwstool_version": __version__,
        "model_file": model.path.name,
        "model_sha256": model.sha256,
        "labels": model.labels,
        "fa_per_hour_budget": budget,
        "thresholds": {lab: thresholds.get(lab, 255) for lab in model.labels if not is_filler(lab)},
        "recognizer": rec,
        "inference_period_ms": model.period_ms,
        "stream": stream
        or {
            "design": report["design"],
            "data": report["data"],
            "positive_hours": report["positive"]["hours"],
            "negative_hours": report["negative"]["hours"],
        },
        "sweep_picks": picks,
        "figures": joint,
    }
