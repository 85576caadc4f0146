"""`kwstool.data.prepared` on real folders: Speech Commands (mini and the canonical test layout),
the user's own recordings in any WAV format, the cache, and TFDS through TFDS's mock_data."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from scipy.io import wavfile

from kwstool.core.audio import load_wav
from kwstool.core.frontend import compute
from kwstool.data import load_prepared, prepare, prepared as kd
from kwstool.errors import KwsError

SPLITS = ("train", "validation", "test")
WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


# --- independent reference rules ---------------------------------------------------------------
def ref_pct(speaker: str) -> float:
    """TF speech_commands which_set's percentage, written out from its definition."""
    h = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    return (h % (2**27)) * (100.0 / (2**27 - 1))


def ref_split(pct: float, v: float = 10, t: float = 10) -> str:
    return "validation" if pct < v else "test" if pct < v + t else "train"


def ref_speaker(line: str) -> str:
    """Speaker of a files.txt line (official naming; canonical _unknown_ has a word prefix)."""
    base = line.split("/")[-1]
    if "_nohash_" not in base:  # _silence_/1024.wav: the file stem
        return re.sub(r"(\.wav)+$", "", base, flags=re.I)
    spk = re.sub(r"_nohash_.*$", "", base)
    if line.startswith("_unknown_/"):
        spk = spk.split("_", 1)[1]
    return spk


def wav_count(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.name.lower().endswith(".wav"))


def speakers_by_split(n_each: dict[str, int], prefix: str) -> dict[str, list[str]]:
    out = {s: [] for s in SPLITS}
    i = 0
    while any(len(out[s]) < n for s, n in n_each.items()):
        spk = f"{prefix}{i:03d}"
        s = ref_split(ref_pct(spk))
        if len(out[s]) < n_each[s]:
            out[s].append(spk)
        i += 1
    return out


def ranked(rels: list[str], seed: int = 0) -> list[str]:
    """The documented draw order of pool candidates: by sha1("<seed>:<path>")."""
    return sorted(rels, key=lambda r: hashlib.sha1(f"{seed}:{r}".encode()).digest())


def check_disjoint(prepared) -> dict[str, str]:
    """Every speaker of a clip line is in exactly one split; return speaker -> split."""
    where: dict[str, set] = defaultdict(set)
    for s in SPLITS:
        for line in prepared.split(s).files:
            if not line.startswith("#"):
                where[ref_speaker(line)].add(s)
    two = {k: v for k, v in where.items() if len(v) > 1}
    assert two == {}
    return {k: next(iter(v)) for k, v in where.items()}


# --- the split rule against official data ------------------------------------------------------
def test_hash_rule_matches_the_canonical_test_set():
    """The canonical test set holds only speakers the official rule puts in the test band."""
    root = shared_path("speech_commands_test_dev")
    speakers = {
        kd.speaker_of(f"{w}/{p.name}") for w in WORDS + ["_unknown_"] for p in (root / w).iterdir()
    }
    assert len(speakers) > 100
    assert all(kd.which_split(s, 10, 10) == "test" for s in speakers)
    assert all(10 <= kd.hash_percentage(s) < 20 for s in speakers)
    assert all(kd.hash_percentage(s) == ref_pct(s) for s in speakers)


def test_speaker_of():
    assert kd.speaker_of("yes/0a7c2a8d_nohash_0.wav") == "0a7c2a8d"
    assert kd.speaker_of("_unknown_/backward_0c540988_nohash_0.wav.wav") == "0c540988"
    assert kd.speaker_of("hey_lamp/alice/take1.wav") == "alice"
    assert kd.speaker_of("hey_lamp/bob_nohash_3.wav") == "bob"
    assert kd.speaker_of("hey_lamp/recording 7.WAV") == "recording 7"
    assert kd.speaker_of("_silence_/1024.wav") == "1024"


