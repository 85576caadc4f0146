"""Several sources merged into one prepared folder (a custom wake word, ``kwstool prepare``).

``kwstool prepare --source own=~/lamp --source synth=data/synth_lamp
--negatives sc=/path/to/speech_commands --words hey_lamp --data-dir data/lamp``

Sources, each ``NAME=PATH`` (a folder, archive or URL as for one source; ``NAME`` of letters,
digits, ``-`` and ``_``; without ``NAME=`` the folder's name is used)
    * ``--source``: keyword sources, read as a single source is (word folders are keywords,
      other folders ``_unknown_`` candidates, ``_silence_``/``_background_noise_`` as usual);
    * ``--negatives``: every clip is an ``_unknown_`` candidate, except clips of a keyword
      (a folder named after a word, or ``_unknown_/<word>_*.wav`` as in the canonical test
      set), which are left out with a warning; ``_silence_/`` and ``_background_noise_/`` are
      used as usual.
    * synthetic: a source whose name starts with ``synth`` or is listed in ``synthetic``
      (``--synthetic NAME``). All its clips go to train, so validation and test hold only real
      speech.
Splits
    Each real source is split by its own rule (list files, else the speaker hash; the canonical
    test layout stretched, see :mod:`kwstool.data.prepared`); as the hash depends on the speaker
    id alone, a speaker stays in one split in every source. Then every word gets real clips in
    every split (:func:`kwstool.data.splits.balance_words`): a word from fewer than 3 speakers
    (one person recording their word) is split by take, most takes in train; one with more
    speakers but none hashed into validation or test gets a train speaker moved there. The
    manifest's ``keyword_clips`` counts real and synthetic clips per word and split; a word
    without a real clip in train is a warning. ``_unknown_`` examples are drawn
    from all sources together, ``ceil(unknown_share % * keywords)`` per split but at least
    ``unknown_min`` (a few own recordings need many more negatives than the share gives).
Output
    As for one source; each line of ``{split}_files.txt`` is ``NAME:<path in that source>``
    (silence slices ``#silence:NAME:<noise file>@<offset>``), noise recordings are keyed
    ``NAME_<stem>``, and the manifest's ``sources`` lists every source with its path, role,
    ``synthetic`` flag, split rule and clips per split.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kwstool.core.folders import folder_lock
from kwstool.core.labels import SILENCE, UNKNOWN
from kwstool.data.build import build_from_scan
from kwstool.data.sources import (
    DEFAULT_ROOT,
    Clip,
    Resolved,
    Scan,
    folder_inputs,
    hash_inputs,
    resolve,
    scan_folder,
)
from kwstool.data.splits import assign_splits, balance_words
from kwstool.data.store import (
    SPLITS,
    Built,
    PrepareResult,
    Progress,
    cached_manifest,
    check_built,
    keyword_clips,
    no_real_train,
    result_from_manifest,
    write_all,
)
from kwstool.errors import KwsError

SYNTH_PREFIX = "synth"
_NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*)=(.+)$")


@dataclass
class Source:
    name: str
    spec: str  # as given (NAME=PATH)
    role: str  # "keywords" | "negatives"
    synthetic: bool
    resolved: Resolved | None = None
    scan: Scan | None = None


def is_merged(sources: Sequence[str], negatives: Sequence[str]) -> bool:
    """Whether a prepare call merges sources (several, named, or with negatives)."""
    return bool(negatives) or len(sources) > 1 or any(_NAMED.match(s) for s in sources)


def parse_sources(
    sources: Sequence[str], negatives: Sequence[str], synthetic: Sequence[str]
) -> list[Source]:
    """``NAME=PATH`` specs -> sources; checks names are unique and ``synthetic`` names exist."""
    out: list[Source] = []
    for role, specs in (("keywords", sources), ("negatives", negatives)):
        for spec in specs:
            m = _NAMED.match(spec.strip())
            path = m.group(2) if m else spec.strip()
            if path.lower().startswith("tfds"):
                raise KwsError(
                    f"{spec}: TFDS cannot be merged with other sources; use the "
                    f"Speech Commands archive URL or folder instead"
                )
            name = m.group(1) if m else Path(path.rstrip("/")).expanduser().name
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
                raise KwsError(
                    f"{spec}: cannot use {name!r} as a source name; write NAME=PATH "
                    f"with NAME of letters, digits, '-' and '_'"
                )
            is_synth = name in synthetic or name.lower().startswith(SYNTH_PREFIX)
            out.append(Source(name, f"{name}={path}", role, is_synth))
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise KwsError(f"source name {dup[0]!r} is used twice; give each source its own NAME=PATH")
    unknown = [n for n in synthetic if n not in names]
    if unknown:
        raise KwsError(
            f"--synthetic {unknown[0]}: no source of that name (sources: {', '.join(names)})"
        )
    return out


def _is_keyword_clip(c: Clip, words: list[str]) -> bool:
    if c.folder in words:
        return True
    base = c.rel.rsplit("/", 1)[-1]
    return c.folder == UNKNOWN and any(base.startswith(f"{w}_") for w in words)


def _merged_clips(
    src: Source, words: list[str], validation_pct: float, testing_pct: float, warnings: list[str]
) -> tuple[list[Clip], list[Clip], str]:
    """The source's clips and noise renamed ``NAME:rel`` with their split; and its split rule."""
    scan, root = src.scan, src.resolved.root if src.resolved else None
    assert scan is not None and root is not None
    rule = "train_only" if src.synthetic else assign_splits(scan, validation_pct, testing_pct)
    clips: list[Clip] = []
    dropped = 0
    for c in scan.clips:
        folder = c.folder
        if src.role == "negatives":
            if _is_keyword_clip(c, words):
                dropped += 1
                continue
            folder = folder if folder == SILENCE else UNKNOWN
        split = "train" if src.synthetic else c.split
        clips.append(
            Clip(f"{src.name}:{c.rel}", folder, c.size, c.mtime_ns, split, src.name, root / c.rel)
        )
    if dropped:
        warnings.append(
            f"negatives {src.name}: left out {dropped} clip(s) of "
            f"{', '.join(words)} (keywords are never negatives)"
        )
    noise = [
        Clip(f"{src.name}:{c.rel}", c.folder, c.size, c.mtime_ns, "train", src.name, root / c.rel)
        for c in scan.noise
    ]
    return clips, noise, rule


