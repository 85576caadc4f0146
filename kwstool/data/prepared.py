"""`kwstool prepare`: audio sources -> speaker-disjoint splits -> cached int8 features.

Sources (one ``source`` string, detected in this order)
    ``tfds`` / ``tfds:speech_commands``
        TensorFlow Datasets' ``speech_commands`` builder (Speech Commands v0.02; TFDS downloads
        and verifies it into its own data folder: ``~/tensorflow_datasets`` or $TFDS_DATA_DIR,
        ``<download_dir>/tfds`` when ``download_dir`` is given). Its train/validation/test
        splits (official lists + canonical test set) are kept; only the ten commands are
        labelled there, so ``words`` must come from them. TFDS's ``_silence_`` examples are
        already 1 s noise slices; the train ones also fill ``background_noise.npz``.
    an ``http(s)://`` URL or a local path of a ``.tar.gz`` / ``.tgz`` / ``.tar`` archive
        e.g. ``http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz`` (or v0.01, or
        the v0.02 test set). Downloaded (resumable, checksum-verified, see :mod:`kwstool.download`)
        into ``download_dir`` (default ``./data/downloads``) and safely extracted beside it.
    a folder
        * an extracted Speech Commands archive: word folders + ``_background_noise_/``, with or
          without ``validation_list.txt`` / ``testing_list.txt``;
        * the canonical test-set layout: word folders + ``_silence_/`` + ``_unknown_/``;
        * a folder-per-label tree of your own recordings (any WAV rate/bit depth/channel count
          :func:`kwstool.audio.load_wav` accepts), optionally with ``_background_noise_/``,
          ``_silence_/`` and ``_unknown_/`` folders that are used the same way.

Labels
    ``["_silence_", "_unknown_", *words]`` in that order (label index = position), ``words``
    in the order given (default: yes, no, up, down, left, right, on, off, stop, go).
    * a clip in a folder named after a word has that word's label (``<word>/**/*.wav``);
    * ``_unknown_`` examples are drawn from every other folder (and ``_unknown_/``);
    * ``_silence_`` examples are ``_silence_/`` clips, then 1 s slices of the
      ``_background_noise_`` recordings, each slice scaled by a gain drawn log-uniformly from
      0.1 to 100 (capped below clipping) so silence spans quiet rooms to loud noise, like the
      canonical test set's ``_silence_`` clips.
    Per split, ``ceil(share/100 * n_known)`` examples of each are taken (TensorFlow
    speech_commands' convention; default 10 %), fewer when the pool runs out. A split without
    any keyword clip (small sets) takes ``n_known`` as the keyword count it should have had
    (all keywords * its percentage) and warns. Draws are deterministic: candidates are ranked
    by ``sha1("<seed>:<path>")``; a clip that fails to decode is replaced by the next one.

Splits (train / validation / test), speaker-disjoint
    * ``validation_list.txt`` / ``testing_list.txt`` at the source root decide when present
      (paths relative to the root, as in the official archive); all other clips are train;
    * otherwise the official hash rule (TF speech_commands ``which_set``) on the speaker id:
      ``sha1(speaker)`` as an integer modulo ``2**27``, scaled to a percentage; below
      ``validation_pct`` -> validation, below ``validation_pct + testing_pct`` -> test.
    The speaker id of a clip is
      1. the file-name part before ``_nohash_`` (official naming ``<speaker>_nohash_<n>.wav``);
         in a ``_unknown_`` folder a leading ``<word>_`` is dropped, as the canonical test set
         names those clips ``<word>_<speaker>_nohash_<n>.wav``;
      2. else, for a clip in a subfolder of its label folder (``hey_lamp/alice/01.wav``), the
         subfolder name (``alice``);
      3. else the file name without extension: each such file counts as its own speaker, so
         name your files ``<speaker>_nohash_<n>.wav`` (or use speaker subfolders) to keep
         speakers out of two splits.
    The canonical test-set layout holds only speakers of the official test band (10-20 %), so
    there the percentage is first stretched, ``(p - 10) * 10 mod 100``, to yield three splits.
    Own recordings (a folder tree that is not a Speech Commands layout, and every merged
    prepare): a word from fewer than 3 speakers is split by take, and a word none of whose
    speakers hashed into validation or test gets one moved there
    (:func:`kwstool.data.splits.balance_words`), so every split holds real clips of every word.
    Background-noise recordings are split by time: the first part of each recording feeds
    train's silence, the next ``validation_pct`` % validation's, the last ``testing_pct`` % test's.

Output (``data_dir``; default ``./data/<source name>``: the folder's name, the archive's name
without extension, or ``speech_commands_tfds``; e.g. ``./data/speech_commands_mini``)
    per split ``{split}_features.npy`` int8 (N, 49, 40), ``{split}_audio.npy`` int16 (N, 16000),
    ``{split}_labels.npy`` int16 (N,), ``{split}_files.txt`` (source path relative to the source
    root, or ``#silence:<noise file>@<offset>`` for slices); ``background_noise.npz`` (int16
    16 kHz, one array per recording, keyed by file stem); ``manifest.json`` last, atomically
    (see docs/ARCHITECTURE.md). The manifest's ``inputs_hash`` covers the input files (paths,
    sizes, mtimes; for archives their checksum), every parameter, the feature parameters and the
    kwstool version: a re-run with the same hash returns at once, anything changed rebuilds.
    Unreadable clips are skipped and listed under ``skipped``.

Several sources in one prepared folder (``source`` a list of ``NAME=PATH``, and/or ``negatives``)
    see :mod:`kwstool.data.merge`: keyword clips from every source, synthetic sources (a name
    starting with ``synth`` or listed in ``synthetic``) only in train, ``_unknown_`` examples
    from the negatives too; file lines are prefixed ``NAME:``.

The work is split by job: :mod:`~kwstool.data.sources` (scanning, resolving a source),
:mod:`~kwstool.data.splits` (speakers, the hash rule), :mod:`~kwstool.data.build` (selection,
decoding, silence slices), :mod:`~kwstool.data.rows` (each split's rows in their stored order,
written to the ``.npy`` files chunk by chunk, so memory does not grow with the clip count),
:mod:`~kwstool.data.tfds`, :mod:`~kwstool.data.single` (one source:
the cache check, then the build), :mod:`~kwstool.data.store` (the folder format, reading and
writing) and :mod:`~kwstool.data.merge` (several sources).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from kwstool import __version__
from kwstool.core.folders import folder_lock
from kwstool.core.labels import DEFAULT_WORDS, SILENCE, UNKNOWN
from kwstool.data.build import SILENCE_GAIN_RANGE, rank
from kwstool.data.single import build_folder, build_tfds
from kwstool.data.sources import (
    DEFAULT_ROOT,
    Resolved,
    resolve,
    scan_folder,
)
from kwstool.data.splits import (
    hash_percentage,
    noise_range,
    speaker_of,
    test_band_percentage,
    which_split,
)
from kwstool.data.store import (
    FORMAT,
    SPLITS,
    Built,
    PreparedData,
    PrepareResult,
    Progress,
    SplitData,
    check_built,
    load_prepared,
    result_from_manifest,
    write_all,
)
from kwstool.errors import KwsError

__all__ = [
    "SPLITS",
    "PrepareResult",
    "PreparedData",
    "SplitData",
    "hash_percentage",
    "load_prepared",
    "noise_range",
    "prepare",
    "rank",
    "scan_folder",
    "speaker_of",
    "test_band_percentage",
    "which_split",
]

RULES_VERSION = 2  # bump when selection/split rules change: invalidates every cached prepare
# 2: own words split by take (fewer than 3 speakers), long clips centred on their word
_noise_range = noise_range  # the name older tests and scripts use


def params_record(
    words: list[str],
    silence_share: float,
    unknown_share: float,
    validation_pct: float,
    testing_pct: float,
    seed: int,
) -> dict[str, Any]:
    """Every parameter that shapes the output (part of the inputs hash)."""
    from kwstool.core.frontend import FEATURE_PARAMS

    return {
        "format": FORMAT,
        "kwstool_version": __version__,
        "features": FEATURE_PARAMS,
        "words": list(words),
        "silence_share": silence_share,
        "unknown_share": unknown_share,
        "validation_pct": validation_pct,
        "testing_pct": testing_pct,
        "seed": seed,
        "silence_gain_range": list(SILENCE_GAIN_RANGE),
        "rules": RULES_VERSION,
    }


def _parse_words(words: Iterable[str] | str | None) -> list[str]:
    if words is None:
        return list(DEFAULT_WORDS)
    if isinstance(words, str):
        words = words.split(",")
    out = [w.strip() for w in words if w.strip()]
    if not out:
        raise KwsError("--words is empty; give at least one keyword, e.g. --words yes,no")
    for w in out:
        if w.startswith("_"):
            raise KwsError(
                f"--words: {w!r} is reserved (names starting with '_' are special "
                f"folders); pick another keyword"
            )
        if "/" in w or "\\" in w:
            raise KwsError(f"--words: {w!r} contains a path separator; give folder names")
    dup = sorted({w for w in out if out.count(w) > 1})
    if dup:
        raise KwsError(f"--words lists {', '.join(dup)} more than once")
    return out


def _check_params(
    silence_share: float, unknown_share: float, validation_pct: float, testing_pct: float
) -> None:
    for name, v in (("--silence-share", silence_share), ("--unknown-share", unknown_share)):
        if not (0 <= v <= 1000):
            raise KwsError(
                f"{name} {v} is out of range; give a percentage of the keyword count from 0 to 1000"
            )
    for name, v in (("--validation-pct", validation_pct), ("--testing-pct", testing_pct)):
        if not (0 < v < 100):
            raise KwsError(f"{name} {v} is out of range; give a percentage above 0 and below 100")
    if validation_pct + testing_pct >= 100:
        raise KwsError(
            f"--validation-pct + --testing-pct is {validation_pct + testing_pct}; "
            f"it must stay below 100 to leave clips for training"
        )


def base_manifest(
    source: str,
    source_kind: str,
    words: list[str],
    params: dict[str, Any],
    inputs_hash: str,
    built: Built,
) -> dict[str, Any]:
    """The manifest fields every prepare writes (splits and sizes are added on writing)."""
    manifest = {
        "format": FORMAT,
        "kwstool_version": __version__,
        "source": source,
        "source_kind": built.extra.get("source_kind", source_kind),
        "words": words,
        "labels": [SILENCE, UNKNOWN, *words],
        "features": params["features"],
        "inputs_hash": inputs_hash,
        "params": {
            k: params[k]
            for k in ("silence_share", "unknown_share", "validation_pct", "testing_pct", "seed")
        },
        "split_rule": built.extra.get("split_rule"),
    }
    for key in ("tfds", "archive", "sources", "unknown_min", "keyword_clips"):
        if key in built.extra:
            manifest[key] = built.extra[key]
    return manifest


def prepare(
    source: str | Sequence[str] = "tfds",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    words: Iterable[str] | str | None = None,
    silence_share: float = 10.0,
    unknown_share: float = 10.0,
    validation_pct: float = 10.0,
    testing_pct: float = 10.0,
    seed: int = 0,
    download_dir: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: bool = True,
    negatives: Sequence[str] = (),
    synthetic: Sequence[str] = (),
    unknown_min: int = 0,
) -> PrepareResult:
    """Prepare ``source`` into ``data_dir`` (see the module documentation); return what was done.

    ``data_dir`` defaults to ``./data/<source name>``; ``download_dir`` (archives and their
    extraction) to ``./data/downloads``. ``force`` rebuilds even when the cache matches.
    Several sources (a list, ``NAME=PATH`` items, or any ``negatives``) are merged by
    :func:`kwstool.data.merge.prepare_merged`; ``synthetic`` names train-only sources and
    ``unknown_min`` is the least number of ``_unknown_`` examples per split there.
    """
    t0 = time.perf_counter()
    word_list = _parse_words(words)
    _check_params(silence_share, unknown_share, validation_pct, testing_pct)
    from kwstool.data import merge

    sources = [source] if isinstance(source, str) else list(source)
    if merge.is_merged(sources, negatives):
        return merge.prepare_merged(
            sources,
            negatives,
            synthetic,
            data_dir,
            word_list,
            silence_share,
            unknown_share,
            validation_pct,
            testing_pct,
            seed,
            unknown_min,
            download_dir,
            sha256,
            force,
            progress,
        )
    if len(sources) != 1:
        raise KwsError("give one --source, or name each source NAME=PATH to merge several")
    params = params_record(
        word_list, silence_share, unknown_share, validation_pct, testing_pct, seed
    )
    bars = Progress(progress)
    ddir = Path(download_dir) if download_dir else None
    resolved = resolve(sources[0], ddir, sha256, progress)
    out_dir = Path(data_dir) if data_dir else DEFAULT_ROOT / resolved.name
    with folder_lock(out_dir, "kwstool prepare", "--data-dir"):
        if resolved.kind == "tfds":
            built, inputs_hash = build_tfds(
                out_dir, params, word_list, silence_share, unknown_share, seed, bars, ddir, force
            )
        else:
            built, inputs_hash = build_folder(
                resolved,
                out_dir,
                params,
                word_list,
                silence_share,
                unknown_share,
                validation_pct,
                testing_pct,
                seed,
                bars,
                force,
            )
        if isinstance(built, dict):  # the cache matched
            return result_from_manifest(out_dir, built, True, time.perf_counter() - t0, 0)
        return _write(out_dir, resolved, built, word_list, params, inputs_hash, bars, t0)


def _write(
    out_dir: Path,
    resolved: Resolved,
    built: Built,
    word_list: list[str],
    params: dict[str, Any],
    inputs_hash: str,
    bars: Progress,
    t0: float,
) -> PrepareResult:
    """Check what one source built, write the prepared folder, and say what was done."""
    labels = [SILENCE, UNKNOWN, *word_list]
    check_built(built, word_list, labels, resolved.source, noise_expected=resolved.kind != "tfds")
    manifest = write_all(
        out_dir,
        built,
        labels,
        bars,
        base_manifest(resolved.source, resolved.kind, word_list, params, inputs_hash, built),
    )
    return result_from_manifest(
        out_dir, manifest, False, time.perf_counter() - t0, built.clips_decoded
    )
