"""Real clips for the embedding-teacher tests: a tiny prepared set cut from ../shared's
Speech Commands test half (each clip named as its own speaker, so the hash rule spreads them
over the splits), and the speech-embedding models of the teacher extra (skip when absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import shared_path

LABEL_DIRS = {"yes": 14, "no": 14, "_unknown_": 14, "_silence_": 6}


def embedding_or_skip(threads: int = 2):
    """The real SpeechEmbedding, or skip when the teacher extra is not installed."""
    from kwstool.core.embedding import SpeechEmbedding
    from kwstool.errors import KwsError

    try:
        return SpeechEmbedding(threads)
    except KwsError as exc:
        pytest.skip(f"teacher extra not installed ({exc}); `bash scripts/setup.sh --test`")


def real_clips(label: str, count: int) -> list[Path]:
    folder = shared_path("speech_commands_test_dev", label)
    return sorted(folder.iterdir())[:count]


def prepare_real_tiny(base: Path) -> Path:
    """A prepared yes,no set of ~50 real clips (train/validation/test all non-empty)."""
    from kwstool.data import prepare

    src = base / "src"
    for label, count in LABEL_DIRS.items():
        (src / label).mkdir(parents=True)
        for i, f in enumerate(real_clips(label, count)):
            shutil.copy(f, src / label / f"{label.strip('_')}{i:03d}_nohash_0.wav")
    noise = shared_path("speech_commands_mini", "_background_noise_", "white_noise.wav")
    (src / "_background_noise_").mkdir()
    shutil.copy(noise, src / "_background_noise_" / noise.name)
    out = base / "prepared"
    prepare(str(src), out, words="yes,no", validation_pct=25, testing_pct=10,
            unknown_share=50, progress=False)  # fmt: skip
    return out
