"""Training on several devices or machines with TensorFlow's own engine (``tf.distribute``).

``TrainConfig.distribute`` (``kwstool train --distribute``):

``none``
    one device, the code path of a plain run (the default).
``mirrored``
    :class:`tf.distribute.MirroredStrategy` over ``TrainConfig.devices`` (``--devices``):
    comma-separated TensorFlow device names (``GPU:0,GPU:1``); empty means every local GPU, or
    the CPU when there is none. ``CPU:0,CPU:1`` splits the CPU into logical devices (for tests
    and measurements; TensorFlow must not have started yet).
``multi-worker``
    :class:`tf.distribute.MultiWorkerMirroredStrategy` over the machines of the standard
    ``TF_CONFIG`` environment variable (``{"cluster": {"worker": ["host:port", ...]}, "task":
    {"type": "worker", "index": i}}``; a ``chief`` job is allowed). Every worker runs the same
    ``kwstool train`` command with its own ``TF_CONFIG``; each uses its GPUs (or its CPU). A
    worker that cannot reach the others within :func:`connect_timeout` seconds (environment
    variable ``KWSTOOL_DISTRIBUTE_TIMEOUT``, default 300) stops with a one-line error (exit code
    2), before TensorFlow's own wait, which has no time limit (:func:`await_workers`).

The rule for batch and learning rate (:meth:`Distribution.global_batch`,
:meth:`Distribution.peak_lr`): ``batch_size`` is per replica, so each step trains on
``batch_size x replicas`` examples and batch normalisation sees ``batch_size`` per replica as on
one device; the peak learning rate is multiplied by the number of replicas (the linear scaling
rule, Goyal et al. 2017, with the same warm-up in epochs). With one replica both are unchanged.

The epoch's ``tf.data`` pipeline yields global batches (``batch_size x replicas``, the same
shuffled order and augmentation draws as one device with that batch); Keras hands it to the
strategy's ``experimental_distribute_dataset``, which gives each replica its slice of every
batch, and the gradients are summed across replicas (each replica's loss is scaled by
``1 / replicas``). So N replicas train like one device with the global batch, up to the order
of floating-point sums, batch normalisation statistics (per replica) and dropout masks (drawn
per replica). With several workers every worker runs the whole input pipeline (augmentation,
stream windows, mined negatives) and keeps its share: exact, but augmentation does not get
faster with more machines.

Only the chief (``Distribution.chief``: the ``chief`` task, else worker 0) writes the run
folder's artifacts. Another worker ``i`` keeps its own config and checkpoint in
``OUT/.worker-i`` (:meth:`Distribution.run_folder`), so ``--resume`` works on every machine with
or without shared storage (pass ``--distribute multi-worker`` there as well).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kwstool.errors import KwsError
from kwstool.model.config import DISTRIBUTE

#: Seconds a multi-worker run waits for every worker of TF_CONFIG before giving up (exit 2).
DEFAULT_TIMEOUT_S = 300.0
TIMEOUT_ENV = "KWSTOOL_DISTRIBUTE_TIMEOUT"
_DEVICE = re.compile(r"^(CPU|GPU):(\d+)$", re.IGNORECASE)
_ADDRESS = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:(\d{1,5})$")


@dataclass
class Distribution:
    """How one training process runs: its strategy (None: one device) and its place."""

    mode: str = "none"
    strategy: Any = None
    replicas: int = 1
    workers: int = 1
    worker: int = 0  # this worker's index among ``workers``
    chief: bool = True
    devices: list[str] = field(default_factory=list)

    def scope(self) -> Any:
        """Where the model and optimizer are built (the strategy's scope)."""
        return self.strategy.scope() if self.strategy is not None else nullcontext()

    def global_batch(self, batch_size: int) -> int:
        """Examples per step: ``batch_size`` on every replica."""
        return batch_size * self.replicas

    def peak_lr(self, lr: float) -> float:
        """The peak learning rate for ``replicas`` times the batch (linear scaling rule)."""
        return lr * self.replicas

    def run_folder(self, out: Path) -> Path:
        """Where this process writes: ``out`` for the chief, ``out/.worker-I`` otherwise."""
        return out if self.chief else out / f".worker-{self.worker}"

    def describe(self) -> str:
        if self.strategy is None:
            return "one device"
        where = f"{self.workers} workers, " if self.workers > 1 else ""
        devices = f" ({', '.join(self.devices)})" if self.devices else ""
        return f"{self.mode}: {where}{self.replicas} replicas{devices}"

    def info(self, batch_size: int, lr: float) -> dict[str, Any]:
        """What config.json records about the distribution (empty for one device)."""
        if self.strategy is None:
            return {}
        return {"mode": self.mode, "replicas": self.replicas, "workers": self.workers,
                "devices": self.devices, "global_batch": self.global_batch(batch_size),
                "peak_lr": self.peak_lr(lr)}  # fmt: skip

    def shard_by_data(self, ds: Any) -> Any:
        """``ds`` with the auto-shard policy DATA when there are several workers (an epoch is a
        Python generator, not files: each worker runs it and keeps its share of every batch)."""
        if self.workers == 1:
            return ds
        import tensorflow as tf

        options = tf.data.Options()
        policy = tf.data.experimental.AutoShardPolicy.DATA
        options.experimental_distribute.auto_shard_policy = policy
        return ds.with_options(options)

    def prepare(self, net: Any, num_labels: int) -> None:
        """Fit Keras's trainer to the strategy (call after ``compile``, inside :meth:`scope`).

        Keras 3 builds a distributed model's metrics from one batch it reads from the data
        before each ``fit``/``evaluate``: that would start the epoch's generator twice (its
        random draws, consumed by a prefetching thread, would then depend on timing), and under
        MultiWorkerMirroredStrategy the read batch is reduced in a way that fails. The model is
        built here once from a zero batch of the right shapes instead. Multi-worker: Keras
        reduces each step's scalar logs along axis 0, which scalars lack, so they are returned
        with shape (1,).
        """
        if self.strategy is None:
            return
        import numpy as np

        from kwstool.core.contract import SHAPE

        sample = (
            np.zeros((1, *SHAPE, 1), np.float32),
            np.zeros((1, num_labels), np.float32),
            np.zeros((1,), np.float32),
        )
        strategy = self.strategy

        def symbolic_build(iterator: Any = None, data_batch: Any = None) -> None:
            with strategy.scope():
                net._symbolic_build(data_batch=sample)

        symbolic_build()
        net._maybe_symbolic_build = symbolic_build
        if self.mode == "multi-worker":
            import keras

            for name in ("train_step", "test_step"):
                step = getattr(net, name)

                def vector_logs(data: Any, step: Any = step) -> Any:
                    return {k: keras.ops.reshape(v, (1,)) for k, v in step(data).items()}

                setattr(net, name, vector_logs)


def connect_timeout() -> float:
    """Seconds to wait for the other workers (``KWSTOOL_DISTRIBUTE_TIMEOUT``, default 300)."""
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise KwsError(f"{TIMEOUT_ENV}={text!r} is not a positive number of seconds")
    return value


@dataclass(frozen=True)
class Cluster:
    """What TF_CONFIG says: the jobs' addresses and this process's task."""

    jobs: dict[str, list[str]]
    task_type: str
    task_index: int

    @property
    def workers(self) -> int:
        return sum(len(v) for k, v in self.jobs.items() if k in ("chief", "worker"))

    @property
    def worker(self) -> int:
        """This task's index among chief + workers (the chief first)."""
        before = len(self.jobs.get("chief", [])) if self.task_type == "worker" else 0
        return before + self.task_index

    @property
    def chief(self) -> bool:
        if "chief" in self.jobs:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0


def read_tf_config(text: str | None = None) -> Cluster:
    """TF_CONFIG (or ``text``) checked: one-line errors naming what is wrong and the fix."""
    text = os.environ.get("TF_CONFIG", "") if text is None else text
    fix = ('; set it to {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
           '"index": I}} on every worker')  # fmt: skip
    if not text.strip():
        raise KwsError("--distribute multi-worker needs the TF_CONFIG environment variable" + fix)
    try:
        cfg = json.loads(text)
    except ValueError as exc:
        raise KwsError(f"TF_CONFIG is not JSON ({exc})" + fix) from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("cluster"), dict):
        raise KwsError("TF_CONFIG has no 'cluster' object" + fix)
    jobs: dict[str, list[str]] = {}
    for job, addresses in cfg["cluster"].items():
        if job not in ("chief", "worker"):
            raise KwsError(
                f"TF_CONFIG job {job!r} is not supported; use 'worker' (and one 'chief')" + fix
            )
        if not isinstance(addresses, list) or not addresses:
            raise KwsError(f"TF_CONFIG cluster.{job} is not a list of host:port addresses" + fix)
        for a in addresses:
            m = _ADDRESS.match(a) if isinstance(a, str) else None
            if not m or not 0 < int(m.group(1)) < 65536:
                raise KwsError(f"TF_CONFIG cluster.{job} address {a!r} is not host:port" + fix)
        jobs[job] = list(addresses)
    if "worker" not in jobs and "chief" not in jobs:
        raise KwsError("TF_CONFIG cluster lists no workers" + fix)
    if len(jobs.get("chief", [])) > 1:
        raise KwsError("TF_CONFIG cluster.chief lists more than one address" + fix)
    every = [a for v in jobs.values() for a in v]
    if len(set(every)) != len(every):
        raise KwsError("TF_CONFIG cluster lists an address twice" + fix)
    task = cfg.get("task")
    if not isinstance(task, dict) or task.get("type") not in jobs:
        raise KwsError(
            f"TF_CONFIG task {task!r} must name this process's job ({', '.join(jobs)})" + fix
        )
    index = task.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int):
        raise KwsError(f"TF_CONFIG task.index {index!r} is not an integer" + fix)
    if not 0 <= index < len(jobs[task["type"]]):
        raise KwsError(
            f"TF_CONFIG task.index {index} is outside cluster.{task['type']} "
            f"(0..{len(jobs[task['type']]) - 1})" + fix
        )
    return Cluster(jobs, str(task["type"]), index)


