"""`kwstool train --distribute`: TF_CONFIG and device checks, the batch/learning-rate rule, one
device unchanged, MirroredStrategy over two logical CPU devices against one device, two
MultiWorkerMirroredStrategy workers on 127.0.0.1, and an unreachable worker (exit 2, one line).

Distributed trainings run in child processes (``distribute_run.py``): logical devices and
TF_CONFIG take effect only before TensorFlow starts. The child processes are killed when a test
ends, whatever its outcome.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_train import checkpoint_arrays, quick, tiny_data  # noqa: F401  (fixture)

from kwstool.errors import KwsError
from kwstool.model import distribute as dist_mod
from kwstool.model.config import TrainConfig

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNNER = HERE / "distribute_run.py"


# --- checks without TensorFlow -------------------------------------------------------------------
GOOD = {"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},
        "task": {"type": "worker", "index": 1}}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "needs the TF_CONFIG environment variable"),
        ("{not json", "TF_CONFIG is not JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "no 'cluster' object"),
        (json.dumps(dict(GOOD, task={"type": "worker", "index": 2})), "task.index 2 is outside"),
        (json.dumps(dict(GOOD, task={"type": "ps", "index": 0})), "must name this process's job"),
        (json.dumps(dict(GOOD, cluster={"worker": ["127.0.0.1"]})), "is not host:port"),
        (json.dumps(dict(GOOD, cluster={"worker": ["a:1", "a:1"]})), "an address twice"),
        (json.dumps(dict(GOOD, cluster={"ps": ["a:1"]})), "job 'ps' is not supported"),
        (json.dumps(dict(GOOD, task={"type": "worker", "index": "1"})), "is not an integer"),
    ],
)
def test_bad_tf_config_is_a_one_line_error(text, words):
    with pytest.raises(KwsError) as err:
        dist_mod.read_tf_config(text)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert '"task": {"type": "worker"' in str(err.value)  # the fix


def test_tf_config_roles():
    c = dist_mod.read_tf_config(json.dumps(GOOD))
    assert (c.workers, c.worker, c.chief) == (2, 1, False)
    c = dist_mod.read_tf_config(json.dumps(dict(GOOD, task={"type": "worker", "index": 0})))
    assert c.chief
    with_chief = {"cluster": {"chief": ["h:1"], "worker": ["h:2", "h:3"]},
                  "task": {"type": "worker", "index": 0}}  # fmt: skip
    c = dist_mod.read_tf_config(json.dumps(with_chief))
    assert (c.workers, c.worker, c.chief) == (3, 1, False)


def test_batch_and_learning_rate_follow_the_replicas():
    one = dist_mod.Distribution()
    assert (one.global_batch(32), one.peak_lr(3e-3), one.info(32, 3e-3)) == (32, 3e-3, {})
    four = dist_mod.Distribution("mirrored", object(), replicas=4)
    assert four.global_batch(32) == 128 and four.peak_lr(3e-3) == pytest.approx(1.2e-2)
    assert dist_mod.Distribution(chief=False, worker=2).run_folder(Path("o")) == Path("o/.worker-2")
    assert dist_mod.Distribution().run_folder(Path("o")) == Path("o")


def test_devices_and_modes_are_checked():
    assert dist_mod.parse_devices("gpu:0, GPU:1") == ["GPU:0", "GPU:1"]
    for bad, words in (("GPU0", "not a device name"), ("CPU:0,cpu:0", "twice")):
        with pytest.raises(KwsError, match=words):
            dist_mod.parse_devices(bad)
    with pytest.raises(KwsError, match="applies to --distribute mirrored"):
        dist_mod.setup("none", "GPU:0")
    with pytest.raises(KwsError, match="devices"):
        TrainConfig().replace(distribute="mirrored", devices="TPU:0")
    with pytest.raises(KwsError, match="applies to --distribute mirrored, not none"):
        TrainConfig().replace(devices="GPU:0")
    with pytest.raises(KwsError, match="distribute='all' is not one of none, mirrored"):
        TrainConfig().replace(distribute="all")


def test_connect_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(dist_mod.TIMEOUT_ENV, raising=False)
    assert dist_mod.connect_timeout() == dist_mod.DEFAULT_TIMEOUT_S
    monkeypatch.setenv(dist_mod.TIMEOUT_ENV, "7.5")
    assert dist_mod.connect_timeout() == 7.5
    monkeypatch.setenv(dist_mod.TIMEOUT_ENV, "soon")
    with pytest.raises(KwsError, match="not a positive number"):
        dist_mod.connect_timeout()


def test_workers_wait_for_each_other_then_free_their_port():
    ports = _free_ports(2)
    cluster = dist_mod.Cluster({"worker": [f"127.0.0.1:{p}" for p in ports]}, "worker", 0)
    t0 = time.monotonic()
    with pytest.raises(KwsError, match=rf"worker\(s\) 127.0.0.1:{ports[1]} of TF_CONFIG did not"):
        dist_mod.await_workers(cluster, timeout=1.0)
    assert 1.0 <= time.monotonic() - t0 < 10
    with socket.socket() as other:  # the second worker is up
        other.bind(("127.0.0.1", ports[1]))
        other.listen(1)
        dist_mod.await_workers(cluster, timeout=10.0)
    with socket.socket() as again:  # the first worker's port is free for TensorFlow's server
        again.bind(("127.0.0.1", ports[0]))
    with socket.socket() as taken:
        taken.bind(("", ports[0]))
        taken.listen(1)
        with pytest.raises(KwsError, match=f"address 127.0.0.1:{ports[0]} cannot be used"):
            dist_mod.await_workers(cluster, timeout=1.0)


def test_cli_bad_tf_config_exits_2_with_one_line(tiny_data, tmp_path, capsys, monkeypatch):
    from kwstool.cli import main

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}}')
    args = ["train", str(tiny_data), "--out", str(tmp_path / "r"), "--distribute", "multi-worker"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: TF_CONFIG task None must name")
    assert not (tmp_path / "r").exists()


# --- one device: today's path --------------------------------------------------------------------
@pytest.mark.slow
def test_distribute_none_gives_the_weights_of_a_plain_run(tiny_data, tmp_path):
    quick(tiny_data, tmp_path / "plain", seed=2)
    quick(tiny_data, tmp_path / "none", seed=2, distribute="none")
    a, b = checkpoint_arrays(tmp_path / "plain"), checkpoint_arrays(tmp_path / "none")
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    config = json.loads((tmp_path / "none" / "config.json").read_text())
    assert "distribution" not in config["optimizer"]


@pytest.mark.slow
def test_one_mirrored_replica_trains_like_one_device_with_mined_negatives(tiny_data, tmp_path):
    """Six epochs: hard negatives are mined at epoch 6 with the model under the strategy."""
    one = quick(tiny_data, tmp_path / "one", epochs=6, seed=1)
    m1 = quick(tiny_data, tmp_path / "m1", epochs=6, seed=1, distribute="mirrored", devices="CPU:0")
    a, b = checkpoint_arrays(tmp_path / "one"), checkpoint_arrays(tmp_path / "m1")
    assert _max_diff(a, b, "model/") < 1e-5 and _max_diff(a, b, "optimizer/") < 1e-4
    assert [r["examples"] for r in m1.history] == [r["examples"] for r in one.history]
    assert [r["loss"] for r in m1.history] == pytest.approx([r["loss"] for r in one.history], 1e-5)
    config = json.loads((tmp_path / "m1" / "config.json").read_text())
    assert config["optimizer"]["distribution"]["replicas"] == 1


# --- child processes -----------------------------------------------------------------------------
def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="3", **extra)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(args, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def _finish(procs: list[subprocess.Popen[str]], timeout: float) -> list[tuple[int, str, str]]:
    """Wait for every process (``timeout`` seconds in all), then kill those still running."""
    deadline = time.monotonic() + timeout
    out = []
    try:
        for p in procs:
            o, e = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            out.append((p.returncode, o, e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return out


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _train_in_child(data: Path, runs: list, timeout: float = 400) -> None:
    [(rc, out, err)] = _finish(
        [_spawn([sys.executable, str(RUNNER), str(data), json.dumps(runs)], _env())], timeout
    )
    assert rc == 0, err[-3000:]


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray], prefix: str) -> float:
    keys = [k for k in a if k.startswith(prefix)]
    assert keys and sorted(a) == sorted(b)
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in keys)


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_matches_one_device(tiny_data, tmp_path):
    """Two replicas of batch 4 = one device of batch 8 at twice the peak learning rate (the
    stated rule); one mirrored replica = one device. The tiny model has neither dropout nor
    batch normalisation, the two things that differ per replica by design."""
    r = {k: str(tmp_path / k) for k in ("m2", "one", "one_b4", "cut")}
    tiny = {"tiny_model": True, "seed": 4}
    mirrored = dict(tiny, batch_size=4, distribute="mirrored", devices="CPU:0,CPU:1")
    _train_in_child(tiny_data, [
        [r["m2"], mirrored],
        [r["one"], dict(tiny, batch_size=8, lr=2 * TrainConfig().lr)],
        [r["one_b4"], dict(tiny, batch_size=4)],
        [r["cut"], dict(mirrored, interrupt_at_epoch=2)],
        [r["cut"], {"tiny_model": True, "resume": True}],
    ])  # fmt: skip
    # interrupted after epoch 1 and resumed: the uninterrupted run's weights, bit for bit
    cut = checkpoint_arrays(tmp_path / "cut")
    assert all(np.array_equal(cut[k], v) for k, v in checkpoint_arrays(tmp_path / "m2").items())
    m2, one = checkpoint_arrays(tmp_path / "m2"), checkpoint_arrays(tmp_path / "one")
    print("max differences", _max_diff(m2, one, "model/"), _max_diff(m2, one, "optimizer/"))
    assert _max_diff(m2, one, "model/") < 1e-4
    assert _max_diff(m2, one, "optimizer/") < 1e-3  # Adam moments and the weight average
    # one device with the per-replica batch trains differently: the comparison can fail
    assert _max_diff(m2, checkpoint_arrays(tmp_path / "one_b4"), "model/") > 1e-3
    config = json.loads((tmp_path / "m2" / "config.json").read_text())
    assert config["optimizer"]["distribution"] == {
        "mode": "mirrored", "replicas": 2, "workers": 1, "devices": ["CPU:0", "CPU:1"],
        "global_batch": 8, "peak_lr": 2 * TrainConfig().lr}  # fmt: skip
    history = json.loads((tmp_path / "m2" / "history.json").read_text())["epochs"]
    assert [row["examples"] for row in history] == [54, 54]


@pytest.mark.slow
def test_two_workers_train_and_the_chief_checkpoint_loads(tiny_data, tmp_path):
    import keras

    from kwstool.model import runfolder as rf, train as train_mod

    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    out = tmp_path / "run"
    runs = [[str(out), {"epochs": 1, "batch_size": 4, "distribute": "multi-worker"}]]
    procs = [
        _spawn([sys.executable, str(RUNNER), str(tiny_data), json.dumps(runs)],
               _env(TF_CONFIG=json.dumps({"cluster": cluster,
                                          "task": {"type": "worker", "index": i}}),
                    KWSTOOL_DISTRIBUTE_TIMEOUT="120"))
        for i in range(2)
    ]  # fmt: skip
    results = _finish(procs, 400)
    for rc, _, err in results:
        assert rc == 0, err[-3000:]
    # only the chief wrote the artifacts; worker 1 kept what --resume needs in .worker-1
    assert sorted(p.name for p in out.iterdir()) == [
        ".worker-1", "best.keras", "checkpoint", "config.json", "history.json",
        "training_curve.png"]  # fmt: skip
    assert sorted(p.name for p in (out / ".worker-1").iterdir()) == ["checkpoint", "config.json"]
    chief, other = checkpoint_arrays(out), checkpoint_arrays(out / ".worker-1")
    assert all(np.array_equal(chief[k], other[k]) for k in chief)  # synchronous replicas
    config = json.loads((out / "config.json").read_text())
    assert config["optimizer"]["distribution"]["workers"] == 2
    assert config["optimizer"]["distribution"]["global_batch"] == 8

    cfg = TrainConfig.from_dict(config["hyperparameters"])
    net, optimizer, _, _ = train_mod._compile(cfg, config["num_labels"], 1)
    state = rf.load_checkpoint(out / "checkpoint", net, optimizer)
    assert state["epoch"] == 1 and state["finished"] is True
    w = {v.path: v.numpy() for v in net.variables}
    assert any(np.abs(v).sum() > 0 for v in w.values())
    best = keras.models.load_model(out / "best.keras", compile=False)
    assert best.input_shape == (1, 49, 40, 1)


@pytest.mark.slow
def test_unreachable_worker_exits_2_with_one_line_in_bounded_time(tiny_data, tmp_path):
    ports = _free_ports(2)  # nobody listens on the second one
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                 "task": {"type": "worker", "index": 0}}  # fmt: skip
    args = [sys.executable, "-m", "kwstool", "train", str(tiny_data), "--out",
            str(tmp_path / "run"), "--distribute", "multi-worker"]  # fmt: skip
    t0 = time.monotonic()
    [(rc, out, err)] = _finish(
        [_spawn(args, _env(TF_CONFIG=json.dumps(tf_config), KWSTOOL_DISTRIBUTE_TIMEOUT="4"))], 240
    )
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith(
        f"error: multi-worker: worker(s) 127.0.0.1:{ports[1]} of TF_CONFIG did not answer "
        "within 4 s; start `kwstool train` on each of them"
    )
    assert time.monotonic() - t0 < 120  # TensorFlow's import and the 4 s
    assert not (tmp_path / "run" / "checkpoint").exists()
