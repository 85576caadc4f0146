"""Shared test fixtures.

`../shared/data` (beside the repository) holds real speech for development and CI. Tests that need
it skip with a clear message when it is absent; the core tests use audio generated here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KWSTOOL_SHARED", REPO.parent / "shared")) / "data"


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test when it is not there."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not present (../shared/data is only beside the repo in dev and CI)")
    return p


DEMO = REPO / "datasets" / "demo"
WORDS = "yes,no"
LABELS = ["_silence_", "_unknown_", "yes", "no"]
TINY_OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "RESHAPE", "SOFTMAX"]
TINY_METHODS = ["AddConv2D", "AddDepthwiseConv2D", "AddMean", "AddReshape", "AddSoftmax"]


def prepare_demo(data_dir: Path) -> Path:
    """The shipped demo dataset prepared for yes,no (20 % validation, 20 % test)."""
    from kwstool.data import prepare

    prepare(str(DEMO), data_dir, words=WORDS, validation_pct=20, testing_pct=20, progress=False)
    return data_dir


def tiny_model(num_labels: int, seed: int = 0, width: int = 8, dense: int = 0):
    """A small CNN in kwstool's input convention; ``dense`` > 0 adds a big fully connected layer."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((49, 40, 1))
    x = layers.Rescaling(1 / 128)(inputs)
    x = layers.Conv2D(width, (10, 8), strides=(2, 2), padding="same", activation="relu")(x)
    x = layers.DepthwiseConv2D((3, 3), padding="same", activation="relu")(x)
    if dense:
        x = layers.Flatten()(x)
        x = layers.Dense(dense, activation="relu")(x)
        x = layers.Dense(num_labels)(x)
    else:
        # A 1x1-convolution classifier: LiteRT's reference kernels and TFLite-Micro agree on it
        # bit for bit (FULLY_CONNECTED can differ by one step at rounding ties).
        x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = layers.Conv2D(num_labels, (1, 1))(x)
        x = layers.Flatten()(x)
    outputs = layers.Softmax()(x)
    return keras.Model(inputs, outputs, name="test_tiny")


def make_run(run_dir: Path, data_dir: Path, epochs: int = 4, seed: int = 0, dense: int = 0) -> Path:
    """A run folder as `kwstool train` writes it (config.json + best.keras), trained briefly."""
    import keras

    from kwstool.data import load_prepared

    data = load_prepared(data_dir)
    train = data.split("train")
    model = tiny_model(len(data.labels), seed, dense=dense)
    if epochs:
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
        x = np.asarray(train.features, np.float32)[..., None]
        y = np.asarray(train.labels, np.int64)
        model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "best.keras")
    write_run_config(run_dir, model, "test_tiny", data_dir, epochs, seed)
    return run_dir


def write_run_config(
    run_dir: Path, model, name: str, data_dir: Path, epochs: int = 0, seed: int = 0
) -> None:
    """config.json as `kwstool train` writes it (a stamped RunConfig) for a hand-made model."""
    from kwstool.core.artifacts import RunConfig
    from kwstool.data import load_prepared

    data = load_prepared(data_dir)
    train = data.split("train")
    config = RunConfig.stamp(
        {
            "kwstool_version": "test",
            "model": name,
            "hyperparameters": {"epochs": epochs, "batch_size": 32, "lr": 3e-3},
            "seed": seed,
            "labels": list(data.labels),
            "num_labels": len(data.labels),
            "input_shape": [int(d) for d in model.input_shape[1:]],
            "params": int(model.count_params()),
            "features": data.manifest["features"],
            "data": {
                "path": str(data_dir),
                "inputs_hash": data.manifest["inputs_hash"],
                "train_count": len(train.labels),
                "validation_count": len(data.split("validation").labels),
            },
            "augmentation": {},
            "optimizer": {"name": "Adam"},
        }
    )
    (run_dir / "config.json").write_text(json.dumps(config))


# --- the fast suite: `pytest -m "not slow"` ----------------------------------------------------
#: Fixtures that train, convert or prepare real data (tens of seconds each, built once per session
#: or module): every test that needs one is slow.
HEAVY_FIXTURES = {"quantized_run", "converted", "test_dev_prepared"}

