"""Own wake word (issue 22): one person's takes reach training, validation and test; long and
non-WAV clips are read and centred on their word; every prepare reports real/synthetic counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from wavgen import as_int16, write_wav

from kwstool.cli import main
from kwstool.data import load_prepared, prepare, speaker_of, which_split
from kwstool.data.takes import find_words

SPLITS = ("train", "validation", "test")
RATE = 16000


def _word(freq: float, k: int, seconds: float = 0.4) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(k)
    return 0.3 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t)) + rng.normal(0, 1e-3, len(t))


def _clip(freq: float, k: int) -> np.ndarray:
    x = np.random.default_rng(k + 1000).normal(0, 1e-3, RATE)
    x[5000 : 5000 + int(0.4 * RATE)] += _word(freq, k)
    return as_int16(x)


def _negatives(root: Path, n: int = 30) -> Path:
    for i in range(n):
        spk = f"neg{i}"
        write_wav(_mk(root / "dog" / f"{spk}_nohash_0.wav"), _clip(1500 + 7 * i, 500 + i))
    write_wav(
        _mk(root / "_background_noise_" / "room.wav"),
        as_int16(np.random.default_rng(9).normal(0, 0.05, 5 * RATE)),
    )
    return root


def _mk(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _own(root: Path, speakers: list[str], takes: int) -> Path:
    for s, spk in enumerate(speakers):
        for k in range(takes):
            write_wav(
                _mk(root / "hey_lamp" / f"{spk}_nohash_{k}.wav"), _clip(500 + 5 * k + s, 10 * s + k)
            )
    return root


def _speaker_in(split: str, prefix: str) -> str:
    return next(f"{prefix}{k}" for k in range(1000) if which_split(f"{prefix}{k}", 10, 10) == split)


def _word_lines(out: Path, split: str) -> list[str]:
    d = load_prepared(out)
    s = d.split(split)
    k = d.labels.index("hey_lamp")
    return [f for f, lab in zip(s.files, s.labels) if lab == k]


@pytest.mark.parametrize("n_speakers", [1, 2])
def test_one_or_two_speakers_are_split_by_take(tmp_path, n_speakers):
    # speakers whose hash puts them all in validation: before, train held none of their takes
    speakers = [_speaker_in("validation", f"user{i}_") for i in range(n_speakers)]
    own = _own(tmp_path / "own", speakers, 20 // n_speakers)
    res = prepare(
        [f"own={own}"],
        tmp_path / "out",
        words="hey_lamp",
        negatives=[f"neg={_negatives(tmp_path / 'neg')}"],
        unknown_min=5,
        progress=False,
    )
    real = {s: res.keyword_clips["hey_lamp"][s]["real"] for s in SPLITS}
    assert real == {"train": 16, "validation": 2, "test": 2}
    assert all(res.keyword_clips["hey_lamp"][s]["synthetic"] == 0 for s in SPLITS)
    assert {s: len(_word_lines(tmp_path / "out", s)) for s in SPLITS} == real
    note = [w for w in res.warnings if "split by take" in w]
    assert len(note) == 1 and f"{n_speakers} speaker(s)" in note[0] and "train 16" in note[0]
    assert not any("NO REAL RECORDING" in w for w in res.warnings)
    # deterministic: the same takes in the same splits on a second prepare
    again = prepare(
        [f"own={own}"],
        tmp_path / "out2",
        words="hey_lamp",
        negatives=[f"neg={tmp_path / 'neg'}"],
        unknown_min=5,
        progress=False,
    )
    assert again.keyword_clips == res.keyword_clips
    assert _word_lines(tmp_path / "out2", "validation") == _word_lines(
        tmp_path / "out", "validation"
    )


def test_speakers_without_a_validation_speaker_get_one_moved(tmp_path):
    speakers = [_speaker_in("train", f"p{i}_") for i in range(4)]  # all hash into train
    own = _own(tmp_path / "own", speakers, 3)
    (own / "hey_lamp" / f"{speakers[2]}_nohash_2.wav").unlink()  # the speaker with fewest takes
    res = prepare(
        [f"own={own}"],
        tmp_path / "out",
        words="hey_lamp",
        negatives=[f"neg={_negatives(tmp_path / 'neg')}"],
        unknown_min=5,
        progress=False,
    )
    val = _word_lines(tmp_path / "out", "validation")
    test = _word_lines(tmp_path / "out", "test")
    assert {speaker_of(f.split(":", 1)[1]) for f in val} == {speakers[2]}
    assert len({speaker_of(f.split(":", 1)[1]) for f in test}) == 1
    assert any(f"moved speaker {speakers[2]}" in w for w in res.warnings)
    # speakers stay disjoint across splits
    seen: dict[str, str] = {}
    for s in SPLITS:
        for f in _word_lines(tmp_path / "out", s):
            assert seen.setdefault(speaker_of(f.split(":", 1)[1]), s) == s


def test_counts_printed_and_no_real_train_clip_is_loud(tmp_path, capsys):
    syn = _own(tmp_path / "synth", ["en-us+f1", "en-gb+m3"], 4)
    neg = _negatives(tmp_path / "neg")
    code = main(
        [
            "prepare",
            "--source",
            f"synth={syn}",
            "--negatives",
            f"neg={neg}",
            "--words",
            "hey_lamp",
            "--unknown-min",
            "5",
            "--data-dir",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert "hey_lamp: train 0 real + 8 synthetic, validation 0 real, test 0 real" in out
    assert "NO REAL RECORDING OF 'hey_lamp' IN TRAIN" in err


def test_long_flac_clips_are_centred_on_their_word(tmp_path):
    own = tmp_path / "own" / "hey_lamp"
    own.mkdir(parents=True)
    starts = []
    for k in range(6):  # 3 s FLAC clips, the word at 0.3 .. 2.3 s
        x = np.random.default_rng(k).normal(0, 1e-3, 3 * RATE)
        start = int((0.3 + 0.4 * k) * RATE)
        x[start : start + int(0.4 * RATE)] += _word(600, k)
        soundfile.write(own / f"take{k}.flac", as_int16(x), RATE)
        starts.append(start)
    write_wav(own / "short.wav", _clip(600, 99))  # 1 s: stays as it is
    res = prepare(
        [f"own={tmp_path / 'own'}"],
        tmp_path / "out",
        words="hey_lamp",
        negatives=[f"neg={_negatives(tmp_path / 'neg')}"],
        unknown_min=5,
        progress=False,
    )
    assert any(w.startswith("6 clip(s) longer than 1 s were centred") for w in res.warnings)
    d = load_prepared(tmp_path / "out")
    k = d.labels.index("hey_lamp")
    n = 0
    for s in SPLITS:
        part = d.split(s)
        for f, lab, audio in zip(part.files, part.labels, part.audio):
            if lab == k and f.endswith(".flac"):
                ((a, b),) = find_words(np.asarray(audio))
                assert abs((a + b) / 2 - RATE / 2) <= 0.03 * RATE  # the word, centred
                n += 1
    assert n == 6
