"""The pretrained speech embedding (kwstool.core.embedding) on the real ONNX models."""

from __future__ import annotations

import numpy as np
import pytest
from teacher_data import embedding_or_skip, real_clips

from kwstool.core import embedding as ce
from kwstool.core.audio import load_wav
from kwstool.errors import KwsError


@pytest.fixture(scope="module")
def emb():
    return embedding_or_skip()


@pytest.fixture(scope="module")
def clips():
    return np.stack([load_wav(p) for p in real_clips("yes", 2) + real_clips("no", 1)])


def test_framing_matches_the_onnx_models(emb):
    """10 ms mel frames of a 512-sample window, 32 bins; 96-d embeddings of 76-frame windows."""
    assert [i.shape[1:] for i in emb._emb.get_inputs()] == [[ce.EMB_FRAMES, ce.MEL_BINS, 1]]
    assert emb._emb.get_outputs()[0].shape[1:] == [1, 1, ce.EMB_DIM]
    for samples in (1280, 15840, 16000, 32000):
        mel = emb.mel(np.zeros((1, samples), np.int16))
        assert mel.shape == (1, ce.mel_frames(samples), ce.MEL_BINS)
    assert ce.mel_frames(16000) == 97 and ce.mel_frames(32000) == 197
    # a padded 1 s clip holds 16 embeddings; the 12 of the window are those centred in the clip
    k = ce.first_embedding(0) + np.arange(ce.HEAD_EMBEDDINGS)
    centres = k * ce.EMB_HOP_SAMPLES + ce.EMB_SPAN // 2 - ce.PAD
    assert k.min() >= 0 and k.max() < (ce.mel_frames(32000) - ce.EMB_FRAMES) // ce.EMB_HOP + 1
    assert centres.min() >= 0 and centres.max() < 16000
    assert abs(centres.mean() - 8000) <= ce.EMB_HOP_SAMPLES / 2


def test_a_clip_and_the_same_window_of_a_stream_agree(emb, clips):
    """clips() (batched) is the window at 0 of each clip's own stream; windows() of a long
    stream equals its full embedding sequence at the window's indices."""
    by_clip = emb.clips(clips)
    assert by_clip.shape == (3, ce.HEAD_EMBEDDINGS, ce.EMB_DIM) and np.isfinite(by_clip).all()
    alone = np.stack([emb.windows(c, [0])[0] for c in clips])
    np.testing.assert_allclose(by_clip, alone, atol=1e-4)
    assert np.abs(by_clip[0] - by_clip[2]).mean() > 0.1 * np.abs(by_clip).mean()  # yes != no
    stream = np.concatenate([clips[0], clips[1], clips[2]])
    starts = np.array([0, 6400, 16000, 32000])
    got = emb.windows(stream, starts)
    full = emb.stream(stream)
    want = full[ce.first_embedding(starts)[:, None] + np.arange(ce.HEAD_EMBEDDINGS)]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_shifted_clip_windows_are_the_clip_moved_in_its_stream(emb, clips):
    """clips(shift=2): two more embeddings either side; the middle twelve are clips(), and the
    window i embeddings along is the clip's stream read (i - 2) x 80 ms later."""
    from kwstool.model.teachers.embedding import shifted_views

    wide = emb.clips(clips, shift=ce.MAX_SHIFT)
    assert wide.shape == (3, ce.HEAD_EMBEDDINGS + 2 * ce.MAX_SHIFT, ce.EMB_DIM)
    np.testing.assert_allclose(wide[:, 2:-2], emb.clips(clips), atol=1e-4)
    full = emb.stream(clips[0])
    k0 = ce.first_embedding(0)
    np.testing.assert_allclose(wide[0], full[k0 - 2 : k0 + ce.HEAD_EMBEDDINGS + 2], atol=1e-4)
    views, labels = shifted_views(wide, np.array([4, 5, 6]), ce.MAX_SHIFT)
    assert views.shape == (15, ce.HEAD_EMBEDDINGS, ce.EMB_DIM)
    assert labels.tolist() == [4, 5, 6] * 5
    np.testing.assert_array_equal(views[3:6], wide[:, 1:13])
    with pytest.raises(ValueError, match="shift 3"):
        emb.clips(clips, shift=3)


def test_missing_models_are_one_line_errors_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setenv(ce.MODEL_DIR_ENV, str(tmp_path))
    with pytest.raises(
        KwsError, match=r"no melspectrogram.onnx .*pip install 'kwstool\[teacher\]'"
    ):
        ce.model_dir()
    monkeypatch.delenv(ce.MODEL_DIR_ENV)
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(KwsError, match=r"needs onnxruntime; install the teacher extra"):
        ce.SpeechEmbedding()


def test_head_round_trip_and_shape_checks(tmp_path):
    rng = np.random.default_rng(0)
    width = ce.HEAD_EMBEDDINGS * ce.EMB_DIM
    f32 = np.float32
    w1, w2 = rng.standard_normal((width, 8)).astype(f32), rng.standard_normal((8, 4)).astype(f32)
    head = ce.Head(np.zeros(width, f32), np.ones(width, f32), w1, np.zeros(8, f32), w2,
                   np.zeros(4, f32))  # fmt: skip
    head.save(tmp_path / "head.npz")
    back = ce.Head.load(tmp_path / "head.npz", 4)
    x = rng.standard_normal((5, ce.HEAD_EMBEDDINGS, ce.EMB_DIM)).astype(np.float32)
    np.testing.assert_allclose(back.logits(x), head.logits(x), rtol=1e-6)
    p = back.probabilities(x, temperature=2.0)
    assert p.shape == (5, 4) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    # no windows at all (a mining pass that found none): no rows, not an error
    none = np.empty((0, ce.HEAD_EMBEDDINGS, ce.EMB_DIM), np.float32)
    assert back.probabilities(none).shape == (0, 4)
    with pytest.raises(KwsError, match="do not fit 3 labels"):
        ce.Head.load(tmp_path / "head.npz", 3)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(KwsError, match="not a readable embedding head"):
        ce.Head.load(tmp_path / "bad.npz", 4)
