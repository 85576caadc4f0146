#!/usr/bin/env python
"""Scaling benchmark: build a synthetic Speech Commands corpus of N clips, then measure
`kwstool prepare` and `kwstool train` on it (wall time, clips/s, peak RSS, cache size).

Corpus (``OUT/corpus_N``, the official archive layout ``word/<speaker>_nohash_<k>.wav`` plus
``_background_noise_/``): every clip of the shared sets (``speech_commands_mini`` word folders,
``speech_commands_test_dev`` keyword and ``_unknown_`` folders; ``_silence_`` is left to
prepare) is copied in augmented variants: variant ``v`` of a clip plays at a speed from
:data:`SPEEDS`, with a gain from :data:`GAINS` and white noise at -40..-25 dB, and is given a
new speaker id (a hash of the original speaker and ``v``), so the corpus has ~N/|clips| times
as many speakers as the shared sets. Written once and reused (existing files are kept).

Measurements (each stage in a child process, so ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is
that stage's peak resident memory):
    prepare  ``kwstool.data.prepare(corpus, OUT/prepared_N)``: seconds, clips/s, peak RSS,
             size of the feature cache (``*_features.npy``) and of the whole folder on disk;
    train    ``kwstool train OUT/prepared_N --epochs E``: seconds per epoch, clips/s (from
             history.json), peak RSS.

Usage::

    nice -n 10 python scripts/bench_scale.py --clips 20000 --epochs 1 --out /tmp/kws_scale
    nice -n 10 python scripts/bench_scale.py --clips 100000 --json scale.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kwstool.fileio import write_json

SPEEDS = (0.9, 0.95, 1.0, 1.05, 1.1)
GAINS = (0.5, 0.7, 1.0, 1.4)
FULL_TRAIN_CLIPS = 85_000  # Speech Commands v2 training split incl. silence/unknown (approx.)


def source_clips(data_root: Path) -> list[tuple[str, str, Path]]:
    """(word, speaker, path) of every shared clip usable as a word clip."""
    from kwstool.data import speaker_of

    out = []
    mini = data_root / "speech_commands_mini"
    for folder in sorted(p for p in mini.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for wav in sorted(folder.glob("*.wav")):
            out.append((folder.name, speaker_of(f"{folder.name}/{wav.name}"), wav))
    test_dev = data_root / "speech_commands_test_dev"
    for folder in sorted(p for p in test_dev.iterdir() if p.is_dir() and p.name != "_silence_"):
        for wav in sorted(folder.glob("*.wav")):
            rel = f"{folder.name}/{wav.name}"
            word = wav.name.split("_", 1)[0] if folder.name == "_unknown_" else folder.name
            out.append((word, speaker_of(rel), wav))
    return out


def variant(x: np.ndarray, v: int, rng: np.random.Generator) -> np.ndarray:
    """Variant ``v`` of a 1 s int16 clip: speed, gain, a little white noise."""
    speed = SPEEDS[v % len(SPEEDS)]
    gain = GAINS[(v // len(SPEEDS)) % len(GAINS)]
    n = len(x)
    grid = np.arange(n, dtype=np.float64)
    centre = (n - 1) / 2.0
    y = np.interp(centre + (grid - centre) * speed, grid, x.astype(np.float64), left=0, right=0)
    y = y * gain + rng.normal(0, 32767 * 10 ** (rng.uniform(-40, -25) / 20), n)
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def build_corpus(data_root: Path, out: Path, clips: int) -> Path:
    """Write the corpus of ``clips`` WAVs under ``out`` (resumable); return ``out``."""
    from kwstool.core.audio import load_wav, save_wav

    done = out / ".complete"
    if done.is_file() and int(done.read_text()) == clips:
        return out
    src = source_clips(data_root)
    noise_dir = out / "_background_noise_"
    noise_dir.mkdir(parents=True, exist_ok=True)
    for wav in sorted((data_root / "speech_commands_mini" / "_background_noise_").glob("*.wav")):
        if not (noise_dir / wav.name).exists():
            (noise_dir / wav.name).write_bytes(wav.read_bytes())
    smaller = sorted(p for p in out.parent.glob("corpus_*") if p != out and p.is_dir())
    cache: dict[int, np.ndarray] = {}
    t0 = time.perf_counter()
    for i in range(clips):
        j, v = i % len(src), i // len(src)
        word, speaker, path = src[j]
        spk = hashlib.sha1(f"{speaker}:{v}".encode()).hexdigest()[:8]
        target = out / word / f"{spk}_nohash_{j % 1000}.wav"
        if target.exists():
            continue
        target.parent.mkdir(exist_ok=True)
        rel = target.relative_to(out)
        same = next((p / rel for p in smaller if (p / rel).is_file()), None)
        if same is not None:  # a smaller corpus holds the same variant: link it
            os.link(same, target)
            continue
        if j not in cache:
            cache[j] = load_wav(path)
        save_wav(target, variant(cache[j], v, np.random.default_rng([i, 7])))
        if (i + 1) % 10_000 == 0:
            print(f"  corpus: {i + 1}/{clips} clips ({time.perf_counter() - t0:.0f}s)", flush=True)
    done.write_text(str(clips))
    return out


def child(code: str, env: dict[str, str]) -> tuple[float, int, str, float]:
    """Run ``code`` in a fresh Python; (seconds, peak RSS bytes, stdout, CPU seconds) of it.
    ``os.wait4`` gives the resource usage of exactly that child (ru_maxrss, KiB on Linux)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"child failed ({proc.returncode}):\n{err.read()[-3000:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return seconds, usage.ru_maxrss * 1024, out.read(), cpu


