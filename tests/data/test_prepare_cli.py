"""`kwstool prepare` on the command line: the count table, --json, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import shared_path

from kwstool.cli import main


def test_prepare_json_and_table(tmp_path, capsys):
    # through a symlink, as ../shared may be one: the result must not depend on it
    link = tmp_path / "mini_link"
    link.symlink_to(shared_path("speech_commands_mini"), target_is_directory=True)
    src = str(link)
    out = tmp_path / "mini"
    rc = main(["prepare", "--source", src, "--data-dir", str(out), "--json", "--no-progress"])
    assert rc == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)  # stdout holds only the JSON
    # prepare records the resolved source path: compare resolved paths, so the test holds
    # whether ../shared is a real folder or a symlink
    assert d["data_dir"] == str(out) and d["cached"] is False
    assert Path(d["source"]).resolve() == Path(src).resolve()
    assert d["labels"][:3] == ["_silence_", "_unknown_", "yes"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert d["splits"] == manifest["splits"] and d["inputs_hash"] == manifest["inputs_hash"]

    rc = main(["prepare", "--source", src, "--data-dir", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "up to date, nothing to do" in text
    train = d["splits"]["train"]["per_class"]
    row = next(line for line in text.splitlines() if " yes " in line)
    cells = [c.strip() for c in row.replace("┃", "│").split("│") if c.strip()]
    total_yes = sum(d["splits"][s]["per_class"]["yes"] for s in ("train", "validation", "test"))
    assert cells == [
        "yes",
        str(train["yes"]),
        str(d["splits"]["validation"]["per_class"]["yes"]),
        str(d["splits"]["test"]["per_class"]["yes"]),
        str(total_yes),
    ]


def test_prepare_errors_are_one_line_exit_2(tmp_path, capsys):
    src = str(shared_path("speech_commands_mini"))
    rc = main(
        [
            "prepare",
            "--source",
            src,
            "--data-dir",
            str(tmp_path / "x"),
            "--words",
            "yes,banana",
            "--no-progress",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: word 'banana' has no clips") and "\n" not in err


def test_second_prepare_into_a_folder_in_use_is_told_who_holds_it(tmp_path, capsys):
    """Issue 23, row 10: a second writer gets "X is in use by process N" (exit 2) and the
    first one's result is not touched; once it is done, the folder is free again."""
    from conftest import DEMO, hold_lock

    out = tmp_path / "X"
    args = ["prepare", "--source", str(DEMO), "--words", "yes,no", "--data-dir", str(out)]
    holder = hold_lock(out, tmp_path / "ready")  # a real other process, as `kwstool prepare`
    try:
        assert main([*args, "--seed", "3", "--no-progress"]) == 2
    finally:
        holder.communicate("", timeout=30)
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {out.resolve()} is in use by process {holder.pid} (kwstool prepare); wait "
        f"for it to finish, or choose another --data-dir"
    )
    assert not (out / "manifest.json").exists()
    assert main([*args, "--no-progress"]) == 0


def test_full_disk_names_the_data_dir_option(full_disk, capsys):
    from conftest import DEMO

    out = full_disk / "X"
    args = ["prepare", "--source", str(DEMO), "--words", "yes,no", "--data-dir", str(out)]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.endswith("free some space or choose another folder with --data-dir"), err