# --- Speech Commands mini (official archive layout, no list files) -----------------------------
@pytest.fixture(scope="module")
def mini_prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini")
    res = prepare(str(shared_path("speech_commands_mini")), out, progress=False)
    return res, load_prepared(out)


def test_mini_counts_and_speakers(mini_prepared):
    res, prepared = mini_prepared
    root = shared_path("speech_commands_mini")
    assert res.labels == ["_silence_", "_unknown_", *WORDS]
    assert res.source_kind == "speech_commands" and res.skipped == []
    assert res.clips_found == sum(
        wav_count(d) for d in root.iterdir() if d.name != "_background_noise_"
    )
    # every keyword clip is used, in the split of its speaker
    for w in WORDS:
        assert sum(res.splits[s]["per_class"][w] for s in SPLITS) == wav_count(root / w)
    split_of = check_disjoint(prepared)
    assert all(ref_split(ref_pct(spk)) == s for spk, s in split_of.items())
    known = {s: sum(res.splits[s]["per_class"][w] for w in WORDS) for s in SPLITS}
    total = sum(known.values())
    assert known["test"] == 0  # no keyword speaker of mini hashes into test
    for s in SPLITS:
        base = known[s] if known[s] else total * 10 / 100  # documented fallback
        want = math.ceil(base * 0.10)
        assert res.splits[s]["per_class"]["_unknown_"] == want
        assert res.splits[s]["per_class"]["_silence_"] == want
        assert res.splits[s]["count"] == known[s] + 2 * want
    assert any("test has no keyword clips" in w for w in res.warnings)


def test_mini_arrays_match_sources(mini_prepared):
    res, prepared = mini_prepared
    root = shared_path("speech_commands_mini")
    noise = prepared.background_noise
    assert sorted(noise) == sorted(p.stem for p in (root / "_background_noise_").iterdir())
    assert np.array_equal(
        noise["white_noise"], load_wav(root / "_background_noise_" / "white_noise.wav", None)
    )
    for s in SPLITS:
        d = prepared.split(s)
        assert d.features.dtype == np.int8 and d.features.shape == (len(d.files), 49, 40)
        assert d.audio.dtype == np.int16 and d.labels.dtype == np.int16
        assert np.array_equal(d.features, compute(d.audio))
        for i, line in enumerate(d.files):
            label = prepared.labels[d.labels[i]]
            if line.startswith("#silence:"):
                rel, off = line[len("#silence:") :].rsplit("@", 1)
                seg = noise[Path(rel).stem][int(off) : int(off) + 16000].astype(float)
                lo, hi = kd._noise_range(len(noise[Path(rel).stem]), s, 10, 10)
                assert label == "_silence_" and lo <= int(off) and int(off) + 16000 <= hi
                assert np.corrcoef(seg, d.audio[i].astype(float))[0, 1] > 0.999
            else:
                folder = line.split("/")[0]
                assert label == (folder if folder in WORDS else "_unknown_")
                assert np.array_equal(d.audio[i], load_wav(root / line))


# --- canonical test layout ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def test_dev_prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("test_dev")
    t0 = time.perf_counter()
    res = prepare(str(shared_path("speech_commands_test_dev")), out, progress=False)
    return res, out, time.perf_counter() - t0


def test_test_dev_counts_and_speakers(test_dev_prepared):
    res, out, _ = test_dev_prepared
    root = shared_path("speech_commands_test_dev")
    prepared = load_prepared(out)
    assert res.source_kind == "test_layout" and prepared.manifest["split_rule"] == "test_band_hash"
    assert res.clips_found == 2748
    for w in WORDS:
        assert sum(res.splits[s]["per_class"][w] for s in SPLITS) == wav_count(root / w)

    def stretched(spk: str) -> str:
        return ref_split(((ref_pct(spk) - 10) * 10) % 100)

    split_of = check_disjoint(prepared)
    assert all(stretched(spk) == s for spk, s in split_of.items())
    pools = {folder: defaultdict(int) for folder in ("_unknown_", "_silence_")}
    for folder in pools:
        for p in (root / folder).iterdir():
            pools[folder][stretched(kd.speaker_of(f"{folder}/{p.name}"))] += 1
    for s in SPLITS:
        per = res.splits[s]["per_class"]
        known = sum(per[w] for w in WORDS)
        assert known > 50  # three usable splits
        want = math.ceil(known * 0.10)
        assert per["_unknown_"] == min(want, pools["_unknown_"][s])
        assert per["_silence_"] == min(want, pools["_silence_"][s])  # no noise recordings here


