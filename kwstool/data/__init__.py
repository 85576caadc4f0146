"""The data stage: sources -> speaker-disjoint splits -> cached features (``kwstool prepare``)."""

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
