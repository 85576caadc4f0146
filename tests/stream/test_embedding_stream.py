"""The embedding detector's streaming framing (kwstool.stream.embedding): what `listen --model
embedding` computes block by block equals the bulk computation the benchmarks use."""

from __future__ import annotations

import numpy as np
from teacher_data import embedding_or_skip, real_clips

from kwstool.core.audio import load_wav
from kwstool.core.embedding import EMB_DIM, EMB_HOP_SAMPLES, EMB_SPAN, HEAD_EMBEDDINGS, Head
from kwstool.core.recognizer import RECOGNIZER_DEFAULTS
from kwstool.stream import native
from kwstool.stream.embedding import (
    LEAD,
    EmbeddingModel,
    EmbeddingPipeline,
    batch_scores,
    embed_stream,
    newest_embedding,
)

LABELS = ["_silence_", "_unknown_", "yes", "no"]


def _model() -> EmbeddingModel:
    rng = np.random.default_rng(0)
    width = HEAD_EMBEDDINGS * EMB_DIM
    head = Head(np.zeros(width, np.float32), np.ones(width, np.float32),
                (0.05 * rng.standard_normal((width, 16))).astype(np.float32),
                np.zeros(16, np.float32), rng.standard_normal((16, 4)).astype(np.float32),
                np.zeros(4, np.float32))  # fmt: skip
    return EmbeddingModel(None, LABELS, head)  # type: ignore[arg-type]


def test_newest_embedding_has_been_heard_and_the_next_has_not():
    for heard in (1600, 3200, 16000, 17600, 123456):
        k = int(newest_embedding(heard))
        assert k * EMB_HOP_SAMPLES + EMB_SPAN <= heard + LEAD  # all of its samples heard
        assert (k + 1) * EMB_HOP_SAMPLES + EMB_SPAN > heard + LEAD
    assert int(newest_embedding(0)) >= HEAD_EMBEDDINGS - 1  # the first inference has twelve


def test_listen_blocks_and_the_bulk_path_give_the_same_scores():
    embedding = embedding_or_skip()
    x = np.concatenate(
        [np.concatenate([load_wav(f), np.zeros(5000, np.int16)]) for f in real_clips("yes", 3)]
    )
    model = _model()
    bulk = batch_scores(model, x, embedding)
    assert len(bulk.times_ms) == len(x) // 1600 and bulk.times_ms[0] == 100
    settings = native.RecognizerSettings.build(LABELS, dict(RECOGNIZER_DEFAULTS))
    pipeline = EmbeddingPipeline(model, settings, embedding)
    steps = []
    for i in range(0, len(x), 1234):  # blocks that do not line up with the period
        steps += pipeline.feed(x[i : i + 1234])
    np.testing.assert_array_equal(np.stack([s.scores for s in steps]), bulk.scores)
    np.testing.assert_array_equal([s.time_ms for s in steps], bulk.times_ms)
    # the embeddings are of the stream, computed once: a second head reuses them
    stream = embed_stream(x, model.period_ms, embedding)
    np.testing.assert_array_equal(batch_scores(model, stream).scores, bulk.scores)
    # each inference reads audio heard by then only: the scores up to a time do not change
    # when more audio follows
    half = batch_scores(model, x[: len(x) // 2], embedding)
    np.testing.assert_array_equal(half.scores, bulk.scores[: len(half.scores)])