def test_test_dev_second_run_is_cached_and_fast(test_dev_prepared):
    res, out, first_seconds = test_dev_prepared
    mtime = (out / "manifest.json").stat().st_mtime_ns
    t0 = time.perf_counter()
    again = prepare(str(shared_path("speech_commands_test_dev")), out, progress=False)
    seconds = time.perf_counter() - t0
    assert again.cached and again.clips_decoded == 0 and seconds < 2.0
    assert again.splits == res.splits and again.inputs_hash == res.inputs_hash
    assert (out / "manifest.json").stat().st_mtime_ns == mtime
    assert first_seconds < 60


# --- the user's own recordings -----------------------------------------------------------------
def _write(path: Path, rate: int, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, samples)


def _voice(rate: int, seconds: float, freq: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    return 0.3 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.01, t.size)


def make_user_tree(root: Path) -> dict:
    """hey_lamp / lights_off keywords in assorted WAV formats, an _unknown_ folder, noise, two
    broken files. Speakers are picked so each split gets some; returns what was written."""
    spk = speakers_by_split({"train": 3, "validation": 1, "test": 1}, "user")
    formats = [  # (rate, converter)
        (8000, lambda x: (x * 32767).astype(np.int16)),
        (44100, lambda x: np.stack([x, 0.5 * x], axis=1).astype(np.float32)),  # stereo float
        (48000, lambda x: (x * 2**31 * 0.9).astype(np.int32)),
        (16000, lambda x: (x * 127 + 128).astype(np.uint8)),
        (22050, lambda x: (x[: int(22050 * 0.6)] * 32767).astype(np.int16)),  # 0.6 s, padded
    ]
    files = defaultdict(list)
    k = 0
    for word, freq in (("hey_lamp", 500.0), ("lights_off", 900.0)):
        for s in SPLITS:
            for sp in spk[s]:
                rate, conv = formats[k % len(formats)]
                # alternate the two naming schemes: <speaker>_nohash_<n>.wav and <speaker>/<n>.wav
                rel = f"{word}/{sp}_nohash_0.wav" if k % 2 else f"{word}/{sp}/take1.wav"
                _write(root / rel, rate, conv(_voice(rate, 1.0, freq, k)))
                files[(word, s)].append(rel)
                k += 1
    for s in SPLITS:
        for sp in spk[s]:
            rel = f"_unknown_/{sp}_nohash_5.wav"
            _write(root / rel, 16000, (_voice(16000, 1.0, 1500.0, 7) * 32767).astype(np.int16))
            files[("_unknown_", s)].append(rel)
    rng = np.random.default_rng(3)
    _write(
        root / "_background_noise_" / "fan.wav",
        16000,
        rng.normal(0, 300, 30 * 16000).astype(np.int16),
    )
    bad_garbage = f"hey_lamp/{spk['train'][0]}_nohash_9.wav"
    (root / bad_garbage).write_bytes(b"this is not a wav file at all")
    bad_empty = f"lights_off/{spk['train'][1]}_nohash_9.wav"
    (root / bad_empty).write_bytes(b"")
    (root / "notes.txt").write_text("ignored\n")
    return {"speakers": spk, "files": files, "bad": sorted([bad_garbage, bad_empty])}


