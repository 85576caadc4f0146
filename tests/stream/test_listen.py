"""`kwstool listen`: the WAV replay path, --on/--exec, the missing-PortAudio message, and the
frame-by-frame path against the bulk one."""

from __future__ import annotations

import sys

import numpy as np
from streamkit import energy_run, words_wav  # noqa: F401  (fixtures and helpers)

from kwstool.cli import main


def _exec_args(out) -> list[str]:
    code = "import os; open(os.environ['OUT'], 'a').write(os.environ['KWS_LABEL'] + '\\n')"
    return ["--exec", sys.executable, "-c", code]


def test_listen_wav_runs_exec_once_per_word(energy_run, demo_data, tmp_path, monkeypatch, capsys):
    wav, times = words_wav(tmp_path / "three.wav", demo_data, count=3)
    out = tmp_path / "fired.txt"
    monkeypatch.setenv("OUT", str(out))
    rc = main(
        [
            "listen",
            str(energy_run),
            "--wav",
            str(wav),
            "--fast",
            "--on",
            "yes",
            *_exec_args(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    detected = [ln for ln in printed.splitlines() if ln.startswith("DETECTED yes")]
    assert len(detected) == 3, printed
    assert out.read_text().splitlines() == [
        "yes",
        "yes",
        "yes",
    ]  # a real child, 3 times
    # each detection lies within its word (or up to a second after its end)
    det_s = [float(ln.rsplit("t=", 1)[1].rstrip("s")) for ln in detected]
    for t, (start, end) in zip(det_s, times):
        assert start / 1000 <= t <= end / 1000 + 1.0


def test_listen_shell_and_no_action_for_other_words(energy_run, demo_data, tmp_path, capsys):
    wav, _ = words_wav(tmp_path / "one.wav", demo_data, count=1)
    out = tmp_path / "fired.txt"
    rc = main(
        [
            "listen",
            str(energy_run),
            "--wav",
            str(wav),
            "--fast",
            "--on",
            "no",
            "--shell",
            "--exec",
            f"echo $KWS_LABEL >> {out}",
        ]
    )
    assert rc == 0
    assert not out.exists()  # "yes" was heard, the action waits for "no"
    assert "DETECTED yes" in capsys.readouterr().out


def test_listen_shell_line_goes_to_the_shell_unquoted(energy_run, demo_data, tmp_path, capsys):
    """--shell: the one --exec string is a shell line; the shell expands $KWS_TIME_MS and
    performs the >> redirection (quoted tokens would echo the literal text instead)."""
    wav, _ = words_wav(tmp_path / "two.wav", demo_data, count=2)
    out = tmp_path / "times.txt"
    line = f"echo $KWS_LABEL $KWS_TIME_MS >> {out}"
    args = ["listen", str(energy_run), "--wav", str(wav), "--fast", "--on", "yes"]
    assert main([*args, "--shell", "--exec", line]) == 0
    printed = capsys.readouterr().out
    detected = [ln for ln in printed.splitlines() if ln.startswith("DETECTED yes")]
    fired = out.read_text().splitlines()
    assert len(fired) == len(detected) == 2, printed
    for row, det in zip(fired, detected):
        label, ms = row.split()
        assert label == "yes" and ms.isdigit()  # expanded by the shell, not "$KWS_TIME_MS"
        assert abs(int(ms) / 1000 - float(det.rsplit("t=", 1)[1].rstrip("s"))) < 0.01
    # a shell line is one argument: extra words after it are refused, not quoted together
    # (every word after --exec belongs to the command, so --exec comes last)
    assert main([*args, "--shell", "--exec", "echo", "$KWS_TIME_MS"]) == 2
    assert "--shell runs one shell line" in capsys.readouterr().err


def test_listen_bad_settings_fail_before_any_work(tmp_path, capsys):
    """Issue 23, rows 6 and 13: one line, exit 2, before the run is even opened."""
    run, wav = str(tmp_path / "no_run"), str(tmp_path / "no.wav")
    assert main(["listen", run, "--wav", wav, "--fast", "--suppression-ms", "-5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --suppression-ms -5: out of range") and "\n" not in err
    assert main(["listen", run, "--threshold", "300"]) == 2
    assert capsys.readouterr().err.startswith("error: --threshold 300: out of range")
    assert main(["listen", run, "--fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --fast replays a file as fast as possible: give it with --wav FILE"


def test_listen_without_portaudio_is_one_line_exit_2(energy_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # `import sounddevice` fails
    rc = main(["listen", str(energy_run)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert "sudo apt-get install libportaudio2" in err and "pip install sounddevice" in err


def test_listen_bad_word_and_lonely_exec(energy_run, demo_data, tmp_path, capsys):
    wav, _ = words_wav(tmp_path / "one.wav", demo_data, count=1)
    assert (
        main(
            [
                "listen",
                str(energy_run),
                "--wav",
                str(wav),
                "--on",
                "maybe",
                "--exec",
                "true",
            ]
        )
        == 2
    )
    assert "--on maybe" in capsys.readouterr().err
    assert main(["listen", str(energy_run), "--wav", str(wav), "--on", "yes"]) == 2


def test_frame_by_frame_equals_bulk(energy_run, demo_data, tmp_path):
    """The live path (FeatureStream + per-window model + Recognizer) gives the bulk results:
    same windows, same int8 outputs, same detections, also past the front end's warm-up."""
    from kwstool.core.audio import load_wav
    from kwstool.stream import engine, native

    wav, _ = words_wav(tmp_path / "long.wav", demo_data, count=16, gap_s=3.0)
    x = load_wav(wav, None)
    assert len(x) / 16000 > 45  # long: the front end's noise estimate and gain have settled
    model = engine.StreamModel.load(energy_run)
    settings = native.RecognizerSettings.build(
        model.labels,
        {
            "average_window_ms": 1000,
            "threshold": 200,
            "suppression_ms": 1500,
            "minimum_coverage_ms": 200,
        },
    )
    bulk = engine.batch_results(model, x, threads=2)
    want = native.recognize(bulk.scores, bulk.times_ms, settings)
    assert len(want) >= 10
    live = engine.StreamPipeline(model, settings)
    steps = []
    rng = np.random.default_rng(0)
    pos = 0
    while pos < len(x):  # blocks of varying size, as a sound card delivers them
        n = int(rng.integers(100, 3000))
        steps += live.feed(x[pos : pos + n])
        pos += n
    assert [s.time_ms for s in steps] == bulk.times_ms.tolist()
    assert np.array_equal(np.stack([s.raw for s in steps]), bulk.raw)
    assert [s.detection for s in steps if s.detection] == want


def test_block_resampler_equals_whole_signal():
    from scipy.signal import resample_poly

    from kwstool.stream.resample import BlockResampler

    x = (np.random.default_rng(1).standard_normal(44100 * 2) * 3000).astype(np.int16)
    r = BlockResampler(44100, 16000)
    got = np.concatenate([r.process(x[i : i + 777]) for i in range(0, len(x), 777)])
    padded = np.concatenate([np.zeros(r.margin), x / 32768.0])
    ref = resample_poly(padded, r.up, r.down)[r.margin * r.up // r.down :]
    ref = np.clip(np.round(ref * 32768.0), -32768, 32767).astype(np.int16)
    assert len(got) > 31000
    assert np.array_equal(got, ref[: len(got)])


def test_ctrl_c_ends_listening_cleanly(energy_run, demo_data, tmp_path):
    """SIGINT (Ctrl-C) during a real-time replay: exit code 0 and the summary, no traceback."""
    import os
    import signal
    import subprocess

    wav, _ = words_wav(tmp_path / "long.wav", demo_data, count=16, gap_s=3.0)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "kwstool", "listen", str(energy_run), "--wav", str(wav)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline()  # listening has started once the first word is detected
    assert first.startswith("DETECTED yes"), first + proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    heard = float(out.rsplit("listened to ", 1)[1].split(" s", 1)[0])
    assert 0 < heard < 45  # stopped early: the file is longer
