"""The C front end: bit-exact with TensorFlow's audio_microfrontend op, and its Python API."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import shared_path
from wavgen import as_int16, tone

from kwstool.core import frontend as features
from kwstool.core.audio import load_wav

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def tf_microfrontend(samples: np.ndarray) -> np.ndarray:
    import tensorflow as tf
    from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op

    return audio_microfrontend_op.audio_microfrontend(
        tf.constant(samples, dtype=tf.int16),
        sample_rate=16000,
        window_size=30,
        window_step=20,
        num_channels=40,
        out_scale=1,
        out_type=tf.uint16,
    ).numpy()


def generated_signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = np.arange(16000)
    sig = {
        "silence": np.zeros(16000, np.int16),
        "square_full_scale_400hz": np.where((n // 20) % 2 == 0, 32767, -32768).astype(np.int16),
        "square_full_scale_4khz": np.where((n // 2) % 2 == 0, 32767, -32768).astype(np.int16),
        "white_noise_full_scale": rng.integers(-32768, 32768, 16000).astype(np.int16),
        "white_noise_quiet": rng.integers(-3, 4, 16000).astype(np.int16),
        "clipped_sine": as_int16(np.clip(tone(300.0, amp=3.0), -1, 1)),
        "dc_offset_positive": np.full(16000, 12000, np.int16),
        "dc_offset_negative_max": np.full(16000, -32768, np.int16),
        "dc_plus_tone": (as_int16(tone(1000.0, amp=0.3)).astype(np.int32) + 8000).astype(np.int16),
        "impulses": np.where(n % 1000 == 0, 32767, 0).astype(np.int16),
        "chirp": as_int16(0.7 * np.sin(2 * np.pi * (100 + 3900 * n / 16000) * n / 16000)),
        "long_stream_3s": rng.normal(0, 2000, 48000).clip(-32768, 32767).astype(np.int16),
        "short_700ms": rng.normal(0, 2000, 11200).clip(-32768, 32767).astype(np.int16),
    }
    return sig


@pytest.mark.slow  # imports TensorFlow
@pytest.mark.parametrize("name,samples", list(generated_signals().items()))
def test_bit_exact_with_tensorflow_on_generated_signals(name, samples):
    ref = tf_microfrontend(samples)
    ours = features.compute_raw(samples)
    assert ours.shape == ref.shape
    assert np.array_equal(ours, ref), f"{name}: {(ours != ref).sum()} values differ"


@pytest.mark.slow
def test_bit_exact_with_tensorflow_on_real_speech_subset():
    folder = shared_path("speech_commands_test_dev")
    files = sorted(folder.rglob("*.wav"))[::25]  # 110 clips spread over all twelve folders
    assert len(files) > 100
    for f in files:
        samples = load_wav(f)
        ref = features.to_int8(tf_microfrontend(samples))
        assert np.array_equal(features.compute(samples), ref), f.name


@pytest.mark.slow
def test_micro_speech_model_hears_yes_and_no():
    from ai_edge_litert.interpreter import Interpreter

    folder = shared_path("micro_speech")
    it = Interpreter(model_path=str(folder / "micro_speech_quantized.tflite"))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    labels = ["silence", "unknown", "yes", "no"]
    heard = {}
    for word in ["yes", "no", "silence"]:
        feats = features.compute(load_wav(folder / f"{word}_1000ms.wav"))
        it.set_tensor(inp["index"], feats.reshape(inp["shape"]))
        it.invoke()
        heard[word] = labels[int(np.argmax(it.get_tensor(out["index"])[0]))]
    assert heard == {"yes": "yes", "no": "no", "silence": "silence"}


def test_shapes_and_dtype(rng):
    one = rng.integers(-1000, 1000, 16000).astype(np.int16)
    assert features.compute(one).shape == (49, 40)
    assert features.compute(one).dtype == np.int8
    assert features.compute(np.stack([one, one])).shape == (2, 49, 40)


def test_batch_equals_single_and_threads_agree(rng):
    batch = rng.normal(0, 3000, size=(600, 16000)).clip(-32768, 32767).astype(np.int16)
    single = np.stack([features.compute(x) for x in batch[:5]])
    threaded = features.compute(batch, threads=2)
    assert np.array_equal(threaded[:5], single)
    assert np.array_equal(threaded, features.compute(batch, threads=1))


def test_each_clip_starts_from_fresh_state(rng):
    a = rng.normal(0, 8000, 16000).clip(-32768, 32767).astype(np.int16)
    b = rng.normal(0, 100, 16000).clip(-32768, 32767).astype(np.int16)
    assert np.array_equal(features.compute(np.stack([a, b]))[1], features.compute(b))


def test_int8_mapping_matches_micro_speech_formula():
    raw = np.zeros((1, 40), dtype=np.uint16)
    raw[0, :8] = [0, 1, 332, 335, 500, 666, 50000, 65535]
    # worked by hand from clamp(((v * 256) + 333) / 666 - 128, -128, 127), integer division
    assert features.to_int8(raw)[0, :8].tolist() == [-128, -128, 0, 1, 64, 127, 127, 127]


def test_rejects_non_int16():
    with pytest.raises(TypeError, match="int16"):
        features.compute(np.zeros(16000, np.float32))