#: Tests that take over ~3 s on 2 cores themselves (`pytest --durations=0`), by node id without
#: parameters. Files owned by this conftest's author mark theirs with @pytest.mark.slow instead.
SLOW_TESTS = {
    "tests/test_pipeline.py::test_kwstool_run_end_to_end",
    "tests/data/test_prepare.py::test_tfds_source_with_tfds_mock_data",
    "tests/deploy/test_export.py::test_over_budget_model_is_refused_for_nano_but_fits_esp32",
    "tests/model/test_zoo.py::test_every_model_trains_a_step_on_stock_kernels",
    "tests/model/test_zoo.py::test_default_model_fits_the_board_budget",
    *(
        f"tests/model/test_train.py::{name}"
        for name in (
            "test_default_model_trains",
            "test_training_learns_the_tones",
            "test_resume_after_interrupt_equals_uninterrupted_run",
            "test_same_seed_gives_identical_weights",
            "test_overwrite_replaces_a_run",
            "test_cli_train",
            "test_early_stopping_keeps_the_best_epoch",
            "test_train_writes_the_run_folder",
            "test_resume_with_other_data_is_a_clear_error",
            "test_run_folder_conflicts_are_clear_errors",
        )
    ),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark SLOW_TESTS and the users of HEAVY_FIXTURES slow; a stale SLOW_TESTS entry fails."""
    seen = set()
    for item in items:
        base = item.nodeid.split("[", 1)[0]
        if base in SLOW_TESTS:
            seen.add(base)
            item.add_marker(pytest.mark.slow)
        elif HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if any("::" in str(arg) for arg in config.args):
        return  # single tests picked by node id: the files were not collected whole
    collected = {item.nodeid.split("::", 1)[0] for item in items}
    stale = sorted(n for n in SLOW_TESTS - seen if n.split("::", 1)[0] in collected)
    if stale:
        raise pytest.UsageError(
            f"tests/conftest.py SLOW_TESTS names tests that do not exist: {', '.join(stale)}"
        )


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    return prepare_demo(tmp_path_factory.mktemp("demo") / "data")


@pytest.fixture(scope="session")
def quantized_run(tmp_path_factory, demo_data):
    """(run folder, QuantizeResult) of the tiny model, quantized once per session."""
    from kwstool.model.quantize import quantize

    run = make_run(tmp_path_factory.mktemp("run") / "run", demo_data)
    return run, quantize(run, strict=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


# --- other processes: Ctrl-C, a folder lock held --------------------------------------------
def interrupt_after(args: list[str], marker: str, cwd: Path) -> tuple[int, str, str]:
    """Run ``kwstool ARGS`` in a real process, send it SIGINT (Ctrl-C) once ``marker`` is on its
    stdout, and return its exit code, stdout and stderr."""
    import signal
    import sys
    import threading

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kwstool", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()))
    reader.start()
    out = []
    for line in proc.stdout:
        out.append(line)
        if marker in line:
            proc.send_signal(signal.SIGINT)
            break
    out.append(proc.stdout.read())
    proc.wait(timeout=120)
    reader.join()
    return proc.returncode, "".join(out), "".join(err)


def hold_lock(folder: Path, ready: Path) -> subprocess.Popen[str]:
    """Another process that takes the lock of ``folder`` and keeps it until its stdin closes."""
    import sys
    import textwrap
    import time

    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from kwstool.core.folders import folder_lock
        with folder_lock({str(folder)!r}, "kwstool prepare", "--data-dir"):
            Path({str(ready)!r}).write_text("locked")
            sys.stdin.read()
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True, env=env)
    end = time.monotonic() + 60
    while not ready.exists() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    assert ready.exists(), "the helper process did not take the lock"
    return proc


# --- a read-only folder and a full file system (skipped where they cannot be made) -----------
def _mount_tmpfs(where: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)]).returncode == 0
    )


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder this process cannot write: a read-only tmpfs as root, else mode 0555."""
    where = tmp_path / "ro"
    if _mount_tmpfs(where, "ro,size=64k"):
        yield where
        subprocess.run(["umount", str(where)])
        return
    if os.geteuid() == 0:
        pytest.skip("root without permission to mount: cannot make a read-only folder")
    where.mkdir()
    where.chmod(0o555)
    yield where
    where.chmod(0o755)


@pytest.fixture
def full_disk(tmp_path):
    """A 400 KiB tmpfs (needs root and mount)."""
    where = tmp_path / "full"
    if not _mount_tmpfs(where, "size=400k"):
        pytest.skip("mounting a small tmpfs needs root and permission to mount")
    yield where
    subprocess.run(["umount", str(where)])
