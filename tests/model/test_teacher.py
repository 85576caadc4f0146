"""The embedding teacher (kwstool.model.teachers) on real clips and the real ONNX models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from teacher_data import embedding_or_skip, prepare_real_tiny

from kwstool.errors import KwsError


@pytest.fixture(scope="module")
def real_tiny(tmp_path_factory):
    embedding_or_skip()
    return prepare_real_tiny(tmp_path_factory.mktemp("teacher_data"))


class _Lines:
    def __init__(self):
        self.lines = []

    def line(self, text):
        self.lines.append(text)


def _teacher(data_dir, run_dir, **cfg):
    from kwstool.data import load_prepared
    from kwstool.model.config import TrainConfig
    from kwstool.model.teachers import make_teacher

    data = load_prepared(data_dir, mmap=True)
    config = TrainConfig().replace(teacher="embedding", **cfg)
    report = _Lines()
    return make_teacher(config, list(data.labels), data, run_dir, 2, report), data, report


@pytest.fixture(scope="module")
def trained(real_tiny, tmp_path_factory):
    run = tmp_path_factory.mktemp("teacher_run")
    teacher, data, report = _teacher(real_tiny, run, distill=0.5, distill_temperature=2.0)
    return teacher, data, run, report


def test_the_head_learns_the_training_clips_and_gives_label_distributions(trained):
    teacher, data, run, report = trained
    y = np.asarray(data.split("train").labels)
    soft = teacher.clip_soft
    assert soft.shape == (len(y), len(data.labels)) == (len(y), 4)
    assert np.allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    assert (soft.argmax(axis=1) == y).mean() >= 0.9  # it learnt its training split
    assert soft.max(axis=1).mean() < 0.999  # softened by the temperature
    record = json.loads((run / "teacher" / "teacher.json").read_text())
    assert record["schema"] == "kwstool.teacher" and record["labels"] == list(data.labels)
    assert record["train_clips"] == len(y) and "embedding_model.onnx" in record["models"]
    assert "head trained" in report.lines[0]
    # the validation speakers were never seen, yet most of their clips are right
    from kwstool.core.embedding import softmax
    from kwstool.model.teachers.embedding import clip_embeddings

    val = data.split("validation")
    guess = softmax(teacher.head.logits(clip_embeddings(teacher.embedding, val.audio)))
    assert guess.shape == (len(val.labels), 4)
    assert (guess.argmax(axis=1) == np.asarray(val.labels)).mean() >= 0.5


def test_a_second_run_reuses_the_saved_head(trained, real_tiny):
    teacher, _data, run, _ = trained
    again, _, report = _teacher(real_tiny, run, distill=0.5, distill_temperature=2.0)
    assert report.lines == [f"embedding teacher: head and clip logits from {run / 'teacher'}"]
    np.testing.assert_allclose(again.clip_soft, teacher.clip_soft)
    hotter, _, _ = _teacher(real_tiny, run, distill=0.5, distill_temperature=4.0)
    assert hotter.clip_soft.max(axis=1).mean() < teacher.clip_soft.max(axis=1).mean()


def test_targets_blend_clips_windows_and_mined_negatives(trained):
    """Clips: their cached distribution; stream windows and mined windows: the teacher's
    distribution of the stream they were cut from; rows it cannot teach keep their labels."""
    from kwstool.model.augment import noise_list
    from kwstool.model.mining import HardNegatives
    from kwstool.model.windows import StreamWindows, WindowConfig

    teacher, data, _run, _ = trained
    train = data.split("train")
    n, labels = len(train.labels), list(data.labels)
    windows = StreamWindows(train.audio, train.labels, labels, noise_list(data.background_noise),
                            count=12, config=WindowConfig(stream_seconds=8.0),
                            teacher=teacher.audio)  # fmt: skip
    rng = np.random.default_rng(0)
    x, y, soft = windows(rng)
    assert soft.shape == (len(x), 4) and np.allclose(soft.sum(axis=1), 1.0, atol=1e-5)

    class AlwaysKeyword:  # a "model" whose every window is a false accept
        def predict(self, w, batch_size, verbose):
            return np.tile(np.array([0.0, 0.0, 1.0, 0.0], np.float32), (len(w), 1))

    miner = HardNegatives(windows, stream_seconds=4.0, hop_frames=25, pool_size=50)
    mined = miner.mine(rng, AlwaysKeyword(), epoch=6)
    assert mined > 0 and miner.pool_soft.shape == (len(miner.pool), 4)
    xs, ys, ss = miner(rng, 2, None)
    assert len(xs) == len(ys) == len(ss) == len(x) + min(miner.mined_per_epoch, mined)

    eye = np.eye(4, dtype=np.float32)
    ids = np.array([0, n - 1, n, n + len(xs) - 1])
    onehot = eye[np.array([train.labels[0], train.labels[-1], ys[0], ys[-1]])]
    got = teacher(x[:4], onehot, ids, ss)
    want = np.stack([teacher.clip_soft[0], teacher.clip_soft[n - 1], ss[0], ss[-1]])
    np.testing.assert_allclose(got, 0.5 * onehot + 0.5 * want, atol=1e-6)
    kept = teacher(x[:4], onehot, ids, None)  # extras without distributions: their labels
    np.testing.assert_allclose(kept[2:], onehot[2:])
    untaught = ss.copy()
    untaught[0] = np.nan  # a window of a stream the teacher did not see: its label
    mixed = teacher(x[:4], onehot, ids, untaught)
    np.testing.assert_allclose(mixed[2], onehot[2])
    np.testing.assert_allclose(mixed[3], got[3], atol=1e-6)


def test_batches_carry_the_teachers_targets(trained):
    from kwstool.model.augment import Augmenter
    from kwstool.model.epochs import Epoch, batches

    teacher, data, _run, _ = trained
    train = data.split("train")
    y = np.asarray(train.labels, np.int64)
    aug = Augmenter(train.audio, y, data.background_noise, 0, 0.5, 0.1, 100.0, False)
    w = np.ones(4, np.float32)

    def targets(t):
        ep = Epoch(np.arange(len(y)), np.random.default_rng(1), targets=t)
        return np.concatenate([b[1] for b in batches(aug, y, w, ep, 8)])

    np.testing.assert_allclose(targets(None), np.eye(4)[y])
    np.testing.assert_allclose(targets(teacher), 0.5 * np.eye(4)[y] + 0.5 * teacher.clip_soft,
                               atol=1e-6)  # fmt: skip


def test_train_without_the_models_names_the_install_step(real_tiny, tmp_path, monkeypatch, capsys):
    from kwstool.cli import main
    from kwstool.core.embedding import MODEL_DIR_ENV

    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path))
    argv = ["train", str(real_tiny), "--out", str(tmp_path / "run"), "--teacher", "embedding"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'kwstool[teacher]'" in err, err
    assert not (tmp_path / "run").exists()


def test_teacher_options_are_checked(real_tiny, tmp_path):
    with pytest.raises(KwsError, match="--teacher embedding and --teachers .* both given"):
        _teacher(real_tiny, tmp_path, teachers=str(tmp_path / "t"))
    from kwstool.model.config import TrainConfig

    with pytest.raises(KwsError, match="teacher='bert' is not one of none, embedding"):
        TrainConfig().replace(teacher="bert")


@pytest.mark.slow
def test_train_with_the_embedding_teacher_end_to_end(real_tiny, tmp_path):
    """`kwstool train --teacher embedding --epochs 1`: the run keeps the teacher's head and the
    student learns from other targets than the labels alone (same seed, other loss)."""
    from typer.testing import CliRunner

    from kwstool.cli import app

    runner = CliRunner()
    base = ["train", str(real_tiny), "--epochs", "1", "--json", "--threads", "2", "-m", "tiny_conv"]
    plain = runner.invoke(app, [*base, "--out", str(tmp_path / "plain")])
    taught = runner.invoke(
        app, [*base, "--out", str(tmp_path / "taught"), "--teacher", "embedding"]
    )
    assert plain.exit_code == 0 and taught.exit_code == 0, taught.output
    cfg = json.loads((tmp_path / "taught" / "config.json").read_text())
    assert cfg["hyperparameters"]["teacher"] == "embedding"
    assert (tmp_path / "taught" / "teacher" / "head.npz").is_file()
    loss = [json.loads((tmp_path / r / "history.json").read_text()) for r in ("plain", "taught")]
    first = [h["epochs"][0]["loss"] for h in loss]
    assert abs(first[0] - first[1]) > 1e-3


def test_window_distributions_are_of_the_windows_audio(real_tiny):
    """The starts a window's teacher gets are those of the features it was cut from."""
    from kwstool.core.contract import NUM_FRAMES, STRIDE_SAMPLES
    from kwstool.core.frontend import compute_raw, to_int8
    from kwstool.data import load_prepared
    from kwstool.model.windows import StreamWindows

    data = load_prepared(real_tiny)
    train = data.split("train")
    seen = []

    def teacher(stream, starts):  # records what it was asked; one-hot of the window's index
        seen.append((stream, np.asarray(starts)))
        return np.eye(4, dtype=np.float32)[np.zeros(len(starts), int)]

    windows = StreamWindows(train.audio, train.labels, list(data.labels), [], count=10,
                            teacher=teacher)  # fmt: skip
    x, _y, soft = windows(np.random.default_rng(3))
    assert soft.shape == (len(x), 4)
    stream, starts = seen[0]
    frames = to_int8(compute_raw(stream))
    for i, s in enumerate(starts[: len(x)]):
        first = int(s) // STRIDE_SAMPLES
        np.testing.assert_array_equal(x[i], frames[first : first + NUM_FRAMES])
    # teacher_share: the share of streams the teacher sees; the others' rows are NaN
    seen.clear()
    windows.count, windows.teacher_share = 400, 0.5
    _x, _y, soft = windows(np.random.default_rng(4))
    taught = ~np.isnan(soft).any(axis=1)
    assert taught.any() and (~taught).any()
    assert sum(len(st) for _, st in seen) >= taught.sum()
    calls = len(seen)
    windows.teacher_share = 0.0
    _x, _y, soft = windows(np.random.default_rng(4))
    assert np.isnan(soft).all() and len(seen) == calls


