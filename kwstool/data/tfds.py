"""TensorFlow Datasets' ``speech_commands`` as a prepare source (``--source tfds``)."""

from __future__ import annotations

import heapq
import json
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core import tfenv
from kwstool.core.labels import SILENCE, UNKNOWN
from kwstool.data.build import rank, share_count
from kwstool.data.rows import Rows, Split
from kwstool.data.sources import TFDS_SOURCE, hash_inputs, listing
from kwstool.data.store import SPLITS, Built, Progress
from kwstool.errors import KwsError


class _BottomK:
    """Keep the ``cap`` items with the smallest keys (all items when ``cap`` is None)."""

    def __init__(self, cap: int | None):
        self.cap = cap
        self._heap: list[Any] = []  # max-heap via negated rank bytes

    def offer(self, key: bytes, item: Any) -> None:
        neg = bytes(255 - b for b in key)
        if self.cap is None or len(self._heap) < self.cap:
            heapq.heappush(self._heap, (neg, item))
        elif neg > self._heap[0][0]:
            heapq.heapreplace(self._heap, (neg, item))

    def ranked(self) -> list[Any]:
        return [item for _, item in sorted(self._heap, key=lambda t: t[0], reverse=True)]


def _quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ info logs before importing TFDS."""
    tfenv.quiet()


def _prepared_builder(tfds_dir: Path | None) -> tuple[Any, Any]:
    """The tensorflow_datasets module and its speech_commands builder, downloaded and prepared."""
    _quiet_tensorflow()
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise KwsError(
            "--source tfds needs tensorflow-datasets (`pip install tensorflow-datasets`)"
            "; or pass the archive URL/path as --source"
        ) from None
    builder = tfds.builder("speech_commands", data_dir=str(tfds_dir) if tfds_dir else None)
    try:
        builder.download_and_prepare()
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KwsError(
            f"TFDS speech_commands download/prepare failed ({msg}); check the network "
            f"and disk, or use --source http://download.tensorflow.org/data/"
            f"speech_commands_v0.02.tar.gz"
        ) from None
    return tfds, builder


def _check_words(words: list[str], names: list[str]) -> None:
    missing = [w for w in words if w not in names]
    if missing:
        raise KwsError(
            f"word {missing[0]!r} is not labelled in TFDS speech_commands (it has only "
            f"{', '.join(n for n in names if not n.startswith('_'))}); use --source "
            f"http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz for "
            f"other words"
        )


def _read_split(
    tfds: Any,
    builder: Any,
    s: str,
    names: list[str],
    index: dict[str, int],
    shares: tuple[float, float],
    seed: int,
    progress: Progress,
) -> tuple[Rows, int, _BottomK]:
    """One TFDS split: its arrays (keywords, then the ``_unknown_``/``_silence_`` shares), the
    examples read, and the ranked silence pool."""
    from kwstool.core.audio import fit_length

    unknown_share, silence_share = shares
    try:
        total = int(builder.info.splits[s].num_examples)
    except Exception:
        total = 0
    cap_u = share_count(unknown_share, total) if total else None
    cap_s = share_count(silence_share, total) if total else None
    ds = builder.as_dataset(
        split=s, shuffle_files=False, read_config=tfds.ReadConfig(add_tfds_id=True)
    )
    rows = Split()
    unk, sil = _BottomK(cap_u), _BottomK(cap_s)
    n_known = found = 0
    with progress.task(f"read tfds {s}", total) as advance:
        for ex in tfds.as_numpy(ds):
            found += 1
            advance(1)
            name = names[int(ex["label"])]
            line = "tfds:" + ex["tfds_id"].decode()
            audio = fit_length(np.asarray(ex["audio"], dtype=np.int16).reshape(-1))
            if name in index and name not in (SILENCE, UNKNOWN):
                rows.add(index[name], line, audio)
                n_known += 1
            elif name == SILENCE:
                sil.offer(rank(seed, line), (line, audio))
            else:
                unk.offer(rank(seed, line), (line, audio))
    for pool, label, share in ((unk, UNKNOWN, unknown_share), (sil, SILENCE, silence_share)):
        for line, audio in pool.ranked()[: share_count(share, n_known)]:
            rows.add(index[label], line, audio)
    return rows.rows(), found, sil


def build_from_tfds(
    words: list[str],
    silence_share: float,
    unknown_share: float,
    seed: int,
    progress: Progress,
    tfds_dir: Path | None,
) -> tuple[Built, dict[str, Any]]:
    tfds, builder = _prepared_builder(tfds_dir)
    names = list(builder.info.features["label"].names)
    _check_words(words, names)
    labels = [SILENCE, UNKNOWN, *words]
    index = {w: i for i, w in enumerate(labels)}
    out: dict[str, Rows] = {}
    found = 0
    noise_parts: list[np.ndarray] = []
    warnings: list[str] = []
    for s in SPLITS:
        shares = (unknown_share, silence_share)
        out[s], n, sil = _read_split(tfds, builder, s, names, index, shares, seed, progress)
        found += n
        if s == "train":  # every kept train silence example feeds the noise bank
            noise_parts = [audio for _, audio in sil.ranked()]
    noise = {"tfds_train_silence": np.concatenate(noise_parts)} if noise_parts else {}
    if noise:
        warnings.append(
            "background_noise.npz holds TFDS's train _silence_ examples "
            "(TFDS does not keep the full noise recordings)"
        )
    tfds_info = {"full_name": builder.info.full_name, "data_dir": str(builder.data_dir)}
    built = Built(
        out,
        noise,
        [],
        warnings,
        found,
        found,
        {"split_rule": "tfds", "source_kind": "tfds", "tfds": tfds_info},
    )
    return built, tfds_info


def tfds_fast_hash(data_dir: Path, params: dict[str, Any]) -> str | None:
    """inputs_hash of an earlier TFDS prepare, from TFDS's files alone (no TensorFlow import)."""
    try:
        manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
        info = manifest["tfds"]
    except (OSError, ValueError, KeyError):
        return None
    return hash_inputs(
        {
            "params": params,
            "source": TFDS_SOURCE,
            "tfds": info,
            "files": listing(Path(info["data_dir"])),
        }
    )
