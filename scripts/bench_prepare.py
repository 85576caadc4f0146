#!/usr/bin/env python3
"""Benchmark `kwstool prepare` on the shared Speech Commands folders.

Prepares ../shared/data/speech_commands_mini and ../shared/data/speech_commands_test_dev into a
temporary folder twice and prints, per configuration, clips read, seconds and clips/s of the
first run and seconds of the second, identical run (which must hit the cache).

Configurations:
  default    the ten commands, 10 % silence / unknown (what `kwstool prepare` does by default;
             mini then reads only its keyword clips and a few unknowns)
  all clips  every clip read: every mini word folder as a keyword, and for test_dev shares of
             100 % so its whole _unknown_/_silence_ pools are used

Usage: python scripts/bench_prepare.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kwstool.data import prepare


def _run(jobs: list[tuple[str, dict[str, Any]]], out_root: Path) -> tuple[int, float, bool]:
    clips, cached = 0, True
    t0 = time.perf_counter()
    for i, (source, kw) in enumerate(jobs):
        res = prepare(source, out_root / str(i), progress=False, **kw)
        clips += res.clips_decoded
        cached &= res.cached
    return clips, time.perf_counter() - t0, cached


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args()
    mini, test_dev = args.shared / "speech_commands_mini", args.shared / "speech_commands_test_dev"
    for p in (mini, test_dev):
        if not p.is_dir():
            print(f"error: {p} not found; pass --shared <folder holding the data sets>")
            return 2
    mini_words = sorted(d.name for d in mini.iterdir() if d.is_dir() and not d.name.startswith("_"))
    configs: dict[str, list[tuple[str, dict[str, Any]]]] = {
        "default": [(str(mini), {}), (str(test_dev), {})],
        "all clips": [
            (str(mini), {"words": mini_words}),
            (str(test_dev), {"unknown_share": 100.0, "silence_share": 100.0}),
        ],
    }
    print(f"cpus: {os.cpu_count()}  (kwstool prepare, both shared folders)")
    print(f"{'config':<10} {'clips read':>10} {'1st run s':>10} {'clips/s':>9} {'2nd run s':>10}")
    ok = True
    for name, jobs in configs.items():
        with tempfile.TemporaryDirectory(prefix="kws_bench_") as tmp:
            clips, first, _ = _run(jobs, Path(tmp))
            _, second, cached = _run(jobs, Path(tmp))
        ok &= cached and second < 2.0
        print(
            f"{name:<10} {clips:>10} {first:>10.2f} {clips / first:>9.0f} {second:>10.3f}"
            + ("" if cached else "  (second run was NOT cached)")
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