@pytest.mark.slow
def test_listen_with_the_embedding_model(trained, tmp_path, capsys):
    """`kwstool listen RUN --model embedding --wav`: the run's head over the embedding, the
    same recognizer: a training 'yes' then 'no' between silences, each detected once, in
    its place; an --on/--exec action fires for it."""
    import sys

    from kwstool.cli import main
    from kwstool.core.audio import save_wav

    _teacher, data, run, _ = trained
    train = data.split("train")
    labels = list(train.labels)
    yes, no = train.audio[labels.index(2)], train.audio[labels.index(3)]
    quiet = np.zeros(8000, np.int16)
    save_wav(tmp_path / "two.wav", np.concatenate([quiet, yes, quiet, quiet, no, quiet, quiet]))
    fired = tmp_path / "fired.txt"
    code = f"open({str(fired)!r}, 'a').write('x')"
    wav = str(tmp_path / "two.wav")
    argv = ["listen", str(run), "--model", "embedding", "--wav", wav, "--fast",
            "--threshold", "200", "--on", "no", "--exec", sys.executable, "-c", code]  # fmt: skip
    assert main(argv) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("DETECTED")]
    assert [ln.split()[1] for ln in lines] == ["yes", "no"], lines
    times = [float(ln.rsplit("t=", 1)[1].rstrip("s")) for ln in lines]
    assert 0.5 <= times[0] <= 2.5 and 2.5 <= times[1] <= 4.5
    assert fired.read_text() == "x"


def test_listen_embedding_needs_the_teachers_head(tmp_path):
    from kwstool.stream.listen import listen

    with pytest.raises(
        KwsError, match=r"no embedding head; train the run with .*--teacher embedding"
    ):
        listen(tmp_path, wav=tmp_path / "x.wav", detector="embedding")
    with pytest.raises(KwsError, match="--model bert: unknown; choose board or embedding"):
        listen(tmp_path, detector="bert")
