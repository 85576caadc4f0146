"""Audio input: every WAV format users have, and a clear error for everything else."""

from __future__ import annotations

import numpy as np
import pytest
from wavgen import as_int16, tone, write_wav

from kwstool.core.audio import load_audio, load_wav
from kwstool.errors import KwsError


def test_int16_mono_16k_is_exact(tmp_path, rng):
    x = rng.integers(-32768, 32767, 16000).astype(np.int16)
    got = load_wav(write_wav(tmp_path / "a.wav", x))
    assert got.dtype == np.int16 and got.shape == (16000,)
    assert np.array_equal(got, x)


def test_8bit_unsigned(tmp_path):
    x = np.array([0, 128, 255, 64] * 4000, dtype=np.uint8)
    got = load_wav(write_wav(tmp_path / "a.wav", x, bits=8))
    assert list(got[:4]) == [-32768, 0, 32512, -16384]


def test_24bit(tmp_path):
    x = np.array([-8388608, 0, 8388607, 256 * 1000] * 4000, dtype=np.int32)
    got = load_wav(write_wav(tmp_path / "a.wav", x, bits=24))
    assert list(got[:4]) == [-32768, 0, 32767, 1000]


def test_32bit_int(tmp_path):
    x = np.array([-(2**31), 0, 2**31 - 1, 65536 * 1234] * 4000, dtype=np.int32)
    got = load_wav(write_wav(tmp_path / "a.wav", x, bits=32))
    assert list(got[:4]) == [-32768, 0, 32767, 1234]


@pytest.mark.parametrize("bits", [32, 64])
def test_float(tmp_path, bits):
    x = np.array([-1.0, 0.0, 0.5, 2.0] * 4000)
    got = load_wav(write_wav(tmp_path / "a.wav", x, bits=bits, float_format=True))
    assert list(got[:4]) == [-32768, 0, 16384, 32767]  # out-of-range floats are clipped


def test_stereo_is_mixed_down(tmp_path):
    left = np.full(16000, 1000, np.int16)
    right = np.full(16000, 3000, np.int16)
    got = load_wav(write_wav(tmp_path / "a.wav", np.stack([left, right], axis=1)))
    assert np.all(got == 2000)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampled_to_16k(tmp_path, rate):
    x = as_int16(tone(1000.0, 1.0, rate))
    got = load_wav(write_wav(tmp_path / "a.wav", x, rate=rate))
    assert got.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(got.astype(np.float64)))
    assert abs(int(np.argmax(spectrum)) - 1000) <= 1  # 1 Hz bins: the tone stays at 1 kHz
    assert 0.4 < np.abs(got).max() / 32768 < 0.6


def test_short_clip_zero_padded(tmp_path):
    x = np.full(4000, 77, np.int16)
    got = load_wav(write_wav(tmp_path / "a.wav", x))
    assert got.shape == (16000,)
    assert np.all(got[:4000] == 77) and np.all(got[4000:] == 0)


def test_long_clip_is_an_error_unless_asked_for(tmp_path):
    x = np.arange(40000).astype(np.int16)
    path = write_wav(tmp_path / "a.wav", x)
    with pytest.raises(KwsError, match=r"a\.wav: 2\.50 s long, longer than one 1 s clip.*--all"):
        load_audio(path)  # never cut silently
    assert np.array_equal(load_audio(path, long="cut"), x[:16000])
    assert np.array_equal(load_audio(path, clip_samples=None), x)
    # a resampling/padding rounding over 1 s (up to one 20 ms frame) is not a recording
    y = np.arange(16000 + 320).astype(np.int16)
    assert np.array_equal(load_audio(write_wav(tmp_path / "b.wav", y)), y[:16000])
    with pytest.raises(KwsError, match="longer than one"):
        load_audio(write_wav(tmp_path / "c.wav", np.arange(16000 + 321).astype(np.int16)))


def test_truncated_data_chunk_is_an_error(tmp_path):
    x = (np.sin(np.arange(16000) / 7) * 9000).astype(np.int16)
    good = write_wav(tmp_path / "good.wav", x).read_bytes()
    (tmp_path / "cut.wav").write_bytes(good[: len(good) - 10000])
    with pytest.raises(KwsError, match=r"cut\.wav: WAV is cut short .* 32000 bytes.* 22000"):
        load_audio(tmp_path / "cut.wav")  # before: the missing second half was zero-padded
    assert np.array_equal(load_audio(tmp_path / "good.wav"), x)


@pytest.mark.parametrize("fmt,ext", [("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_flac_ogg_mp3_are_read(tmp_path, fmt, ext):
    import soundfile

    t = np.arange(24000) / 48000
    x = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)  # 0.5 s at 48 kHz, stereo
    soundfile.write(tmp_path / f"a.{ext}", np.stack([x, x], 1) / 32768, 48000, format=fmt)
    got = load_audio(tmp_path / f"a.{ext}", clip_samples=None)
    ref = load_audio(write_wav(tmp_path / "ref.wav", x, rate=48000), clip_samples=None)
    assert got.dtype == np.int16 and abs(len(got) - 8000) <= 40
    if fmt == "FLAC":  # lossless: the same samples as the WAV
        assert np.array_equal(got, ref)
    else:  # lossy: the same tone in the middle
        mid = slice(2000, 6000)
        assert np.corrcoef(got[mid].astype(float), ref[mid].astype(float))[0, 1] > 0.98
    assert load_audio(tmp_path / f"a.{ext}").shape == (16000,)


def test_missing_file(tmp_path):
    with pytest.raises(KwsError, match=r"nope\.wav: no such file"):
        load_wav(tmp_path / "nope.wav")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(KwsError, match=r"empty\.wav: file is empty"):
        load_wav(tmp_path / "empty.wav")


def test_not_a_wav(tmp_path):
    (tmp_path / "text.wav").write_text("hello, this is not audio\n" * 10)
    with pytest.raises(KwsError, match=r"text\.wav: not a readable WAV file .*sox"):
        load_wav(tmp_path / "text.wav")


def test_truncated_header(tmp_path):
    good = write_wav(tmp_path / "good.wav", np.zeros(100, np.int16))
    (tmp_path / "cut.wav").write_bytes(good.read_bytes()[:30])
    with pytest.raises(KwsError, match=r"cut\.wav: not a readable WAV file"):
        load_wav(tmp_path / "cut.wav")


def test_no_samples(tmp_path):
    path = write_wav(tmp_path / "nodata.wav", np.zeros(0, np.int16))
    with pytest.raises(KwsError, match=r"nodata\.wav: WAV holds no audio samples"):
        load_wav(path)


def test_nan_samples(tmp_path):
    x = np.zeros(100)
    x[3] = np.nan
    path = write_wav(tmp_path / "nan.wav", x, bits=32, float_format=True)
    with pytest.raises(KwsError, match=r"nan\.wav: float WAV contains NaN"):
        load_wav(path)


def test_errors_are_one_line(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(KwsError) as info:
        load_wav(tmp_path / "bad.wav")
    assert "\n" not in str(info.value)


def test_atomic_outputs_get_normal_permissions(tmp_path):
    import os

    from kwstool.fileio import write_text

    write_text(tmp_path / "out.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
