"""The one place settings are checked (kwstool.core.settings) and the output folders' checks,
locks and write errors (kwstool.core.folders): real files, a real second process, a real full
file system where mounting one is allowed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import hold_lock

from kwstool.core import folders, settings
from kwstool.errors import KwsError

HERE = Path(__file__).resolve().parents[1]


def test_each_limit_refuses_what_is_outside_and_names_the_option():
    settings.check(threshold=0, suppression_ms=0, hours=0.01, negative_hours=0, calibrate=0)
    settings.check(threshold=255, seconds=60, threads=1, hours=None)  # None: not given
    bad = {
        "suppression_ms": -5,
        "threshold": 256,
        "hours": 0,
        "negative_hours": -1,
        "calibrate": -1,
        "seconds": -1,
        "threads": 0,
    }
    for name, value in bad.items():
        with pytest.raises(KwsError, match=rf"^{settings.LIMITS[name].option} {value}: out of"):
            settings.check(**{name: value})
    with pytest.raises(KwsError, match="whole number"):
        settings.check(suppression_ms=1.5)
    with pytest.raises(KwsError, match="finite"):
        settings.check(calibrate=float("nan"))
    with pytest.raises(KwsError, match="not a number"):
        settings.check(hours="1")


def test_recognizer_dicts_are_checked_whoever_builds_them():
    settings.check_recognizer({"threshold": 200, "thresholds": {"yes": 3}, "suppression_ms": 0})
    with pytest.raises(KwsError, match=r"^--suppression-ms -5"):
        settings.check_recognizer({"suppression_ms": -5})
    with pytest.raises(KwsError, match=r"^f.json: threshold of 'yes' 300"):
        settings.check_recognizer({"thresholds": {"yes": 300}}, where="f.json")
    with pytest.raises(KwsError, match="not below average_window_ms"):
        settings.check_recognizer({"average_window_ms": 500, "minimum_coverage_ms": 500})
    with pytest.raises(KwsError, match="average_window_ms 0"):
        settings.check_recognizer({"average_window_ms": 0})
    # the C recognizer's own settings object goes through the same check
    from kwstool.stream.native import RecognizerSettings

    rec = {"threshold": 200, "average_window_ms": 1000, "suppression_ms": -5}
    with pytest.raises(KwsError, match="--suppression-ms -5"):
        RecognizerSettings.build(["yes"], rec | {"minimum_coverage_ms": 200})


def test_check_writable_names_the_option(tmp_path):
    folders.check_writable(tmp_path / "new" / "deeper", "--out")  # creatable: fine
    afile = tmp_path / "some.wav"
    afile.write_bytes(b"RIFF")
    with pytest.raises(KwsError, match=r"^--out .*some.wav is a file, not a folder"):
        folders.check_writable(afile, "--out")
    with pytest.raises(KwsError, match="is a file"):
        folders.check_writable(afile / "below", "--work-dir")


def test_read_only_folder_is_refused(read_only_dir):
    with pytest.raises(KwsError, match=r"^--export-dir .* is not writable; choose a folder"):
        folders.check_writable(read_only_dir / "x", "--export-dir")


def test_second_writer_is_told_who_holds_the_folder(tmp_path):
    folder = tmp_path / "data"
    proc = hold_lock(folder, tmp_path / "ready")
    try:
        with pytest.raises(KwsError) as err:
            with folders.folder_lock(folder, "kwstool prepare", "--data-dir"):
                pass
        assert str(err.value).startswith(f"{folder} is in use by process {proc.pid} ")
        assert "(kwstool prepare)" in str(err.value) and "--data-dir" in str(err.value)
    finally:
        proc.communicate("", timeout=30)
    # released when the holder ends: the folder is free again, and this process may nest it
    with folders.folder_lock(folder, "kwstool train", "--out"):
        with folders.folder_lock(folder, "kwstool train", "--out"):
            assert (folder / folders.LOCK_FILE).read_text().startswith(str(os.getpid()))
    assert not (folder / folders.LOCK_FILE).exists()


def test_lock_leaves_no_empty_folder_behind(tmp_path):
    with pytest.raises(KwsError, match="stop"):
        with folders.folder_lock(tmp_path / "never" / "run", "kwstool train", "--out"):
            raise KwsError("stop")
    assert not (tmp_path / "never").exists()


def test_disk_full_is_one_line_naming_the_option(full_disk):
    with pytest.raises(KwsError, match=r"No space left on device\); free some space or choose "
                       r"another --out$"):  # fmt: skip
        with folders.write_errors(full_disk, "--out"):
            (full_disk / "big").write_bytes(b"\0" * (1 << 20))
