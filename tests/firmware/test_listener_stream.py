"""The firmware's live loop (firmware/lib/kws_listener) built for the host with gcc and run in
simulated real time (tests/firmware/listener_sim.c): a 16 kHz "ISR" writes a long WAV into the
512 ms ring in the Nano's PDM chunks (512 samples), each inference takes a set simulated time.

- with an inference that fits the period, not one sample is dropped over > 60 s;
- with one that does not (the Nano's 190-280 ms at a 100 ms period), drops are reported;
- the loop's detections are the host recognizer's (kwstool._native) over the same scores, with
  a deterministic fake model and with the real model (TFLite Micro over pipes).
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import fwbuild
import numpy as np
import pytest
from conftest import SHARED
from host_board import MICRO_SPEECH_LABELS, WINDOW_VALUES, _read_exact

from kwstool import _native
from kwstool.core.audio import load_wav, save_wav
from kwstool.core.contract import CLIP_SAMPLES, SAMPLE_RATE
from kwstool.deploy import device

REPO = fwbuild.REPO
TEST_DEV = SHARED / "speech_commands_test_dev"
DEMO = REPO / "datasets" / "demo"
#: The sim's recognizer defaults (listener_sim.c) = the export defaults.
RECOGNIZER = {
    "average_window_ms": 1000,
    "suppression_ms": 1500,
    "minimum_coverage_ms": 200,
    "threshold": 200,
}


def _clips(root: Path, words: list[str], per_word: int) -> list[Path]:
    out = []
    for w in words:
        out += sorted((root / w).glob("*.wav"))[:per_word]
    return out


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """>= 60 s of real speech: keyword clips (yes/no first), unknown words and silence from
    speech_commands_test_dev (or datasets/demo), 0.3 s gaps, low background noise."""
    if (TEST_DEV / "yes").is_dir():
        files = _clips(TEST_DEV, ["yes", "no", "_unknown_", "_silence_", "up", "stop"], 12)
        noise = load_wav(min((TEST_DEV / "_silence_").glob("*.wav")), clip_samples=None)
    else:
        files = _clips(DEMO, ["yes", "no", "up", "stop", "left", "go"], 12)
        noise = load_wav(DEMO / "_background_noise_" / "pink_noise.wav", clip_samples=None)
    rng = np.random.default_rng(5)
    order = rng.permutation(len(files))
    gap = np.zeros(int(0.3 * SAMPLE_RATE), np.int16)
    parts = []
    for i in order:
        parts += [load_wav(files[i], clip_samples=CLIP_SAMPLES), gap]
    speech = np.concatenate(parts).astype(np.int32)
    bed = np.resize(noise.astype(np.int32), len(speech)) // 8
    samples = np.clip(speech + bed, -32768, 32767).astype(np.int16)
    assert len(samples) >= 60 * SAMPLE_RATE
    path = tmp_path_factory.mktemp("stream") / "long.wav"
    save_wav(path, samples)
    return path, samples


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    return fwbuild.build(tmp_path_factory.mktemp("sim") / "listener_sim", "listener_sim.c", ["-O2"])


@pytest.fixture(scope="module")
def raw_audio(long_wav, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("raw") / "long.raw"
    long_wav[1].astype("<i2").tofile(path)
    return path


def parse(out: str) -> dict:
    infer = [line.split() for line in out.splitlines() if line.startswith("INFER ")]
    total = dict(kv.split("=") for kv in out.strip().splitlines()[-1].split()[1:])
    return {
        "frames": [int(x[1]) for x in infer],
        "times": np.array([int(x[2]) for x in infer], np.uint32),
        "scores": np.array([[int(v) for v in x[3].split(",")] for x in infer], np.uint8),
        "detections": [
            tuple(int(v) for v in line.split()[1:])
            for line in out.splitlines()
            if line.startswith("DETECT ")
        ],
        "stats": [
            tuple(int(v) for v in line.split()[1:])
            for line in out.splitlines()
            if line.startswith("STATS ")
        ],
        "total": {k: int(v) for k, v in total.items()},
    }


def run_sim(sim: Path, audio: Path, period_ms: int, inference_ms: float, *extra: str, **kw) -> dict:
    cmd = [
        str(sim),
        "--audio",
        str(audio),
        "--period-ms",
        str(period_ms),
        "--inference-ms",
        str(inference_ms),
        "--chunk",
        "512",
        *extra,
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, proc.stderr
    return parse(proc.stdout)


@pytest.mark.parametrize("period_ms,inference_ms", [(100, 60), (200, 190), (300, 280)])
def test_no_audio_dropped_when_inference_fits(sim, raw_audio, long_wav, period_ms, inference_ms):
    r = run_sim(sim, raw_audio, period_ms, inference_ms)
    n = len(long_wav[1])
    assert r["total"]["dropped_samples"] == 0 and r["total"]["overruns"] == 0
    assert all(s[0] == 0 and s[1] == 0 for s in r["stats"])
    assert len(r["stats"]) >= 12  # a STATS line per 5 s of audio
    # every frame of the stream was computed, the model ran exactly every period
    every = period_ms // 20
    assert r["total"]["frames"] == (n - 480) // 320 + 1
    assert r["frames"] == list(range(every, r["total"]["frames"] + 1, every))
    assert max(s[3] for s in r["stats"]) == inference_ms * 1000  # inference_us_max per period


@pytest.mark.parametrize("inference_ms", [190, 280])
def test_drops_reported_when_inference_does_not_fit(sim, raw_audio, inference_ms):
    """The Nano's figure at a 100 ms period: the ring overflows, and STATS says by how much."""
    r = run_sim(sim, raw_audio, 100, inference_ms)
    dropped = r["total"]["dropped_samples"]
    assert dropped > 0.3 * r["total"]["samples"]
    assert r["total"]["overruns"] > 0
    assert sum(s[0] for s in r["stats"]) == dropped
    assert all(s[0] > 0 for s in r["stats"][1:-1])  # every full period shows it