def _source_counts(built: Built, names: list[str]) -> dict[str, dict[str, int]]:
    """Rows per split of every source, from the file lines."""
    out = {n: {s: 0 for s in SPLITS} for n in names}
    for s in SPLITS:
        for line in built.splits[s].lines:
            name = line.removeprefix("#silence:").split(":", 1)[0]
            out[name][s] += 1
    return out


def _inputs_hash(srcs: list[Source], params: dict[str, Any]) -> str:
    listed = []
    for src in srcs:
        assert src.resolved is not None and src.scan is not None
        inputs = src.resolved.archive or folder_inputs(src.scan)
        listed.append(
            {
                "name": src.name,
                "role": src.role,
                "synthetic": src.synthetic,
                "source": src.resolved.source,
                "inputs": inputs,
            }
        )
    return hash_inputs({"params": params, "merged": listed})


def _build(
    srcs: list[Source],
    words: list[str],
    silence_share: float,
    unknown_share: float,
    validation_pct: float,
    testing_pct: float,
    seed: int,
    unknown_min: int,
    bars: Progress,
) -> Built:
    warnings: list[str] = []
    clips: list[Clip] = []
    noise: list[Clip] = []
    rules = {}
    for src in srcs:
        c, n, rules[src.name] = _merged_clips(src, words, validation_pct, testing_pct, warnings)
        clips += c
        noise += n
    clips.sort(key=lambda c: c.rel)
    synthetic = {s.name for s in srcs if s.synthetic}
    warnings += balance_words(
        [c for c in clips if c.source not in synthetic], words, validation_pct, testing_pct
    )
    if not any(c.folder in words for c in clips):
        raise KwsError(
            f"no clips of {', '.join(words)} in the keyword sources "
            f"({', '.join(s.spec for s in srcs if s.role == 'keywords')}); each needs "
            f"a folder per word, e.g. <source>/{words[0]}/*.wav"
        )
    merged = Scan(Path("."), "merged", clips, noise, {}, [])
    where = "the sources " + ", ".join(s.name for s in srcs)
    built = build_from_scan(
        merged,
        words,
        silence_share,
        unknown_share,
        validation_pct,
        testing_pct,
        seed,
        bars,
        "merged",
        unknown_min,
        where,
    )
    built.warnings[:0] = warnings
    counts = _source_counts(built, [s.name for s in srcs])
    built.extra["sources"] = {
        s.name: {
            "path": s.resolved.source if s.resolved else s.spec,
            "role": s.role,
            "synthetic": s.synthetic,
            "split_rule": rules[s.name],
            "clips": counts[s.name],
        }
        for s in srcs
    }
    built.extra["source_kind"] = "merged"
    built.extra["unknown_min"] = unknown_min
    built.extra["keyword_clips"] = keyword_clips(built, words, synthetic)
    built.warnings += no_real_train(built.extra["keyword_clips"])
    return built


