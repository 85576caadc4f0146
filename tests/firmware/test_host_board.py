"""`kwstool device-test` against the host board: the firmware's own C (front end, feature
provider, pipeline, recognizer, protocol, session) behind a pseudo-terminal, its model run by
the tflite-micro interpreter. Checks that the board computes exactly what the host computes."""

from __future__ import annotations

import json
import os
import shutil
import time

import fwbuild
import numpy as np
import pytest
import serial
from host_board import MICRO_SPEECH_LABELS, HostBoard

from kwstool.cli import main as cli
from kwstool.core.audio import load_wav, save_wav
from kwstool.deploy import device

RECOGNIZER = {
    "average_window_ms": 1000,
    "threshold": 200,
    "suppression_ms": 1500,
    "minimum_coverage_ms": 200,
}


@pytest.fixture(scope="module")
def host_board_exe(tmp_path_factory):
    return fwbuild.build(tmp_path_factory.mktemp("fw") / "host_board", "host_board.c", ["-O2"])


@pytest.fixture(scope="module")
def micro_speech():
    p = fwbuild.micro_speech_dir()
    if p is None:
        pytest.skip(
            "../shared/data/micro_speech not present (it is only beside the repo in dev and CI)"
        )
    return p


@pytest.fixture(scope="module")
def board(host_board_exe, micro_speech):
    """The host board with micro_speech's int8 model (4 labels). micro_speech's model takes the
    int8 features unchanged, so the board is told input scale 1 / zero point 0 (no requant)."""
    with HostBoard(
        host_board_exe,
        micro_speech / "micro_speech_quantized.tflite",
        MICRO_SPEECH_LABELS,
        model_name="micro_speech",
    ) as hb:
        yield hb


def test_features_match_kwstool_features(board, micro_speech, tmp_path, capsys):
    wav = micro_speech / "yes_1000ms.wav"
    assert cli(["features", str(wav), "-o", str(tmp_path / "host.npy")]) == 0
    assert cli(["device-test", "--port", board.port, str(wav), "--out", str(tmp_path / "dev")]) == 0
    host = np.load(tmp_path / "host.npy")
    dev = np.load(tmp_path / "dev" / "features.npy")
    assert dev.shape == host.shape == (49, 40)
    assert dev.dtype == np.int8
    assert np.array_equal(dev, host)
    out = capsys.readouterr().out
    assert "board host on " in out and "model micro_speech" in out


