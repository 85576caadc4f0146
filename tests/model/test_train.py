"""`kwstool train`: run folder, augmentation, determinism, resume, early stopping, errors.

Everything runs on a tiny dataset made here: tones of three pitches ("yes", "no", and the unknown
word "cat") from 20 made-up speakers plus a white-noise recording, prepared with
`kwstool.data.prepared` into speaker-disjoint splits (36 train clips).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import interrupt_after
from wavgen import write_wav

from kwstool.errors import KwsError
from kwstool.model import (
    augment as augment_mod,
    epochs as epochs_mod,
    train as train_mod,
    trainloop as trainloop_mod,
)
from kwstool.model.train import Augmenter, train

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TONES = {"yes": 500.0, "no": 1200.0, "cat": 2500.0}


def make_source(root: Path) -> Path:
    """Word folders of 1 s tone bursts (speaker-named files) and one noise recording."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    for word, freq in TONES.items():
        (root / word).mkdir(parents=True)
        for s in range(20):
            f = freq * (1 + 0.05 * rng.standard_normal())
            x = 0.3 * np.sin(2 * np.pi * f * t) * (np.abs(t - 0.5) < 0.3)
            x += 0.01 * rng.standard_normal(16000)
            write_wav(root / word / f"{s:08x}_nohash_0.wav", (x * 32767).astype(np.int16))
    (root / "_background_noise_").mkdir()
    noise = 0.1 * rng.standard_normal(16000 * 5)
    write_wav(
        root / "_background_noise_" / "white_noise.wav",
        (noise * 32767).astype(np.int16),
    )
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from kwstool.data import prepare

    base = tmp_path_factory.mktemp("train_data")
    src = make_source(base / "src")
    out = base / "prepared"
    prepare(str(src), out, words=["yes", "no"], progress=False)
    return out


def quick(data: Path, run: Path, **kwargs):
    """A fast tiny_conv run (batch 8) unless the caller overrides something."""
    args = {"model": "tiny_conv", "epochs": 2, "batch_size": 8, "progress": False}
    args.update(kwargs)
    return train(data, run, **args)


def checkpoint_arrays(run: Path) -> dict[str, np.ndarray]:
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    with np.load(run / "checkpoint" / state["file"]) as z:
        return {k: z[k] for k in z.files}


def best_weights(run: Path) -> list[np.ndarray]:
    import keras

    return keras.models.load_model(run / "best.keras", compile=False).get_weights()


def without_seconds(history: list[dict]) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k not in ("seconds", "clips_per_s")} for row in history
    ]


