#!/usr/bin/env python3
"""Training speed on one device vs ``--distribute mirrored`` over several: examples/s.

Each configuration trains in a fresh child process (logical CPU devices must be made before
TensorFlow starts) with ``kwstool.model.train.train`` on the same prepared data and seed, and
reports the training examples per second of its epochs after the first (which includes tracing
the graph; ``clips_per_s`` of ``history.json``: clips, stream windows and mined negatives).

Configurations (``--replicas N``, default 2; ``--batch-size B`` per replica):
    one device, batch B            the plain run
    mirrored, N devices x B        ``--devices`` (default ``CPU:0,...,CPU:N-1``: N logical CPU
                                   devices; on a GPU box pass ``GPU:0,GPU:1``)
    one device, batch N x B        the same global batch on one device (control: a larger
                                   batch alone changes the speed)

Data: ``--data`` (a prepared folder), else ``--source`` (default
``../shared/data/speech_commands_mini`` when present, else the bundled ``datasets/demo``)
prepared once into ``--work`` (10 % validation and test speakers, the other words' clips kept
as ``_unknown_``).

    python scripts/bench_distribute.py --epochs 3 --json scaling.json
    python scripts/bench_distribute.py --devices GPU:0,GPU:1 --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = """
import json, sys
from kwstool.model.train import train
r = train(sys.argv[1], sys.argv[2], progress=False, **json.loads(sys.argv[3]))
print(json.dumps(r.history))
"""


def measure(data: Path, args: dict, work: Path, label: str) -> dict:
    """Train ``args`` in a child process; examples/s of the epochs after the first."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    out = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(data), str(out), json.dumps(args)],
                          env=env, text=True, capture_output=True, cwd=REPO)  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"{label}: training failed:\n{proc.stderr[-2000:]}")
    history = json.loads(proc.stdout.strip().splitlines()[-1])
    later = history[1:] or history
    examples = sum(r["examples"] for r in later)
    seconds = sum(r["examples"] / r["clips_per_s"] for r in later)
    return {
        "config": label,
        "args": args,
        "examples_per_epoch": history[0]["examples"],
        "examples_per_s": round(examples / seconds, 1),
        "epoch_s": [round(r["examples"] / r["clips_per_s"], 2) for r in history],
        "wall_s": round(time.perf_counter() - t0, 1),
        "val_accuracy": history[-1]["val_accuracy"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="prepared data folder")
    ap.add_argument("--source", type=Path, default=None, help="raw source to prepare")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_distribute")
    ap.add_argument("--model", default="ds_tcn")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32, help="per replica")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--devices", default=None, help="default: CPU:0..CPU:N-1 (logical)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration (best kept)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None:
        from kwstool.data import prepare

        mini = REPO.parent / "shared" / "data" / "speech_commands_mini"
        source = args.source or (mini if mini.is_dir() else REPO / "datasets" / "demo")
        data = args.work / "data"
        # as scripts/bench_models.py: the other words' clips as _unknown_ examples
        prepare(str(source), data, validation_pct=10.0, testing_pct=10.0, unknown_share=1000.0,
                progress=False)  # fmt: skip
    devices = args.devices or ",".join(f"CPU:{i}" for i in range(args.replicas))
    n = len(devices.split(","))
    common = {"model": args.model, "epochs": args.epochs, "seed": 0}
    b = args.batch_size
    configs = [
        (f"one device, batch {b}", dict(common, batch_size=b)),
        (f"mirrored {devices}, {n} x {b}",
         dict(common, batch_size=b, distribute="mirrored", devices=devices)),
        (f"one device, batch {n * b}", dict(common, batch_size=n * b)),
    ]  # fmt: skip
    rows = []
    for label, cfg in configs:
        runs = [measure(data, cfg, args.work, label) for _ in range(args.repeat)]
        best = max(runs, key=lambda r: r["examples_per_s"])
        best["runs_examples_per_s"] = [r["examples_per_s"] for r in runs]
        rows.append(best)
        runs_text = f"runs {best['runs_examples_per_s']}, epochs {best['epoch_s']} s"
        print(f"{label:40s} {best['examples_per_s']:9.1f} examples/s  ({runs_text})", flush=True)
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPU cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if args.json:
        from kwstool.fileio import write_json

        write_json(args.json, {"data": str(data), "cpu_count": os.cpu_count(),
                               "load_average": load, "rows": rows})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
