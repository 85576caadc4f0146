"""kwstool.device without a board: framing, resynchronisation, payload layouts, labels, the
host-side reference helpers and the CLI's errors. (Against the firmware's own C code over a
pseudo-terminal: tests/firmware/test_host_board.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from kwstool import _native
from kwstool.cli import main as cli
from kwstool.deploy import device
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
    stream = (
        b"KWS listening\r\n"
        + good[0]
        + b"\xa5\x5a\x01\x00\xff\xff"
        + good[1]
        + bytes(corrupt)
        + good[2]
        + truncated
        + good[3]
    )
    frames = []
    for i in range(0, len(stream), 5):  # arbitrary splits
        frames += p.feed(stream[i : i + 5])
    frames += p.flush()  # the truncated frame swallowed good[3]; idle flush recovers it
    assert [(f.type, f.seq, f.payload) for f in frames] == [
        (0x83, i, bytes([i]) * i) for i in range(1, 5)
    ]
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
    payload = device.reset_payload(
        3,
        49,
        {
            "average_window_ms": 1000,
            "suppression_ms": 1500,
            "minimum_coverage_ms": 200,
            "thresholds": [255, 200],
        },
    )
    assert payload == bytes(
        [3, 49, 0, 0xE8, 0x03, 0, 0, 0xDC, 0x05, 0, 0, 200, 0, 0, 0, 2, 255, 200]
    )


def test_resolve_recognizer():
    labels = ["_silence_", "_unknown_", "yes", "no"]
    board = device.info_recognizer(
        device.parse_key_values(
            b"average_window_ms=1000\nsuppression_ms=1500\nminimum_coverage_ms=200\n"
            b"thresholds=200,200,200,180\n"
        )
    )
    assert board == {
        "average_window_ms": 1000,
        "suppression_ms": 1500,
        "minimum_coverage_ms": 200,
        "thresholds": [200, 200, 200, 180],
    }
    assert device.resolve_recognizer(board, None, labels, 5) == board
    rec = device.resolve_recognizer(
        board, {"threshold": 0.5, "thresholds": {"no": 250}, "average_window_ms": 750}, labels, 5
    )
    assert rec["thresholds"] == [128, 128, 128, 250] and rec["average_window_ms"] == 750
    # the old --min-count: (count - 1) results of infer_every frames of 20 ms
    assert (
        device.resolve_recognizer(board, {"minimum_count": 3}, labels, 5)["minimum_coverage_ms"]
        == 200
    )
    with pytest.raises(KwsError, match="maybe"):
        device.resolve_recognizer(board, {"thresholds": {"maybe": 1}}, labels, 5)
    with pytest.raises(KwsError, match="reflash"):
        device.resolve_recognizer({}, None, labels, 5)


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
    found = _native.recognize(scores.tobytes(), times.tobytes(), 4, 1000, 200, 1500, 200, 0b11)
    assert found == [(2, 200, 2, 255, 3), (5, 1900, 3, 255, 3)]
    # per label: "no" (index 3, now scored 240) needs 250
    quieter = scores.copy()
    quieter[3:, 3] = 240
    found = _native.recognize(
        quieter.tobytes(), times.tobytes(), 4, 1000, bytes([0, 0, 200, 250]), 1500, 200, 0b11
    )
    assert found == [(2, 200, 2, 255, 3)]
    found = _native.recognize(
        quieter.tobytes(), times.tobytes(), 4, 1000, bytes([0, 0, 200, 240]), 1500, 200, 0b11
    )
    assert found == [(2, 200, 2, 255, 3), (5, 1900, 3, 240, 3)]
    with pytest.raises(ValueError):
        _native.recognize(scores.tobytes(), times.tobytes(), 5, 1000, 200, 1500, 200, 0)
    with pytest.raises(ValueError):
        _native.recognize(scores.tobytes(), times.tobytes(), 4, 0, 200, 1500, 200, 0)
    with pytest.raises(ValueError):  # coverage must be shorter than the window
        _native.recognize(scores.tobytes(), times.tobytes(), 4, 1000, 200, 1500, 1000, 0)
    with pytest.raises(ValueError):
        _native.recognize(scores.tobytes(), times.tobytes(), 4, 1000, bytes(3), 1500, 200, 0)
    with pytest.raises(ValueError):
        _native.recognize(scores.tobytes(), times.tobytes(), 4, 1000, 256, 1500, 200, 0)
    out = np.zeros(3, np.uint8)
    _native.scores_u8(np.array([127, -128, 0], np.int8).tobytes(), 1 / 256, -128, out)
    assert out.tolist() == [254, 0, 128]


def test_native_recognizer_object_equals_batch_replay():
    """Random scores at a random cadence: Recognizer.process, one result at a time, finds
    exactly what recognize() finds over the whole sequence; reset() starts over."""
    rng = np.random.default_rng(3)
    n = 3000
    scores = rng.integers(0, 256, (n, 5), dtype=np.uint8)
    scores[:, 2] = np.where(rng.random(n) < 0.5, 250, scores[:, 2])  # bursts of one word
    times = np.cumsum(rng.choice([20, 40, 100, 300], n)).astype(np.uint32)
    thresholds = bytes([255, 255, 180, 150, 200])
    batch = _native.recognize(scores.tobytes(), times.tobytes(), 5, 700, thresholds, 900, 120, 0b11)
    rec = _native.Recognizer(5, 700, 900, thresholds, minimum_coverage_ms=120, ignore_mask=0b11)
    assert rec.num_labels == 5
    step = [rec.process(s.tobytes(), int(t)) for s, t in zip(scores, times)]
    assert [d for d in step if d is not None] == [(lab, score, t) for _, t, lab, score, _ in batch]
    assert len(batch) > 20
    rec.reset()
    again = [rec.process(s.tobytes(), int(t)) for s, t in zip(scores, times)]
    assert again == step
    single = _native.Recognizer(5, 700, 900, 180, 120, 0b11)  # one threshold for every label
    assert single.process(bytes(5), 0) is None
    with pytest.raises(ValueError):
        rec.process(bytes(4), 0)
    with pytest.raises(ValueError):
        _native.Recognizer(5, 700, 900, bytes(4))


def test_native_feature_stream_equals_clip_features():
    """FeatureStream in odd chunks: the window equals the front end's features of the clip."""
    from kwstool.core.frontend import compute

    rng = np.random.default_rng(9)
    audio = (rng.normal(0, 3000, 16000)).astype(np.int16)
    fs = _native.FeatureStream()
    window = np.zeros(49 * 40, np.int8)
    fs.window(window)
    assert (window == -128).all() and fs.frames == 0 and fs.time_ms == 0
    frames, pos = 0, 0
    for size in rng.integers(1, 900, 100):
        frames += fs.feed(audio[pos : pos + size])
        pos += int(size)
        if pos >= len(audio):
            break
    frames += fs.feed(audio[pos:])
    assert frames == fs.frames == 49 and fs.time_ms == 1000
    fs.window(window)
    assert np.array_equal(window.reshape(49, 40), compute(audio[None])[0])
    fs.reset()
    assert fs.frames == 0
    with pytest.raises(ValueError):
        fs.window(np.zeros(10, np.int8))


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
