"""kwstool.device without a board: framing, resynchronisation, payload layouts, labels, the
host-side reference helpers and the CLI's errors. (Against the firmware's own C code over a
pseudo-terminal: tests/firmware/test_host_board.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from kwstool import _native
from kwstool.deploy import device
from kwstool.cli import main as cli
from kwstool.errors import KwsError


def test_crc_and_frame_layout():
    assert device.crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value
    frame = device.encode_frame(device.AUDIO, 0x107, b"\x01\x02\x03")
    assert frame[:8] == bytes([0xA5, 0x5A, 0x03, 0x07, 0x03, 0x00, 0x01, 0x02])
    assert len(frame) == 6 + 3 + 2
    assert int.from_bytes(frame[-2:], "little") == device.crc16(frame[2:-2])
    with pytest.raises(ValueError):
        device.encode_frame(device.AUDIO, 0, bytes(1025))
    assert len(device.encode_frame(device.AUDIO, 0, bytes(1024))) == 1032


def test_parser_resynchronises():
    p = device.FrameParser()
    good = [device.encode_frame(0x83, i, bytes([i]) * i) for i in range(1, 5)]
    corrupt = bytearray(device.encode_frame(0x83, 99, b"xyz"))
    corrupt[7] ^= 1
    truncated = device.encode_frame(0x83, 98, bytes(100))[:12]
    stream = (b"KWS listening\r\n" + good[0] + b"\xa5\x5a\x01\x00\xff\xff" + good[1]
              + bytes(corrupt) + good[2] + truncated + good[3])
    frames = []
    for i in range(0, len(stream), 5):  # arbitrary splits
        frames += p.feed(stream[i:i + 5])
    frames += p.flush()  # the truncated frame swallowed good[3]; idle flush recovers it
    assert [(f.type, f.seq, f.payload) for f in frames] == [
        (0x83, i, bytes([i]) * i) for i in range(1, 5)]
    assert p.stats["length_errors"] == 1
    assert p.stats["crc_errors"] == 1
    assert b"KWS listening" in bytes(p.text)
    assert p.buf == bytearray()


def test_parser_finds_a_frame_inside_a_failed_candidate():
    p = device.FrameParser()
    truncated = device.encode_frame(0x84, 1, bytes(50))[:9]
    follow = device.encode_frame(0x84, 2, b"ok")
    filler = device.encode_frame(0x84, 3, bytes(80))
    frames = p.feed(truncated + follow + filler)
    assert [f.seq for f in frames] == [2, 3]
    assert p.stats["crc_errors"] == 1


def test_key_values_and_reset_payload():
    info = device.parse_key_values(b"proto=1\nboard=nano33ble\nlabels=_silence_,yes\nx=-3\njunk\n")
    assert info == {"proto": 1, "board": "nano33ble", "labels": "_silence_,yes", "x": -3}
    payload = device.reset_payload(3, 49, {"average_window_ms": 1000, "suppression_ms": 1500,
                                           "threshold": 200, "minimum_count": 3})
    assert payload == bytes([3, 49, 0, 0xE8, 0x03, 0, 0, 0xDC, 0x05, 0, 0, 200, 3])


def test_truth_labels(tmp_path):
    labels = ["_silence_", "_unknown_", "yes", "no"]
    assert device.truth_label(tmp_path / "yes" / "a.wav", labels) == "yes"
    assert device.truth_label(tmp_path / "_silence_" / "a.wav", labels) == "_silence_"
    assert device.truth_label(tmp_path / "bed" / "a.wav", labels) == "_unknown_"
    assert device.truth_label(tmp_path / "_background_noise_" / "a.wav", labels) is None
    assert device.truth_label(tmp_path / "bed" / "a.wav", ["yes", "no"]) is None


def test_requant_table_matches_the_firmware_rule():
    assert np.array_equal(device.requant_table(1.0, 0), np.arange(-128, 128))
    t = device.requant_table(2.0, 0)
    assert [t[128 + v] for v in (3, -3, 1, -1, 0)] == [2, -2, 1, -1, 0]  # half away from zero
    t = device.requant_table(0.5, -10)
    assert [t[128 + 10], t[128 + 100], t[128 - 100]] == [10, 127, -128]


def test_windows_and_times():
    feats = np.arange(60 * 40, dtype=np.int64).reshape(60, 40).astype(np.int8)
    wins = list(device.feature_windows(feats, 7))
    assert [k for k, _ in wins] == [7, 14, 21, 28, 35, 42, 49, 56]
    k, w = wins[0]
    assert w.shape == (49, 40)
    assert (w[:42] == -128).all() and np.array_equal(w[42:], feats[:7])
    assert np.array_equal(wins[-1][1], feats[7:56])
    assert [device.frame_time_ms(k) for k in (1, 2, 49)] == [30, 50, 990]


def test_native_recognizer_binding():
    scores = np.array([[0, 0, 255, 0]] * 3 + [[0, 0, 0, 255]] * 3, np.uint8)
    times = np.array([0, 100, 200, 1700, 1800, 1900], np.uint32)
    found = _native.recognize(scores.tobytes(), times.tobytes(), 4, 1000, 200, 1500, 3, 0b11)
    assert found == [(2, 200, 2, 255, 3), (5, 1900, 3, 255, 3)]
    with pytest.raises(ValueError):
        _native.recognize(scores.tobytes(), times.tobytes(), 5, 1000, 200, 1500, 3, 0)
    with pytest.raises(ValueError):
        _native.recognize(scores.tobytes(), times.tobytes(), 4, 0, 200, 1500, 3, 0)
    out = np.zeros(3, np.uint8)
    _native.scores_u8(np.array([127, -128, 0], np.int8).tobytes(), 1 / 256, -128, out)
    assert out.tolist() == [254, 0, 128]


def test_device_test_errors(tmp_path, capsys):
    from kwstool.core.audio import save_wav

    wav = tmp_path / "a.wav"
    save_wav(wav, np.zeros(16000, np.int16))
    assert cli(["device-test", "--port", str(tmp_path / "no-such-port"), str(wav)]) == 2
    err = capsys.readouterr().err
    assert "cannot open the serial port" in err and "Traceback" not in err
    assert cli(["device-test", "--port", "x", str(wav), "--infer-every", "0"]) == 2
    assert "--infer-every 0" in capsys.readouterr().err
    assert cli(["device-test", "--port", "x", str(tmp_path / "missing.wav")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    with pytest.raises(KwsError, match="must be 1..65535"):
        device.device_test("x", [wav], infer_every=70000)