def folder_bytes(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.glob(pattern) if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/kws_scale"))
    ap.add_argument("--clips", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--model", default="bc_resnet")
    ap.add_argument("--batch-size", type=int, default=None, help="default: kwstool train's")
    ap.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument(
        "--unknown-share",
        type=float,
        default=1000.0,
        help="prepare's --unknown-share (default 1000: keep the other words' clips, "
        "as a full-data run with every word does)",
    )
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument(
        "--skip-prepare", action="store_true", help="reuse OUT/prepared_N (measure training only)"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not args.data_root.is_dir():
        args.data_root = Path("/work/shared/data")
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    corpus = args.out / f"corpus_{args.clips}"
    if not args.skip_prepare:
        build_corpus(args.data_root, corpus, args.clips)
    prepared = args.out / f"prepared_{args.clips}"
    wavs = sum(1 for _ in corpus.rglob("*.wav")) - len(list(corpus.glob("_background_noise_/*")))
    result: dict = {"clips": args.clips, "corpus_wavs": wavs, "cpus": os.cpu_count()}

    if not args.skip_prepare:
        code = (
            f"from kwstool.data import prepare; r = prepare({str(corpus)!r}, {str(prepared)!r}, "
            f"force=True, progress=False, unknown_share={args.unknown_share}); import json; "
            f"print(json.dumps(r.to_dict()))"
        )
        secs, rss, out, cpu = child(code, env)
        counts = json.loads(out.strip().splitlines()[-1])
        result["prepare"] = {
            "seconds": round(secs, 1),
            "clips_per_s": round(args.clips / secs, 1),
            "cpu_seconds": round(cpu, 1),
            "peak_rss_mb": round(rss / 2**20),
            "features_mb": round(folder_bytes(prepared, "*_features.npy") / 2**20, 1),
            "folder_mb": round(folder_bytes(prepared) / 2**20, 1),
            "splits": {s: v["count"] for s, v in counts.get("splits", {}).items()},
        }
        print(json.dumps(result["prepare"]), flush=True)
    if not args.skip_train:
        run = args.out / f"run_{args.clips}_{args.model}"
        batch = f", batch_size={args.batch_size}" if args.batch_size else ""
        code = (
            f"from kwstool.model.train import train; train({str(prepared)!r}, {str(run)!r}, "
            f"model={args.model!r}, epochs={args.epochs}{batch}, overwrite=True, "
            f"progress=False)"
        )
        secs, rss, _, cpu = child(code, env)
        hist = json.loads((run / "history.json").read_text())["epochs"]
        n_train = json.loads((run / "config.json").read_text())["data"]["train_count"]
        steady = hist[-1]  # the first epoch also traces the graph
        rate = float(steady["clips_per_s"])
        per_clip = float(steady["examples"]) / max(1, n_train)
        result["train"] = {
            "model": args.model,
            "train_clips": n_train,
            "epochs": len(hist),
            "seconds": round(secs, 1),
            "cpu_seconds": round(cpu, 1),
            "epoch_seconds": [h["seconds"] for h in hist],
            "clips_per_s_per_epoch": [h["clips_per_s"] for h in hist],
            "steady_clips_per_s": rate,
            "peak_rss_mb": round(rss / 2**20),
            # an epoch trains on the clips plus the stream windows and mined negatives
            "examples_per_clip": round(per_clip, 3),
            "full_data_epoch_minutes": round(FULL_TRAIN_CLIPS * per_clip / rate / 60, 1),
        }
        print(json.dumps(result["train"]), flush=True)
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
