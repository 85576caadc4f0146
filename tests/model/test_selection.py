"""Model selection by the streaming metric (kwstool.model.selection) on tone-burst "words"."""

from __future__ import annotations

import numpy as np
import pytest
from wavgen import burst

from kwstool.model.selection import StreamSelector

LABELS = ["_silence_", "_unknown_", "yes", "no"]


@pytest.fixture(scope="module")
def selector() -> StreamSelector:
    clips, labels = [], []
    for k in range(8):
        clips += [burst(500 + 30 * k, 0.3, 0.4), burst(1500, 0.2, 0.5), burst(4000, 0.4, 0.3)]
        labels += [2, 3, 1]  # yes = low tone, no = middle tone, another word = high tone
    return StreamSelector(np.stack(clips), np.array(labels), LABELS, [], seconds=60.0)


class BandModel:
    """A stand-in network that reads the frequency band of the window's loudest frames."""

    def __init__(self, other_is_yes: bool = False) -> None:
        self.other_is_yes = other_is_yes

    def predict(self, x: np.ndarray, batch_size: int = 0, verbose: int = 0) -> np.ndarray:
        feats = x[..., 0]
        bands = (slice(0, 14), slice(14, 26), slice(30, 40))
        loud = np.stack([feats[:, :, b].max(axis=(1, 2)) for b in bands], axis=1)
        out = np.full((len(x), 4), 0.01)
        band = loud.argmax(axis=1)
        voiced = loud.max(axis=1) > -60
        out[voiced & (band == 0), 2] = 0.97
        out[voiced & (band == 1), 3] = 0.97
        out[voiced & (band == 2), 2 if self.other_is_yes else 1] = 0.98
        out[~voiced, 0] = 0.97
        return out


def test_streams_hold_keywords_and_only_other_words(selector: StreamSelector) -> None:
    assert {label for label, _ in selector.positive.words} == {2, 3}
    assert selector.negative.words == []  # the negative stream has no keyword
    assert len(selector.positive.windows) > 100 and len(selector.negative.windows) > 100


def test_a_model_that_separates_the_words_finds_them(selector: StreamSelector) -> None:
    recalls = selector.recalls(BandModel())
    assert recalls["yes"] > 0.9 and recalls["no"] > 0.9
    assert selector(BandModel()) == pytest.approx(np.mean(list(recalls.values())))


def test_false_accepts_on_other_words_cost_recall(selector: StreamSelector) -> None:
    """Scoring other words as "yes" above its true detections leaves no "yes" found at zero
    false accepts, while "no" is still found."""
    recalls = selector.recalls(BandModel(other_is_yes=True))
    assert recalls["yes"] == 0.0
    assert recalls["no"] > 0.9


def test_history_records_each_call(selector: StreamSelector) -> None:
    before = len(selector.history)
    selector(BandModel())
    assert len(selector.history) == before + 1 and "yes" in selector.history[-1]


def test_select_by_is_validated() -> None:
    from kwstool.errors import KwsError
    from kwstool.model.config import TrainConfig

    assert TrainConfig().replace(select_by="stream").select_by == "stream"
    with pytest.raises(KwsError, match="select_by"):
        TrainConfig().replace(select_by="loss")
