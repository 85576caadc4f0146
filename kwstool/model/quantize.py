"""Quantize: a trained Keras model -> full-integer int8 TFLite, checked in the real TFLite-Micro.

``quantize(run_dir)`` reads ``best.keras`` from a run folder (``kwstool train`` output) and

1. converts it to a full-integer int8 model (:mod:`kwstool.model.convert`: int8 input and
   output, int8 builtin kernels only, input range pinned to scale 1.0 / zero point 0, names
   stripped); the actual input/output quantization is read back and recorded.
2. lists the model's operators from the flatbuffer and maps each to the
   ``tflite::MicroMutableOpResolver`` method the firmware calls; an operator TFLite-Micro has no
   kernel for is a one-line error naming it.
3. runs every validation and test clip through the TFLite-Micro interpreter (PyPI
   ``tflite-micro``) and through LiteRT with its reference kernels (those TFLite-Micro's and
   CMSIS-NN's kernels are bit-exact ports of; LiteRT's default optimized kernels and XNNPACK
   round differently at ties). The int8 outputs are normally bit-identical. LiteRT's PyPI build,
   however, requantizes FULLY_CONNECTED with one rounding step where TFLite-Micro rounds twice, so
   at a rounding tie an output can differ by one int8 step: that is accepted and recorded
   (``parity`` in quantize.json); ``strict=True`` refuses it, and any larger difference is an
   error.
4. measures the TFLM tensor arena: the recording allocator's figure, confirmed in a child
   interpreter to be the smallest arena that works (16-byte steps).
5. computes top-1 accuracy on validation and test: float (Keras) and int8 (TFLite-Micro's
   outputs, i.e. the board's arithmetic).

It writes ``model_int8.tflite`` and then ``quantize.json`` (the commit point, a
:class:`~kwstool.core.artifacts.QuantizeReport`), both atomically. The interpreter helpers it
uses live a floor below, in :mod:`kwstool.core.tflite`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kwstool.core.artifacts import (
    ArenaMeasurement,
    JsonDict,
    Parity,
    QuantizeReport,
    Representative,
    RunConfig,
    TensorSpec,
    load_config,
)
from kwstool.core.folders import writes_to
from kwstool.core.tflite import (
    MODEL_FILE,
    REPORT_FILE,
    ModelInfo,
    load_report,
    measure_arena,
    model_info,
    resolver_methods,
    run_litert,
    run_tflm,
    to_model_input,
)
from kwstool.errors import KwsError
from kwstool.model.convert import (
    REPRESENTATIVE_COUNT,
    convert,
    float_outputs,
    load_keras,
    representative_features,
    strip_names,
)
from kwstool.model.parity import check_parity, compare_outputs

if TYPE_CHECKING:
    from kwstool.data.prepared import PreparedData

__all__ = [
    "MODEL_FILE",
    "REPORT_FILE",
    "REPRESENTATIVE_COUNT",
    "QuantizeResult",
    "convert",
    "load_report",
    "quantize",
    "representative_features",
    "strip_names",
]

KERAS_FILE = "best.keras"
CHECKED_SPLITS = ("validation", "test")
#: Training clips the interpreters are compared on when a run has no validation or test clips.
PARITY_CLIPS = 1000
ARENA_METHOD = (
    "TFLite-Micro recording allocator total after one invoke (host build, 64-bit), "
    "confirmed in a child interpreter"
)


# --- results -----------------------------------------------------------------------------------
@dataclass
class QuantizeResult:
    """What ``quantize`` wrote and measured: ``record`` is ``quantize.json``'s record."""

    run_dir: Path
    tflite_path: Path
    json_path: Path
    record: QuantizeReport

    @property
    def report(self) -> JsonDict:
        """``quantize.json`` as written (a plain dict)."""
        return self.record.to_dict()

    @property
    def model_bytes(self) -> int:
        return self.record.model_bytes

    @property
    def arena_bytes(self) -> int:
        return self.record.arena_bytes

    @property
    def ops(self) -> list[str]:
        return self.record.ops

    @property
    def input(self) -> JsonDict:
        return dataclasses.asdict(self.record.input)

    @property
    def output(self) -> JsonDict:
        return dataclasses.asdict(self.record.output)

    @property
    def accuracy(self) -> dict[str, dict[str, float | None]]:
        return self.record.accuracy

    @property
    def tflm_matches_litert(self) -> bool:
        return self.record.tflm_matches_litert

    @property
    def compared(self) -> int:
        return self.record.parity.clips


