"""One source into a prepared folder: the cache check, then the build (TFDS, or a folder/archive).

Each returns the built data and its inputs hash, or -- when the cache in ``out_dir`` matches --
the cached manifest and its hash; :func:`kwstool.data.prepared.prepare` writes the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kwstool.data.build import build_from_scan
from kwstool.data.sources import (
    TFDS_SOURCE,
    Resolved,
    folder_inputs,
    hash_inputs,
    listing,
    scan_folder,
)
from kwstool.data.splits import assign_splits, balance_words
from kwstool.data.store import Built, Progress, cached_manifest, keyword_clips, no_real_train


def build_tfds(
    out_dir: Path,
    params: dict[str, Any],
    word_list: list[str],
    silence_share: float,
    unknown_share: float,
    seed: int,
    bars: Progress,
    download_dir: Path | None,
    force: bool,
) -> tuple[Built | dict[str, Any], str]:
    """Built TFDS data and its hash, or the matching cached manifest and its hash."""
    from kwstool.data import tfds

    fast = None if force else tfds.tfds_fast_hash(out_dir, params)
    if fast and (hit := cached_manifest(out_dir, fast)):
        return hit, fast
    built, tfds_info = tfds.build_from_tfds(
        word_list,
        silence_share,
        unknown_share,
        seed,
        bars,
        download_dir / "tfds" if download_dir else None,
    )
    inputs_hash = hash_inputs(
        {
            "params": params,
            "source": TFDS_SOURCE,
            "tfds": tfds_info,
            "files": listing(Path(tfds_info["data_dir"])),
        }
    )
    return built, inputs_hash


def build_folder(
    resolved: Resolved,
    out_dir: Path,
    params: dict[str, Any],
    word_list: list[str],
    silence_share: float,
    unknown_share: float,
    validation_pct: float,
    testing_pct: float,
    seed: int,
    bars: Progress,
    force: bool,
) -> tuple[Built | dict[str, Any], str]:
    """Built folder/archive data and its hash, or the matching cached manifest and its hash."""
    assert resolved.root is not None
    # An archive is identified by its checksum (no need to list its extracted tree).
    scan = None if resolved.kind == "archive" else scan_folder(resolved.root)
    inputs = resolved.archive if scan is None else folder_inputs(scan)
    inputs_hash = hash_inputs(
        {
            "params": params,
            "source": resolved.source,
            "source_kind": resolved.kind,
            "inputs": inputs,
        }
    )
    if not force and (hit := cached_manifest(out_dir, inputs_hash)):
        return hit, inputs_hash
    scan = scan or scan_folder(resolved.root)
    rule = assign_splits(scan, validation_pct, testing_pct)
    # own recordings (not a Speech Commands layout, whose splits stay the official ones):
    # every word in every split
    notes = (
        balance_words(scan.clips, word_list, validation_pct, testing_pct)
        if scan.kind == "folders"
        else []
    )
    built = build_from_scan(
        scan, word_list, silence_share, unknown_share, validation_pct, testing_pct, seed, bars, rule
    )
    built.warnings[:0] = notes
    built.extra["keyword_clips"] = keyword_clips(built, word_list)
    built.warnings += no_real_train(built.extra["keyword_clips"])
    if resolved.archive:
        built.extra["archive"] = resolved.archive
        if not resolved.archive["verified"]:
            built.warnings.append(
                f"{resolved.archive['name']} is not a known official "
                f"archive and no --sha256 was given: not verified"
            )
    return built, inputs_hash