def parse_devices(devices: str) -> list[str]:
    """``'GPU:0, gpu:1'`` -> ``['GPU:0', 'GPU:1']`` (one-line error for anything else)."""
    out = []
    for item in (d.strip() for d in devices.split(",")):
        m = _DEVICE.match(item)
        if not m:
            raise KwsError(
                f"--devices {devices!r}: {item!r} is not a device name; use e.g. GPU:0,GPU:1 "
                "(or CPU:0,CPU:1 for logical CPU devices)"
            )
        out.append(f"{m.group(1).upper()}:{int(m.group(2))}")
    if len(set(out)) != len(out):
        raise KwsError(f"--devices {devices!r} names a device twice")
    return out


def check_devices(mode: str, devices: str) -> None:
    """``devices`` is for ``mirrored`` only, and well formed (one-line errors)."""
    if devices and mode != "mirrored":
        raise KwsError(
            f"--devices applies to --distribute mirrored, not {mode}; multi-worker uses every "
            "GPU of each worker (or its CPU)"
        )
    if devices:
        parse_devices(devices)


def _local_devices(devices: str) -> list[str]:
    """The mirrored replicas' devices; makes logical CPU devices when ``CPU:N`` asks for them."""
    import tensorflow as tf

    if not devices:
        gpus = tf.config.list_logical_devices("GPU")
        return [d.name.split("device:")[-1] for d in gpus] or ["CPU:0"]
    names = parse_devices(devices)
    cpus = [int(n[4:]) for n in names if n.startswith("CPU:")]
    if cpus and max(cpus) > 0:
        physical = tf.config.list_physical_devices("CPU")
        want = max(cpus) + 1
        try:
            current = tf.config.get_logical_device_configuration(physical[0]) or []
            if len(current) < want:
                tf.config.set_logical_device_configuration(
                    physical[0], [tf.config.LogicalDeviceConfiguration()] * want
                )
        except RuntimeError:  # TensorFlow already started in this process
            if len(tf.config.list_logical_devices("CPU")) < want:
                raise KwsError(
                    f"--devices {devices}: logical CPU devices must be made before TensorFlow "
                    "starts; run the training in a fresh process"
                ) from None
    have = {d.name.split("device:")[-1] for d in tf.config.list_logical_devices()}
    missing = [n for n in names if n not in have]
    if missing:
        raise KwsError(
            f"--devices: {', '.join(missing)} not found; this machine has {', '.join(sorted(have))}"
        )
    return names


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def await_workers(cluster: Cluster, timeout: float) -> None:
    """Return once every other worker of ``cluster`` answers on its port; a one-line error
    after ``timeout`` seconds.

    TensorFlow's own wait for the cluster can be neither interrupted nor timed out (its
    connection call holds the interpreter). So before TensorFlow starts, each worker listens on
    its own TF_CONFIG port (plain TCP, nothing is exchanged) and connects to every other one
    until all have answered; it then frees its port for TensorFlow's server. A worker that has
    already moved on answers through that server.
    """
    mine = cluster.jobs[cluster.task_type][cluster.task_index]
    others = [a for v in cluster.jobs.values() for a in v if a != mine]
    listener = socket.socket(socket.AF_INET6 if ":" in _split_address(mine)[0] else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", _split_address(mine)[1]))
    except OSError as exc:
        listener.close()
        raise KwsError(
            f"TF_CONFIG: this worker's address {mine} cannot be used ({exc.strerror}); choose "
            "a free port"
        ) from None
    listener.listen(64)
    deadline = time.monotonic() + timeout
    waiting = list(others)
    try:
        while waiting:
            for address in list(waiting):
                try:
                    with socket.create_connection(_split_address(address), timeout=1.0):
                        waiting.remove(address)
                except OSError:
                    pass
            if waiting and time.monotonic() > deadline:
                raise KwsError(
                    f"multi-worker: worker(s) {', '.join(waiting)} of TF_CONFIG did not answer "
                    f"within {timeout:g} s; start `kwstool train` on each of them with its own "
                    f"TF_CONFIG, check the addresses and ports (or raise {TIMEOUT_ENV})"
                )
            if waiting:
                time.sleep(0.2)
    finally:
        listener.close()


def setup(mode: str, devices: str = "", timeout_s: float | None = None) -> Distribution:
    """The :class:`Distribution` of ``mode`` (see the module documentation)."""
    if mode not in DISTRIBUTE:
        raise KwsError(f"distribute={mode!r} is not one of {', '.join(DISTRIBUTE)}")
    check_devices(mode, devices)
    if mode == "none":
        return Distribution()
    import tensorflow as tf

    if mode == "mirrored":
        names = _local_devices(devices)
        strategy = tf.distribute.MirroredStrategy([f"/{n}" for n in names])
        return Distribution(mode, strategy, int(strategy.num_replicas_in_sync), devices=names)
    cluster = read_tf_config()
    await_workers(cluster, connect_timeout() if timeout_s is None else timeout_s)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return Distribution(mode, strategy, int(strategy.num_replicas_in_sync), cluster.workers,
                        cluster.worker, cluster.chief)  # fmt: skip
