"""`kwstool features`: the front end's features of audio files and folders, as .npy and PNG.

A file must be one clip (at most 1 s; shorter ones are zero-padded): a longer one is an error
naming ``--all-windows``, which instead writes the whole feature sequence of one recording
(``(frames, 40)``, one continuous front-end state, as the board streams it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kwstool.core.contract import NUM_CHANNELS, STRIDE_MS
from kwstool.core.frontend import compute
from kwstool.errors import KwsError


# --- files -------------------------------------------------------------------------------------
def list_wavs(paths: Iterable[Path]) -> list[Path]:
    """Expand folders (recursively, sorted) to their audio files; keep files as given."""
    from kwstool.core.audio import is_audio_file

    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and is_audio_file(q.name))
            if not found:
                raise KwsError(
                    f"{p}: folder has no audio files (.wav, .flac, .ogg, .mp3); point at "
                    f"audio files or their folder"
                )
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise KwsError(f"{p}: no such file or folder; check the path")
    return files


@dataclass
class FeaturesResult:
    out: Path
    shape: tuple[Any, ...]
    count: int
    files: list[str]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    png: Path | None = None


def _all_windows(paths: Sequence[Path], out: Path, png: Path | None) -> FeaturesResult:
    """The whole feature sequence ``(frames, 40)`` of one recording of any length."""
    from kwstool.core.audio import load_audio
    from kwstool.core.frontend import compute_raw, to_int8
    from kwstool.fileio import save_npy

    if len(paths) != 1 or not Path(paths[0]).is_file():
        raise KwsError("--all-windows takes exactly one audio file (the whole recording)")
    f = Path(paths[0])
    feats = to_int8(compute_raw(load_audio(f, clip_samples=None)))
    if len(feats) == 0:
        raise KwsError(f"{f}: shorter than one 30 ms window; nothing to compute")
    save_npy(out, feats)
    if png is not None:
        render_png(feats[None], [f.name], png)
    return FeaturesResult(out=out, shape=feats.shape, count=1, files=[str(f)], png=png)


def features_for_paths(
    paths: Sequence[Path], out: Path, png: Path | None = None, all_windows: bool = False
) -> FeaturesResult:
    """Features of audio files and folders, written to ``out`` (.npy) and optionally a PNG.

    One file argument gives ``(49, 40)``; several files or a folder give ``(N, 49, 40)`` and
    ``OUT.files.txt`` listing the files in row order. Unreadable files (and files longer than
    a clip) are skipped and reported. ``all_windows``: one file of any length gives its whole
    feature sequence ``(frames, 40)``.
    """
    from kwstool.core.audio import load_audio, skipped_entry
    from kwstool.fileio import save_npy, write_text

    out = Path(out)
    if out.suffix != ".npy":
        raise KwsError(f"{out}: output must end in .npy")
    if all_windows:
        return _all_windows(paths, out, png)
    single = len(paths) == 1 and Path(paths[0]).is_file()
    files = list_wavs(paths)
    audio, good, skipped = [], [], []
    for f in files:
        try:
            audio.append(load_audio(f))
            good.append(str(f))
        except KwsError as exc:
            if single:
                raise
            skipped.append(skipped_entry(f, exc))
    if not audio:
        return FeaturesResult(out=out, shape=(0,), count=0, files=[], skipped=skipped)
    feats = compute(np.stack(audio))
    array = feats[0] if single else feats
    save_npy(out, array)
    if not single:
        write_text(out.with_suffix(".files.txt"), "".join(f + "\n" for f in good))
    if png is not None:
        render_png(feats, [Path(f).name for f in good], png)
    return FeaturesResult(
        out=out, shape=array.shape, count=len(good), files=good, skipped=skipped, png=png
    )


def render_png(feats: np.ndarray, titles: Sequence[str], path: Path, max_panels: int = 16) -> None:
    """Spectrogram image(s): time left to right, channel (low to high frequency) bottom to top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kwstool.fileio import atomic_path

    n = min(len(feats), max_panels)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.axis("on")
        im = ax.imshow(
            feats[i].T,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=-128,
            vmax=127,
            extent=(0, feats[i].shape[0] * STRIDE_MS, 0, NUM_CHANNELS),
        )
        ax.set_title(titles[i], fontsize=8)
        ax.set_xlabel("time (ms)", fontsize=7)
        ax.set_ylabel("mel channel", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="int8 feature")
    if len(feats) > max_panels:
        fig.suptitle(f"first {max_panels} of {len(feats)} clips", fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
