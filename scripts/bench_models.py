#!/usr/bin/env python
"""Benchmark the model zoo on real speech: 12-class top-1 (float and int8), model and arena bytes.

Data (``--data-root``, default ``../shared/data`` beside the repository):
    ``speech_commands_mini``      Speech Commands word folders + ``_background_noise_``
    ``speech_commands_test_dev``  the canonical test-set layout (10 words, ``_silence_``,
                                  ``_unknown_``), speakers disjoint from the mini set

Recipe (12 classes: ``_silence_``, ``_unknown_``, yes no up down left right on off stop go):
    1. ``kwstool.data.prepared`` each source with the default words: the mini set with
       validation 10 % / test 10 % of its speakers and ``--unknown-share 1000`` (so its ~780
       clips of the 20 other words are used as ``_unknown_`` examples rather than 10 % of the
       keyword count; training weighs every label the same, see ``kwstool.train``), the
       test-dev set with validation 10 % / test 20 % of its speakers and default shares
       (prepare's speaker hash, stretched over the test band for the canonical layout);
    2. merge them into one prepared folder (``WORK/data``):
       train = mini train + mini test + test-dev train (70 % of its speakers),
       validation = mini validation + test-dev validation (10 %),
       test = test-dev test (20 % of its speakers), background noise = the mini recordings.
       So training uses the mini set plus a speaker-disjoint 80 % of test-dev (train +
       validation) and the benchmark is the remaining 20 %; a clip whose speaker is also among
       the test speakers is dropped from train/validation (counted in the output);
    3. per model: ``kwstool.train.train`` into ``WORK/runs/<model>``, then
       ``kwstool.quantize.quantize`` (int8 TFLite, TFLite-Micro arena, float and int8 accuracy).

Cross-validation (``--cv``, the honest figure; see ``kwstool.model.crossval``):
    all clips of both prepared sources (every split) are pooled and dealt by speaker into
    ``--k`` folds (``_silence_`` slices by noise recording and region); each fold is tested
    once by a model trained on the others (10 % of their speakers for validation), so every
    clip is tested once by a model that never heard its speaker. Prints mean +- standard
    deviation over folds of int8 top-1, macro-F1, per-class recall, the balanced top-1 (mean
    class recall: what a test set with equal clips per label, like the official Speech
    Commands test set, would score) and the top-1 per source (``speech_commands_test_dev`` is
    half the official test set, the same distribution as the hidden half), the pooled top-1 and
    the wall time. ``--teachers`` distils each fold from earlier CVs' models of that fold.
    ``--synthetic DIR`` (repeatable): a folder of ``kwstool synth`` output (label folders:
    keyword clips and/or confusable negatives) prepared as a synthetic source; its clips join
    the train split of every fold (and of ``--all``), never validation or test, so the folds
    test the same clips as the recipe without it (a paired ablation row).
    Defaults (``CV_K`` folds of ``CV_EPOCHS`` epochs) are sized to fit in about an hour on 2
    CPU cores; the spread it reports says how much to trust a difference. For
    ablations call ``cross_validate(recipe, k, epochs, seed, sources=..., work=...)`` or pass
    ``--set key=value`` (TrainConfig fields).

Folds as independent jobs (other GPUs or machines, any job runner): ``--prepare-only`` once,
then ``--fold K`` per fold (writes ``WORK/cv/<recipe>/fold_K/result.json``), then ``--merge``
(reads every fold's result; trains nothing). With plain shell background jobs, one GPU each::

    W=runs/bench; python scripts/bench_models.py --cv --work $W --prepare-only
    for k in 0 1 2 3 4; do
        CUDA_VISIBLE_DEVICES=$k python scripts/bench_models.py --cv --work $W --fold $k \
            --no-progress > fold_$k.log 2>&1 &
    done; wait
    python scripts/bench_models.py --cv --work $W --merge --json cv.json

On several machines, share ``WORK`` (or copy each ``fold_K`` folder back) before ``--merge``.

Usage::

    python scripts/bench_models.py                         # all models, default epochs
    python scripts/bench_models.py --models bc_resnet --epochs 5 --work /tmp/bench
    python scripts/bench_models.py --cv --json cv.json     # 5-fold CV of the default recipe
    python scripts/bench_models.py --cv --set batch_size=64 --set spec_augment=false
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kwstool import __version__
from kwstool.errors import KwsError
from kwstool.fileio import atomic_path, save_npy, write_json, write_text

MINI = "speech_commands_mini"
TEST_DEV = "speech_commands_test_dev"
EXTRA = "speech_commands_extra"
WAKE = "wake_words"
#: The shared sources of the default recipe and how each is prepared (kwstool prepare's
#: parameters). ``unknown_share`` is a percentage of the keyword clips: 1000 keeps up to ten
#: other-word clips per keyword clip (the mini set is mostly other words). The extra set (a few
#: keyword clips, ~4,000 other words) is joined by the wake-word recordings (``computer``,
#: ``jarvis``: other words from other people), centred on their word (:func:`extra_folder`).
SOURCES = {
    MINI: {"testing_pct": 10.0, "unknown_share": 1000.0},
    TEST_DEV: {"testing_pct": 20.0, "unknown_share": 10.0},
    EXTRA: {
        "testing_pct": 10.0,
        "unknown_share": 1000.0,
        "unknown_min": 1600,
        "silence_share": 0.0,
    },
}
DEFAULT_SOURCES = (MINI, TEST_DEV, EXTRA)
SPLITS = ("train", "validation", "test")
#: Which split of which prepared source goes into which benchmark split.
#: --cv defaults, sized to fit in <= 60 minutes on 2 CPU cores: 5 folds of 12 epochs took 34.1 min
#: on a loaded 2-core machine (~2.5 min per fold of quantize/evaluate/tracing + ~0.36 min per
#: epoch), so 20 epochs is ~48 min by that measurement (extrapolated, see docs/SCALING.md)
CV_K = 5
CV_EPOCHS = 100  # kwstool train's default; 5 folds x 100 epochs: ~37 min on 2 cores
MERGE = {
    "train": [(MINI, "train"), (MINI, "test"), (TEST_DEV, "train"), (EXTRA, "train"),
              (EXTRA, "test")],
    "validation": [(MINI, "validation"), (TEST_DEV, "validation"), (EXTRA, "validation")],
    "test": [(TEST_DEV, "test")],
}  # fmt: skip


def centred_wake_words(root: Path, out: Path) -> list[Path]:
    """1 s copies of the wake-word recordings centred on their word (the energy detector of
    ``kwstool record``), named ``<id>_nohash_0.wav`` so that each recording is its own speaker
    (the set carries no speaker ids); written once. Returns the word folders."""
    from kwstool.core.audio import load_wav, save_wav, speech_span
    from kwstool.data.takes import centre_clip

    words = sorted(p for p in (root / WAKE).iterdir() if p.is_dir())
    for word_dir in words:
        if (out / word_dir.name / ".complete").is_file():
            continue
        for wav in sorted(word_dir.glob("*.wav")):
            x = load_wav(wav)
            start, end = speech_span(x, 30.0, min_rms=30.0)
            clip = centre_clip(x, start, end)
            save_wav(out / word_dir.name / f"{wav.stem[:8]}_nohash_0.wav", clip)
        write_text(out / word_dir.name / ".complete", "")
    return [out / w.name for w in words]


def extra_folder(root: Path, out: Path) -> Path:
    """The extra set plus the centred wake-word recordings as one archive-layout folder with
    ``validation_list.txt``/``testing_list.txt`` of its own: the official hash rule puts none
    of the extra set's speakers in test, so speakers are dealt 10 % / 10 % by a hash of the
    speaker id (the extra set's word folders are linked, not copied)."""
    from kwstool.data import speaker_of

    if (out / "testing_list.txt").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"validation": [], "testing": []}
    for word_dir in sorted(p for p in (root / EXTRA).iterdir() if p.is_dir()):
        link = out / word_dir.name
        if not link.exists():
            link.symlink_to(word_dir.resolve(), target_is_directory=True)
    centred_wake_words(root, out)
    for word_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        for wav in sorted(word_dir.glob("*.wav")):
            h = int(hashlib.sha1(speaker_of(wav.name).encode()).hexdigest()[:8], 16) % 100
            if h < 20:
                lists["validation" if h < 10 else "testing"].append(f"{word_dir.name}/{wav.name}")
    write_text(out / "validation_list.txt", "".join(f + "\n" for f in lists["validation"]))
    write_text(out / "testing_list.txt", "".join(f + "\n" for f in lists["testing"]))
    return out


