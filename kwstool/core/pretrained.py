"""Models that ship inside the package (``kwstool/pretrained/NAME/``): ready to use with no
training, e.g. ``kwstool listen --on go --open URL`` with no run folder.

A packaged model is a run folder in miniature: ``model_int8.tflite``, ``quantize.json``,
``calibration.json`` (the thresholds; see :mod:`kwstool.core.calibration`) and
``provenance.json`` (:class:`kwstool.core.artifacts.PretrainedProvenance`: recipe, data and
the cross-validated figures). ``kwstool export`` of it gives the firmware's
``src/model/kws_model_data.{h,cc}`` byte for byte. It sits in ``core`` because the listen
(stream) and export (deploy) stages both read it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from kwstool.core.artifacts import PROVENANCE_FILE, PretrainedProvenance
from kwstool.errors import KwsError

#: The 12-class Speech Commands model (yes no up down left right on off stop go + silence,
#: unknown) that ``kwstool listen`` uses when no run is given and the firmware ships.
DEFAULT = "speech_commands_12"
ROOT = Path(__file__).resolve().parents[1] / "pretrained"
FILES = ("model_int8.tflite", "quantize.json", "calibration.json", PROVENANCE_FILE)


def pretrained_dir(name: str = DEFAULT) -> Path:
    """The folder of the packaged model ``name``, checked complete and consistent."""
    folder = ROOT / name
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        known = sorted(p.name for p in ROOT.iterdir() if p.is_dir()) if ROOT.is_dir() else []
        raise KwsError(
            f"{folder}: no packaged model {name!r} (missing {', '.join(missing)}; packaged: "
            f"{', '.join(known) or 'none'}); give a run folder instead, or reinstall kwstool"
        )
    prov = provenance(name)
    sha = hashlib.sha256((folder / "model_int8.tflite").read_bytes()).hexdigest()
    if prov.model_sha256 != sha:
        raise KwsError(
            f"{folder / PROVENANCE_FILE}: written for another model (sha256 differs from "
            f"model_int8.tflite); {PretrainedProvenance.FIX}"
        )
    return folder


def provenance(name: str = DEFAULT) -> PretrainedProvenance:
    """The packaged model's provenance record, validated."""
    return PretrainedProvenance.from_json(ROOT / name / PROVENANCE_FILE)
