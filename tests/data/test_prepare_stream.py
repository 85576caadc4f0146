"""`kwstool prepare` streams each split to disk (kwstool/data/rows.py): the files it writes must
equal what np.save writes for arrays built in RAM from the same clips, and its peak resident
memory must not grow with the number of clips."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from kwstool.core.audio import load_wav
from kwstool.core.frontend import compute
from kwstool.data import prepare
from kwstool.data.build import SILENCE_GAIN_RANGE

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "datasets" / "demo"
SPLITS = ("train", "validation", "test")
LABELS = ["_silence_", "_unknown_", "yes", "no"]


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def demo_with_bad_clips(root: Path) -> list[str]:
    """The demo set plus _silence_ clips, and unreadable clips among keywords, the first-ranked
    unknown candidates and the silence clips (so refills happen); returns the broken ones."""
    shutil.copytree(DEMO, root)
    noise = load_wav(root / "_background_noise_" / "pink_noise.wav", None)
    (root / "_silence_").mkdir()
    for k in range(6):
        wavfile.write(root / "_silence_" / f"s{k}.wav", 16000, noise[k * 16000 : (k + 1) * 16000])
    bad = ["yes/" + sorted(os.listdir(root / "yes"))[0], "_silence_/s2.wav"]
    unknown = sorted(
        (f"{d}/{f}" for d in ("up", "down", "on") for f in os.listdir(root / d)),
        key=lambda r: hashlib.sha1(f"0:{r}".encode()).digest(),
    )
    bad += unknown[:6:2]
    for i, rel in enumerate(bad):
        (root / rel).write_bytes(b"" if i % 2 else b"RIFF not a wav")
    return sorted(bad)


def reference_audio(root: Path, line: str, seed: int = 0) -> np.ndarray:
    """A row built in RAM from the documented rules: the decoded clip, or the noise slice times
    its log-uniform gain from sha1("<seed>:<line>"), capped below clipping."""
    if not line.startswith("#silence:"):
        return load_wav(root / line)
    rel, off = line[len("#silence:") :].rsplit("@", 1)
    seg = load_wav(root / rel, None)[int(off) : int(off) + 16000].astype(np.float32)
    u = int.from_bytes(hashlib.sha1(f"{seed}:{line}".encode()).digest()[:8], "big") / 2.0**64
    lo, hi = SILENCE_GAIN_RANGE
    gain = min(lo * (hi / lo) ** u, 32767.0 / int(np.abs(seg).max()))
    return np.clip(np.round(seg * gain), -32768, 32767).astype(np.int16)


def label_of(line: str) -> int:
    folder = line.removeprefix("#silence:").split("/")[0]
    if folder in LABELS[2:]:
        return LABELS.index(folder)
    return 0 if folder in ("_silence_", "_background_noise_") else 1


@pytest.mark.parametrize("chunk", [2048, 7])
def test_streamed_files_equal_np_save_of_in_ram_arrays(tmp_path, monkeypatch, chunk):
    """Byte for byte, with one chunk per split or many (7 rows, a short last one)."""
    import kwstool.data.rows as rows

    monkeypatch.setattr(rows, "WRITE_CHUNK", chunk)
    monkeypatch.setattr(rows, "DECODE_CHUNK", 3)
    root = tmp_path / "demo"
    bad = demo_with_bad_clips(root)
    out = tmp_path / "prepared"
    res = prepare(
        str(root), out, words="yes,no", unknown_share=30, silence_share=20, progress=False
    )
    assert [d["file"] for d in res.skipped] == bad
    for s in SPLITS:
        lines = (out / f"{s}_files.txt").read_text().splitlines()
        labels = np.array([label_of(line) for line in lines], np.int16)
        assert lines == sorted(lines, key=lambda ln: (label_of(ln), ln))  # label, then line
        audio = np.stack([reference_audio(root, line) for line in lines])
        assert (out / f"{s}_audio.npy").read_bytes() == npy_bytes(audio)
        assert (out / f"{s}_features.npy").read_bytes() == npy_bytes(compute(audio))
        assert (out / f"{s}_labels.npy").read_bytes() == npy_bytes(labels)
        assert len(lines) > chunk or chunk == 2048  # the small chunk does split every split
    assert any(ln.startswith("#silence:") for ln in (out / "train_files.txt").read_text().split())


def test_stale_temp_files_of_a_killed_prepare_are_removed(tmp_path):
    root = tmp_path / "demo"
    shutil.copytree(DEMO, root)
    out = tmp_path / "prepared"
    out.mkdir()
    stale = [out / ".train_audio.npy.x1y2.tmp", out / ".manifest.json.abc.tmp"]
    for p in stale:
        p.write_bytes(b"half written")
    (out / ".keep.tmp").write_bytes(b"not ours")
    prepare(str(root), out, words="yes,no", progress=False)
    assert not any(p.exists() for p in stale) and (out / ".keep.tmp").exists()


# --- peak memory ---------------------------------------------------------------------------------
def corpus(root: Path, clips: int) -> Path:
    """``clips`` 1 s WAVs of yes/no/up in the official layout, one speaker each, plus noise."""
    rng = np.random.default_rng(clips)
    x = (rng.normal(0, 2000, 16000)).astype(np.int16)
    for i in range(clips):
        p = root / ("yes", "no", "up")[i % 3] / f"{i:06x}_nohash_0.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        wavfile.write(p, 16000, np.roll(x, i))
    (root / "_background_noise_").mkdir()
    wavfile.write(root / "_background_noise_" / "n.wav", 16000, np.tile(x, 20))
    return root


def peak_rss_of_prepare(src: Path, out: Path) -> tuple[int, int]:
    """(rows written, peak RSS in bytes) of a prepare in a fresh Python (os.wait4's ru_maxrss),
    with 64-row chunks so that the chunk buffer is the same size for both corpora."""
    code = (
        "import json, kwstool.data.rows as r; r.WRITE_CHUNK = 64\n"
        "from kwstool.data import prepare\n"
        f"res = prepare({str(src)!r}, {str(out)!r}, words='yes,no', progress=False)\n"
        "print(json.dumps(sum(v['count'] for v in res.splits.values())))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert proc.stdout is not None and os.waitstatus_to_exitcode(status) == 0
    return json.loads(proc.stdout.read()), usage.ru_maxrss * 1024


@pytest.mark.slow
def test_prepare_peak_memory_does_not_grow_with_clip_count(tmp_path):
    """1,500 more clips (~1,200 more rows, 38 MB more int16 audio) add less than 12 KB of peak
    RSS per row; the in-RAM writer added ~60 KB per row (docs/SCALING.md)."""
    small, rss_small = peak_rss_of_prepare(corpus(tmp_path / "a", 300), tmp_path / "pa")
    large, rss_large = peak_rss_of_prepare(corpus(tmp_path / "b", 1800), tmp_path / "pb")
    assert large - small > 1000
    per_row = (rss_large - rss_small) / (large - small)
    assert per_row < 12 * 1024, f"{per_row / 1024:.1f} KB of peak RSS per extra row"