def test_user_tree_formats_and_bad_clips(tmp_path):
    root = tmp_path / "my_words"
    tree = make_user_tree(root)
    out = tmp_path / "prepared"
    res = prepare(str(root), out, words=["hey_lamp", "lights_off"], progress=False)
    assert res.source_kind == "folders"
    assert res.labels == ["_silence_", "_unknown_", "hey_lamp", "lights_off"]
    assert [d["file"] for d in res.skipped] == tree["bad"]
    reasons = {d["file"]: d["reason"] for d in res.skipped}
    assert "not a readable WAV" in reasons[tree["bad"][1 if "hey_lamp" in tree["bad"][1] else 0]]
    assert "file is empty" in reasons[[b for b in tree["bad"] if "lights_off" in b][0]]
    assert all(str(root / f) in r for f, r in reasons.items())  # the reason names the file
    prepared = load_prepared(out)
    assert prepared.manifest["skipped"] == res.skipped
    for s in SPLITS:
        per = res.splits[s]["per_class"]
        known = len(tree["files"][("hey_lamp", s)]) + len(tree["files"][("lights_off", s)])
        assert per["hey_lamp"] + per["lights_off"] == known
        want = math.ceil(known * 0.10)
        assert per["_unknown_"] == min(want, len(tree["files"][("_unknown_", s)]))
        assert per["_silence_"] == want  # 30 s of noise gives slices for every split
        d = prepared.split(s)
        assert sorted(line for line in d.files if not line.startswith("#")) == sorted(
            tree["files"][("hey_lamp", s)]
            + tree["files"][("lights_off", s)]
            + ranked(tree["files"][("_unknown_", s)])[: per["_unknown_"]]
        )
        for i, line in enumerate(d.files):
            if not line.startswith("#"):  # any rate/format, resampled exactly as load_wav does
                assert np.array_equal(d.audio[i], load_wav(root / line))
        assert np.array_equal(d.features, compute(d.audio))


def test_list_files_decide_the_splits(tmp_path):
    root = tmp_path / "sc"
    for w, f in (("yes", 300.0), ("no", 700.0), ("wow", 1100.0)):
        for i, spk in enumerate("abcdefgh"):
            _write(
                root / w / f"{spk}_nohash_0.wav",
                16000,
                (_voice(16000, 1.0, f + i, i) * 32767).astype(np.int16),
            )
    (root / "validation_list.txt").write_text(
        "yes/b_nohash_0.wav\nno/b_nohash_0.wav\nwow/b_nohash_0.wav\n"
    )
    (root / "testing_list.txt").write_text(
        "yes/c_nohash_0.wav\nno/c_nohash_0.wav\nno/d_nohash_0.wav\nwow/c_nohash_0.wav\n"
    )
    res = prepare(str(root), tmp_path / "out", words="yes,no", progress=False)
    prepared = load_prepared(tmp_path / "out")
    assert prepared.manifest["split_rule"] == "lists" and res.source_kind == "speech_commands"
    assert prepared.split("validation").files == [
        "wow/b_nohash_0.wav",
        "yes/b_nohash_0.wav",
        "no/b_nohash_0.wav",
    ]
    assert prepared.split("test").files == [
        "wow/c_nohash_0.wav",
        "yes/c_nohash_0.wav",
        "no/c_nohash_0.wav",
        "no/d_nohash_0.wav",
    ]
    train = prepared.split("train")
    assert [prepared.labels[i] for i in train.labels].count("yes") == 6
    assert res.splits["train"]["per_class"]["_unknown_"] == 2  # ceil(10% of 12)
    assert res.splits["train"]["per_class"]["_silence_"] == 0  # no noise recordings
    # when list files decide, the percentages are ignored (and that is said)
    res2 = prepare(str(root), tmp_path / "out2", words="yes,no", validation_pct=30, progress=False)
    assert res2.splits == res.splits
    assert any("--validation-pct/--testing-pct are ignored" in w for w in res2.warnings)


