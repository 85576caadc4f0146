"""kwstool: keyword spotting for microcontrollers, Speech Commands to an int8 model on the board.

The stages, each one library function (the CLI command of the same name calls it)::

    kwstool.prepare   data/prepare.py      sources -> speaker-disjoint splits -> cached features
    kwstool.train     model/train.py       a zoo model on prepared data
    kwstool.quantize  model/quantize.py    int8 TFLite checked in TFLite-Micro
    kwstool.evaluate  model/evaluate.py    top-1, per-class scores, confusion matrix
    kwstool.export    deploy/export.py     C array + header for firmware/
    kwstool.run       pipeline.py          all of the above
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public stage functions, imported on first use (so `import kwstool` loads no TensorFlow).
_STAGES = {
    "prepare": "kwstool.data.prepared",
    "load_prepared": "kwstool.data.prepared",
    "train": "kwstool.model.train",
    "quantize": "kwstool.model.quantize",
    "evaluate": "kwstool.model.evaluate",
    "export": "kwstool.deploy.export",
    "device_test": "kwstool.deploy.device",
    "run": "kwstool.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _STAGES:
        return getattr(importlib.import_module(_STAGES[name]), name)
    raise AttributeError(f"module 'kwstool' has no attribute {name!r}")
