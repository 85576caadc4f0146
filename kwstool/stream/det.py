"""The threshold sweep of `kwstool stream-eval`: DET curves, calibration, the DET plot.

:func:`sweep` replays the C recognizer over the score sequences of both streams for every
threshold 0..255 and each suppression time; :func:`calibrate` picks per keyword the threshold
that meets a false-accept budget with the fewest misses; :func:`plot_det` draws FRR against
false accepts per hour, one line per keyword.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kwstool.core.contract import SAMPLE_RATE
from kwstool.core.recognizer import muted_keywords
from kwstool.stream import engine, native, scoring

#: Suppression times (ms) the threshold sweep is repeated for.
SUPPRESSIONS_MS = (500, 1000, 1500, 2000)
THRESHOLDS = tuple(range(256))
#: Threshold step of the sweeps at the other suppression times (the DET JSON only).
COARSE_STEP = 4


def sweep(
    settings: native.RecognizerSettings,
    pos: engine.StreamScores,
    neg: engine.StreamScores | None,
    words: scoring.WordTable,
    neg_hours: float,
    advance: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """FRR / FA-per-hour / misses per keyword at each threshold and suppression time.

    Every threshold 0..255 at the configured suppression time (calibration and the DET plot
    use it); every COARSE_STEP-th at the others. Each curve lists its ``thresholds``.
    ``advance(1)`` after each of the :func:`sweep_steps` replays (a progress bar).
    """
    out: dict[str, Any] = {"thresholds": list(THRESHOLDS), "suppression_ms": {}}
    for sup in sorted(set(SUPPRESSIONS_MS) | {settings.suppression_ms}):
        curves: dict[str, dict[str, list[Any]]] = {}
        steps = THRESHOLDS if sup == settings.suppression_ms else THRESHOLDS[::COARSE_STEP]
        for t in steps:
            s = settings.with_suppression(sup).with_threshold(t)
            po = scoring.match(native.recognize(pos.scores, pos.times_ms, s), words)
            ne = (
                scoring.match(
                    native.recognize(neg.scores, neg.times_ms, s),
                    scoring.WordTable.of([], settings.labels, SAMPLE_RATE),
                )
                if neg is not None
                else None
            )
            for name, (frr, fa, miss) in scoring.curve_point(
                settings.labels, words, po, ne, neg_hours
            ).items():
                c = curves.setdefault(
                    name, {"thresholds": list(steps), "frr": [], "fa_per_hour": [], "misses": []}
                )
                c["frr"].append(None if frr is None else round(frr, 4))
                c["fa_per_hour"].append(None if fa is None else round(fa, 3))
                c["misses"].append(miss)
            if advance is not None:
                advance(1)
        out["suppression_ms"][str(sup)] = curves
    return out


def sweep_steps(suppression_ms: int) -> int:
    """How many recognizer replays :func:`sweep` makes."""
    others = len(set(SUPPRESSIONS_MS) - {suppression_ms})
    return len(THRESHOLDS) + others * len(THRESHOLDS[::COARSE_STEP])


def calibrate(curves: dict[str, dict[str, list[Any]]], budget: float) -> dict[str, dict[str, Any]]:
    """Per keyword: the threshold within ``budget`` FA/h with the fewest misses (then fewest
    false accepts, then the highest threshold); 255 and ``met_budget: false`` when none is."""
    picks = {}
    for name, c in curves.items():
        ok = [i for i, fa in enumerate(c["fa_per_hour"]) if fa is not None and fa <= budget]
        if ok:
            best = min(ok, key=lambda i: (c["misses"][i], c["fa_per_hour"][i], -i))
        else:
            best = len(c["frr"]) - 1
        picks[name] = {
            "threshold": int(c.get("thresholds", THRESHOLDS)[best]),
            "frr": c["frr"][best],
            "fa_per_hour": c["fa_per_hour"][best],
            "misses": c["misses"][best],
            "met_budget": bool(ok),
        }
    return picks


def budget_warning(picks: dict[str, dict[str, Any]], budget: float) -> str | None:
    """One line naming the keywords calibrated to the highest threshold (no lower one kept them
    within ``budget`` FA/h), so they never fire on the board or in ``listen``; None if none."""
    off = muted_keywords({name: p["threshold"] for name, p in picks.items()})
    if not off:
        return None
    return (
        f"warning: no threshold keeps {', '.join(off)} within {budget:g} false accepts per hour "
        f"on these streams; set to 255 (never fires). Calibrate with a larger --calibrate "
        f"budget, or train with more examples of these words and of other words"
    )


def plot_det(curves: dict[str, dict[str, list[Any]]], path: Path, title: str) -> None:
    """DET curve PNG: FRR against FA per hour (symlog), one line per keyword."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kwstool.fileio import atomic_path

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    for name, c in sorted(curves.items()):
        pts = [
            (fa, frr)
            for fa, frr in zip(c["fa_per_hour"], c["frr"])
            if fa is not None and frr is not None
        ]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=name, linewidth=1.2)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("false accepts per hour (negative stream)")
    ax.set_ylabel("false reject rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