def test_cache_rebuilds_on_changed_inputs_or_parameters(tmp_path):
    root = tmp_path / "my_words"
    make_user_tree(root)
    out = tmp_path / "prepared"
    kw = dict(words="hey_lamp,lights_off", progress=False)
    first = prepare(str(root), out, **kw)
    assert not first.cached
    assert prepare(str(root), out, **kw).cached
    # a parameter change rebuilds
    changed = prepare(str(root), out, unknown_share=20, **kw)
    assert not changed.cached and changed.inputs_hash != first.inputs_hash
    assert prepare(str(root), out, unknown_share=20, **kw).cached
    # a touched input file rebuilds
    f = next((root / "hey_lamp").rglob("*_nohash_0.wav"))
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not prepare(str(root), out, unknown_share=20, **kw).cached
    # a missing or damaged output file rebuilds
    (out / "validation_features.npy").unlink()
    assert not prepare(str(root), out, unknown_share=20, **kw).cached
    # force rebuilds
    assert not prepare(str(root), out, unknown_share=20, force=True, **kw).cached


@pytest.mark.parametrize("where", ["save_npy", "streamed rows"])
def test_interrupted_write_leaves_no_manifest(tmp_path, monkeypatch, where):
    """A crash while arrays are replaced (after train's files, in validation's labels or in
    the middle of its streamed audio) never leaves a manifest pointing at them."""
    import kwstool.data.rows
    import kwstool.fileio

    root = tmp_path / "my_words"
    make_user_tree(root)
    out = tmp_path / "prepared"
    prepare(str(root), out, words="hey_lamp,lights_off", progress=False)
    module, name = (
        (kwstool.fileio, "save_npy") if where == "save_npy" else (kwstool.data.rows, "fill")
    )
    real = getattr(module, name)
    calls = []

    def failing(*args):
        calls.append(args)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(*args)

    monkeypatch.setattr(module, name, failing)
    with pytest.raises(
        KwsError,
        match=r"prepared.*cannot write the prepared data \(No space "
        r"left on device\); free some space",
    ):
        prepare(str(root), out, words="hey_lamp,lights_off", force=True, progress=False)
    assert not (out / "manifest.json").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(KwsError, match="no manifest.json"):
        load_prepared(out)
    monkeypatch.undo()  # a re-run redoes the whole folder
    assert not prepare(str(root), out, words="hey_lamp,lights_off", progress=False).cached
    assert len(load_prepared(out).split("validation").files) > 0


def test_word_without_clips_is_an_error(tmp_path):
    root = tmp_path / "my_words"
    make_user_tree(root)
    with pytest.raises(
        KwsError,
        match=r"word 'banana' has no clips in .*my_words.*hey_lamp, "
        r"lights_off; fix --words",
    ):
        prepare(str(root), tmp_path / "out", words="hey_lamp,banana", progress=False)
    with pytest.raises(KwsError, match="word 'yes' has no clips"):
        prepare(str(root), tmp_path / "out", progress=False)  # default words
    assert not (tmp_path / "out").exists()


def test_word_with_only_unreadable_clips_is_an_error(tmp_path):
    root = tmp_path / "my_words"
    make_user_tree(root)
    for f in (root / "lights_off").rglob("*.wav"):
        f.write_bytes(b"RIFF")
    with pytest.raises(
        KwsError,
        match=r"word 'lights_off' has no readable clips \(6 skipped, "
        r"e.g. .*lights_off.*\); fix or replace its WAVs",
    ):
        prepare(str(root), tmp_path / "out", words="hey_lamp,lights_off", progress=False)


def test_empty_split_is_an_error(tmp_path):
    root = tmp_path / "one_take"
    for i in range(1):  # one take: it lands in one split (more takes are split by take)
        _write(
            root / "hey_lamp" / f"alice_nohash_{i}.wav",
            16000,
            (_voice(16000, 1.0, 400.0 + i, i) * 32767).astype(np.int16),
        )
    empty = [s for s in SPLITS if s != ref_split(ref_pct("alice"))][0]  # first checked
    with pytest.raises(KwsError, match=f"split '{empty}' is empty"):
        prepare(str(root), tmp_path / "out", words="hey_lamp", progress=False)