def prepare_sources(
    root: Path, work: Path, seed: int, progress: bool, names: tuple[str, ...] = DEFAULT_SOURCES
) -> dict:
    from kwstool.data import load_prepared, prepare

    out = {}
    for name in names:
        src = root / name
        if not src.is_dir():
            raise KwsError(
                f"{src}: not found; pass --data-root pointing at the folder holding "
                f"{', '.join(names)}"
            )
        if name == EXTRA:
            src = extra_folder(root, work / "raw" / EXTRA)
        prepare(str(src), work / "sources" / name, validation_pct=10.0, seed=seed,
                progress=progress, **SOURCES[name])  # fmt: skip
        out[name] = load_prepared(work / "sources" / name)
    return out


def prepare_synthetic(folders: list[Path], work: Path, seed: int, progress: bool) -> dict:
    """``--synthetic``: each folder of synthetic label folders prepared by kwstool prepare
    into ``WORK/sources/tts_<name>`` (its speaker splits do not matter: the pool trains on all
    of them). Every clip is kept: keyword folders as keywords, any other folder as
    ``_unknown_``; a folder of negatives needs only some keyword folders (the pool maps labels
    by name). Returns {name: prepared folder}."""
    from kwstool.core.labels import DEFAULT_WORDS
    from kwstool.data import prepare

    out = {}
    for folder in folders:
        if not folder.is_dir():
            raise KwsError(
                f"--synthetic {folder}: not a folder; give a `kwstool synth --out` folder"
            )
        name = f"tts_{folder.name}"  # not "synth*": prepare would put every clip in train
        words = [w for w in DEFAULT_WORDS if (folder / w).is_dir()]  # a subset will do
        if not words:
            raise KwsError(f"--synthetic {folder}: no keyword folder ({', '.join(DEFAULT_WORDS)})")
        prepare([f"{name}={folder}"], work / "sources" / name, words=words,
                silence_share=0.0, unknown_share=1000.0, unknown_min=100000, seed=seed,
                progress=progress)  # fmt: skip
        out[name] = work / "sources" / name
    return out