# --- the steps ---------------------------------------------------------------------------------
@dataclass
class _Job:
    """What one quantize run works from: the run's config and the prepared data it names."""

    run: Path
    config: RunConfig
    data_dir: Path
    data: PreparedData


def _open_job(run_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None) -> _Job:
    """The run's validated ``config.json`` and its prepared data, checked to belong together."""
    from kwstool.data import load_prepared

    run = Path(run_dir)
    keras_path = run / KERAS_FILE
    if not keras_path.exists():
        raise KwsError(f"{keras_path}: not found; train a model into {run} first (`kwstool train`)")
    config = load_config(run)
    data_path = Path(data_dir) if data_dir is not None else Path(config.data.path)
    data = load_prepared(data_path)
    if list(data.labels) != config.labels:
        raise KwsError(
            f"{data_path}: labels {list(data.labels)} differ from the model's "
            f"{config.labels} in {run / 'config.json'}; pass the data the model was "
            f"trained on"
        )
    if data.manifest.get("features") != config.features:
        raise KwsError(
            f"{data_path}: features differ from those the model in {run} was trained "
            f"on; re-run `kwstool prepare --force` with this kwstool"
        )
    return _Job(run=run, config=config, data_dir=data_path, data=data)


def _convert_checked(model: Any, rep: np.ndarray, where: str) -> tuple[bytes, ModelInfo]:
    """int8 TFLite bytes and their facts; the tensors must be int8 and every op in TFLite-Micro."""
    tflite = convert(model, rep)
    info = model_info(tflite, where)
    resolver_methods(info.ops, where)
    if info.input_dtype != "int8" or info.output_dtype != "int8":
        raise KwsError(
            f"{where}: converter produced {info.input_dtype} input / "
            f"{info.output_dtype} output, expected int8; re-run `kwstool quantize`"
        )
    return tflite, info


