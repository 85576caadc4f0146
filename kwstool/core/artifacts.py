"""Typed, versioned artifacts: the JSON files the stages hand to each other.

Each artifact is a dataclass record with a ``schema`` name and a ``version``:

* :class:`PreparedManifest` - ``manifest.json`` of a prepared-data folder (``kwstool prepare``);
* :class:`RunConfig` - ``config.json`` of a run folder (``kwstool train``);
* :class:`QuantizeReport` - ``quantize.json`` beside ``model_int8.tflite`` (``kwstool quantize``).

``to_dict()`` gives the JSON object (``schema`` and ``version`` first), ``to_json(path)`` writes
it atomically, ``from_json(path)`` reads and validates it: a missing field, a value of the wrong
type, another schema or version, or features computed by another C front end (see
:data:`kwstool.core.contract.FRONTEND_HASH`) is a one-line :class:`~kwstool.errors.KwsError`
naming the file, the field and the command that writes it. Nothing is filled in silently; only
the fields declared with a ``None`` default (sections that exist for some sources only) may be
absent. Keys a record does not declare are kept (``extra``) and written back unchanged.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

from kwstool.core.records import JsonDict as JsonDict, build, plain, read_json
from kwstool.errors import KwsError

T = TypeVar("T", bound="Artifact")

MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.json"
REPORT_FILE = "quantize.json"


def check_frontend(features: JsonDict, where: str, fix: str) -> None:
    """Refuse features recorded by another C front end than the one ``_native`` was built from."""
    from kwstool.core import contract

    recorded = features.get("frontend_hash")
    if not isinstance(recorded, str):
        raise KwsError(
            f"{where}: field 'features.frontend_hash' missing (features from an older "
            f"kwstool); {fix}"
        )
    if recorded != contract.FRONTEND_HASH:
        raise KwsError(
            f"{where}: features were computed by another C front end (hash "
            f"{recorded[:12]}, this kwstool {contract.FRONTEND_HASH[:12]}); {fix}"
        )


# --- the base record ---------------------------------------------------------------------------
@dataclass
class Artifact:
    """Base of the artifact records: schema header, validation, atomic writing."""

    SCHEMA: ClassVar[str]
    VERSION: ClassVar[int]
    FILE: ClassVar[str]
    #: The fix named in every error about this artifact (the command that writes it).
    FIX: ClassVar[str]
    #: The fix when its features come from another front end.
    FRONTEND_FIX: ClassVar[str] = "re-run `kwstool prepare --force`"

    @classmethod
    def header(cls) -> JsonDict:
        return {"schema": cls.SCHEMA, "version": cls.VERSION}

    @classmethod
    def from_dict(cls: type[T], data: JsonDict, where: str) -> T:
        """Validate ``data`` (read from ``where``) into a record; see the module docstring."""
        for key, want in cls.header().items():
            if key not in data:
                raise KwsError(
                    f"{where}: field '{key}' missing (written by an older kwstool); {cls.FIX}"
                )
            if data[key] != want:
                raise KwsError(
                    f"{where}: {key} {data[key]!r} is not {want!r} (this kwstool "
                    f"reads {cls.SCHEMA} version {cls.VERSION}); {cls.FIX}"
                )
        body = {k: v for k, v in data.items() if k not in ("schema", "version")}
        record: T = build(cls, body, where, cls.FIX)
        record.check(where)
        return record

    @classmethod
    def from_json(cls: type[T], path: str | os.PathLike[str]) -> T:
        p = Path(path)
        return cls.from_dict(read_json(p, cls.FIX), str(p))

    @classmethod
    def stamp(cls, data: JsonDict, where: str = "") -> JsonDict:
        """``data`` with the schema header, validated: what a writer passes to ``write_json``."""
        return cls.from_dict({**cls.header(), **data}, where or cls.FILE).to_dict()

    def check(self, where: str) -> None:
        """Checks across fields (after the types); by default the front-end hash of ``features``."""
        features = getattr(self, "features", None)
        if isinstance(features, dict):
            check_frontend(features, where, self.FRONTEND_FIX)

    def to_dict(self) -> JsonDict:
        body = plain(self)
        assert isinstance(body, dict)
        return {**self.header(), **body}

    def to_json(self, path: str | os.PathLike[str]) -> None:
        from kwstool.fileio import write_json

        write_json(path, self.to_dict())


# --- prepared data -------------------------------------------------------------------------------
@dataclass
class PreparedManifest(Artifact):
    """``manifest.json``: what a prepared-data folder holds and how it was made (written last)."""

    SCHEMA: ClassVar[str] = "kwstool.prepared"
    VERSION: ClassVar[int] = 1
    FILE: ClassVar[str] = MANIFEST_FILE
    FIX: ClassVar[str] = "re-run `kwstool prepare --force`"

    kwstool_version: str  # the kwstool that wrote it
    source: str  # the source as resolved (path, URL or tfds name)
    source_kind: str  # folder, archive, tfds, test_layout
    words: list[str]  # the keywords asked for
    labels: list[str]  # model labels: _silence_, _unknown_, then the words
    features: JsonDict  # FEATURE_PARAMS of the front end that computed them
    splits: dict[str, JsonDict]  # split -> {"count": int, "per_class": {label: int}}
    inputs_hash: str  # SHA-256 of the inputs and parameters (the cache key)
    skipped: list[JsonDict]  # clips that could not be read: {"file", "reason"}
    warnings: list[str]  # e.g. a split without examples of a word
    params: JsonDict  # silence_share, unknown_share, validation_pct, testing_pct, seed
    split_rule: str | None  # how clips were assigned to splits
    clips_found: int  # audio files found in the source
    background_noise: list[str]  # names of the noise recordings kept for augmentation
    file_sizes: dict[str, int]  # output file -> bytes (checked before a cached result is reused)
    tfds: JsonDict | None = None  # TFDS source only: dataset name, version, files
    archive: JsonDict | None = None  # archive source only: URL/path and checksum
    extra: JsonDict = field(default_factory=dict)


def load_manifest(data_dir: str | os.PathLike[str]) -> PreparedManifest:
    """``data_dir/manifest.json``, validated, its features from this kwstool's front end."""
    p = Path(data_dir)
    mf = p / MANIFEST_FILE
    if not mf.is_file():
        raise KwsError(
            f"{p}: no {MANIFEST_FILE}, so no complete prepared data here; run "
            f"`kwstool prepare --data-dir {p}` first"
        )
    return PreparedManifest.from_json(mf)