# --- run folder ----------------------------------------------------------------------------------
def test_train_writes_the_run_folder(tiny_data, tmp_path):
    import keras

    from kwstool.data import load_prepared

    run = tmp_path / "run"
    result = quick(tiny_data, run, epochs=3, seed=5)

    assert sorted(p.name for p in run.iterdir()) == [
        "best.keras",
        "checkpoint",
        "config.json",
        "history.json",
        "training_curve.png",
    ]
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == [
        "epoch_0003.npz",
        "state.json",
    ]
    assert (run / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    data = load_prepared(tiny_data)
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "tiny_conv"
    assert config["labels"] == data.labels == ["_silence_", "_unknown_", "yes", "no"]
    assert config["seed"] == 5
    assert config["hyperparameters"] == dict(
        train_mod.DEFAULTS, model="tiny_conv", epochs=3, batch_size=8, seed=5
    )
    assert config["data"]["path"] == str(tiny_data.resolve())
    assert config["data"]["inputs_hash"] == data.manifest["inputs_hash"]
    assert config["data"]["train_count"] == len(data.split("train").labels)
    assert config["features"] == data.manifest["features"]
    assert config["input_shape"] == [49, 40, 1]

    history = json.loads((run / "history.json").read_text())
    val = [row["val_accuracy"] for row in history["epochs"]]
    assert [row["epoch"] for row in history["epochs"]] == [1, 2, 3]
    assert history["best_epoch"] == 1 + int(np.argmax(val)) == result.best_epoch
    assert history["best_val_accuracy"] == max(val) == result.best_val_accuracy
    assert history["finished"] is True and history["stopped_early"] is False

    assert result.epochs_run == 3 and result.resumed_from is None and not result.stopped_early
    assert result.history == history["epochs"]
    assert result.run_dir == run and result.model == "tiny_conv"

    best = keras.models.load_model(run / "best.keras", compile=False)
    assert best.input_shape == (1, 49, 40, 1)  # static batch: clean TFLite conversion
    probs = best.predict(data.split("validation").features[..., None].astype(np.float32), verbose=0)
    assert probs.shape == (len(data.split("validation").labels), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # best.keras reproduces the best epoch's validation accuracy
    acc = float(np.mean(probs.argmax(1) == data.split("validation").labels))
    assert acc == pytest.approx(result.best_val_accuracy, abs=1e-6)


def test_training_learns_the_tones(tiny_data, tmp_path):
    result = quick(tiny_data, tmp_path / "run", model="tc_resnet", epochs=10, lr=0.01)
    assert result.best_val_accuracy == 1.0


def test_default_model_trains(tiny_data, tmp_path):
    from kwstool.model.zoo import DEFAULT_MODEL

    result = train(tiny_data, tmp_path / "run", epochs=1, batch_size=8, progress=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == DEFAULT_MODEL == train_mod.DEFAULTS["model"] == result.model
    assert result.epochs_run == 1 and (tmp_path / "run" / "best.keras").is_file()


# --- determinism and resume ----------------------------------------------------------------------
def test_same_seed_gives_identical_weights(tiny_data, tmp_path):
    quick(tiny_data, tmp_path / "a", seed=3)
    quick(tiny_data, tmp_path / "b", seed=3)
    quick(tiny_data, tmp_path / "c", seed=4)
    a, b, c = (checkpoint_arrays(tmp_path / r) for r in "abc")
    assert sorted(a) == sorted(b)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    for x, y in zip(best_weights(tmp_path / "a"), best_weights(tmp_path / "b")):
        assert np.array_equal(x, y)


def test_resume_after_interrupt_equals_uninterrupted_run(tiny_data, tmp_path, monkeypatch):
    full = quick(tiny_data, tmp_path / "full", epochs=4, seed=1)

    calls = {"n": 0}
    real_dataset = trainloop_mod.epoch_dataset  # the epoch loop's own reference

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # Ctrl-C while epoch 3 is being prepared
            raise KeyboardInterrupt
        return real_dataset(*args, **kwargs)

    monkeypatch.setattr(trainloop_mod, "epoch_dataset", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quick(tiny_data, tmp_path / "cut", epochs=4, seed=1)
    monkeypatch.undo()
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and state["finished"] is False
    assert len(json.loads((tmp_path / "cut" / "history.json").read_text())["epochs"]) == 2

    resumed = train(tiny_data, tmp_path / "cut", resume=True, progress=False)
    assert resumed.resumed_from == 2 and resumed.epochs_run == 4
    assert without_seconds(resumed.history) == without_seconds(full.history)
    a, b = checkpoint_arrays(tmp_path / "full"), checkpoint_arrays(tmp_path / "cut")
    assert sorted(a) == sorted(b)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    for x, y in zip(best_weights(tmp_path / "full"), best_weights(tmp_path / "cut")):
        assert np.array_equal(x, y)

    # Resuming a finished run changes nothing and returns it.
    again = train(tiny_data, tmp_path / "cut", resume=True, progress=False)
    assert again.epochs_run == 4 and again.best_epoch == resumed.best_epoch
    assert all(np.array_equal(b[k], v) for k, v in checkpoint_arrays(tmp_path / "cut").items())


def test_early_stopping_keeps_the_best_epoch(tiny_data, tmp_path):
    # A learning rate this small leaves the (BN-free) tiny_conv unchanged: no epoch improves on
    # the first, so patience 2 stops after epoch 3.
    result = quick(tiny_data, tmp_path / "run", epochs=10, lr=1e-12, patience=2)
    assert result.stopped_early and result.epochs_run == 3 and result.best_epoch == 1
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["stopped_early"] is True and len(history["epochs"]) == 3


def test_overwrite_replaces_a_run(tiny_data, tmp_path):
    quick(tiny_data, tmp_path / "run", epochs=2)
    result = quick(tiny_data, tmp_path / "run", epochs=1, overwrite=True)
    assert result.epochs_run == 1
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoint").iterdir()) == [
        "epoch_0001.npz",
        "state.json",
    ]


# --- augmentation --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_split(tiny_data):
    from kwstool.data import load_prepared

    data = load_prepared(tiny_data)
    return data, data.split("train")


def augmenter(data, split, **kwargs) -> Augmenter:
    args = {
        "noise": data.background_noise,
        "silence_index": 0,
        "noise_prob": 0.0,
        "noise_volume": 0.1,
        "time_shift_ms": 0.0,
        "spec_augment": False,
    }
    args.update(kwargs)
    return Augmenter(split.audio, split.labels, **args)


def test_augmenter_without_augmentation_gives_the_cached_features(train_split):
    data, split = train_split
    aug = augmenter(data, split, silence_index=None)
    x = aug.features(np.random.default_rng(0))
    assert x.shape == (len(split.labels), 49, 40, 1) and x.dtype == np.float32
    assert np.array_equal(x[..., 0], split.features.astype(np.float32))
    order = np.array([3, 1, 2])
    assert np.array_equal(
        aug.features(np.random.default_rng(0), order)[..., 0],
        split.features[order].astype(np.float32),
    )


def test_silence_clips_always_get_noise(train_split):
    data, split = train_split
    x = augmenter(data, split).features(np.random.default_rng(1))[..., 0]
    changed = np.any(x != split.features, axis=(1, 2))
    silence = split.labels == 0
    assert silence.any()
    assert np.array_equal(changed, silence)


def test_noise_and_shift_change_every_clip_reproducibly(train_split):
    data, split = train_split
    aug = augmenter(data, split, noise_prob=1.0, time_shift_ms=100.0, spec_augment=True)
    a = aug.features(np.random.default_rng(2))
    b = aug.features(np.random.default_rng(2))
    c = aug.features(np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(np.any(a[..., 0] != split.features, axis=(1, 2)))


def test_time_shift_moves_audio_and_fills_zeros(train_split):
    data, split = train_split
    aug = augmenter(data, split, time_shift_ms=100.0)
    clips = np.tile(np.arange(1, 16001, dtype=np.int16), (64, 1))
    shifted = aug._shift(clips, np.random.default_rng(4))
    shifts = np.random.default_rng(4).integers(-1600, 1601, size=64)
    for row, s in zip(shifted, shifts):
        expected = np.zeros(16000, np.float32)
        if s >= 0:
            expected[s:] = clips[0, : 16000 - s]
        else:
            expected[: 16000 + s] = clips[0, -s:]
        assert np.array_equal(row, expected)
    assert shifts.min() < -800 and shifts.max() > 800


def _contiguous(idx: np.ndarray, most: int) -> bool:
    return len(idx) <= most and (len(idx) == 0 or idx[-1] - idx[0] == len(idx) - 1)


def test_spec_augment_masks_one_band_and_one_span_with_the_clip_mean(train_split):
    data, split = train_split
    aug = augmenter(data, split, spec_augment=True, silence_index=None)
    x = aug.features(np.random.default_rng(5))[..., 0]
    clean = split.features.astype(np.float32)
    masked_clips = 0
    for masked, original in zip(x, clean):
        at_mean = np.isclose(masked, original.mean())
        diff = masked != original
        assert np.all(at_mean[diff])  # every change is to the clip mean
        # the changes lie in whole channels (a band) and whole frames (a span), nowhere else
        band = np.flatnonzero(at_mean.all(axis=0) & diff.any(axis=0))
        span = np.flatnonzero(at_mean.all(axis=1) & diff.any(axis=1))
        assert _contiguous(band, augment_mod.FREQ_MASK_MAX)
        assert _contiguous(span, augment_mod.TIME_MASK_MAX)
        outside = diff.copy()
        outside[:, band] = False
        outside[span, :] = False
        assert not outside.any()
        masked_clips += bool(len(band) or len(span))
    # widths are drawn from 0..5 each, so all but ~1/36 of the clips get a mask
    assert masked_clips >= 0.8 * len(x)


def test_speed_perturbation_stretches_each_clip_about_its_centre(train_split):
    data, split = train_split
    aug = augmenter(data, split, speed_perturb=0.1)
    ones = np.ones((200, 16000), np.int16)
    out = aug._speed(ones, np.random.default_rng(6))
    rates = np.random.default_rng(6).uniform(0.9, 1.1, size=200)
    assert rates.min() < 0.92 and rates.max() > 1.08
    for row, rate in zip(out, rates):
        nonzero = np.flatnonzero(row)
        if rate <= 1.0:  # slower: the clip fills the whole second
            assert len(nonzero) == 16000
        else:  # faster: 16000/rate samples of signal, centred, zeros on both sides
            assert abs(len(nonzero) - 16000 / rate) <= 2
            assert abs(nonzero[0] - (15999 - nonzero[-1])) <= 1
        assert np.allclose(row[nonzero[1:-1]], 1.0)


def test_class_weights_make_every_label_weigh_the_same():
    labels = np.array([0, 1, 1, 1, 3])
    weights = train_mod.class_weights(labels, 4)
    np.testing.assert_allclose(weights, [5 / 3, 5 / 9, 0.0, 5 / 3], rtol=1e-6)
    per_label = np.bincount(labels, weights=weights[labels], minlength=4)
    np.testing.assert_allclose(per_label, [5 / 3, 5 / 3, 0.0, 5 / 3], rtol=1e-6)
    np.testing.assert_allclose(train_mod.class_weights(np.array([0, 1, 2]), 3), 1.0)


# --- errors --------------------------------------------------------------------------------------
def error(data, run, **kwargs) -> str:
    with pytest.raises(KwsError) as exc:
        quick(data, run, **kwargs)
    return str(exc.value)


def test_missing_data_folder_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope"
    assert error(missing, tmp_path / "run") == (
        f"{missing}: no such folder; create it with `kwstool prepare`"
    )
    assert not (tmp_path / "run").exists()


def test_folder_without_prepared_data_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    msg = error(tmp_path / "empty", tmp_path / "run")
    assert msg.startswith(f"{tmp_path / 'empty'}: no manifest.json")
    assert "kwstool prepare" in msg


def test_unknown_model_is_a_clear_error(tiny_data, tmp_path):
    assert error(tiny_data, tmp_path / "run", model="resnet50") == (
        "unknown model 'resnet50'; choose one of: bc_resnet, ds_cnn, ds_tcn, tc_resnet, tiny_conv"
    )


def test_out_of_range_hyperparameter_is_a_clear_error(tiny_data, tmp_path):
    assert error(tiny_data, tmp_path / "run", epochs=0) == (
        "epochs=0 is out of range; it must be an integer >= 1"
    )
    assert error(tiny_data, tmp_path / "run", noise_prob=1.5) == (
        "noise_prob=1.5 is out of range; it must be between 0 and 1"
    )


def test_run_folder_conflicts_are_clear_errors(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert error(tiny_data, run, resume=True) == (
        f"{run}: no config.json, so there is no run to resume; start it without --resume"
    )
    quick(tiny_data, run, epochs=1)
    assert error(tiny_data, run) == (
        f"{run} already holds a training run; continue it with --resume, replace it with "
        f"--overwrite, or choose another output folder"
    )
    assert error(tiny_data, run, resume=True, epochs=5) == (
        f"{run} was started with epochs=1, not 5; drop that option to resume, or start a new "
        f"run in another folder"
    )
    assert error(tiny_data, run, resume=True, overwrite=True) == (
        "--resume continues the run in the output folder and --overwrite replaces it; pass "
        "only one of them"
    )


def test_resume_with_other_data_is_a_clear_error(tiny_data, tmp_path):
    from kwstool.data import prepare

    other = tmp_path / "other"
    prepare(str(tiny_data.parent / "src"), other, words=["yes"], progress=False)
    run = tmp_path / "run"
    quick(tiny_data, run, epochs=1)
    msg = error(other, run, resume=True, model=None, epochs=None, batch_size=None)
    assert msg == (
        f"{other} is not the prepared data {run} was trained on "
        f"({tiny_data.resolve()}); resume with that data"
    )


# --- command line --------------------------------------------------------------------------------
def test_cli_train(tiny_data, tmp_path, capsys):
    from kwstool.cli import main

    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(tiny_data),
                "--out",
                str(run),
                "--model",
                "tiny_conv",
                "--epochs",
                "2",
                "--batch-size",
                "8",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "tiny_conv" and out["epochs_run"] == 2 and out["run_dir"] == str(run)

    assert main(["train", str(tiny_data), "--out", str(run), "--resume"]) == 0
    assert "training already finished at epoch 2" in capsys.readouterr().out

    assert main(["train", str(tiny_data), "--out", str(tmp_path / "x"), "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: unknown model 'nope'; choose one of:"
        " bc_resnet, ds_cnn, ds_tcn, tc_resnet, tiny_conv"
    ]


# --- configuration -------------------------------------------------------------------------------
def test_every_config_field_has_a_cli_option_and_vice_versa():
    import typer.main

    from kwstool.cli import model as cli_model
    from kwstool.cli.app import app
    from kwstool.model.config import FIELD_NAMES, FIELDS

    command = typer.main.get_command(app).commands["train"]
    params = {p.name: p for p in command.params}
    assert set(params) - set(cli_model.TRAIN_EXTRA_OPTIONS) == set(FIELD_NAMES)
    assert set(cli_model.TRAIN_EXTRA_OPTIONS) <= set(params)
    for name in FIELD_NAMES:
        assert params[name].default is None  # not given: default for a new run, stored on resume
        assert FIELDS[name].metadata["help"] in params[name].help
        assert "--" + name.replace("_", "-") in params[name].opts
    # `kwstool run` passes its training options through under the same names
    run_params = {p.name for p in typer.main.get_command(app).commands["run"].params}
    assert {"model", "epochs", "batch_size", "seed"} <= run_params & set(FIELD_NAMES)


def test_config_validation_names_the_field():
    from kwstool.model.config import TrainConfig

    with pytest.raises(
        KwsError,
        match=r"^warmup_epochs=-1 is out of range; it must be an "
        r"integer >= 0$",
    ):
        TrainConfig(warmup_epochs=-1).validate()
    with pytest.raises(KwsError, match=r"^x.json: spec_augment='yes' is not true/false$"):
        TrainConfig.from_dict({"spec_augment": "yes"}, "x.json")
    with pytest.raises(KwsError, match=r"^x.json: unknown hyper-parameter 'colour'"):
        TrainConfig.from_dict({"colour": 1}, "x.json")
    assert TrainConfig.from_dict({"epochs": 3}) == TrainConfig(epochs=3)


def test_train_takes_a_config_and_stores_it(tiny_data, tmp_path):
    from kwstool.model.config import SCHEMA_VERSION, TrainConfig

    cfg = TrainConfig(model="tiny_conv", epochs=1, batch_size=8, seed=2)
    train(tiny_data, tmp_path / "run", cfg, progress=False)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["hyperparameters"] == cfg.to_dict()
    assert stored["schema_version"] == SCHEMA_VERSION


def test_corrupt_config_json_is_a_one_line_error_naming_file_and_field(tiny_data, tmp_path):
    run = tmp_path / "run"
    quick(tiny_data, run, epochs=1)
    cfg_path = run / "config.json"
    stored = json.loads(cfg_path.read_text())
    stored["hyperparameters"]["lr"] = 5
    cfg_path.write_text(json.dumps(stored))
    assert error(tiny_data, run, resume=True, model=None, epochs=None, batch_size=None) == (
        f"{cfg_path}: lr=5 is out of range; it must be between 0 and 1"
    )


def test_full_preset_is_a_valid_config():
    from kwstool.model.config import PRESETS, TrainConfig, preset

    cfg = TrainConfig().replace(**preset("full"))
    assert cfg.batch_size == PRESETS["full"]["batch_size"] and cfg.epochs >= 30
    with pytest.raises(KwsError, match="unknown preset 'fast'; choose one of: full"):
        preset("fast")


# --- hooks: extra examples, selection score ------------------------------------------------------
def test_extra_examples_are_mixed_into_each_epoch(train_split):
    data, split = train_split
    aug = augmenter(data, split, silence_index=None)
    y = np.asarray(split.labels, dtype=np.int64)
    n, m = len(y), 11
    extra_x = np.full((m, 49, 40), 77, np.int8)
    extra_y = np.full(m, 3, np.int64)
    rng = np.random.default_rng(0)
    ep = epochs_mod.Epoch(rng.permutation(n + m), rng, extra_x, extra_y)
    batches = list(epochs_mod.batches(aug, y, np.ones(4, np.float32), ep, batch_size=8))
    x = np.concatenate([b[0] for b in batches])[..., 0]
    labels = np.concatenate([b[1] for b in batches]).argmax(1)
    assert len(x) == n + m
    extra_rows = np.all(x == 77, axis=(1, 2))
    assert extra_rows.sum() == m and np.all(labels[extra_rows] == 3)
    assert np.array_equal(np.flatnonzero(extra_rows), np.flatnonzero(ep.order >= n))
    # the clips are the clean cached features in the shuffled order
    assert np.array_equal(x[~extra_rows], split.features[ep.order[ep.order < n]])


def test_train_calls_extra_examples_each_epoch_with_a_seeded_rng(tiny_data, tmp_path):
    draws = []

    def extra(rng):
        draws.append(rng.integers(1 << 30))
        return np.zeros((5, 49, 40), np.int8), np.zeros(5, np.int64)

    result = quick(tiny_data, tmp_path / "a", epochs=2, extra_examples=extra)
    n = json.loads((tmp_path / "a" / "config.json").read_text())["data"]["train_count"]
    assert [row["examples"] for row in result.history] == [n + 5, n + 5]
    quick(tiny_data, tmp_path / "b", epochs=2, extra_examples=extra)
    assert draws[:2] == draws[2:] and draws[0] != draws[1]
    quick(tiny_data, tmp_path / "c", epochs=2)
    a, c = checkpoint_arrays(tmp_path / "a"), checkpoint_arrays(tmp_path / "c")
    assert not all(np.array_equal(a[k], c[k]) for k in a)  # the extras were trained on

    def bad(rng):
        return np.zeros((5, 49, 40), np.float32), np.zeros(5, np.int64)

    assert error(tiny_data, tmp_path / "d", extra_examples=bad) == (
        "extra_examples gave features float32 (5, 49, 40); they must be int8 (M, 49, 40)"
    )


def test_select_decides_the_best_epoch_and_early_stopping(tiny_data, tmp_path):
    calls = []

    def select(model):
        calls.append(model.count_params())
        return -float(len(calls))  # every epoch scores worse than the one before

    result = quick(tiny_data, tmp_path / "run", epochs=10, lr=0.01, patience=2, select=select)
    assert len(calls) == 3 and result.best_epoch == 1 and result.epochs_run == 3
    assert result.best_score == -1.0 and result.stopped_early
    assert [row["score"] for row in result.history] == [-1.0, -2.0, -3.0]


def test_cli_preset_full_with_explicit_overrides(tiny_data, tmp_path, capsys):
    from kwstool.cli import main
    from kwstool.model.config import PRESETS

    run = tmp_path / "run"
    args = ["train", str(tiny_data), "--out", str(run), "--preset", "full", "--model",
            "tiny_conv", "--epochs", "1", "--json"]  # fmt: skip
    assert main(args) == 0
    hp = json.loads((run / "config.json").read_text())["hyperparameters"]
    assert hp["model"] == "tiny_conv" and hp["epochs"] == 1  # explicit options win
    for key in ("batch_size", "lr", "warmup_epochs", "label_smoothing", "patience"):
        assert hp[key] == PRESETS["full"][key]
    capsys.readouterr()
    assert main(["train", str(tiny_data), "--out", str(tmp_path / "x"), "--preset", "huge"]) == 2
    assert capsys.readouterr().err.strip() == ("error: unknown preset 'huge'; choose one of: full")


def test_read_rows_of_a_memory_mapped_array_equals_indexing(tmp_path):
    from kwstool.model.augment import read_rows

    a = np.random.default_rng(0).integers(-32768, 32767, size=(50, 16000), dtype=np.int16)
    np.save(tmp_path / "a.npy", a)
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    idx = np.array([7, 3, 49, 3, 0, 12])
    out = read_rows(mm, idx)
    assert out.dtype == np.int16 and np.array_equal(out, a[idx])
    assert np.array_equal(read_rows(a, idx), a[idx])  # plain arrays: indexing


def test_negative_weight_scales_only_unknown():
    labels = ["_silence_", "_unknown_", "yes", "no"]
    base = np.array([1.0, 0.5, 2.0, 1.0], dtype=np.float32)
    out = train_mod.negative_weighted(base, labels, 3.0)
    np.testing.assert_allclose(out, [1.0, 1.5, 2.0, 1.0])
    np.testing.assert_allclose(base, [1.0, 0.5, 2.0, 1.0])  # the input is not changed
    np.testing.assert_allclose(train_mod.negative_weighted(base, ["yes", "no"], 3.0)[:2], [1, 0.5])


def test_ema_keeps_the_moving_average_and_trains_on_the_live_weights(tiny_data, tmp_path):
    import keras

    plain = quick(tiny_data, tmp_path / "plain", epochs=3, seed=2, ema=0.0)
    avg = quick(tiny_data, tmp_path / "ema", epochs=3, seed=2, ema=0.9)
    # The live weights follow the same steps either way (the average does not feed back) ...
    a, b = checkpoint_arrays(tmp_path / "plain"), checkpoint_arrays(tmp_path / "ema")
    model_keys = [k for k in a if k.startswith("model")]
    assert model_keys and all(np.array_equal(a[k], b[k]) for k in model_keys)
    # ... but what is validated and kept is their average, not the last weights.
    assert [r["val_loss"] for r in plain.history] != [r["val_loss"] for r in avg.history]
    kept = best_weights(tmp_path / "ema")
    net = keras.models.load_model(tmp_path / "plain" / "best.keras", compile=False)
    assert any(not np.array_equal(x, y) for x, y in zip(kept, net.get_weights()))
    config = json.loads((tmp_path / "ema" / "config.json").read_text())
    assert config["hyperparameters"]["ema"] == 0.9


def test_mixup_blends_each_example_with_one_of_its_batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 49, 40, 1)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[np.arange(16) % 4]
    w = np.linspace(1, 2, 16).astype(np.float32)
    mx, my, mw = epochs_mod.mix((x, y, w), 0.4, np.random.default_rng(1))
    # replay the draws: each row is lam * itself + (1 - lam) * its partner, lam >= 0.5
    replay = np.random.default_rng(1)
    lam = replay.beta(0.4, 0.4, size=16).astype(np.float32)
    lam = np.maximum(lam, 1 - lam)
    other = replay.permutation(16)
    assert np.all(lam >= 0.5) and np.any(lam < 0.99)
    assert np.allclose(mx[:, 0, 0, 0], lam * x[:, 0, 0, 0] + (1 - lam) * x[other, 0, 0, 0])
    assert np.allclose(my.sum(1), 1) and np.array_equal(my.argmax(1), y.argmax(1))
    assert np.allclose(mw, lam * w + (1 - lam) * w[other])
    assert not np.allclose(mx, x)


def test_training_with_mixup_and_ema_runs_and_is_stored(tiny_data, tmp_path):
    result = quick(tiny_data, tmp_path / "run", epochs=2, mixup=0.4, ema=0.9)
    hp = json.loads((tmp_path / "run" / "config.json").read_text())["hyperparameters"]
    assert hp["mixup"] == 0.4 and hp["ema"] == 0.9 and result.epochs_run == 2


# --- knowledge distillation ----------------------------------------------------------------------
def test_teachers_blend_their_softened_mean_into_the_targets(tiny_data, tmp_path):
    from kwstool.data import load_prepared
    from kwstool.model.teachers.runs import Teachers

    quick(tiny_data, tmp_path / "t1", epochs=2, seed=1)
    quick(tiny_data, tmp_path / "t2", epochs=2, seed=2)
    data = load_prepared(tiny_data)
    labels = list(data.labels)
    x = np.asarray(data.split("train").features[:8], np.float32)[..., None]
    y = np.eye(len(labels), dtype=np.float32)[np.asarray(data.split("train").labels[:8])]
    one = Teachers([tmp_path / "t1"], labels, 0.5, 1.0)
    both = Teachers([tmp_path / "t1", tmp_path / "t2"], labels, 0.5, 2.0)
    p1 = one.distribution(x)
    assert np.allclose(p1.sum(1), 1, atol=1e-5)
    assert np.allclose(one(x, y), 0.5 * y + 0.5 * p1, atol=1e-6)
    # temperature 2 averages the square roots of the probabilities, renormalised
    import keras

    probs = [
        keras.models.load_model(tmp_path / t / "best.keras", compile=False).predict(x, verbose=0)
        for t in ("t1", "t2")
    ]
    soft = [np.sqrt(p) / np.sqrt(p).sum(1, keepdims=True) for p in probs]
    assert np.allclose(both.distribution(x), (soft[0] + soft[1]) / 2, atol=1e-5)
    assert np.allclose(Teachers([tmp_path / "t1"], labels, 0.0, 2.0)(x, y), y)


def test_bad_teachers_are_one_line_errors(tiny_data, tmp_path):
    from kwstool.model.teachers.runs import Teachers

    quick(tiny_data, tmp_path / "t", epochs=1)
    with pytest.raises(KwsError, match="not a finished run folder"):
        Teachers([tmp_path / "missing"], ["a"], 0.5, 2.0)
    with pytest.raises(KwsError, match="teacher labels"):
        Teachers([tmp_path / "t"], ["_silence_", "_unknown_", "cat"], 0.5, 2.0)
    with pytest.raises(KwsError, match="another front end"):
        labels = json.loads((tmp_path / "t" / "config.json").read_text())["labels"]
        Teachers([tmp_path / "t"], labels, 0.5, 2.0, frontend_hash="0" * 64)


def test_distillation_changes_what_the_student_learns(tiny_data, tmp_path):
    quick(tiny_data, tmp_path / "teacher", epochs=2, seed=7)
    plain = quick(tiny_data, tmp_path / "plain", epochs=2, seed=3)
    taught = quick(
        tiny_data, tmp_path / "student", epochs=2, seed=3, teachers=str(tmp_path / "teacher")
    )
    assert [r["loss"] for r in plain.history] != [r["loss"] for r in taught.history]
    hp = json.loads((tmp_path / "student" / "config.json").read_text())["hyperparameters"]
    assert hp["teachers"] == str(tmp_path / "teacher") and hp["distill"] == 0.5


def test_the_weight_average_warms_up_instead_of_holding_the_initial_weights():
    import keras

    opt = train_mod._averaging_adamw(0.05, 0.0, 0.999)
    var = keras.Variable(np.zeros(4, np.float32))
    opt.build([var])
    for _ in range(50):  # a constant gradient walks the weights away from their start
        opt.apply([keras.ops.ones(4)], [var])
    live = np.asarray(var.numpy())
    average = np.asarray(opt._model_variables_moving_average[0].numpy())
    # a fixed 0.999 would keep ~95 % of the initial zeros (average ~ 0.06 x live); warmed up,
    # it trails the last steps: between the start and the live weights, near the live ones
    assert np.all(live < -1.0)
    assert np.all(average < 0.6 * live) and np.all(average > live)


def _without_held_out_clips(data: Path, out: Path) -> Path:
    """A copy of ``data`` whose validation and test splits are empty (every speaker trains)."""
    import shutil

    shutil.copytree(data, out)
    manifest = json.loads((out / "manifest.json").read_text())
    for split in ("validation", "test"):
        for kind in ("features", "audio", "labels"):
            a = np.load(out / f"{split}_{kind}.npy")
            np.save(out / f"{split}_{kind}.npy", a[:0])
        (out / f"{split}_files.txt").write_text("")
        manifest["splits"][split] = {"count": 0, "per_class": {}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_select_last_trains_on_every_speaker_and_quantizes_without_held_out_clips(
    tiny_data, tmp_path
):
    from kwstool.model.quantize import quantize

    data = _without_held_out_clips(tiny_data, tmp_path / "all")
    with pytest.raises(KwsError, match="validation split is empty"):
        quick(data, tmp_path / "refused", epochs=1)
    result = quick(data, tmp_path / "run", epochs=3, select_by="last")
    assert result.best_epoch == 3 and [r["score"] for r in result.history] == [1.0, 2.0, 3.0]
    assert all(np.isnan(r["val_accuracy"]) for r in result.history)
    q = quantize(tmp_path / "run", data)
    # no held-out clips: no accuracy, the interpreters compared on training clips instead
    assert q.accuracy["int8"] == {"validation": None, "test": None}
    assert q.record.parity.clips == len(np.load(data / "train_labels.npy"))


# --- issue 23: bad output folders and Ctrl-C ----------------------------------------------------
def test_out_that_is_a_file_is_one_line_before_any_work(tiny_data, tmp_path, capsys):
    from kwstool.cli import main

    afile = tmp_path / "some.wav"
    afile.write_bytes(b"RIFF")
    assert main(["train", str(tiny_data), "--out", str(afile), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --out {afile}: {afile} is a file, not a folder; choose a folder"
    assert afile.read_bytes() == b"RIFF"


@pytest.mark.slow
def test_full_disk_during_training_is_one_line(tiny_data, full_disk, capsys):
    from kwstool.cli import main

    run = full_disk / "run"
    args = ["train", str(tiny_data), "--out", str(run), "--model", "tiny_conv", "--epochs", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "No space left on device" in err and err.endswith("choose another --out")


@pytest.mark.slow
def test_ctrl_c_during_training_exits_130_and_says_how_to_resume(tiny_data, tmp_path):
    run = tmp_path / "R"
    args = ["train", str(tiny_data), "--out", str(run), "--model", "tiny_conv", "--epochs", "40"]
    rc, out, err = interrupt_after(args, "epoch   1/40", tmp_path)
    assert rc == 130, err
    assert err.strip().splitlines() == [
        f"interrupted; the last finished epoch is saved, continue with "
        f"`kwstool train {tiny_data} --out {run} --resume`"
    ]
    assert (run / "checkpoint" / "state.json").is_file()


def test_overwrite_removes_what_later_stages_derived_from_the_old_model(tmp_path):
    """A new best.keras never sits beside the old run's int8 model, report or calibration."""
    from kwstool.model import runfolder

    names = ["config.json", "history.json", "best.keras", "model_int8.tflite", "quantize.json",
             "calibration.json", "training_curve.png"]  # fmt: skip
    for name in names:
        (tmp_path / name).write_text("old")
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    runfolder.clear_run(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
