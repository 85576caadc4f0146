"""Speaker-grouped cross-validation (kwstool.model.crossval) on a tiny tone dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from wavgen import write_wav

from kwstool.errors import KwsError
from kwstool.model import crossval

TONES = {"yes": 500.0, "no": 1200.0, "cat": 2500.0}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """Two prepared sources of tone clips; speakers 0-4 speak in both (as in the benchmark)."""
    from kwstool.data import prepare

    base = tmp_path_factory.mktemp("cv")
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    out = {}
    for name, speakers in (("a", range(14)), ("b", range(0, 20, 2))):
        src = base / name
        for word, freq in TONES.items():
            (src / word).mkdir(parents=True)
            for s in speakers:
                f = freq * (1 + 0.05 * rng.standard_normal())
                x = 0.3 * np.sin(2 * np.pi * f * t) * (np.abs(t - 0.5) < 0.3)
                x += 0.01 * rng.standard_normal(16000)
                write_wav(src / word / f"{s:08x}_nohash_{name}.wav", (x * 32767).astype(np.int16))
        (src / "_background_noise_").mkdir()
        noise = 0.1 * rng.standard_normal(16000 * 5)
        write_wav(src / "_background_noise_" / "white.wav", (noise * 32767).astype(np.int16))
        prepare(str(src), base / f"{name}_prepared", words=["yes", "no"], progress=False)
        out[name] = base / f"{name}_prepared"
    return out


def test_group_of_speech_and_silence_lines():
    assert crossval.group_of("a/yes/0c540988_nohash_0.wav") == "speaker:0c540988"
    assert crossval.group_of("b/_unknown_/cat_0c540988_nohash_1.wav") == "speaker:0c540988"
    assert crossval.group_of("a/#silence:_background_noise_/white.wav@1234", "test") == (
        "silence:a/_background_noise_/white.wav:test"
    )


def test_folds_keep_every_group_on_one_side_and_test_every_clip_once(sources):
    pool = crossval.Pool(sources)
    k = 3
    folds = crossval.assign_folds(pool.groups, k, seed=0)
    sizes = np.bincount(folds, minlength=k)
    assert sizes.sum() == len(pool.y) and sizes.max() - sizes.min() <= max(
        np.unique(pool.groups, return_counts=True)[1]
    )  # balanced up to one group
    tested = np.zeros(len(pool.y), dtype=int)
    groups = np.asarray(pool.groups, dtype=object)
    for f in range(k):
        rows = pool.fold_splits(folds, f, seed=0)
        all_rows = np.concatenate(list(rows.values()))
        assert len(all_rows) == len(set(all_rows)) == len(pool.y)
        assert len(rows["validation"]) > 0 and len(rows["train"]) > 0
        test_groups = set(groups[rows["test"]])
        assert not test_groups & set(groups[rows["train"]])
        assert not test_groups & set(groups[rows["validation"]])
        tested[rows["test"]] += 1
    assert np.all(tested == 1)
    # a speaker of both sources is one group: all its clips share one fold
    shared = [i for i, g in enumerate(pool.groups) if g == "speaker:00000002"]
    assert {pool.files[i].split("/")[0] for i in shared} == {"a", "b"}
    assert len(set(folds[shared])) == 1


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A prepared source of other speakers with a subset of the labels (no ``yes``): what
    synthetic negatives of one keyword look like."""
    from kwstool.data import prepare

    base = tmp_path_factory.mktemp("tts")
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    for word, freq in (("no", 1200.0), ("cat", 2500.0)):
        (base / "src" / word).mkdir(parents=True)
        for s in range(30):
            x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(16000)
            write_wav(base / "src" / word / f"voice{s}_nohash_0.wav", (x * 32767).astype(np.int16))
    prepare(
        str(base / "src"),
        base / "prepared",
        words=["no"],
        silence_share=0.0,
        unknown_share=1000.0,
        progress=False,
    )
    return base / "prepared"


def test_train_only_rows_train_every_fold_and_leave_its_test_alone(sources, synthetic):
    plain = crossval.Pool(sources)
    pool = crossval.Pool(sources, {"tts": synthetic})
    assert pool.hash != plain.hash
    only = pool.train_only
    assert only.sum() == 60 and not only[: len(plain.y)].any()
    # their labels are mapped by name onto the pool's ('no' of a 3-label source is index 3 here)
    no = pool.labels.index("no")
    assert sorted(set(pool.y[only].tolist())) == [pool.labels.index("_unknown_"), no]
    folds = pool.assign_folds(3, seed=0)
    assert np.all(folds[only] == -1)
    assert np.array_equal(folds[~only], crossval.assign_folds(plain.groups, 3, seed=0))
    for f in range(3):
        rows, before = pool.fold_splits(folds, f, seed=0), plain.fold_splits(folds[~only], f, 0)
        assert np.array_equal(rows["test"], before["test"])
        assert np.array_equal(rows["validation"], before["validation"])
        assert set(np.flatnonzero(only)) <= set(rows["train"])
    with pytest.raises(KwsError, match="labels"):  # a source that is tested must match
        crossval.Pool({**sources, "tts": synthetic})


