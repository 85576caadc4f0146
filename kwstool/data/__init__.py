"""The data stage: sources -> speaker-disjoint splits -> cached features (``kwstool prepare``).

Also the custom-wake-word helpers: :mod:`kwstool.data.record` (``kwstool record``) and
:mod:`kwstool.data.synth` (``kwstool synth``).
"""

from kwstool.data.prepared import (
    PreparedData,
    PrepareResult,
    SplitData,
    hash_percentage,
    load_prepared,
    prepare,
    scan_folder,
    speaker_of,
    which_split,
)

__all__ = [
    "PrepareResult",
    "PreparedData",
    "SplitData",
    "hash_percentage",
    "load_prepared",
    "prepare",
    "scan_folder",
    "speaker_of",
    "which_split",
]