def merge(sources: dict, out: Path) -> dict:
    """Write the benchmark's prepared folder (docs/ARCHITECTURE.md format); return its manifest."""
    from kwstool.data import speaker_of

    labels = sources[MINI].labels
    for name, src in sources.items():
        if src.labels != labels:
            raise KwsError(f"label lists differ: {labels} vs {name}'s {src.labels}")
    inputs_hash = hashlib.sha256(
        json.dumps(
            {
                "recipe": MERGE,
                "version": 2,
                "sources": {k: v.manifest["inputs_hash"] for k, v in sources.items()},
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        if old.get("inputs_hash") == inputs_hash:
            return old

    def speaker(line: str) -> str | None:  # silence slices ("#silence:...") have none
        return None if line.startswith("#") else speaker_of(line)

    test_speakers = {speaker(f) for f in sources[TEST_DEV].split("test").files} - {None}
    splits, dropped = {}, 0
    for split, parts in MERGE.items():
        feats, audio, labs, files = [], [], [], []
        for source, part in parts:
            if source not in sources:
                continue
            data = sources[source].split(part)
            keep = np.array(
                [split == "test" or speaker(f) not in test_speakers for f in data.files], dtype=bool
            )
            dropped += int((~keep).sum())
            feats.append(np.asarray(data.features)[keep])
            audio.append(np.asarray(data.audio)[keep])
            labs.append(np.asarray(data.labels)[keep])
            files += [f"{source}/{f}" for f, k in zip(data.files, keep) if k]
        labels_arr = np.concatenate(labs).astype(np.int16)
        save_npy(out / f"{split}_features.npy", np.concatenate(feats).astype(np.int8))
        save_npy(out / f"{split}_audio.npy", np.concatenate(audio).astype(np.int16))
        save_npy(out / f"{split}_labels.npy", labels_arr)
        write_text(out / f"{split}_files.txt", "".join(f + "\n" for f in files))
        splits[split] = {
            "count": len(labels_arr),
            "per_class": {lab: int((labels_arr == i).sum()) for i, lab in enumerate(labels)},
        }
    noise = sources[MINI].background_noise
    with atomic_path(out / "background_noise.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **noise)
    manifest = {
        "format": 1,
        "kwstool_version": __version__,
        "source": f"benchmark: {', '.join(n for n in sources if n != TEST_DEV)} + 80 % of "
        f"{TEST_DEV} speakers (test: the other 20 %)",
        "words": sources[MINI].words,
        "labels": labels,
        "features": sources[MINI].manifest["features"],
        "splits": splits,
        "inputs_hash": inputs_hash,
        "skipped": [d for src in sources.values() for d in src.manifest.get("skipped", [])],
        "dropped_test_speaker_clips": dropped,
    }
    write_json(manifest_path, manifest)
    return manifest


def bench_model(
    name: str, data_dir: Path, run_dir: Path, epochs: int | None, seed: int, progress: bool
) -> dict:
    from kwstool.model.quantize import quantize
    from kwstool.model.train import train

    t0 = time.perf_counter()
    if (run_dir / "config.json").exists():
        result = train(data_dir, run_dir, resume=True, progress=progress)
    else:
        result = train(data_dir, run_dir, model=name, epochs=epochs, seed=seed, progress=progress)
    train_s = time.perf_counter() - t0
    q = quantize(run_dir, data_dir)
    from kwstool.deploy.profile import estimate

    m4 = estimate(q.tflite_path.read_bytes(), "nano33ble", str(q.tflite_path))
    return {
        "model": name,
        "params": result.params,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "train_seconds": round(train_s, 1),
        "float": q.accuracy["float"],
        "int8": q.accuracy["int8"],
        "model_bytes": q.model_bytes,
        "arena_bytes": q.arena_bytes,
        "tflm_matches_litert": q.tflm_matches_litert,
        "m4_instructions": round(m4.est_instructions),
        "nano33ble_ms": round(m4.est_ms, 1),
    }


def parse_sets(items: list[str]) -> dict:
    """``key=value`` pairs (TrainConfig fields) with the field's type."""
    from kwstool.model.config import FIELDS

    out: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in FIELDS:
            raise KwsError(f"--set {item}: unknown field {key!r}; choose from {', '.join(FIELDS)}")
        kind = FIELDS[key].type
        if kind in ("bool", bool):
            out[key] = value.lower() in ("1", "true", "yes", "on")
        elif kind in ("int", int):
            out[key] = int(value)
        elif kind in ("float", float):
            out[key] = float(value)
        else:
            out[key] = value
    return out


def source_names(spec: str) -> tuple[str, ...]:
    """``--sources``: comma-separated names of SOURCES (the mini and test-dev sets always)."""
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    bad = [n for n in names if n not in SOURCES]
    if bad or MINI not in names or TEST_DEV not in names:
        raise KwsError(
            f"--sources {spec}: choose from {', '.join(SOURCES)} ({MINI} and {TEST_DEV} needed)"
        )
    return tuple(n for n in SOURCES if n in names)


def run_cv(args, console) -> dict:
    from rich.table import Table

    from kwstool.model.crossval import cross_validate
    from kwstool.model.zoo import DEFAULT_MODEL

    src_names = source_names(args.sources)
    prepare_sources(args.data_root, args.work, args.seed, not args.no_progress, src_names)
    if args.prepare_only:
        console.print(f"prepared {args.work / 'sources'}", highlight=False)
        return {}
    sources = {name: args.work / "sources" / name for name in src_names}
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    recipe = {"model": names[0] if len(names) == 1 else DEFAULT_MODEL, **parse_sets(args.set)}
    epochs = args.epochs or CV_EPOCHS
    teachers = tuple(Path(d).resolve() for d in args.teachers.split(",") if d.strip())
    tag = "-".join(f"{k}{v}" for k, v in sorted(recipe.items()))
    if src_names != DEFAULT_SOURCES:
        tag += "-src" + "+".join(n.replace("speech_commands_", "") for n in src_names)
    synthetic = prepare_synthetic(args.synthetic, args.work, args.seed, not args.no_progress)
    if synthetic:
        tag += "-" + "+".join(sorted(synthetic))
    if teachers:
        tag += "-distilled-" + hashlib.sha1("|".join(map(str, teachers)).encode()).hexdigest()[:8]
    work = args.work / "cv" / f"k{args.k}-e{epochs}-s{args.seed}-{tag}"
    if args.all:
        from kwstool.model.crossval import train_all

        res = train_all(recipe, args.seed, epochs, sources=sources, work=work,
                        progress=not args.no_progress, train_only=synthetic)  # fmt: skip
        console.print(
            f"trained on all {res['clips']} clips: {res['run']} ({res['model_bytes']:,} B, "
            f"arena {res['arena_bytes']:,} B, {res['seconds'] / 60:.1f} min)",
            highlight=False,
        )
        return res
    t0 = time.perf_counter()
    out = cross_validate(
        recipe,
        k=args.k,
        epochs=epochs,
        seed=args.seed,
        sources=sources,
        work=work,
        progress=not args.no_progress,
        teacher_dirs=teachers,
        folds_to_run=None if args.fold is None else [int(f) for f in args.fold.split(",")],
        merge=args.merge,
        train_only=synthetic,
    )
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)
    summ = out["summary"]
    table = Table(
        title=f"{args.k}-fold speaker-grouped CV, {recipe['model']}, {epochs} epochs: "
        f"int8 test figures over {summ['clips']} clips (mean +- std of folds)"
    )
    table.add_column("figure")
    table.add_column("mean +- std", justify="right")
    for f in out["folds"]:
        table.add_column(f"fold {f['fold']}", justify="right")

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    rows = [
        ("top-1", summ["top1"], [f["top1"] for f in out["folds"]]),
        ("macro-F1", summ["macro_f1"], [f["macro_f1"] for f in out["folds"]]),
        ("balanced top-1", summ["balanced_top1"], [f["balanced_top1"] for f in out["folds"]]),
    ]
    rows += [
        (f"top-1 {src}", ms, [f["top1_by_source"].get(src) for f in out["folds"]])
        for src, ms in summ["top1_by_source"].items()
    ]
    rows += [
        (f"recall {lab}", ms, [f["recall"].get(lab) for f in out["folds"]])
        for lab, ms in summ["recall"].items()
    ]
    for name, ms, per in rows:
        table.add_row(name, f"{fmt(ms['mean'])} +- {fmt(ms['std'])}", *map(fmt, per))
    console.print(table)
    console.print(
        f"pooled top-1 {summ['pooled_top1']:.4f} over {summ['clips']} clips; fold "
        f"sizes {out['fold_sizes']}; wall time {out['wall_seconds'] / 60:.1f} min (the folds' "
        f"own: {sum(f.get('seconds', 0) for f in out['folds']) / 60:.1f} min)",
        highlight=False,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    from kwstool.model.zoo import MODELS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument(
        "--work",
        type=Path,
        default=REPO / "runs" / "bench",
        help="prepared data and runs go here (reused when up to date)",
    )
    ap.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated models (default: all)"
    )
    ap.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"default: kwstool train's ({CV_EPOCHS} with --cv, the same)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--sources",
        default=",".join(DEFAULT_SOURCES),
        help="shared sources to train and cross-validate on (default: all; an ablation "
        f"leaves some out, e.g. --sources {MINI},{TEST_DEV})",
    )
    ap.add_argument("--fresh", action="store_true", help="retrain even if a run exists")
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument(
        "--cv",
        action="store_true",
        help="speaker-grouped k-fold cross-validation "
        "of one model (the honest figure) instead of the single split",
    )
    ap.add_argument("--k", type=int, default=CV_K, help=f"folds for --cv (default {CV_K})")
    ap.add_argument(
        "--all",
        action="store_true",
        help="--cv: instead of the folds, train the recipe on every clip (the model to ship) "
        "into WORK/cv/.../all/run",
    )
    ap.add_argument(
        "--teachers",
        default="",
        help="--cv: comma-separated work folders of earlier --cv runs (same k, seed, data); "
        "each fold is distilled from their models of that fold",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="TrainConfig field for --cv, e.g. batch_size=64 (repeatable)",
    )
    ap.add_argument(
        "--synthetic",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="--cv: a `kwstool synth` output folder whose clips join every fold's train split "
        "(never validation/test; repeatable)",
    )
    jobs = ap.add_mutually_exclusive_group()
    jobs.add_argument(
        "--fold",
        default=None,
        help="--cv: run only this fold (0..k-1), as one job, or several (comma-separated); "
        "the summary covers them",
    )
    jobs.add_argument(
        "--merge", action="store_true", help="--cv: summarize the folds' results; train nothing"
    )
    jobs.add_argument(
        "--prepare-only", action="store_true", help="--cv: prepare the sources and stop"
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    t_start = time.perf_counter()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.cv and (args.fold is not None or args.merge or args.prepare_only):
        console.print("[bold red]error:[/] --fold, --merge and --prepare-only need --cv")
        return 2
    if args.cv:
        try:
            out = run_cv(args, console)
        except KwsError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            return 2
        if args.json and out:
            write_json(args.json, out)
        return 0
    try:
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            raise KwsError(
                f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}"
            )
        sources = prepare_sources(
            args.data_root, args.work, args.seed, not args.no_progress, source_names(args.sources)
        )
        data_dir = args.work / "data"
        manifest = merge(sources, data_dir)
        console.print(
            f"benchmark data {data_dir}: "
            + ", ".join(f"{s} {manifest['splits'][s]['count']}" for s in SPLITS)
            + f" (dropped {manifest['dropped_test_speaker_clips']} clips of test speakers)",
            highlight=False,
        )
        rows = []
        for name in names:
            run_dir = (
                args.work / "runs" / (name if args.epochs is None else f"{name}-e{args.epochs}")
            )
            if args.fresh and run_dir.exists():
                import shutil

                shutil.rmtree(run_dir)
            console.rule(name)
            rows.append(
                bench_model(name, data_dir, run_dir, args.epochs, args.seed, not args.no_progress)
            )
    except KwsError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2

    table = Table(
        title=f"12-class top-1 on the held-out 20 % of {TEST_DEV} speakers "
        f"({manifest['splits']['test']['count']} clips)"
    )
    for col in (
        "model",
        "params",
        "epochs",
        "float val",
        "float test",
        "int8 test",
        "model bytes",
        "arena bytes",
        "M4 M instr",
        "Nano ms",
        "train s",
    ):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(
            r["model"],
            f"{r['params']:,}",
            f"{r['best_epoch']}/{r['epochs_run']}",
            f"{r['float']['validation']:.4f}",
            f"{r['float']['test']:.4f}",
            f"{r['int8']['test']:.4f}",
            f"{r['model_bytes']:,}",
            f"{r['arena_bytes']:,}",
            f"{r['m4_instructions'] / 1e6:.2f}",
            f"{r['nano33ble_ms']:.1f}",
            f"{r['train_seconds']:.0f}",
        )
    console.print(table)
    console.print(f"wall time {(time.perf_counter() - t_start) / 60:.1f} min", highlight=False)
    if args.json:
        write_json(args.json, {"data": manifest["splits"], "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
