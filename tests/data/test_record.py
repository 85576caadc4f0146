"""`kwstool record`: takes found by energy, checked, cut to 1 s and named for `prepare`.

A WAV stands in for the microphone (:class:`kwstool.data.record.WavBlocks`, the same session
code); `--wav` splits a long recording of repeated tone bursts or espeak-ng words.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from wavgen import as_int16, write_wav

from kwstool.cli import main
from kwstool.core.audio import load_wav
from kwstool.data import speaker_of
from kwstool.data.record import WavBlocks, record_session, split_recording
from kwstool.data.takes import find_words
from kwstool.errors import KwsError

RATE = 16000


def _burst(amp: float, freq: float, seconds: float = 0.45) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return amp * np.sin(2 * np.pi * freq * t) * np.hanning(len(t))


def _long_wav(path: Path, amps: list[float], pause: float = 0.8, seed: int = 0) -> Path:
    """Tone bursts of the given peak amplitudes (1.5: clipped) with quiet noise between."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, amp in enumerate(amps):
        parts.append(rng.normal(0, 3e-4, int(pause * RATE)))
        parts.append(np.clip(_burst(amp, 300 + 60 * i), -1.0, 1.0))
    parts.append(rng.normal(0, 3e-4, int(pause * RATE)))
    return write_wav(path, as_int16(np.concatenate(parts)))


def test_split_names_files_and_rejects_with_reasons(tmp_path):
    wav = _long_wav(tmp_path / "long.wav", [0.3, 0.5, 1.5, 0.4, 0.004, 0.6])
    res = split_recording(wav, "hey_lamp", tmp_path / "rec", speaker="alice")
    names = sorted(p.name for p in (tmp_path / "rec" / "hey_lamp").iterdir())
    assert names == [f"alice_nohash_{k}.wav" for k in range(4)]
    assert [p.name for p in res.saved] == names
    assert len(res.rejected) == 2
    assert "clipped" in res.rejected[0] and "input gain" in res.rejected[0]
    assert "too quiet" in res.rejected[1] and "dBFS" in res.rejected[1]
    for p in res.saved:
        x = load_wav(p, clip_samples=None)
        assert len(x) == RATE and speaker_of(f"hey_lamp/{p.name}") == "alice"
        ((start, end),) = find_words(x)  # one word, centred in the second
        assert abs((start + end) / 2 - RATE / 2) < 0.05 * RATE
        assert np.abs(x).max() < 32767


def test_numbering_continues_after_existing_files(tmp_path):
    wav = _long_wav(tmp_path / "long.wav", [0.3, 0.5])
    folder = tmp_path / "rec" / "hey_lamp"
    folder.mkdir(parents=True)
    (folder / "alice_nohash_7.wav").write_bytes(b"")
    res = split_recording(wav, "hey_lamp", tmp_path / "rec", speaker="alice")
    assert [p.name for p in res.saved] == ["alice_nohash_8.wav", "alice_nohash_9.wav"]
    res = split_recording(wav, "hey_lamp", tmp_path / "rec", speaker="bob")
    assert [p.name for p in res.saved] == ["bob_nohash_0.wav", "bob_nohash_1.wav"]


def test_espeak_words_are_split(tmp_path):
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed (CI installs it: apt-get install espeak-ng)")
    parts = []
    for i, voice in enumerate(["en-us", "en-gb+f3", "en-us+m3"]):
        f = tmp_path / f"say{i}.wav"
        subprocess.run([exe, "-v", voice, "-w", str(f), "hey lamp"], check=True)
        parts += [np.zeros(int(0.7 * RATE), np.int16), load_wav(f, clip_samples=None)]
    wav = write_wav(tmp_path / "session.wav", np.concatenate(parts + [parts[0]]))
    res = split_recording(wav, "hey_lamp", tmp_path / "rec", speaker="me")
    assert [p.name for p in res.saved] == [f"me_nohash_{k}.wav" for k in range(3)]
    assert res.rejected == []