def _run_both(
    tflite: bytes,
    inputs: dict[str, np.ndarray],
    strict: bool,
    where: str,
    say: Callable[[str], None],
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """TFLite-Micro's outputs per split, and their agreement with LiteRT (checked)."""
    say(f"running LiteRT (int8, reference kernels) on {' and '.join(inputs)}")
    litert = {name: run_litert(tflite, x) for name, x in inputs.items()}
    say("running TFLite-Micro on the same clips")
    tflm = {name: run_tflm(tflite, x, where=where) for name, x in inputs.items()}
    parity = compare_outputs(
        np.concatenate([tflm[s] for s, x in inputs.items() if len(x)]),
        np.concatenate([litert[s] for s, x in inputs.items() if len(x)]),
    )
    check_parity(parity, strict, where)
    if parity["identical_clips"] != parity["clips"]:
        say(f"note: {parity['note']}")
    return tflm, parity


def _top1(scores: np.ndarray, labels: np.ndarray) -> float | None:
    if len(labels) == 0:
        return None
    return round(float(np.mean(np.argmax(scores, axis=1) == labels)), 6)


def _accuracy(
    model: Any, data: PreparedData, tflm: dict[str, np.ndarray]
) -> dict[str, dict[str, float | None]]:
    """Top-1 of the float (Keras) model and of the int8 model (TFLite-Micro) per checked split."""
    accuracy: dict[str, dict[str, float | None]] = {"float": {}, "int8": {}}
    for name in CHECKED_SPLITS:
        split = data.split(name)
        y = np.asarray(split.labels, dtype=np.int64)
        accuracy["float"][name] = _top1(float_outputs(model, split.features), y)
        accuracy["int8"][name] = _top1(tflm[name].astype(np.int32), y)
    return accuracy


def _tensor(shape: tuple[int, ...], dtype: str, scale: float, zero_point: int) -> TensorSpec:
    return TensorSpec(shape=list(shape), dtype=dtype, scale=scale, zero_point=zero_point)


def build_report(
    job: _Job,
    tflite: bytes,
    info: ModelInfo,
    arena: tuple[int, bool],
    rep_count: int,
    accuracy: dict[str, dict[str, float | None]],
    parity: dict[str, Any],
) -> QuantizeReport:
    """The ``quantize.json`` record of a converted, checked and measured model."""
    from tflite_micro.python.tflite_micro import _version as tflm_version

    from kwstool import __version__
    from kwstool.deploy.profile import latency_report

    return QuantizeReport(
        kwstool_version=__version__,
        model=job.config.model,
        model_file=MODEL_FILE,
        model_bytes=len(tflite),
        model_sha256=hashlib.sha256(tflite).hexdigest(),
        arena_bytes=arena[0],
        arena_measurement=ArenaMeasurement(method=ARENA_METHOD, verified_minimal=arena[1]),
        ops=list(info.ops),
        op_resolver=resolver_methods(info.ops),
        input=_tensor(info.input_shape, info.input_dtype, info.input_scale, info.input_zero_point),
        output=_tensor(
            info.output_shape, info.output_dtype, info.output_scale, info.output_zero_point
        ),
        input_spans_int8=info.input_scale == 1.0 and info.input_zero_point == 0,
        labels=list(job.config.labels),
        features=dict(job.config.features),
        data_dir=str(job.data_dir),
        representative=Representative(
            split="train",
            count=rep_count,
            seed=job.config.seed,
            range_sample="first clip holds one -128 and one 127",
        ),
        accuracy=accuracy,
        tflm_matches_litert=parity["identical_clips"] == parity["clips"],
        parity=Parity(
            **parity,
            litert_kernels="reference (BUILTIN_REF)",
            tflite_micro_version=str(tflm_version.__version__),
        ),
        latency=latency_report(tflite, MODEL_FILE),
    )


def _write(run: Path, tflite: bytes, report: QuantizeReport) -> tuple[Path, Path]:
    """``model_int8.tflite``, then ``quantize.json`` (the commit point), both atomically."""
    from kwstool.fileio import write_bytes

    tflite_path, json_path = run / MODEL_FILE, run / REPORT_FILE
    try:
        json_path.unlink(missing_ok=True)  # never the old report beside the new model
        write_bytes(tflite_path, tflite)
        report.to_json(json_path)  # last: the commit point
    except OSError as exc:
        raise KwsError(
            f"{run}: cannot write {MODEL_FILE}/{REPORT_FILE} ({exc.strerror or exc}); "
            f"make the run folder writable"
        ) from None
    return tflite_path, json_path


# --- the command -------------------------------------------------------------------------------
@writes_to("run_dir", "run folder", "kwstool quantize")
def quantize(
    run_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    representative_count: int = REPRESENTATIVE_COUNT,
    strict: bool = False,
    log: Callable[[str], None] | None = None,
) -> QuantizeResult:
    """Convert ``run_dir/best.keras`` to int8 TFLite, check it in TFLM and LiteRT, measure it.

    ``data_dir`` defaults to the prepared-data folder named in ``run_dir/config.json``. Every
    validation and test clip goes through both interpreters; see :func:`check_parity` for what
    counts as agreement (``strict``: only bit-identical outputs). The int8 accuracy is
    TFLite-Micro's (the board's arithmetic). Writes ``model_int8.tflite`` and ``quantize.json``
    into ``run_dir``.
    """
    say = log or (lambda _msg: None)
    job = _open_job(run_dir, data_dir)
    keras_path = job.run / KERAS_FILE
    say(f"loading {keras_path}")
    model = load_keras(keras_path)
    if int(model.output_shape[-1]) != len(job.config.labels):
        raise KwsError(
            f"{keras_path}: model has {model.output_shape[-1]} outputs but the run has "
            f"{len(job.config.labels)} labels; re-run `kwstool train`"
        )
    rep = representative_features(
        job.data.split("train").features, representative_count, job.config.seed
    )
    say(f"converting to int8 TFLite ({len(rep)} representative clips)")
    where = str(job.run / MODEL_FILE)
    tflite, info = _convert_checked(model, rep, where)
    inputs = {s: to_model_input(job.data.split(s).features, info) for s in CHECKED_SPLITS}
    if sum(len(x) for x in inputs.values()) == 0:
        # a model trained on every speaker (select_by 'last'): no held-out clips, so the two
        # interpreters are compared on training clips and no accuracy is reported
        train = job.data.split("train").features
        if job.config.hyperparameters.get("select_by") != "last" or not len(train):
            raise KwsError(
                f"{job.data_dir}: validation and test splits are empty; nothing to check "
                f"the model on, prepare more data"
            )
        pick = np.random.default_rng(job.config.seed).permutation(len(train))[:PARITY_CLIPS]
        inputs["train"] = to_model_input(np.asarray(train)[np.sort(pick)], info)
    tflm, parity = _run_both(tflite, inputs, strict, where, say)
    say("measuring the TFLite-Micro arena")
    sample = next(x for x in inputs.values() if len(x))[0]
    arena = measure_arena(tflite, sample, where)
    say("float accuracy (Keras)")
    accuracy = _accuracy(model, job.data, tflm)
    report = build_report(job, tflite, info, arena, len(rep), accuracy, parity)
    tflite_path, json_path = _write(job.run, tflite, report)
    return QuantizeResult(
        run_dir=job.run, tflite_path=tflite_path, json_path=json_path, record=report
    )
