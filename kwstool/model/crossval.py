"""Speaker-grouped k-fold cross-validation of a training recipe (int8 figures, every clip once).

A *pool* is a prepared folder (``kwstool prepare`` format) whose clips are all candidates; the
splits it already has are ignored. Clips are grouped so that no group is split between train
and test: speech clips by speaker (:func:`kwstool.data.speaker_of` on the file path), generated
``_silence_`` slices (``#silence:<recording>@<offset>`` lines) by recording and by the split
region prepare cut them from (its regions are disjoint time ranges of a recording, so slices of
one region never overlap those of another). Groups are dealt to ``k`` folds, largest first, to
the fold with the fewest clips (ties by a seeded hash), so folds are balanced and deterministic.

Fold ``f``: test = the groups of fold ``f``; validation (best epoch, early stopping) = about
:data:`VALIDATION_PCT` % of the other groups, chosen by a seeded hash; train = the rest. Each
fold is trained with :func:`kwstool.model.train.train`, quantized to int8 and evaluated with
LiteRT on its test clips. The result holds per-fold figures, their mean and standard deviation
(top-1, macro-F1, per-class recall) and the pooled top-1 over all clips. Fold runs resume.

*Train-only* sources (``train_only``: synthetic speech, whose voices are not people to be
tested on) join the train split of every fold and of the all-data model; they are never dealt
to a fold nor chosen for validation, so the folds' test and validation clips are those of the
same recipe without them (paired comparisons, e.g. an ablation row per ingredient).

Folds are independent jobs: ``folds_to_run=[f]`` trains and writes only ``work/fold_f``
(``result.json`` last), so folds can run at once on other GPUs or machines with any job runner
(a shared ``work`` folder, or the ``fold_f`` folders copied back); ``merge=True`` then trains
nothing and summarizes the folds' ``result.json`` files (a missing fold is a one-line error).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from kwstool import __version__
from kwstool.errors import KwsError
from kwstool.fileio import atomic_path, save_npy, write_json, write_text

VALIDATION_PCT = 10.0
SPLITS = ("train", "validation", "test")


def group_of(line: str, source_split: str = "") -> str:
    """Group key of one pooled file line (``<source>/<path>`` or ``<source>/#silence:...``)."""
    from kwstool.data import speaker_of

    source, _, rel = line.partition("/")
    if rel.startswith("#silence:"):
        recording = rel[len("#silence:") :].rsplit("@", 1)[0]
        return f"silence:{source}/{recording}:{source_split}"
    return f"speaker:{speaker_of(rel)}"


def _rank(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha1(f"{seed}:{key}".encode()).digest()[:8], "big")


def assign_folds(groups: list[str], k: int, seed: int) -> np.ndarray:
    """Fold index of each clip: whole groups, largest first, to the emptiest fold."""
    keys, counts = np.unique(np.asarray(groups, dtype=object), return_counts=True)
    order = sorted(range(len(keys)), key=lambda i: (-counts[i], _rank(seed, str(keys[i]))))
    sizes = np.zeros(k, dtype=np.int64)
    fold_of: dict[str, int] = {}
    for i in order:
        f = int(np.argmin(sizes))
        fold_of[str(keys[i])] = f
        sizes[f] += counts[i]
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


class Pool:
    """All clips of one or more prepared folders (every split), with their groups."""

    def __init__(self, sources: dict[str, Path], train_only: dict[str, Path] | None = None) -> None:
        from kwstool.data import load_prepared

        train_only = dict(train_only or {})
        clash = sorted(set(sources) & set(train_only))
        if clash:
            raise KwsError(f"source name {clash[0]!r} is given both as a source and as train-only")
        parts: dict[str, list[Any]] = {"audio": [], "features": [], "labels": [], "files": []}
        self.groups: list[str] = []
        only: list[bool] = []
        first = None
        for name, path in {**sources, **train_only}.items():
            data = load_prepared(path)
            first = first or data
            # a train-only source (e.g. synthetic negatives) may hold some of the labels only
            if data.labels != first.labels and not (
                name in train_only and set(data.labels) <= set(first.labels)
            ):
                raise KwsError(f"{path}: labels {data.labels} differ from {first.labels}")
            index = np.array([first.labels.index(lab) for lab in data.labels], dtype=np.int16)
            for split in SPLITS:
                sd = data.split(split)
                lines = [f"{name}/{f}" for f in sd.files]
                parts["audio"].append(np.asarray(sd.audio))
                parts["features"].append(np.asarray(sd.features))
                parts["labels"].append(index[np.asarray(sd.labels, dtype=np.int64)])
                parts["files"] += lines
                self.groups += [group_of(ln, split) for ln in lines]
                only += [name in train_only] * len(lines)
        if first is None or not sources:
            raise KwsError("cross-validation needs at least one prepared source")
        self.labels: list[str] = list(first.labels)
        self.words = list(first.words)
        self.features_params = first.manifest["features"]
        self.noise = dict(first.background_noise)
        self.audio = np.concatenate(parts["audio"])
        self.features = np.concatenate(parts["features"])
        self.y = np.concatenate(parts["labels"]).astype(np.int16)
        self.files: list[str] = parts["files"]
        self.train_only = np.array(only, dtype=bool)  # rows that only ever train
        hashes = {k: load_prepared(p).manifest["inputs_hash"] for k, p in sources.items()}
        if train_only:  # absent without them: the folds of earlier runs keep their hash
            hashes["train_only"] = {k: load_prepared(p).manifest["inputs_hash"]
                                    for k, p in train_only.items()}  # fmt: skip
        self.hash = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()

    def assign_folds(self, k: int, seed: int) -> np.ndarray:
        """Fold of each row (:func:`assign_folds` over the rows that can be tested; -1 for the
        train-only rows)."""
        folds = np.full(len(self.groups), -1, dtype=np.int64)
        real = np.flatnonzero(~self.train_only)
        folds[real] = assign_folds([self.groups[i] for i in real], k, seed)
        return folds

    def fold_splits(self, folds: np.ndarray, f: int, seed: int) -> dict[str, np.ndarray]:
        """Row indices of train/validation/test for fold ``f``: validation takes whole groups
        of the other folds, in seeded-hash order, until it holds VALIDATION_PCT % of them."""
        test = folds == f
        groups = np.asarray(self.groups, dtype=object)
        keys, counts = np.unique(groups[~test & ~self.train_only], return_counts=True)
        want = max(1.0, counts.sum() * VALIDATION_PCT / 100.0)
        chosen: set[str] = set()
        taken = 0
        for i in sorted(range(len(keys)), key=lambda i: _rank(seed, f"val{f}:{keys[i]}")):
            if taken >= want:
                break
            chosen.add(str(keys[i]))
            taken += int(counts[i])
        val = ~test & ~self.train_only & np.array([g in chosen for g in self.groups], dtype=bool)
        return {
            "train": np.flatnonzero(~test & ~val),
            "validation": np.flatnonzero(val),
            "test": np.flatnonzero(test),
        }

    def write(self, out: Path, rows: dict[str, np.ndarray], tag: str) -> None:
        """A prepared folder of the given rows (skipped when it is already there)."""
        inputs_hash = hashlib.sha256(f"{self.hash}:{tag}".encode()).hexdigest()
        manifest_path = out / "manifest.json"
        old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        if old.get("inputs_hash") == inputs_hash:
            return
        splits = {}
        for split, idx in rows.items():
            lab = self.y[idx]
            save_npy(out / f"{split}_features.npy", self.features[idx])
            save_npy(out / f"{split}_audio.npy", self.audio[idx])
            save_npy(out / f"{split}_labels.npy", lab)
            write_text(out / f"{split}_files.txt", "".join(self.files[i] + "\n" for i in idx))
            per = np.bincount(lab.astype(np.int64), minlength=len(self.labels))
            splits[split] = {
                "count": len(idx),
                "per_class": {n: int(per[i]) for i, n in enumerate(self.labels)},
            }
        with atomic_path(out / "background_noise.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **self.noise)  # type: ignore[arg-type]
        write_json(manifest_path, {
            "format": 1, "kwstool_version": __version__, "source": f"cross-validation {tag}",
            "words": self.words, "labels": self.labels, "features": self.features_params,
            "splits": splits, "inputs_hash": inputs_hash, "skipped": []})  # fmt: skip


def _fold(
    pool: Pool,
    folds: np.ndarray,
    f: int,
    recipe: dict[str, Any],
    work: Path,
    seed: int,
    progress: bool,
    teacher_dirs: tuple[Path, ...] = (),
    merge: bool = False,
) -> dict[str, Any] | None:
    """Train, quantize and evaluate fold ``f``; cached in ``work/fold_F/result.json`` (with
    ``merge``: only that cache, None when it is missing or for another recipe). With
    ``teacher_dirs`` (the work folders of earlier cross-validations with the same folds) the
    fold's student is distilled from their runs of the same fold."""
    from kwstool.model.config import TrainConfig
    from kwstool.model.quantize import quantize
    from kwstool.model.train import train

    fold_dir = work / f"fold_{f}"
    cached = fold_dir / "result.json"
    if teacher_dirs:
        recipe = dict(recipe, teachers=",".join(str(d / f"fold_{f}" / "run") for d in teacher_dirs))
    cfg = TrainConfig().replace(**recipe)
    if cached.is_file():
        result: dict[str, Any] = json.loads(cached.read_text())
        if same_config(result.get("config") or {}, cfg):
            if "top1_by_source" not in result:  # written before that figure existed
                result.update(_test_figures(fold_dir, pool.labels))
                write_json(cached, result)
            return result
    if merge:
        return None
    t0 = time.perf_counter()
    pool.write(fold_dir / "data", pool.fold_splits(folds, f, seed), f"k{int(folds.max()) + 1}"
               f"-fold{f}-seed{seed}")  # fmt: skip
    for d in teacher_dirs:
        same_split(d / f"fold_{f}" / "data", fold_dir / "data")
    run = fold_dir / "run"
    resume = (run / "config.json").is_file()
    tr = train(fold_dir / "data", run, None if resume else cfg, resume=resume, progress=progress)
    quantize(run, fold_dir / "data")
    result = {"fold": f, "config": cfg.to_dict(), **_test_figures(fold_dir, pool.labels),
              "best_epoch": tr.best_epoch, "epochs_run": tr.epochs_run,
              "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    write_json(cached, result)
    return result


def same_config(stored: dict[str, Any], cfg: Any) -> bool:
    """Whether a cached fold's stored config is ``cfg``: a field added to TrainConfig after the
    fold ran counts as its default value, so cached folds stay valid across such additions."""
    from kwstool.model.config import TrainConfig

    now, defaults = cfg.to_dict(), TrainConfig().to_dict()
    return set(stored) <= set(now) and all(stored.get(k, defaults[k]) == v for k, v in now.items())


def _test_figures(fold_dir: Path, labels: list[str]) -> dict[str, Any]:
    """The int8 model's figures on the fold's test clips: top-1, macro-F1, per-class recall,
    balanced top-1 (the mean of the class recalls: the top-1 on a test set with the same
    number of clips of every label, as the official Speech Commands test set is) and top-1
    per source folder."""
    from kwstool.model.evaluate import evaluate

    data = fold_dir / "data"
    ev = evaluate(fold_dir / "run", data, split="test", png_out=fold_dir / "confusion.png")
    assert ev.predictions is not None
    # the fold's data and its model share the pool's labels, so the indices are the same
    right = ev.predictions == np.load(data / "test_labels.npy").astype(np.int64)
    source = np.array([ln.partition("/")[0] for ln in (data / "test_files.txt").read_text(
        encoding="utf-8").splitlines()])  # fmt: skip
    recalls = [c.recall for c in ev.per_class if c.recall is not None]
    return {"test_count": ev.count, "top1": ev.top1, "correct": int(np.trace(ev.confusion)),
            "macro_f1": ev.macro_f1, "balanced_top1": round(float(np.mean(recalls)), 6),
            "top1_by_source": {s: round(float(right[source == s].mean()), 6)
                               for s in sorted(set(source.tolist()))},
            "recall": {c.label: c.recall for c in ev.per_class}}  # fmt: skip


def same_split(teacher_data: Path, data: Path) -> None:
    """A teacher's fold must hold exactly this fold's clips in each split: one that saw a test
    clip in training would leak it into the student."""
    for split in SPLITS:
        theirs, ours = teacher_data / f"{split}_files.txt", data / f"{split}_files.txt"
        if not theirs.is_file() or theirs.read_bytes() != ours.read_bytes():
            raise KwsError(
                f"{theirs}: the teacher's {split} clips differ from this fold's ({ours}); "
                "teachers must come from a cross-validation with the same k, seed and data"
            )


def _mean_std(values: list[float | None]) -> dict[str, float | None]:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if not len(v):
        return {"mean": None, "std": None}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def summarize(folds: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    """Mean and (sample) standard deviation over folds; pooled top-1 over every clip."""
    total = sum(r["test_count"] for r in folds)
    return {
        "k": len(folds), "clips": total,
        "pooled_top1": sum(r["correct"] for r in folds) / max(1, total),
        "top1": _mean_std([r["top1"] for r in folds]),
        "macro_f1": _mean_std([r["macro_f1"] for r in folds]),
        "balanced_top1": _mean_std([r.get("balanced_top1") for r in folds]),
        "top1_by_source": {src: _mean_std([r["top1_by_source"].get(src) for r in folds])
                           for src in sorted({s for r in folds
                                              for s in r.get("top1_by_source", {})})},
        "recall": {lab: _mean_std([r["recall"].get(lab) for r in folds]) for lab in labels},
    }  # fmt: skip


def cross_validate(recipe: dict[str, Any], k: int = 5, epochs: int | None = None, seed: int = 0,
                   *, sources: dict[str, Path], work: Path, progress: bool = False,
                   folds_to_run: list[int] | None = None,
                   teacher_dirs: tuple[Path, ...] = (),
                   merge: bool = False,
                   train_only: dict[str, Path] | None = None) -> dict[str, Any]:  # fmt: skip
    """Speaker-grouped ``k``-fold cross-validation of ``recipe`` (TrainConfig fields) on the
    pooled clips of the prepared folders ``sources`` ({name: folder}); see the module docs.

    ``epochs`` overrides the recipe's; ``seed`` drives the fold assignment and training.
    ``folds_to_run`` limits the run to some folds (the summary then covers those).
    ``teacher_dirs``: distil every fold from these cross-validations' runs of it.
    ``train_only``: prepared folders whose clips join every fold's train split. ``merge``:
    train nothing, read the folds' results written by earlier (e.g. parallel) calls. Returns
    ``{"recipe", "k", "seed", "folds": [...], "summary": {...}, "seconds"}``.
    """
    if k < 2:
        raise KwsError(f"k={k}: cross-validation needs at least 2 folds")
    t0 = time.perf_counter()
    recipe = dict(recipe, seed=seed, **({"epochs": epochs} if epochs else {}))
    pool = Pool(sources, train_only)
    folds = pool.assign_folds(k, seed)
    wanted = list(range(k)) if folds_to_run is None else folds_to_run
    bad = [f for f in wanted if not 0 <= f < k]
    if bad:
        raise KwsError(f"fold {bad[0]} does not exist; k={k} folds are numbered 0..{k - 1}")
    found = [_fold(pool, folds, f, recipe, Path(work), seed, progress, teacher_dirs, merge)
             for f in wanted]  # fmt: skip
    missing = [f for f, r in zip(wanted, found) if r is None]
    if missing:
        raise KwsError(
            f"{work}: no result of this recipe for fold(s) {', '.join(map(str, missing))}; "
            f"run them first (one job per fold), then merge"
        )
    results = [r for r in found if r is not None]
    return {"recipe": recipe, "k": k, "seed": seed, "folds": results,
            "fold_sizes": np.bincount(folds[folds >= 0], minlength=k).tolist(),
            "train_only_clips": int(pool.train_only.sum()),
            "summary": summarize(results, pool.labels),
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def train_all(
    recipe: dict[str, Any],
    seed: int = 0,
    epochs: int | None = None,
    *,
    sources: dict[str, Path],
    work: Path,
    progress: bool = False,
    train_only: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """The model to ship for a cross-validated ``recipe``: trained on every clip of ``sources``
    (no held-out speakers: ``select_by='last'`` keeps the last epoch's weights, as the folds'
    long runs without early stopping end near their best), then quantized; written to
    ``work/all/{data,run}``. Its figures are the cross-validation's, its thresholds those
    calibrated on the folds' streams (``scripts/bench_streaming.py --cv --write-calibration``).
    Resumes an interrupted run."""
    from kwstool.model.config import TrainConfig
    from kwstool.model.quantize import quantize
    from kwstool.model.train import train

    recipe = dict(recipe, seed=seed, select_by="last", **({"epochs": epochs} if epochs else {}))
    cfg = TrainConfig().replace(**recipe)
    pool = Pool(sources, train_only)
    every = np.arange(len(pool.y))
    none = every[:0]
    out = Path(work) / "all"
    pool.write(out / "data", {"train": every, "validation": none, "test": none}, f"all-seed{seed}")
    run = out / "run"
    resume = (run / "config.json").is_file()
    t0 = time.perf_counter()
    tr = train(out / "data", run, None if resume else cfg, resume=resume, progress=progress)
    q = quantize(run, out / "data")
    return {
        "run": str(run),
        "clips": len(every),
        "config": cfg.to_dict(),
        "epochs_run": tr.epochs_run,
        "model_bytes": q.model_bytes,
        "arena_bytes": q.arena_bytes,
        "seconds": round(time.perf_counter() - t0, 1),
    }
