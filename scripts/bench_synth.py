#!/usr/bin/env python3
"""Synthetic speech: clips per second of each installed `kwstool synth` engine, and (--eval) how
the shipped firmware model classifies each engine's clips of the 10 Speech Commands keywords.

Speed: ``--clips`` augmented clips of ``--word`` per engine (after loading the engine, whose
time is printed apart; Kokoro's first use also joins its weights into the cache).
Eval: ``--eval-clips`` plain clips (no augmentation) of each keyword per engine, voices and mixes
as ``kwstool synth`` draws them; the model is the one in firmware/src/model/kws_model_data.cc
(int8, LiteRT reference kernels = TFLite-Micro's), its top-1 over the 12 labels is right when it
names the keyword.

    python scripts/bench_synth.py [--clips 8] [--eval [--eval-clips 6]]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np

from kwstool.core import frontend
from kwstool.core.audio import load_wav
from kwstool.core.tflite import model_info, run_litert, to_model_input
from kwstool.data import tts
from kwstool.data.synth import synth

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
MODEL_CC = REPO / "firmware/src/model/kws_model_data.cc"


def shipped_model() -> tuple[bytes, list[str]]:
    """The flatbuffer and labels of the exported firmware model (its SHA-256 checked)."""
    text = MODEL_CC.read_text()
    body = text[
        text.index("kws_model_data[] = {") : text.index("};", text.index("kws_model_data[]"))
    ]
    data = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]{2})", body))
    want = re.search(r"sha256 ([0-9a-f]{64})", text)
    assert want and hashlib.sha256(data).hexdigest() == want.group(1), "model bytes do not match"
    labels_block = text[text.index("kws_model_labels") : text.index("};")]
    return data, re.findall(r'"([^"]+)"', labels_block)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (espeak-ng, flite run as programs)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def speed(engines: list[str], word: str, clips: int, seed: int) -> None:
    print(f"{'engine':<10} {'load s':>7} {'clips':>5} {'s':>7} {'clips/s':>8} {'CPU s/clip':>10}")
    for name in engines:
        t0 = time.perf_counter()
        tts.load(name)
        loaded = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            t0, c0 = time.perf_counter(), cpu_seconds()
            synth(word, clips, tmp, seed=seed, engine=name)
            took, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        print(
            f"{name:<10} {loaded:7.1f} {clips:5d} {took:7.1f} {clips / took:8.2f} "
            f"{cpu / clips:10.2f}",
            flush=True,
        )


def evaluate(engines: list[str], per_word: int, seed: int) -> None:
    tflite, labels = shipped_model()
    info = model_info(tflite)
    print(f"\nshipped model {MODEL_CC.name}: top-1 on plain synthetic keyword clips")
    print(f"{'engine':<10} {'clips':>5} {'top-1':>6}  per keyword")
    for name in engines:
        clips, truth = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i, kw in enumerate(KEYWORDS):
                res = synth(kw, per_word, tmp, seed=seed + i, engine=name, augmented=False)
                clips += [load_wav(p) for p in res.saved]
                truth += [labels.index(kw)] * len(res.saved)
        out = run_litert(tflite, to_model_input(frontend.compute(np.stack(clips)), info))
        right = out.argmax(axis=1) == np.array(truth)
        per = " ".join(
            f"{kw}:{right[i * per_word : (i + 1) * per_word].mean():.2f}"
            for i, kw in enumerate(KEYWORDS)
        )
        print(f"{name:<10} {len(clips):5d} {right.mean():6.3f}  {per}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=8, help="clips per engine for the speed")
    ap.add_argument("--word", default="hey_lamp")
    ap.add_argument("--engines", default="", help="comma list [default: every installed one]")
    ap.add_argument("--eval", action="store_true", help="also the shipped model's top-1")
    ap.add_argument("--eval-clips", type=int, default=6, help="clips per keyword and engine")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    installed = [str(r["engine"]) for r in tts.engine_table() if r["installed"]]
    engines = args.engines.split(",") if args.engines else installed
    print(f"{os.cpu_count()} CPU cores; engines: {', '.join(engines)}")
    if args.clips:
        speed(engines, args.word, args.clips, args.seed)
    if args.eval:
        evaluate(engines, args.eval_clips, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