def test_cross_validate_runs_every_fold_and_summarizes(sources, tmp_path):
    recipe = {"model": "tiny_conv", "batch_size": 8, "lr": 0.01}
    out = crossval.cross_validate(recipe, k=2, epochs=2, seed=0, sources=sources, work=tmp_path)
    pool = crossval.Pool(sources)
    summ = out["summary"]
    assert [f["fold"] for f in out["folds"]] == [0, 1]
    assert summ["clips"] == len(pool.y) == sum(out["fold_sizes"])
    assert summ["pooled_top1"] == pytest.approx(
        sum(f["correct"] for f in out["folds"]) / len(pool.y)
    )
    tops = [f["top1"] for f in out["folds"]]
    assert summ["top1"]["mean"] == pytest.approx(np.mean(tops))
    assert summ["top1"]["std"] == pytest.approx(np.std(tops, ddof=1))
    assert set(summ["recall"]) == set(pool.labels)
    for f in out["folds"]:
        recalls = [r for r in f["recall"].values() if r is not None]
        assert f["balanced_top1"] == pytest.approx(np.mean(recalls), abs=1e-6)
        # the per-source figures, weighted by the sources' test clips, give the top-1 back
        files = (tmp_path / f"fold_{f['fold']}" / "data" / "test_files.txt").read_text()
        counts = {s: files.count(f"{s}/") for s in f["top1_by_source"]}
        assert set(counts) == {"a", "b"} and sum(counts.values()) == f["test_count"]
        weighted = sum(f["top1_by_source"][s] * n for s, n in counts.items())
        assert weighted / f["test_count"] == pytest.approx(f["top1"], abs=1e-5)
    assert set(summ["top1_by_source"]) == {"a", "b"}
    assert out["recipe"]["epochs"] == 2 and all(f["epochs_run"] == 2 for f in out["folds"])
    stored = json.loads((tmp_path / "fold_1" / "result.json").read_text())
    assert stored == out["folds"][1]
    # a second call reuses the finished folds
    again = crossval.cross_validate(recipe, k=2, epochs=2, seed=0, sources=sources, work=tmp_path)
    assert again["folds"] == out["folds"]
    with pytest.raises(KwsError, match="k=1: cross-validation needs at least 2 folds"):
        crossval.cross_validate(recipe, k=1, sources=sources, work=tmp_path)


def test_a_teacher_from_other_folds_is_refused(tmp_path):
    from kwstool.errors import KwsError
    from kwstool.model.crossval import same_split

    for name, test in (("ours", "a\nb\n"), ("theirs", "a\nc\n")):
        (tmp_path / name).mkdir()
        for split in ("train", "validation"):
            (tmp_path / name / f"{split}_files.txt").write_text("x\n")
        (tmp_path / name / "test_files.txt").write_text(test)
    same_split(tmp_path / "ours", tmp_path / "ours")
    with pytest.raises(KwsError, match="test clips differ"):
        same_split(tmp_path / "theirs", tmp_path / "ours")


@pytest.mark.slow
def test_folds_run_as_separate_jobs_then_merge(sources, tmp_path):
    recipe = {"model": "tiny_conv", "batch_size": 8, "lr": 0.01}
    kw = {"k": 2, "epochs": 1, "seed": 0, "sources": sources, "work": tmp_path}
    one = crossval.cross_validate(recipe, folds_to_run=[1], **kw)
    assert [f["fold"] for f in one["folds"]] == [1] and not (tmp_path / "fold_0").exists()
    with pytest.raises(KwsError, match=r"no result of this recipe for fold\(s\) 0; run them"):
        crossval.cross_validate(recipe, merge=True, **kw)
    zero = crossval.cross_validate(recipe, folds_to_run=[0], **kw)
    merged = crossval.cross_validate(recipe, merge=True, **kw)
    assert merged["folds"] == zero["folds"] + one["folds"]
    pool = crossval.Pool(sources)
    assert merged["summary"] == crossval.summarize(merged["folds"], pool.labels)
    assert merged["summary"]["clips"] == len(pool.y)
    # another recipe's fold results are not merged in
    with pytest.raises(KwsError, match=r"fold\(s\) 0, 1"):
        crossval.cross_validate(dict(recipe, lr=0.02), merge=True, **kw)
    with pytest.raises(KwsError, match="fold 2 does not exist; k=2 folds are numbered 0..1"):
        crossval.cross_validate(recipe, folds_to_run=[2], **kw)


def test_a_cached_fold_stays_valid_when_trainconfig_gains_a_field():
    from kwstool.model.config import TrainConfig
    from kwstool.model.crossval import same_config

    cfg = TrainConfig().replace(epochs=7)
    stored = cfg.to_dict()
    assert same_config(stored, cfg)
    older = {k: v for k, v in stored.items() if k != "distribute"}  # written before the field
    assert same_config(older, cfg)
    assert not same_config(older, cfg.replace(distribute="mirrored"))
    assert not same_config({**stored, "epochs": 8}, cfg)
    assert not same_config({**stored, "retired_field": 1}, cfg)