def test_clip_accuracy_and_scores(board, micro_speech, tmp_path):
    """Clips in label folders: the board's top-1 and its raw int8 scores equal the host's
    (features by kwstool._native, model by TFLite Micro)."""
    for name, label in (
        ("yes", "yes"),
        ("no", "no"),
        ("silence", "_silence_"),
        ("noise", "_silence_"),
    ):
        (tmp_path / "clips" / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(micro_speech / f"{name}_1000ms.wav", tmp_path / "clips" / label / f"{name}.wav")
    assert (
        cli(
            [
                "device-test",
                "--port",
                board.port,
                str(tmp_path / "clips"),
                "--out",
                str(tmp_path / "dev"),
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "dev" / "device_test.json").read_text())
    assert result["mode"] == "clips"
    assert [(os.path.basename(f["file"]), f["label"], f["predicted"]) for f in result["files"]] == [
        ("noise.wav", "_silence_", "_silence_"),
        ("silence.wav", "_silence_", "_silence_"),
        ("no.wav", "no", "no"),
        ("yes.wav", "yes", "yes"),
    ]
    assert result["accuracy"] == 1.0
    assert result["per_class"] == {
        "_silence_": {"count": 2, "accuracy": 1.0},
        "yes": {"count": 1, "accuracy": 1.0},
        "no": {"count": 1, "accuracy": 1.0},
    }
    assert result["latency"]["invoke_us"]["count"] == 4
    assert result["latency"]["round_trip_ms"]["count"] == 4
    assert result["board_stats"]["inferences"] == 4 and result["board_stats"]["frames"] == 4 * 49
    model = device.TflmModel(micro_speech / "micro_speech_quantized.tflite")
    for f in result["files"]:
        ref = device.host_reference(
            load_wav(f["file"]),
            model,
            MICRO_SPEECH_LABELS,
            49,
            RECOGNIZER,
            input_scale=1.0,
            input_zero_point=0,
        )
        assert len(ref.scores) == 1
        assert f["scores"] == ref.scores[0].scores.tolist()
    assert np.load(tmp_path / "dev" / "features.npy").shape == (4, 49, 40)
    assert (tmp_path / "dev" / "features.files.txt").read_text().splitlines() == [
        f["file"] for f in result["files"]
    ]


def _stream_wav(micro_speech, tmp_path):
    parts = ["silence", "yes", "no", "noise", "yes", "silence", "no"]
    samples = np.concatenate([load_wav(micro_speech / f"{p}_1000ms.wav") for p in parts])
    path = tmp_path / "stream.wav"
    save_wav(path, samples)
    return path, samples


def test_stream_detections_match_host_recognizer(board, micro_speech, tmp_path):
    """A 7 s WAV of several clips: the board's detections (its recognizer, on its scores) are
    the host recognizer's (kwstool._native, on TFLite Micro's scores of the host's features)."""
    path, samples = _stream_wav(micro_speech, tmp_path)
    assert (
        cli(
            [
                "device-test",
                "--port",
                board.port,
                str(path),
                "--stream",
                "--out",
                str(tmp_path / "dev"),
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "dev" / "device_test.json").read_text())
    got = [(d["label"], d["time_ms"], d["count"]) for d in result["files"][0]["detections"]]
    model = device.TflmModel(micro_speech / "micro_speech_quantized.tflite")
    ref = device.host_reference(
        samples, model, MICRO_SPEECH_LABELS, 1, RECOGNIZER, input_scale=1.0, input_zero_point=0
    )
    assert got == [(d.label, d.time_ms, d.count) for d in ref.detections]
    assert got == [("yes", 350, 17), ("yes", 2390, 50), ("yes", 5430, 50), ("no", 6950, 50)]
    assert [d["score"] for d in result["files"][0]["detections"]] == [
        round(d.score / 255, 4) for d in ref.detections
    ]
    assert result["files"][0]["inferences"] == len(ref.scores) == 349

    # every feature frame and every score too, through the Python API
    with device.BoardLink(board.port) as b:
        b.reset(
            device.SEND_FEATURES | device.SEND_SCORES,
            infer_every=3,
            recognizer={"threshold": 180, "thresholds": {"no": 0.6}, "minimum_count": 2},
        )
        r = b.stream(samples)
    ref3 = device.host_reference(
        samples,
        model,
        MICRO_SPEECH_LABELS,
        3,
        {**RECOGNIZER, "threshold": 180, "thresholds": {"no": 0.6}, "minimum_coverage_ms": 60},
        input_scale=1.0,
        input_zero_point=0,
    )
    assert np.array_equal(r.features, ref3.features) and r.features.shape == (349, 40)
    assert [s.frame for s in r.scores] == [s.frame for s in ref3.scores]
    assert [s.time_ms for s in r.scores] == [s.time_ms for s in ref3.scores]
    assert np.array_equal(
        np.stack([s.raw for s in r.scores]), np.stack([s.raw for s in ref3.scores])
    )
    assert [(d.label, d.time_ms, d.score) for d in r.detections] == [
        (d.label, d.time_ms, d.score) for d in ref3.detections
    ]
    assert len(r.detections) >= 4


def test_board_survives_garbage(board):
    """Over the pty: garbage, a huge length, a corrupted frame and a truncated one; the board
    answers the next request and counts each problem exactly once."""
    with serial.Serial(board.port, timeout=0.05) as port:
        b = device.BoardLink(port, timeout=5)
        b.connect()
        before = b.stats()
        rng = np.random.default_rng(7)
        junk = bytes(x for x in rng.integers(0, 256, 3000, dtype=np.uint8).tobytes() if x != 0xA5)
        huge = b"\xa5\x5a\x03\x00\xff\xff"
        bad = bytearray(device.encode_frame(device.STATS, 1, b"\x00" * 20))
        bad[10] ^= 0xFF
        cut = device.encode_frame(device.AUDIO, 2, b"\x01\x02" * 100)[:30]
        port.write(junk + huge + bytes(bad) + cut)
        port.flush()
        time.sleep(0.3)  # > KWS_PROTO_IDLE_FLUSH_MS: the board abandons the cut frame
        after = b.stats()
        assert after["rx_length_errors"] - before["rx_length_errors"] == 1
        assert after["rx_crc_errors"] - before["rx_crc_errors"] == 1
        assert after["rx_flushes"] - before["rx_flushes"] == 1
        assert after["requests"] - before["requests"] == 1  # just the second STATS
        assert b.connect()["board"] == "host"
        # and a flood of random bytes with sync bytes in them
        port.write(rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes())
        port.flush()
        time.sleep(0.2)
        assert b.connect()["board"] == "host"
        b.request(device.BYE)


def test_board_without_model(host_board_exe, micro_speech, tmp_path):
    """No model behind the host board: features still come back; each inference is reported
    as a model error, and no prediction is made."""
    with HostBoard(host_board_exe, None, MICRO_SPEECH_LABELS) as hb:
        r = device.device_test(hb.port, [micro_speech / "yes_1000ms.wav"])
    assert r.files[0]["model_errors"] == 1
    assert r.files[0]["predicted"] is None
    assert r.accuracy is None
    assert r.info["model_ok"] == 0
    assert r.features.shape == (1, 49, 40)


def test_device_test_reports_a_silent_port(tmp_path, capsys):
    master, slave = os.openpty()
    try:
        wav = tmp_path / "a.wav"
        save_wav(wav, np.zeros(16000, np.int16))
        code = cli(["device-test", "--port", os.ttyname(slave), str(wav), "--timeout", "0.6"])
    finally:
        os.close(master)
        os.close(slave)
    err = capsys.readouterr().err
    assert code == 2
    assert "no answer to HELLO within 0.2 s" in err
    assert "Traceback" not in err
