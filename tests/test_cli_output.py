"""The command line's output is clean: no TensorFlow C++ log lines, tables not wrapped when
piped."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

#: TensorFlow / absl C++ log lines: "I0000 00:00:...", "E0000 ...", the absl start-up note,
#: the oneDNN banner.
TF_LOG = re.compile(
    r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN custom operations|"
    r"NodeDef mentions attribute|cuda|TensorFlow binary is optimized",
    re.M,
)


def _kwstool(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "kwstool", *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=900,
    )


@pytest.mark.slow
def test_train_prints_no_tensorflow_log_lines(demo_data, tmp_path):
    # oneDNN on makes TensorFlow print its banner; the model fit makes tf.data print E0000
    # lines about use_unbounded_threadpool: none of that may reach the user
    proc = _kwstool(
        "train",
        str(demo_data),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "tiny_conv",
        "--epochs",
        "2",
        TF_ENABLE_ONEDNN_OPTS="1",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch   2/2" in proc.stdout
    assert not TF_LOG.search(proc.stdout + proc.stderr), (proc.stdout + proc.stderr)[-2000:]


@pytest.mark.slow
def test_verbose_keeps_tensorflow_logs(demo_data, tmp_path):
    proc = _kwstool(
        "--verbose",
        "train",
        str(demo_data),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "tiny_conv",
        "--epochs",
        "1",
        TF_ENABLE_ONEDNN_OPTS="1",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert TF_LOG.search(proc.stderr), proc.stderr[-2000:]


def test_piped_tables_are_not_wrapped_at_80_columns(demo_data):
    proc = _kwstool("prepare", "--source", str(demo_data.parents[0] / "missing"), "--no-progress")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    from kwstool.core.console import PIPED_WIDTH, make_console

    assert make_console().width == PIPED_WIDTH  # pytest captures stdout: not a terminal


@pytest.mark.parametrize(
    "args, message",
    [
        (("quantize", "/no/run", "/extra"), "Got unexpected extra argument"),
        (("nosuch",), "No such command 'nosuch'"),
        (("train", "/no/data", "--out", "/tmp/x", "--epochs", "many"), "Invalid value"),
    ],
)
def test_usage_errors_are_a_usage_line_not_a_traceback(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "kwstool", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Try '" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    from kwstool.cli import main

    assert main([command, "--help"]) == 0
    return capsys.readouterr().out


def test_help_texts_are_plain_and_short(monkeypatch, capsys):
    """Issue 23: no `<bool>` noise, no stray " ." where a "[default: ...]" was eaten as markup,
    the common options first, and `train --help` short enough to read at 80 columns."""
    monkeypatch.setenv("COLUMNS", "80")
    for command in ("train", "listen", "stream-eval", "export", "record", "run", "prepare"):
        text = _help(command, capsys)
        assert "<bool>" not in text, command
        assert not re.search(r"\s\.$", text, flags=re.M), command
        assert max(len(line) for line in text.splitlines()) <= 80, command
    stream = _help("stream-eval", capsys)
    assert re.search(r"\[default:\s+RUN/stream_eval\]", stream)  # brackets are text, not markup
    train = _help("train", capsys)
    assert len(train.splitlines()) < 100
    first = [train.index(o) for o in ("--out", "--resume", "--overwrite", "--model", "--epochs")]
    assert max(first) < train.index("--lr ") < train.index("--label-smoothing")
