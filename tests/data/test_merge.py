"""Merged `prepare`: own recordings + synthetic clips + negatives in one prepared folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from wavgen import as_int16, write_wav

from kwstool.cli import main
from kwstool.data import load_prepared, prepare, speaker_of, which_split
from kwstool.errors import KwsError

SPLITS = ("train", "validation", "test")


def _clip(freq: float, k: int) -> np.ndarray:
    t = np.arange(16000) / 16000
    rng = np.random.default_rng(k)
    return as_int16(0.3 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.01, 16000))


def _speakers(n_per_split: dict[str, int], prefix: str) -> list[str]:
    """Speaker ids whose hash falls in each split, so every split has some."""
    out, k = [], 0
    need = dict(n_per_split)
    while any(need.values()):
        s = f"{prefix}{k}"
        split = which_split(s, 10.0, 10.0)
        if need[split]:
            need[split] -= 1
            out.append(s)
        k += 1
    return out


def _wav(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, data)


def make_sources(root: Path) -> dict[str, Path]:
    own, syn, neg = root / "own", root / "synth_lamp", root / "neg"
    for i, spk in enumerate(_speakers({"train": 4, "validation": 2, "test": 2}, "person")):
        for n in range(2):
            _wav(own / "hey_lamp" / f"{spk}_nohash_{n}.wav", _clip(500 + 10 * i, i * 10 + n))
    _wav(
        own / "_background_noise_" / "room.wav",
        as_int16(np.random.default_rng(9).normal(0, 0.05, 5 * 16000)),
    )
    # voices whose hash would put them in every split, were they real speakers
    voices = _speakers({"train": 2, "validation": 2, "test": 1}, "en-us+v")
    for v, voice in enumerate(voices):
        for n in range(2):
            _wav(
                syn / "hey_lamp" / f"{voice}_nohash_{2 * v + n}.wav",
                _clip(700 + 10 * v, 100 + 2 * v + n),
            )
    for i, spk in enumerate(_speakers({"train": 20, "validation": 8, "test": 8}, "other")):
        _wav(neg / "dog" / f"{spk}_nohash_0.wav", _clip(900 + i, 200 + i))
    _wav(neg / "hey_lamp" / "intruder_nohash_0.wav", _clip(500, 300))  # a keyword: left out
    _wav(neg / "_unknown_" / "hey_lamp_x1_nohash_0.wav", _clip(500, 301))  # same
    _wav(neg / "_unknown_" / "cat_x2_nohash_0.wav", _clip(1300, 302))
    return {"own": own, "synth": syn, "neg": neg}


def _prepare(src: dict[str, Path], out: Path, **kw):
    return prepare(
        [f"own={src['own']}", f"synth={src['synth']}"],
        out,
        words="hey_lamp",
        negatives=[f"neg={src['neg']}"],
        unknown_min=6,
        progress=False,
        **kw,
    )


def test_synthetic_only_in_train_speakers_disjoint_sources_recorded(tmp_path):
    src = make_sources(tmp_path)
    res = _prepare(src, tmp_path / "lamp")
    data = load_prepared(tmp_path / "lamp")
    lines = {s: data.split(s).files for s in SPLITS}
    # every line names its source; synthetic clips never leave train
    for s in SPLITS:
        for line in lines[s]:
            assert line.removeprefix("#silence:").split(":", 1)[0] in ("own", "synth", "neg")
    assert sum(ln.startswith("synth:") for ln in lines["train"]) == 10
    assert not [ln for s in ("validation", "test") for ln in lines[s] if "synth" in ln]
    # validation and test hold real keyword clips (own speakers hashed there)
    for s in ("validation", "test"):
        d = data.split(s)
        own_kw = [f for f, y in zip(d.files, d.labels) if data.labels[y] == "hey_lamp"]
        assert own_kw and all(f.startswith("own:hey_lamp/") for f in own_kw)
    # speakers disjoint across splits, per source
    for name in ("own", "neg"):
        seen: dict[str, str] = {}
        for s in SPLITS:
            for ln in lines[s]:
                if ln.startswith(f"{name}:"):
                    spk = speaker_of(ln.split(":", 1)[1])
                    assert seen.setdefault(spk, s) == s, (spk, s)
        assert len(set(seen.values())) == 3
    # keyword clips inside the negatives are left out, with a warning
    every = [ln for s in SPLITS for ln in lines[s]]
    assert not [ln for ln in every if "intruder" in ln or "hey_lamp_x1" in ln]
    assert any("left out 2 clip(s) of hey_lamp" in w for w in res.warnings)
    # labels: own/synth word folders are the keyword, negatives are _unknown_
    for s in SPLITS:
        d = data.split(s)
        for f, y in zip(d.files, d.labels):
            want = (
                "_silence_"
                if f.startswith("#silence:")
                else "hey_lamp"
                if f.split(":", 1)[1].startswith("hey_lamp/")
                else "_unknown_"
            )
            assert data.labels[y] == want, f
        assert sum(data.labels[y] == "_unknown_" for y in d.labels) >= 6  # --unknown-min
    m = data.manifest["sources"]
    assert m["synth"]["synthetic"] and m["synth"]["split_rule"] == "train_only"
    assert not m["own"]["synthetic"] and m["neg"]["role"] == "negatives"
    assert m["synth"]["clips"] == {"train": 10, "validation": 0, "test": 0}
    assert sum(m["own"]["clips"].values()) == 16 + sum(
        ln.startswith("#silence:own:") for s in SPLITS for ln in lines[s]
    )
    assert "own_room" in data.background_noise and res.sources == m


def test_synthetic_flag_cache_and_rebuild(tmp_path):
    src = make_sources(tmp_path)
    gen = src["synth"].rename(tmp_path / "generated")
    kw = {"words": "hey_lamp", "negatives": [f"neg={src['neg']}"], "progress": False}
    res = prepare([f"own={src['own']}", f"gen={gen}"], tmp_path / "p", synthetic=["gen"], **kw)
    data = load_prepared(tmp_path / "p")
    assert data.manifest["sources"]["gen"]["synthetic"]
    assert not [
        f for s in ("validation", "test") for f in data.split(s).files if f.startswith("gen:")
    ]
    again = prepare([f"own={src['own']}", f"gen={gen}"], tmp_path / "p", synthetic=["gen"], **kw)
    assert again.cached and again.inputs_hash == res.inputs_hash
    # not synthetic any more: its voices are hashed into all splits like real speakers
    real = prepare([f"own={src['own']}", f"gen={gen}"], tmp_path / "p", **kw)
    assert (
        not real.cached
        and not load_prepared(tmp_path / "p").manifest["sources"]["gen"]["synthetic"]
    )


def test_bad_merges_are_one_line_errors(tmp_path):
    src = make_sources(tmp_path)
    with pytest.raises(KwsError, match=r"--synthetic nope: no source of that name"):
        prepare(
            [f"own={src['own']}"],
            tmp_path / "x",
            words="hey_lamp",
            synthetic=["nope"],
            negatives=[f"neg={src['neg']}"],
            progress=False,
        )
    with pytest.raises(KwsError, match=r"source name 'own' is used twice"):
        prepare(
            [f"own={src['own']}", f"own={src['synth']}"],
            tmp_path / "x",
            words="hey_lamp",
            progress=False,
        )
    with pytest.raises(KwsError, match=r"TFDS cannot be merged"):
        prepare(
            [f"own={src['own']}"],
            tmp_path / "x",
            words="hey_lamp",
            negatives=["sc=tfds"],
            progress=False,
        )
    with pytest.raises(KwsError, match=r"no clips of banana in the keyword sources \(own="):
        prepare(
            [f"own={src['own']}"],
            tmp_path / "x",
            words="banana",
            negatives=[f"neg={src['neg']}"],
            progress=False,
        )
    with pytest.raises(KwsError, match=r"word 'banana' has no clips in the sources own, neg"):
        prepare(
            [f"own={src['own']}"],
            tmp_path / "x",
            words="hey_lamp,banana",
            negatives=[f"neg={src['neg']}"],
            progress=False,
        )
    assert not (tmp_path / "x").exists()


def test_cli_merged_prepare(tmp_path, capsys):
    src = make_sources(tmp_path)
    out = tmp_path / "lamp"
    rc = main(
        [
            "prepare",
            "--source",
            f"own={src['own']}",
            "--source",
            f"synth={src['synth']}",
            "--negatives",
            f"neg={src['neg']}",
            "--words",
            "hey_lamp",
            "--unknown-min",
            "6",
            "--data-dir",
            str(out),
            "--json",
            "--no-progress",
        ]
    )
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["source_kind"] == "merged" and set(d["sources"]) == {"own", "synth", "neg"}
    rc = main(
        [
            "prepare",
            "--source",
            f"own={src['own']}",
            "--source",
            f"synth={src['synth']}",
            "--negatives",
            f"neg={src['neg']}",
            "--words",
            "hey_lamp",
            "--unknown-min",
            "6",
            "--data-dir",
            str(out),
            "--no-progress",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "up to date" in text and "synth (synthetic, train only): train 10" in text