# --- runs ----------------------------------------------------------------------------------------
@dataclass
class RunData:
    """``config.json`` ``data``: the prepared data a run was trained on."""

    path: str  # the prepared-data folder (absolute)
    inputs_hash: str | None  # its manifest's inputs_hash
    train_count: int
    validation_count: int


@dataclass
class RunConfig(Artifact):
    """``config.json``: how a run was trained (written by ``kwstool train`` before epoch 1)."""

    SCHEMA: ClassVar[str] = "kwstool.run_config"
    VERSION: ClassVar[int] = 1
    FILE: ClassVar[str] = CONFIG_FILE
    FIX: ClassVar[str] = "re-run `kwstool train`"
    FRONTEND_FIX: ClassVar[str] = "re-run `kwstool prepare --force`, then `kwstool train`"

    kwstool_version: str
    model: str  # architecture name in the model zoo
    hyperparameters: JsonDict  # epochs, batch_size, lr, weight_decay, label_smoothing, ...
    seed: int
    labels: list[str]  # output order of the model
    num_labels: int
    input_shape: list[int]  # per-clip input shape, e.g. [49, 40, 1]
    params: int  # trainable + non-trainable parameters
    features: JsonDict  # FEATURE_PARAMS of the training data (frontend_hash included)
    data: RunData
    augmentation: JsonDict  # freq_mask_max, time_mask_max, silence_noise_volume
    optimizer: JsonDict  # name, schedule, warmup_steps, total_steps
    extra: JsonDict = field(default_factory=dict)

    def check(self, where: str) -> None:
        super().check(where)
        if self.num_labels != len(self.labels):
            raise KwsError(
                f"{where}: field 'num_labels' is {self.num_labels} but 'labels' has "
                f"{len(self.labels)}; {self.FIX}"
            )


def load_config(run_dir: str | os.PathLike[str]) -> RunConfig:
    """``run_dir/config.json``, validated."""
    p = Path(run_dir) / CONFIG_FILE
    if not p.is_file():
        raise KwsError(f"{p}: not found; train a model into {p.parent} first (`kwstool train`)")
    return RunConfig.from_json(p)


# --- quantize report -----------------------------------------------------------------------------
@dataclass
class TensorSpec:
    """The model's input or output tensor."""

    shape: list[int]  # e.g. [1, 49, 40, 1]
    dtype: str  # "int8"
    scale: float  # real = scale * (q - zero_point)
    zero_point: int


