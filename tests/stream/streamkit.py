"""Fixtures of the streaming tests: a model whose scores are known in advance, and test WAVs.

``energy_run`` is a real int8 model (Keras -> TFLite converter -> TFLite-Micro, through
``kwstool.model.quantize``) whose weights are set by hand: its "yes" probability rises with the
mean feature value of the window, so any word loud enough above quiet noise is a "yes" and
quiet noise is silence. That makes the number of detections of a stream predictable, which a
briefly trained model is not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_run_config

#: The model's loudness: the window's mean of max(0, feature / 128 + ENERGY_OFFSET); near 0
#: for quiet audio, about 0.2-0.3 while a word is in the window. Above ENERGY_EDGE it is "yes".
ENERGY_OFFSET = 0.5
ENERGY_EDGE = 0.1
ENERGY_GAIN = 60.0


def energy_model(num_labels: int, yes: int):
    import keras

    layers = keras.layers
    inputs = keras.Input((49, 40, 1))
    x = layers.Rescaling(1 / 128, offset=ENERGY_OFFSET)(inputs)
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D(keepdims=True)(x)
    head = layers.Conv2D(num_labels, (1, 1))
    x = head(x)
    outputs = layers.Softmax()(layers.Flatten()(x))
    model = keras.Model(inputs, outputs, name="energy")
    w = np.zeros((1, 1, 1, num_labels), np.float32)
    b = np.full(num_labels, -5.0, np.float32)
    w[..., 0], b[0] = -ENERGY_GAIN, ENERGY_GAIN * ENERGY_EDGE  # silence: quiet windows
    w[..., yes], b[yes] = ENERGY_GAIN, -ENERGY_GAIN * ENERGY_EDGE  # "yes": loud windows
    head.set_weights([w, b])
    return model


@pytest.fixture(scope="session")
def energy_run(tmp_path_factory, demo_data) -> Path:
    """Run folder (model_int8.tflite + quantize.json) of the hand-set energy model."""
    from kwstool.data import load_prepared
    from kwstool.model.quantize import quantize

    data = load_prepared(demo_data)
    run = tmp_path_factory.mktemp("energy") / "run"
    run.mkdir()
    model = energy_model(len(data.labels), data.labels.index("yes"))
    model.save(run / "best.keras")
    write_run_config(run, model, "energy", demo_data)
    quantize(run, strict=True)
    return run


@pytest.fixture
def run_copy(energy_run, tmp_path) -> Path:
    """A private copy of the energy run (tests that write calibration.json into it)."""
    import shutil

    dst = tmp_path / "run"
    dst.mkdir()
    for name in ("model_int8.tflite", "quantize.json", "config.json"):
        shutil.copy(energy_run / name, dst / name)
    return dst


def words_wav(
    path: Path,
    demo_data: Path,
    count: int = 3,
    gap_s: float = 3.0,
    lead_s: float = 1.0,
    noise_rms: float = 1.0,
    seed: int = 0,
) -> tuple[Path, list]:
    """A WAV of ``count`` demo "yes" clips in dither-level noise (louder noise makes the front
    end's start-up look like a word to the energy model); returns it and the (start, end) ms."""
    from kwstool.core.audio import save_wav
    from kwstool.data import load_prepared
    from kwstool.stream.synth import speech_extent

    data = load_prepared(demo_data)
    split = data.split("train")
    yes = [i for i, lab in enumerate(split.labels) if data.labels[lab] == "yes"][:count]
    rate = 16000
    parts, times, pos = [np.zeros(int(lead_s * rate))], [], int(lead_s * rate)
    for i in yes:
        a, b = speech_extent(split.audio[i])
        word = split.audio[i][a:b].astype(np.float64)
        word *= 8000 / max(1.0, np.abs(word).max())
        parts += [word, np.zeros(int(gap_s * rate))]
        times.append((pos * 1000 // rate, (pos + len(word)) * 1000 // rate))
        pos += len(word) + int(gap_s * rate)
    x = np.concatenate(parts)
    x += np.random.default_rng(seed).normal(0, noise_rms, len(x))
    save_wav(path, np.clip(np.round(x), -32768, 32767).astype(np.int16))
    return path, times
