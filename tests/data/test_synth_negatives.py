"""Synthetic negatives (`kwstool synth WORD --negatives/--confusables`) and the flite engine.

Needs the espeak-ng binary (phonemes of the generic rule, the clips) and flite for its test;
scripts/setup.sh --test installs both.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from wavgen import as_int16, write_wav

from kwstool.cli import main
from kwstool.core.audio import load_wav
from kwstool.data import load_prepared, prepare, speaker_of, which_split
from kwstool.data.confusables import confusable_texts, nearest, says_keyword
from kwstool.data.synth import synth
from kwstool.data.tts.flite import VOICES as FLITE_VOICES
from kwstool.errors import KwsError

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng not installed (CI installs it: apt-get install espeak-ng)",
)
needs_flite = pytest.mark.skipif(
    shutil.which("flite") is None,
    reason="flite not installed (scripts/setup.sh --test installs it: apt-get install flite)",
)


def test_says_keyword_whole_words_in_order():
    assert says_keyword("let's go now", "go") and says_keyword("Hey, lamp!", "hey_lamp")
    assert not says_keyword("goat ago", "go") and not says_keyword("lamp hey", "hey_lamp")


def test_confusables_of_the_speech_commands_words():
    go = confusable_texts("go")
    assert {"eight", "two", "no", "toe", "goat", "ago"} <= set(go)
    assert {"one", "five"} <= set(confusable_texts("on"))
    assert "seven" in confusable_texts("stop")
    for word in ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"):
        texts = confusable_texts(word)
        assert len(texts) >= 10 and not [t for t in texts if says_keyword(t, word)], word
        assert sum(" " in t and len(t.split()) >= 3 for t in texts) >= 3  # running phrases


@needs_espeak
def test_confusables_of_a_custom_word_by_phonemes():
    texts = confusable_texts("hey_lamp")
    assert texts[:2] == ["hey", "lamp"]  # its parts alone
    assert {"lamb", "camp", "damp"} & set(texts)  # a shared-phoneme neighbour of "lamp"
    assert any(t.endswith(" lamp") for t in texts[2:]) and any(t.startswith("hey ") for t in texts)
    assert not [t for t in texts if says_keyword(t, "hey lamp")]
    # homophones are no negatives: "two" sounds exactly like "too"
    near = nearest("too")
    assert "two" not in near and near


@needs_espeak
def test_negatives_one_folder_per_text_and_prepare_keeps_them_train_only(tmp_path):
    res = synth("go", 6, tmp_path / "synth_neg", seed=2, negatives=["no", "toe nail"])
    assert res.texts == ["no", "toe nail"] * 3
    for sub, k0 in (("no", 0), ("toe_nail", 1)):
        names = sorted(p.name for p in (tmp_path / "synth_neg" / sub).iterdir())
        assert names == sorted(f"{res.voices[k]}_nohash_{k}.wav" for k in range(k0, 6, 2))
    for p in res.saved:
        x = load_wav(p, clip_samples=None)
        assert len(x) == 16000 and x.dtype == np.int16 and np.abs(x).max() > 1000
    # a keyword source whose speakers fall in every split, then the synthetic negatives
    own, spk, k = tmp_path / "own" / "go", [], 0
    while len({which_split(s, 10.0, 10.0) for s in spk}) < 3 or len(spk) < 6:
        spk.append(f"person{k}")
        k += 1
    own.mkdir(parents=True)
    t = np.arange(16000) / 16000
    for i, s in enumerate(spk):
        write_wav(own / f"{s}_nohash_0.wav", as_int16(0.3 * np.sin(2 * np.pi * (400 + 9 * i) * t)))
    prepare(
        [f"own={own.parent}"],
        tmp_path / "prep",
        words="go",
        negatives=[f"synth_neg={tmp_path / 'synth_neg'}"],
        unknown_min=2,
        progress=False,
    )
    data = load_prepared(tmp_path / "prep")
    src = data.manifest["sources"]["synth_neg"]
    assert src["synthetic"] and src["role"] == "negatives"
    assert src["clips"]["validation"] == src["clips"]["test"] == 0 and src["clips"]["train"] > 0
    d = data.split("train")
    neg = [(f, data.labels[y]) for f, y in zip(d.files, d.labels) if f.startswith("synth_neg:")]
    assert neg and all(label == "_unknown_" for _, label in neg)
    assert {speaker_of(f.split(":", 1)[1]) for f, _ in neg} <= set(res.voices)


@needs_espeak
def test_confusables_cli_and_a_negative_that_says_the_keyword(tmp_path, capsys):
    rc = main(["synth", "go", "-n", "3", "-o", str(tmp_path / "n"), "--confusables", "--plain"])
    out = capsys.readouterr().out
    assert rc == 0 and "3 espeak-ng clip(s) of 3 texts (eight, two, no)" in out
    assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["eight", "no", "two"]
    with pytest.raises(KwsError, match=r"--negatives \"let's go\": says the keyword 'go'"):
        synth("go", 2, tmp_path / "k", negatives=["toe", "let's go"])
    assert not (tmp_path / "k").exists()
    rc = main(["synth", "go", "-n", "2", "-o", str(tmp_path / "k"), "--negatives", "no,Go!"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "says the keyword 'go'" in err and "\n" not in err


@needs_flite
def test_flite_engine_clips(tmp_path):
    a = synth("hey_lamp", 3, tmp_path / "a", seed=1, engine="flite")
    b = synth("hey_lamp", 3, tmp_path / "b", seed=1, engine="flite")
    assert a.engine == "flite" and len(set(a.voices)) == 3 and set(a.voices) <= set(FLITE_VOICES)
    assert [p.read_bytes() for p in a.saved] == [p.read_bytes() for p in b.saved]
    for p in a.saved:
        x = load_wav(p, clip_samples=None)
        assert len(x) == 16000 and 0.05 * 32768 < np.abs(x).max() < 32767
