"""Streaming-aware training examples: windows cut from synthetic streams, and mined negatives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from wavgen import burst

from kwstool.core.contract import NUM_CHANNELS, NUM_FRAMES, SAMPLE_RATE, STRIDE_SAMPLES
from kwstool.model.mining import HardNegatives
from kwstool.model.windows import StreamWindows, _Event, voiced_span

LABELS = ["_silence_", "_unknown_", "yes", "no"]


@pytest.fixture(scope="module")
def windows() -> StreamWindows:
    clips, labels = [], []
    for k in range(12):
        clips.append(burst(600 + 40 * k, 0.3, 0.4))  # "yes"
        labels.append(2)
        clips.append(burst(1500 + 40 * k, 0.2, 0.5))  # "no"
        labels.append(3)
        clips.append(burst(3000 + 40 * k, 0.4, 0.3))  # another word
        labels.append(1)
    clips.append(np.zeros(SAMPLE_RATE, np.int16))  # a silence clip
    labels.append(0)
    noise = [np.random.default_rng(0).normal(0, 300, 5 * SAMPLE_RATE).astype(np.int16)]
    return StreamWindows(np.stack(clips), np.array(labels), LABELS, noise, count=300)


def test_voiced_span_finds_the_burst():
    s, e = voiced_span(burst(800, 0.3, 0.4))
    assert abs(s - 0.3 * SAMPLE_RATE) <= 160 and abs(e - 0.7 * SAMPLE_RATE) <= 160
    assert voiced_span(np.zeros(SAMPLE_RATE, np.int16)) == (0, 0)


def _end_covering(start: int, end: int) -> int:
    """Last frame of a window that holds [start, end) with room on both sides."""
    centre = (start + end) // 2
    return (centre + SAMPLE_RATE // 2) // STRIDE_SAMPLES


def test_labels_follow_coverage(windows):
    yes = _Event(5 * SAMPLE_RATE, 5 * SAMPLE_RATE + 6400, 2)
    other = _Event(8 * SAMPLE_RATE, 8 * SAMPLE_RATE + 4800, 1)
    whole = _end_covering(yes.start, yes.end)
    assert windows.label_of(whole, [yes, other]) == 2
    # the window ends in the middle of the word: ambiguous, not used
    half = (yes.start + 3200) // STRIDE_SAMPLES - 1
    assert windows.label_of(half, [yes]) is None
    # only the first ~10 % of the word at the right edge: a fragment -> _unknown_
    edge = (yes.start + 1000) // STRIDE_SAMPLES - 1
    assert windows.label_of(edge, [yes]) == 1
    # another word alone -> _unknown_; nothing -> _silence_
    assert windows.label_of(_end_covering(other.start, other.end), [yes, other]) == 1
    assert windows.label_of(_end_covering(20 * SAMPLE_RATE, 20 * SAMPLE_RATE), [yes, other]) == 0
    # two different whole keywords in one window: ambiguous
    no = _Event(yes.end + 800, yes.end + 4000, 3)
    assert windows.label_of(_end_covering(yes.start, no.end), [yes, no]) is None


def test_windows_are_deterministic_features_with_every_label(windows):
    x1, y1 = windows(np.random.default_rng(7))
    x2, y2 = windows(np.random.default_rng(7))
    assert x1.shape == (300, NUM_FRAMES, NUM_CHANNELS) and x1.dtype == np.int8
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    counts = np.bincount(y1, minlength=len(LABELS))
    assert all(counts > 0), counts
    # a keyword window holds its word: far louder frames than a silence window
    assert x1[y1 == 2].mean() > x1[y1 == 0].mean() + 10


def test_hard_negatives_mined_from_a_model_that_fires_on_everything(windows):
    import keras

    inputs = keras.Input((NUM_FRAMES, NUM_CHANNELS, 1))
    flat = keras.layers.Flatten()(inputs)
    logits = keras.layers.Dense(
        len(LABELS),
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant([0, 0, 5, 0]),
    )(flat)
    fires = keras.Model(inputs, keras.layers.Softmax()(logits))  # always "yes"
    miner = HardNegatives(windows, every=1, stream_seconds=30.0, mined_per_epoch=50)
    x, y = miner(np.random.default_rng(1), epoch=2, model=fires)
    assert miner.history and miner.history[0]["hard"] > 100
    assert len(x) == windows.count + 50 and np.all(y[windows.count :] == 1)
    # a model that never fires on a keyword mines nothing
    quiet = keras.Model(
        inputs,
        keras.layers.Softmax()(
            keras.layers.Dense(
                len(LABELS),
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant([0, 5, 0, 0]),
            )(flat)
        ),
    )
    miner2 = HardNegatives(windows, every=1, stream_seconds=30.0)
    miner2(np.random.default_rng(1), epoch=2, model=quiet)
    assert miner2.history[0]["hard"] == 0 and len(miner2.pool) == 0


def _rss_file_kb() -> int:
    """Resident file-backed pages of this process (Linux /proc/self/status RssFile)."""
    status = Path("/proc/self/status")
    for line in status.read_text().splitlines() if status.exists() else []:
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


def test_memory_mapped_audio_gives_the_same_windows_without_becoming_resident(tmp_path, windows):
    """A memory-mapped training split (as `kwstool train` passes it) is read with plain file
    reads: the same spans and windows as in RAM, and its pages are not mapped into the process."""
    path = tmp_path / "train_audio.npy"
    big = np.concatenate([windows.audio] * 60)  # 2,220 clips, 71 MB
    np.save(path, big)
    labels = np.concatenate([windows.labels] * 60)
    mapped = np.load(path, mmap_mode="r")
    before = _rss_file_kb()
    from_map = StreamWindows(mapped, labels, LABELS, windows.noise, count=300)
    stream_map = from_map.stream(np.random.default_rng(1), from_map.config)
    grown_mb = (_rss_file_kb() - before) / 1024
    in_ram = StreamWindows(big, labels, LABELS, windows.noise, count=300)
    assert from_map.spans == in_ram.spans
    stream_ram = in_ram.stream(np.random.default_rng(1), in_ram.config)
    assert np.array_equal(stream_map[0], stream_ram[0]) and stream_map[1] == stream_ram[1]
    assert grown_mb < 8, f"{grown_mb:.0f} MB of the mapped audio became resident"
