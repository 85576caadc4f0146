"""`kwstool features`: one WAV, folders, PNGs, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from wavgen import as_int16, tone, write_wav

from kwstool.cli import main
from kwstool.core import frontend as features


def make_folder(tmp_path):
    d = tmp_path / "clips"
    d.mkdir()
    write_wav(d / "a.wav", as_int16(tone(500.0)))
    write_wav(d / "b.wav", as_int16(tone(2000.0, 0.5)), rate=8000)
    (d / "broken.wav").write_text("not audio")
    (d / "empty.wav").write_bytes(b"")
    (d / "notes.txt").write_text("ignored")
    return d


def test_one_wav(tmp_path, capsys):
    wav = write_wav(tmp_path / "x.wav", as_int16(tone(440.0)))
    assert main(["features", str(wav), "--out", str(tmp_path / "x.npy")]) == 0
    arr = np.load(tmp_path / "x.npy")
    assert arr.shape == (49, 40) and arr.dtype == np.int8
    assert np.array_equal(arr, features.compute(as_int16(tone(440.0))))
    assert "shape=(49, 40)" in capsys.readouterr().out


def test_folder_skips_bad_files_and_writes_list(tmp_path, capsys):
    d = make_folder(tmp_path)
    out = tmp_path / "f.npy"
    assert main(["features", str(d), "--out", str(out), "--png", str(tmp_path / "f.png")]) == 0
    arr = np.load(out)
    assert arr.shape == (2, 49, 40)
    assert (tmp_path / "f.files.txt").read_text().splitlines() == [
        str(d / "a.wav"),
        str(d / "b.wav"),
    ]
    err = capsys.readouterr().err
    assert "broken.wav" in err and "empty.wav" in err
    png = (tmp_path / "f.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_bad_single_file_exit_2_one_line(tmp_path, capsys):
    (tmp_path / "bad.wav").write_text("nope")
    out = tmp_path / "o.npy"
    assert main(["features", str(tmp_path / "bad.wav"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.wav" in err and "not a readable WAV" in err
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_missing_path_and_bad_suffix(tmp_path, capsys):
    assert main(["features", str(tmp_path / "none.wav"), "--out", str(tmp_path / "o.npy")]) == 2
    assert "none.wav: no such file or folder" in capsys.readouterr().err
    wav = write_wav(tmp_path / "x.wav", np.zeros(16000, np.int16))
    assert main(["features", str(wav), "--out", str(tmp_path / "o.txt")]) == 2
    assert "must end in .npy" in capsys.readouterr().err


def test_console_script_prints_no_traceback(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kwstool",
            "features",
            str(tmp_path / "bad.wav"),
            "--out",
            str(tmp_path / "o.npy"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "bad.wav" in proc.stderr


def test_long_file_is_an_error_naming_all_windows(tmp_path, capsys):
    import soundfile

    x = (np.sin(np.arange(40000) / 5) * 8000).astype(np.int16)
    soundfile.write(tmp_path / "long.flac", x, 16000)
    out = tmp_path / "o.npy"
    assert main(["features", str(tmp_path / "long.flac"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "long.flac" in err and "--all-windows" in err
    assert not out.exists()  # never a silent cut to the first second
    assert main(["features", str(tmp_path / "long.flac"), "--out", str(out), "--all-windows"]) == 0
    feats = np.load(out)
    assert feats.shape == (1 + (40000 - 480) // 320, 40) and feats.dtype == np.int8
    from kwstool.core.frontend import compute

    # the first 49 frames are the features of the first second (one continuous state)
    assert np.array_equal(feats[:49], compute(x[:16000]))