@pytest.mark.parametrize(
    "words,msg",
    [
        ("_unknown_", "reserved"),
        ("yes,yes", "more than once"),
        (",", "empty"),
    ],
)
def test_bad_words(tmp_path, words, msg):
    with pytest.raises(KwsError, match=msg):
        prepare(str(tmp_path), tmp_path / "out", words=words, progress=False)


def test_bad_source_and_parameters(tmp_path):
    with pytest.raises(KwsError, match="no such file or folder"):
        prepare(str(tmp_path / "nope"), tmp_path / "out", progress=False)
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(KwsError, match="not a .tar.gz"):
        prepare(str(tmp_path / "x.zip"), tmp_path / "out", progress=False)
    with pytest.raises(KwsError, match="must stay below 100"):
        prepare(str(tmp_path), tmp_path / "out", validation_pct=50, testing_pct=50, progress=False)
    with pytest.raises(KwsError, match="no audio files"):
        prepare(str(tmp_path), tmp_path / "out", progress=False)


def test_load_prepared_errors(tmp_path):
    with pytest.raises(KwsError, match="no manifest.json"):
        load_prepared(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(KwsError, match="format 99"):
        load_prepared(tmp_path)


# --- TFDS, through TFDS's own mock_data ----------------------------------------------------------
def test_tfds_source_with_tfds_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    out = tmp_path / "tfds"
    with tfds.testing.mock_data(num_examples=80, policy=tfds.testing.MockPolicy.USE_CODE):
        res = prepare("tfds", out, words="yes,no,up,down", progress=False)
        assert res.source == "tfds:speech_commands" and res.source_kind == "tfds"
        names = tfds.builder("speech_commands").info.features["label"].names
        prepared = load_prepared(out)
        for s in SPLITS:
            ds = tfds.load(
                "speech_commands", split=s, read_config=tfds.ReadConfig(add_tfds_id=True)
            )
            examples = {
                "tfds:" + ex["tfds_id"].decode(): (names[int(ex["label"])], ex["audio"])
                for ex in tfds.as_numpy(ds)
            }
            count = defaultdict(int)
            for name, _ in examples.values():
                count[
                    name if name in ("yes", "no", "up", "down", "_silence_") else "_unknown_"
                ] += 1
            known = sum(count[w] for w in ("yes", "no", "up", "down"))
            per = res.splits[s]["per_class"]
            for w in ("yes", "no", "up", "down"):
                assert per[w] == count[w]
            want = math.ceil(known * 0.10)
            assert per["_unknown_"] == min(want, count["_unknown_"])
            assert per["_silence_"] == min(want, count["_silence_"])
            d = prepared.split(s)
            for i, line in enumerate(d.files):
                name, audio = examples[line]
                label = prepared.labels[d.labels[i]]
                assert label == (name if name in prepared.labels else "_unknown_")
                expect = np.zeros(16000, np.int16)
                expect[: min(len(audio), 16000)] = audio[:16000]
                assert np.array_equal(d.audio[i], expect)
            assert np.array_equal(d.features, compute(d.audio))
            if s == "train":  # all train silence examples form the noise bank
                noise = prepared.background_noise
                assert count["_silence_"] > 0
                assert list(noise) == ["tfds_train_silence"]
                assert len(noise["tfds_train_silence"]) == 16000 * count["_silence_"]
        again = prepare("tfds", out, words="yes,no,up,down", progress=False)
        assert again.cached
    with pytest.raises(KwsError, match="'bed' is not labelled in TFDS"):
        with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
            prepare("tfds", tmp_path / "t2", words="yes,bed", progress=False)
