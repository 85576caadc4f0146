"""`kwstool run`: prepare -> train -> quantize -> export -> evaluate on the shipped demo dataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIRMWARE_MODEL = REPO / "firmware" / "src" / "model"


def _snapshot(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()
    }


def test_demo_dataset_is_small_and_documented():
    demo = REPO / "datasets" / "demo"
    files = [p for p in demo.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 10_000_000
    readme = (demo / "README.md").read_text()
    assert "espeak-ng" in readme and "CC0" in readme and "make_demo_dataset.py" in readme
    for folder in ("yes", "no", "_background_noise_"):
        assert any((demo / folder).glob("*.wav"))


@pytest.mark.slow
def test_kwstool_run_end_to_end(tmp_path, capsys):
    from kwstool.cli import main

    before = _snapshot(FIRMWARE_MODEL)
    work = tmp_path / "work"
    code = main(["run", "--work-dir", str(work), "--model", "tiny_conv", "--epochs", "2"])
    out = capsys.readouterr().out
    assert code == 0
    for rel in (
        "data/manifest.json",
        "run/best.keras",
        "run/model_int8.tflite",
        "run/quantize.json",
        "export/kws_model_data.h",
        "export/kws_model_data.cc",
        "evaluation.json",
        "confusion.png",
    ):
        assert (work / rel).is_file(), rel
    q = json.loads((work / "run" / "quantize.json").read_text())
    ev = json.loads((work / "evaluation.json").read_text())
    manifest = json.loads((work / "data" / "manifest.json").read_text())
    assert q["labels"] == ev["labels"] == ["_silence_", "_unknown_", "yes", "no"]
    assert q["model"] == "tiny_conv"
    assert ev["split"] == "test" and ev["count"] == manifest["splits"]["test"]["count"]
    assert ev["top1"] == q["accuracy"]["int8"]["test"]
    assert f"top-1 {ev['top1']:.4f} on {ev['count']} clips" in out
    assert "[5/5] evaluate" in out and "done in" in out
    # The firmware's shipped model is only replaced on request (--export-dir).
    assert _snapshot(FIRMWARE_MODEL) == before

    # Again in the same work folder: prepared data reused, training replaced, export elsewhere.
    fw = tmp_path / "fw"
    code = main(
        [
            "run",
            "--work-dir",
            str(work),
            "--model",
            "tiny_conv",
            "--epochs",
            "2",
            "--export-dir",
            str(fw),
        ]
    )
    assert code == 0
    exported = (work / "export" / "kws_model_data.cc").read_bytes()
    assert (fw / "kws_model_data.cc").read_bytes() == exported
    assert json.loads((work / "run" / "quantize.json").read_text()) == q


def test_run_errors_are_one_line(tmp_path, capsys):
    from kwstool.cli import main

    assert main(["run", str(tmp_path / "no_such_folder"), "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "no_such_folder" in err and len(err.strip().splitlines()) == 1
