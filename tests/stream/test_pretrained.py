"""The model packaged inside kwstool: `kwstool listen` with no run folder, `--open URL`, and the
firmware's model files as the export of the packaged model."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, shared_path

from kwstool.core.audio import load_wav, save_wav

#: Clips of the canonical test set's first half: "go" of three speakers (every 40th clip) between
#: other words. The packaged model was trained on every shared speaker, these included, so the
#: recording checks the path (one action per detected go), not accuracy on new speakers (the
#: README's cross-validated figures; in longer streams it misses some go's).
GO_CLIPS = 3
OTHER = ("yes", "stop", "left")


def _recording(out: Path) -> tuple[Path, int]:
    """Real speech: other words and ``GO_CLIPS`` times "go", 2.5 s apart, over quiet noise."""
    root = shared_path("speech_commands_test_dev")
    go = sorted((root / "go").glob("*.wav"))[::40][:GO_CLIPS]
    others = [sorted((root / w).glob("*.wav"))[0] for w in OTHER]
    gap = np.zeros(40000, np.int16)
    parts = [gap]
    for i, clip in enumerate(go):
        parts += [load_wav(others[i % len(others)]), gap, load_wav(clip), gap]
    x = np.concatenate(parts).astype(np.int32)
    x += np.random.default_rng(0).normal(0, 8, len(x)).astype(np.int32)  # ~-70 dBFS noise
    save_wav(out, np.clip(x, -32768, 32767).astype(np.int16))
    return out, len(go)


def _kwstool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("kwstool")), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )


def test_listen_without_a_run_uses_the_packaged_model_and_fires_once_per_go(tmp_path):
    wav, n = _recording(tmp_path / "go.wav")
    out = tmp_path / "fired.txt"
    code = "import os, sys; open(sys.argv[1], 'a').write(os.environ['KWS_LABEL'] + '\\n')"
    r = _kwstool(
        "listen", "--wav", str(wav), "--fast", "--on", "go",
        "--exec", sys.executable, "-c", code, str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert out.read_text().splitlines() == ["go"] * n, r.stdout
    detected = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("DETECTED")]
    assert detected.count("go") == n, r.stdout


def test_listen_open_url_starts_the_default_browser_on_each_detection(tmp_path):
    wav, n = _recording(tmp_path / "go.wav")
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"  # what $BROWSER names is the user's web browser
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IEXEC)
    r = _kwstool(
        "listen", "--wav", str(wav), "--fast", "--on", "go", "--open", "https://example.org",
        env={"BROWSER": str(browser)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert opened.read_text().splitlines() == ["https://example.org"] * n


def test_firmware_model_files_are_the_export_of_the_packaged_model(tmp_path):
    from kwstool.core.pretrained import pretrained_dir
    from kwstool.deploy.export import HEADER_FILE, SOURCE_FILE, export

    res = export(pretrained_dir(), tmp_path, board="nano33ble")
    assert res.muted == []  # no keyword is switched off by its threshold
    shipped = REPO / "firmware" / "src" / "model"
    for name in (HEADER_FILE, SOURCE_FILE):
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), (
            f"firmware/src/model/{name} is not `kwstool export` of kwstool/pretrained: re-run "
            "python scripts/package_model.py"
        )


def test_packaged_model_is_a_consistent_versioned_record():
    from kwstool.core.calibration import read_calibration
    from kwstool.core.pretrained import pretrained_dir, provenance

    folder = pretrained_dir()
    prov = provenance()
    cal = read_calibration(folder)
    assert cal is not None and cal["labels"] == prov.labels
    assert (
        prov.model_sha256 == hashlib.sha256((folder / "model_int8.tflite").read_bytes()).hexdigest()
    )
    assert set(cal["thresholds"]) == {lab for lab in prov.labels if not lab.startswith("_")}
    assert all(t < 255 for t in cal["thresholds"].values())


def test_a_damaged_packaged_model_is_a_one_line_error(tmp_path, monkeypatch):
    import shutil

    from kwstool.core import pretrained
    from kwstool.errors import KwsError

    copy = tmp_path / "pretrained"
    shutil.copytree(pretrained.ROOT, copy)
    monkeypatch.setattr(pretrained, "ROOT", copy)
    model = copy / pretrained.DEFAULT / "model_int8.tflite"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    with pytest.raises(KwsError, match="written for another model"):
        pretrained.pretrained_dir()
    (copy / pretrained.DEFAULT / "calibration.json").unlink()
    with pytest.raises(KwsError, match="missing calibration.json"):
        pretrained.pretrained_dir()
    prov = json.loads((copy / pretrained.DEFAULT / "provenance.json").read_text())
    assert prov["schema"] == "kwstool.pretrained"
