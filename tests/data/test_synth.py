"""`kwstool synth`: espeak-ng voices plus augmentation, deterministic, one speaker per voice.

Needs the real espeak-ng binary (CI installs it with apt-get); skipped with the reason if absent.
"""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from kwstool.cli import main
from kwstool.core.audio import load_wav
from kwstool.data import speaker_of
from kwstool.data.synth import synth
from kwstool.data.takes import find_words
from kwstool.errors import KwsError

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng not installed (CI installs it: apt-get install espeak-ng)",
)


def _digests(paths) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


@needs_espeak
def test_deterministic_files_with_distinct_voice_speakers(tmp_path):
    a = synth("hey_lamp", 6, tmp_path / "a", seed=3)
    b = synth("hey_lamp", 6, tmp_path / "b", seed=3)
    c = synth("hey_lamp", 6, tmp_path / "c", seed=4)
    assert [p.name for p in a.saved] == [p.name for p in b.saved]
    assert _digests(a.saved) == _digests(b.saved)
    assert _digests(a.saved) != _digests(c.saved)
    speakers = [speaker_of(f"hey_lamp/{p.name}") for p in a.saved]
    assert speakers == a.voices and len(set(speakers)) == 6
    assert all("+" in v and v.startswith("en") for v in speakers)
    assert sorted(p.name for p in (tmp_path / "a" / "hey_lamp").iterdir()) == sorted(
        f"{v}_nohash_{k}.wav" for k, v in enumerate(a.voices)
    )
    for p in a.saved:
        x = load_wav(p, clip_samples=None)
        assert len(x) == 16000 and x.dtype == np.int16
        assert 0.05 * 32768 < np.abs(x).max() < 32767  # peak between -26 and 0 dBFS


@needs_espeak
def test_plain_clip_is_centred_on_the_word(tmp_path):
    res = synth("hey_lamp", 3, tmp_path, seed=0, augmented=False)
    for p in res.saved:
        x = load_wav(p, clip_samples=None)
        words = find_words(x)
        start, end = words[0][0], words[-1][1]
        assert abs((start + end) / 2 - 8000) <= 400  # one 20 ms frame of slack plus rounding
        assert end - start > 2000  # "hey lamp" is there, not a click


@needs_espeak
def test_augmentation_uses_given_noise_and_changes_the_audio(tmp_path):
    noise = tmp_path / "noise"
    noise.mkdir()
    from wavgen import as_int16, write_wav

    write_wav(noise / "hum.wav", as_int16(0.3 * np.sin(np.arange(48000) * 0.2)))
    plain = synth("lamp", 4, tmp_path / "p", seed=5, augmented=False)
    aug = synth("lamp", 4, tmp_path / "n", seed=5, noise_dir=noise)
    assert plain.voices == aug.voices
    assert all(a != b for a, b in zip(_digests(plain.saved), _digests(aug.saved)))


def test_missing_engine_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(
        KwsError,
        match=r"espeak-ng .* not installed; install it: "
        r"`sudo apt-get install espeak-ng`",
    ):
        synth("hey_lamp", 2, tmp_path / "out")
    rc = main(["synth", "hey_lamp", "--count", "2", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "sudo apt-get install espeak-ng" in err and "\n" not in err
    assert not (tmp_path / "out").exists()


@needs_espeak
def test_unwritable_out_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["synth", "hey_lamp", "--count", "2", "--out", str(blocker)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "cannot write there" in err and "\n" not in err