def test_guided_session_reads_blocks_like_a_microphone(tmp_path):
    # takes of 1.25 s: burst, clipped burst, silence, burst
    rng = np.random.default_rng(1)
    take = int(1.25 * RATE)

    def window(x: np.ndarray | None) -> np.ndarray:
        w = rng.normal(0, 3e-4, take)
        if x is not None:
            w[3000 : 3000 + len(x)] += x
        return np.clip(w, -1, 1)

    audio = np.concatenate(
        [window(_burst(0.4, 400)), window(_burst(1.5, 500)), window(None), window(_burst(0.5, 600))]
    )
    wav = write_wav(tmp_path / "mic.wav", as_int16(audio))
    res = record_session(
        WavBlocks(wav), "hey_lamp", 2, tmp_path / "rec", "carol", take_seconds=1.25, countdown=0
    )
    assert [p.name for p in res.saved] == ["carol_nohash_0.wav", "carol_nohash_1.wav"]
    assert len(res.rejected) == 2
    assert res.rejected[0].startswith("clipped") and res.rejected[1].startswith("silent")


def test_all_silent_writes_nothing(tmp_path):
    wav = write_wav(tmp_path / "quiet.wav", np.zeros(3 * RATE, np.int16))
    with pytest.raises(KwsError, match=r"no word found, the recording is silent"):
        split_recording(wav, "hey_lamp", tmp_path / "rec", speaker="alice")
    with pytest.raises(KwsError, match=r"no usable take .*silent.*nothing written"):
        record_session(
            WavBlocks(wav), "hey_lamp", 2, tmp_path / "rec", "alice", take_seconds=1.0, countdown=0
        )
    assert not list((tmp_path / "rec").rglob("*.wav"))


def test_cli_wav_split_and_one_line_errors(tmp_path, capsys, monkeypatch):
    wav = _long_wav(tmp_path / "long.wav", [0.3, 1.5])
    out = tmp_path / "rec"
    rc = main(["record", "hey_lamp", "--wav", str(wav), "--out", str(out), "--speaker", "dan"])
    assert rc == 0 and (out / "hey_lamp" / "dan_nohash_0.wav").is_file()
    captured = capsys.readouterr()
    assert "wrote 1 clip(s)" in captured.out and "clipped" in captured.err

    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["record", "hey_lamp", "--wav", str(wav), "--out", str(blocker / "sub")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "cannot write there" in err and "\n" not in err

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as if it were not installed
    rc = main(["record", "hey_lamp", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "pip install sounddevice" in err and "libportaudio2" in err
    assert "\n" not in err


def test_session_joined_with_digital_silence_keeps_every_take(tmp_path):
    # separate clips, each with its own room tone at -57 dBFS, joined with exact zeros between
    # them (what an editor makes): the noise floor is the room, not the zeros
    rng = np.random.default_rng(3)
    parts = [np.zeros(RATE // 2)]
    for i in range(8):
        clip = rng.normal(0, 10 ** (-57 / 20), int(1.5 * RATE))
        clip[8000 : 8000 + int(0.45 * RATE)] += _burst(0.3, 300 + 50 * i)
        parts += [clip, np.zeros(RATE // 2)]
    wav = write_wav(tmp_path / "joined.wav", as_int16(np.concatenate(parts)))
    res = split_recording(wav, "hey_lamp", tmp_path / "rec", speaker="me")
    assert len(res.saved) == 8 and res.rejected == []  # before: 8 x "too long (1.5 s)"
    for p in res.saved:
        ((start, end),) = find_words(load_wav(p, clip_samples=None))
        assert end - start < 0.6 * RATE  # the burst, not the clip's background


def test_take_length_is_checked_before_the_microphone_opens(tmp_path, capsys):
    """Issue 23, row 13: --seconds -1 is refused (before asking for a microphone)."""
    from kwstool.cli import main

    assert main(["record", "hey_lamp", "--seconds", "-1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --seconds -1.0: out of range; give a number from 1 to 60 s"
    with pytest.raises(KwsError, match=r"^--seconds 0\.2: out of range"):
        record_session(None, "hey_lamp", 1, tmp_path, take_seconds=0.2)  # type: ignore[arg-type]