@dataclass
class ArenaMeasurement:
    method: str  # how arena_bytes was measured
    verified_minimal: bool  # 16 bytes less was checked to fail


@dataclass
class Representative:
    """The calibration set of the converter."""

    split: str  # "train"
    count: int
    seed: int
    range_sample: str  # how the input range was pinned to -128..127


@dataclass
class Parity:
    """TFLite-Micro vs LiteRT (reference kernels) on every validation and test clip."""

    clips: int
    identical_clips: int
    max_abs_diff: int  # int8 steps
    top1_agreement: float
    litert_kernels: str
    tflite_micro_version: str
    note: str | None = None  # present when some clips differ (why they may)


@dataclass
class QuantizeReport(Artifact):
    """``quantize.json``: the int8 model beside it, measured (written last, the commit point)."""

    SCHEMA: ClassVar[str] = "kwstool.quantize_report"
    VERSION: ClassVar[int] = 2
    FILE: ClassVar[str] = REPORT_FILE
    FIX: ClassVar[str] = "re-run `kwstool quantize`"
    FRONTEND_FIX: ClassVar[str] = (
        "re-run `kwstool prepare --force`, then `kwstool train` and `kwstool quantize`"
    )

    kwstool_version: str
    model: str  # architecture name (config.json model)
    model_file: str  # "model_int8.tflite"
    model_bytes: int
    model_sha256: str  # of model_file: the report describes exactly that file
    arena_bytes: int  # TFLite-Micro tensor arena the model needs (host measurement)
    arena_measurement: ArenaMeasurement
    ops: list[str]  # builtin operators, opcode-table order
    op_resolver: list[str]  # MicroMutableOpResolver methods the firmware calls
    input: TensorSpec
    output: TensorSpec
    input_spans_int8: bool  # input scale 1.0 / zero point 0: features go in unchanged
    labels: list[str]
    features: JsonDict  # FEATURE_PARAMS the model was trained on (frontend_hash included)
    data_dir: str  # prepared data used for calibration and the checks
    representative: Representative
    accuracy: dict[str, dict[str, float | None]]  # {"float"|"int8": {split: top-1 or null}}
    tflm_matches_litert: bool  # bit-identical outputs on every clip
    parity: Parity
    # cost-model latency per board (kwstool.deploy.profile.latency_report); absent in reports
    # written before it existed
    latency: JsonDict | None = None
    extra: JsonDict = field(default_factory=dict)


def read_report(tflite_path: str | os.PathLike[str]) -> QuantizeReport:
    """``quantize.json`` beside a ``.tflite``, validated and checked to describe that very file."""
    p = Path(tflite_path)
    path = p.with_name(REPORT_FILE)
    hint = f"run `kwstool quantize RUN` on the run folder holding {p.name} (it writes the labels)"
    report = QuantizeReport.from_dict(read_json(path, hint), str(path))
    if report.model_sha256 != hashlib.sha256(p.read_bytes()).hexdigest():
        raise KwsError(
            f"{path}: describes a different {p.name} (checksum differs); re-run `kwstool quantize`"
        )
    return report


def load_report(tflite_path: str | os.PathLike[str]) -> JsonDict:
    """:func:`read_report` as a plain dict (what the header renderer and the device test read)."""
    return read_report(tflite_path).to_dict()


# --- a model shipped inside the package ----------------------------------------------------------
PROVENANCE_FILE = "provenance.json"


@dataclass
class PretrainedProvenance(Artifact):
    """``provenance.json`` of a model that ships inside kwstool (``kwstool/pretrained/NAME``):
    where it came from and how good it is, measured on speakers it never heard (written by
    ``scripts/package_model.py``)."""

    SCHEMA: ClassVar[str] = "kwstool.pretrained"
    VERSION: ClassVar[int] = 1
    FILE: ClassVar[str] = PROVENANCE_FILE
    FIX: ClassVar[str] = "re-package it with `python scripts/package_model.py`"

    name: str  # the folder name under kwstool/pretrained
    kwstool_version: str  # the kwstool that packaged it
    model_sha256: str  # of model_int8.tflite beside it
    labels: list[str]
    features: JsonDict  # FEATURE_PARAMS (frontend_hash checked)
    recipe: JsonDict  # the TrainConfig it was trained with
    data: JsonDict  # sources, clips, speakers: what it was trained on
    figures: JsonDict  # cross-validated clip and stream figures of the same recipe (+ commands)
    calibration: str  # how the thresholds in calibration.json were chosen
    credits: list[str]  # data licences and credits
