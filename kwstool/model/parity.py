"""TFLite-Micro vs LiteRT: do the two interpreters compute the same int8 outputs?

LiteRT runs with its reference kernels (those TFLite-Micro's and CMSIS-NN's kernels are
bit-exact ports of). Its PyPI build requantizes FULLY_CONNECTED with one rounding step where
TFLite-Micro rounds twice, so at a rounding tie an output can differ by one int8 step: accepted
and recorded unless ``strict``; anything larger is an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kwstool.errors import KwsError

#: Largest output difference (int8 steps) accepted between TFLite-Micro and LiteRT.
PARITY_MAX_LSB = 1
ROUNDING_NOTE = (
    "LiteRT's PyPI build requantizes some layers (seen in FULLY_CONNECTED) with a "
    "single rounding step where TFLite-Micro, like CMSIS-NN on the board, rounds "
    "twice; the two can differ by one step at a rounding tie"
)


def compare_outputs(tflm: np.ndarray, litert: np.ndarray) -> dict[str, Any]:
    """Agreement figures of two int8 output arrays ``(N, labels)``."""
    diff = np.abs(tflm.astype(np.int32) - litert.astype(np.int32))
    same_clip = ~np.any(diff, axis=1)
    same_top1 = np.argmax(tflm, axis=1) == np.argmax(litert, axis=1)
    stats: dict[str, Any] = {
        "clips": len(tflm),
        "identical_clips": int(np.sum(same_clip)),
        "max_abs_diff": int(diff.max()) if diff.size else 0,
        "top1_agreement": round(float(np.mean(same_top1)), 6) if len(tflm) else 1.0,
    }
    if stats["identical_clips"] != stats["clips"]:
        stats["note"] = (
            f"{stats['clips'] - stats['identical_clips']} of {stats['clips']} clips "
            f"differ by at most {stats['max_abs_diff']} int8 step(s): {ROUNDING_NOTE}"
        )
    return stats


def check_parity(stats: dict[str, Any], strict: bool, where: str) -> None:
    """Fail unless TFLite-Micro and LiteRT agree.

    Bit-identical outputs pass. Otherwise a difference of at most :data:`PARITY_MAX_LSB` int8
    step passes (and is recorded) unless ``strict``: that is the known requantization-rounding
    difference between the two builds, not a portability problem. Anything larger fails.
    """
    if stats["identical_clips"] == stats["clips"]:
        return
    differ = stats["clips"] - stats["identical_clips"]
    if strict or stats["max_abs_diff"] > PARITY_MAX_LSB:
        raise KwsError(
            f"{where}: TFLite-Micro and LiteRT outputs differ on {differ} of "
            f"{stats['clips']} clips (max difference {stats['max_abs_diff']}); "
            + (
                "the int8 model does not run the same in TFLite-Micro, report this "
                "with the run folder"
                if stats["max_abs_diff"] > PARITY_MAX_LSB
                else "only rounding ties (re-run without --strict to accept them)"
            )
        )
