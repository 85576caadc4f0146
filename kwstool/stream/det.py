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


#: A keyword found less often than this within its equal share of the false-accept budget gets
#: a larger share (see :func:`calibrate`), rather than a threshold that mutes it.
MIN_RECALL = 0.5
#: The share (in equal shares) of a keyword that no threshold finds that often.
MAX_SHARE_FACTOR = 4.0


def _pick(c: dict[str, list[Any]], budget: float) -> dict[str, Any]:
    """The threshold within ``budget`` FA/h with the fewest misses (then fewest false accepts,
    then the highest threshold); the highest threshold and ``met_budget: false`` when none is."""
    ok = [i for i, fa in enumerate(c["fa_per_hour"]) if fa is not None and fa <= budget]
    best = (
        min(ok, key=lambda i: (c["misses"][i], c["fa_per_hour"][i], -i))
        if ok
        else len(c["frr"]) - 1
    )
    return {
        "threshold": int(c.get("thresholds", THRESHOLDS)[best]),
        "frr": c["frr"][best],
        "fa_per_hour": c["fa_per_hour"][best],
        "misses": c["misses"][best],
        "met_budget": bool(ok),
        "share": budget,
    }


def _recall(p: dict[str, Any]) -> float:
    return 0.0 if p["frr"] is None or not p["met_budget"] else 1.0 - float(p["frr"])


def _needed(c: dict[str, list[Any]], min_recall: float) -> float | None:
    """The fewest false accepts per hour at which the keyword is found ``min_recall`` of the
    time."""
    fas = [
        fa
        for fa, frr in zip(c["fa_per_hour"], c["frr"])
        if fa is not None and frr is not None and 1.0 - frr >= min_recall
    ]
    return min(fas) if fas else None


def calibrate(
    curves: dict[str, dict[str, list[Any]]],
    budget: float,
    min_recall: float = MIN_RECALL,
    max_share_factor: float = MAX_SHARE_FACTOR,
) -> dict[str, dict[str, Any]]:
    """Per keyword, a threshold within its share of the false-accept budget, ``budget`` FA/h
    each (``len(curves) * budget`` in all), with the fewest misses.

    The rule for weak keywords (none is muted): a keyword found less than ``min_recall`` of the
    time within the equal share gets the share at which it is found ``min_recall`` of the time
    (``max_share_factor`` equal shares if no threshold finds it that often); what it takes beyond
    its equal share comes evenly off the other keywords' shares (down to 0 FA/h each). When a
    keyword needs more than the whole budget, the total goes over it: each pick records its
    ``share``, and :func:`budget_warning` names the keywords and the total.
    """
    picks = {name: _pick(c, budget) for name, c in curves.items()}
    weak = [name for name, p in picks.items() if _recall(p) < min_recall]
    if not weak or min_recall <= 0:
        return picks
    share = {}
    for name in weak:
        need = _needed(curves[name], min_recall)
        share[name] = max_share_factor * budget if need is None else max(need, budget)
    extra = sum(share.values()) - budget * len(weak)
    strong = len(picks) - len(weak)
    rest = max(0.0, budget - extra / strong) if strong else 0.0
    for name, c in curves.items():
        picks[name] = _pick(c, share.get(name, rest))
    return picks


def pool_curves(
    runs: list[tuple[dict[str, dict[str, list[Any]]], dict[str, int], float]],
) -> dict[str, dict[str, list[Any]]]:
    """One set of curves from the sweeps of several streams (e.g. the test streams of the other
    folds of a cross-validation): ``runs`` holds ``(curves, keyword words, negative hours)``
    of each; misses and false accepts are added up, FRR and FA/h recomputed on the totals."""
    hours = sum(h for _, _, h in runs)
    out: dict[str, dict[str, list[Any]]] = {}
    for name in runs[0][0]:
        thresholds = list(runs[0][0][name].get("thresholds", THRESHOLDS))
        words = sum(w.get(name, 0) for _, w, _ in runs)
        misses = [
            sum(int(c[name]["misses"][i] or 0) for c, _, _ in runs) for i in range(len(thresholds))
        ]
        fas = [
            sum(round(float(c[name]["fa_per_hour"][i] or 0.0) * h) for c, _, h in runs)
            for i in range(len(thresholds))
        ]
        out[name] = {
            "thresholds": thresholds,
            "misses": misses,
            "frr": [round(m / words, 4) if words else None for m in misses],
            "fa_per_hour": [round(f / hours, 3) if hours else None for f in fas],
        }
    return out


def at_thresholds(
    curves: dict[str, dict[str, list[Any]]], thresholds: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """Each keyword's point of its curve at the given threshold."""
    out = {}
    for name, c in curves.items():
        i = list(c.get("thresholds", THRESHOLDS)).index(int(thresholds[name]))
        out[name] = {
            "threshold": int(thresholds[name]),
            "frr": c["frr"][i],
            "fa_per_hour": c["fa_per_hour"][i],
            "misses": c["misses"][i],
        }
    return out


def budget_warning(picks: dict[str, dict[str, Any]], budget: float) -> str | None:
    """One line naming the keywords calibrated to the highest threshold (no lower one kept them
    within ``budget`` FA/h), so they never fire on the board or in ``listen``; None if none."""
    off = muted_keywords({name: p["threshold"] for name, p in picks.items()})
    total = sum(float(p.get("share", budget)) for p in picks.values())
    if off:
        return (
            f"warning: no threshold keeps {', '.join(off)} within {budget:g} false accepts per "
            f"hour on these streams; set to 255 (never fires). Calibrate with a larger "
            f"--calibrate budget, or train with more examples of these words and of other words"
        )
    if total > budget * len(picks) + 1e-9:
        over = [f"{n} {p['share']:g}" for n, p in picks.items() if p.get("share", 0) > budget]
        return (
            f"warning: to be found {MIN_RECALL:.0%} of the time {', '.join(over)} false accepts "
            f"per hour are needed on these streams, {total:g} in all against a budget of "
            f"{budget * len(picks):g}; train with more examples of these words and of other words"
        )
    return None


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