def _resolve_all(
    srcs: list[Source],
    download_dir: str | os.PathLike[str] | None,
    sha256: str | None,
    progress: bool,
) -> list[Source]:
    """Resolve (download, extract) and scan every source, in place; return them."""
    ddir = Path(download_dir) if download_dir else None
    for src in srcs:
        src.resolved = resolve(src.spec.split("=", 1)[1], ddir, sha256, progress)
        assert src.resolved.root is not None
        src.scan = scan_folder(src.resolved.root)
    return srcs


def _source_text(srcs: list[Source]) -> str:
    """The manifest's ``source``: ``NAME=PATH`` of each, joined by `` + ``."""
    return " + ".join(
        f"{'negatives:' if s.role == 'negatives' else ''}{s.name}="
        f"{s.resolved.source if s.resolved else ''}"
        for s in srcs
    )


def prepare_merged(
    sources: Sequence[str],
    negatives: Sequence[str],
    synthetic: Sequence[str],
    data_dir: str | os.PathLike[str] | None,
    words: list[str],
    silence_share: float,
    unknown_share: float,
    validation_pct: float,
    testing_pct: float,
    seed: int,
    unknown_min: int,
    download_dir: str | os.PathLike[str] | None,
    sha256: str | None,
    force: bool,
    progress: bool,
) -> PrepareResult:
    """Prepare several sources into one folder (see the module documentation)."""
    from kwstool.data.prepared import base_manifest, params_record

    t0 = time.perf_counter()
    if unknown_min < 0:
        raise KwsError(f"--unknown-min {unknown_min} is negative; give a count of 0 or more")
    if not sources:
        raise KwsError("no --source with keyword clips; give e.g. --source own=~/recordings")
    srcs = _resolve_all(
        parse_sources(sources, negatives, synthetic), download_dir, sha256, progress
    )
    params = params_record(words, silence_share, unknown_share, validation_pct, testing_pct, seed)
    params["unknown_min"] = unknown_min
    out_dir = Path(data_dir) if data_dir else DEFAULT_ROOT / "_".join(words)
    with folder_lock(out_dir, "kwstool prepare", "--data-dir"):
        inputs_hash = _inputs_hash(srcs, params)
        if not force and (hit := cached_manifest(out_dir, inputs_hash)):
            return result_from_manifest(out_dir, hit, True, time.perf_counter() - t0, 0)
        bars = Progress(progress)
        built = _build(
            srcs,
            words,
            silence_share,
            unknown_share,
            validation_pct,
            testing_pct,
            seed,
            unknown_min,
            bars,
        )
        labels = [SILENCE, UNKNOWN, *words]
        source = _source_text(srcs)
        check_built(built, words, labels, source)
        manifest = write_all(
            out_dir,
            built,
            labels,
            bars,
            base_manifest(source, "merged", words, params, inputs_hash, built),
        )
        return result_from_manifest(
            out_dir, manifest, False, time.perf_counter() - t0, built.clips_decoded
        )
