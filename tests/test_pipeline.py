"""`kwstool run`: prepare -> train -> quantize -> export -> evaluate on the shipped demo dataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import interrupt_after

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

    # the "what now" block: the model and the next commands
    what_now = out.split("what now:", 1)[1]
    assert str(work / "run" / "model_int8.tflite") in what_now
    for command in ("kwstool listen ", "kwstool stream-eval ", "kwstool export ", "pio run "):
        assert command in what_now, command

    # Again in the same work folder: refused, nothing touched (issue 23, row 5)
    code = main(["run", "--work-dir", str(work), "--model", "tiny_conv", "--epochs", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (
        f"error: {work / 'run'} holds an earlier run; continue it with --resume, replace it "
        f"with --overwrite, or choose another --work-dir"
    )
    assert json.loads((work / "run" / "quantize.json").read_text()) == q

    # --overwrite, interrupted during training (row 4): exit 130, one line with the command
    # that resumes, and the old model is gone before the new training starts
    fw = tmp_path / "fw"
    args = ["run", "--work-dir", str(work), "--model", "tiny_conv", "--epochs", "3"]
    args += ["--export-dir", str(fw)]
    rc, _, err = interrupt_after([*args, "--overwrite"], "epoch   1/3", tmp_path)
    assert rc == 130, err
    assert err.strip().splitlines() == [
        f"interrupted during train; kept the prepared data and the last finished epoch in "
        f"{work / 'run'}; continue with `kwstool {' '.join(args)} --resume`"
    ]
    left = {p.name for p in (work / "run").iterdir()}
    assert "model_int8.tflite" not in left and "quantize.json" not in left, left
    assert not (work / "export").exists() and not (work / "evaluation.json").exists()
    assert main(["export", str(work / "run"), "--out", str(fw)]) == 2  # no stale model to use
    capsys.readouterr()

    # the printed command resumes it: training goes on from epoch 1, then the later stages
    assert main([*args, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resuming after epoch 1" in out and "done in" in out
    q2 = json.loads((work / "run" / "quantize.json").read_text())
    tflite = (work / "run" / "model_int8.tflite").read_bytes()
    assert q2["model_sha256"] == hashlib.sha256(tflite).hexdigest()
    assert q2["model_sha256"] in (fw / "kws_model_data.h").read_text()
    assert _snapshot(FIRMWARE_MODEL) == before


def test_run_errors_are_one_line(tmp_path, capsys):
    from kwstool.cli import main

    assert main(["run", str(tmp_path / "no_such_folder"), "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "no_such_folder" in err and len(err.strip().splitlines()) == 1


def test_run_settings_are_checked_before_prepare(tmp_path, capsys, read_only_dir):
    """Issue 23, rows 11 and 13: a bad setting or output folder fails before any stage runs."""
    from kwstool.cli import main

    work = tmp_path / "w"
    assert main(["run", "--work-dir", str(work), "--epochs", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: epochs=-1 is out of range; it must be an integer >= 1"
    ro = read_only_dir / "export"
    assert main(["run", "--work-dir", str(work), "--export-dir", str(ro)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --export-dir {ro}: ") and "not writable" in err
    assert main(["run", "--work-dir", str(work), "--resume", "--overwrite"]) == 2
    assert "pass only one of them" in capsys.readouterr().err
    assert not work.exists()  # nothing was prepared