def test_detections_equal_host_recognizer_fake_model(sim, raw_audio):
    """Deterministic fake model, per-label thresholds: the loop's detections are what
    kwstool._native.recognize -- and frame-by-frame _native.Recognizer -- find in its scores."""
    thresholds = [255, 255, 120, 140]
    r = run_sim(
        sim,
        raw_audio,
        100,
        60,
        "--thresholds",
        ",".join(map(str, thresholds)),
        "--min-coverage-ms",
        "100",
    )
    assert len(r["detections"]) >= 3
    found = _native.recognize(
        r["scores"].tobytes(),
        r["times"].tobytes(),
        4,
        1000,
        bytes(thresholds),
        1500,
        100,
        0b11,
    )
    assert [(lab, score, t) for _, t, lab, score, _ in found] == r["detections"]
    rec = _native.Recognizer(4, 1000, 1500, bytes(thresholds), 100, 0b11)
    step = [rec.process(s.tobytes(), int(t)) for s, t in zip(r["scores"], r["times"])]
    assert [d for d in step if d is not None] == r["detections"]


def _serve(model: device.TflmModel, req: int, rep: int) -> None:
    while True:
        tag = _read_exact(req, 1)
        window = _read_exact(req, WINDOW_VALUES) if tag == b"M" else None
        if window is None:
            return
        os.write(rep, model(np.frombuffer(window, np.int8)).astype(np.int8).tobytes())


def test_detections_equal_host_recognizer_real_model(sim, raw_audio, long_wav):
    """micro_speech's int8 model in TFLite Micro behind the loop, 60 ms per inference at a 100 ms
    period: nothing dropped, every score and detection equals the host reference (features by
    kwstool._native, the same model, _native.recognize) on the same audio."""
    ms = fwbuild.micro_speech_dir()
    if ms is None:
        pytest.skip("../shared/data/micro_speech not present")
    model = device.TflmModel(ms / "micro_speech_quantized.tflite")
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    server = threading.Thread(target=_serve, args=(model, req_r, rep_w), daemon=True)
    server.start()
    try:
        r = run_sim(
            sim,
            raw_audio,
            100,
            60,
            "--model-out",
            str(req_w),
            "--model-in",
            str(rep_r),
            "--output-scale",
            repr(model.output_scale),
            "--output-zero-point",
            str(model.output_zero_point),
            pass_fds=(req_w, rep_r),
        )
    finally:
        os.close(req_w)
        os.close(rep_r)
        server.join(timeout=10)
        os.close(req_r)
        os.close(rep_w)
    assert r["total"]["dropped_samples"] == 0
    ref = device.host_reference(
        long_wav[1],
        model,
        MICRO_SPEECH_LABELS,
        5,
        RECOGNIZER,
        input_scale=1.0,
        input_zero_point=0,
    )
    assert r["frames"] == [s.frame for s in ref.scores]
    assert r["times"].tolist() == [s.time_ms for s in ref.scores]
    assert np.array_equal(r["scores"], np.stack([s.scores for s in ref.scores]))
    got = [(MICRO_SPEECH_LABELS[lab], t) for lab, _, t in r["detections"]]
    assert got == [(d.label, d.time_ms) for d in ref.detections]
    assert {lab for lab, _ in got} == {"yes", "no"} and len(got) >= 6
