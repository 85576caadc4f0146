"""`kwstool stream-eval`: reproducible streams, scoring against the inserted words, the
threshold sweep and calibration, and export/listen reading the calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamkit import energy_run, run_copy, words_wav  # noqa: F401  (fixtures and helpers)

from kwstool.cli import main
from kwstool.errors import KwsError
from kwstool.stream import native, scoring, synth
from kwstool.stream.native import Detection

#: A short stream the energy model hears cleanly: quiet noise, loud words, 2-3 s apart.
SHORT = {
    "hours": 0.02,
    "negative_hours": 0.01,
    "snr_db": (45.0, 50.0),
    "noise_dbfs": (-82.0, -80.0),
    "gap_s": (2.0, 3.0),
}


def _clips(demo_data):
    from kwstool.data import load_prepared

    data = load_prepared(demo_data)
    s = data.split("test")
    return data, np.asarray(s.audio), [data.labels[i] for i in s.labels]


def test_same_seed_same_stream_other_seed_other_stream(demo_data):
    data, clips, names = _clips(demo_data)
    noise = list(data.background_noise.values())
    design = synth.StreamDesign(seed=3, hours=0.01, negative_hours=0.005)
    a_pos, a_neg = synth.build_streams(clips, names, noise, design)
    b_pos, b_neg = synth.build_streams(clips, names, noise, design)
    assert np.array_equal(a_pos.samples, b_pos.samples)
    assert np.array_equal(a_neg.samples, b_neg.samples)
    assert [w.as_dict() for w in a_pos.words] == [w.as_dict() for w in b_pos.words]
    c_pos, _ = synth.build_streams(
        clips,
        names,
        noise,
        synth.StreamDesign(seed=4, hours=0.01, negative_hours=0.005),
    )
    assert not np.array_equal(a_pos.samples[: len(c_pos.samples)], c_pos.samples)
    # the negative stream never holds a keyword; gaps are as designed
    assert {w.label for w in a_neg.words} == {"_unknown_"}
    starts = np.array([w.start for w in a_pos.words])
    ends = np.array([w.end for w in a_pos.words])
    gaps = (starts[1:] - ends[:-1]) / 16000
    assert gaps.min() >= 1.5 - 1e-3 and gaps.max() <= 3.0 + 1e-3
    assert len(a_pos.samples) == int(0.01 * 3600 * 16000)


def test_match_hits_misses_and_false_detections():
    words = scoring.WordTable(
        start_ms=np.array([1000, 5000, 9000]),
        end_ms=np.array([1500, 5400, 9500]),
        label=np.array([2, 3, 2]),
    )
    dets = [
        Detection(0, 1600, 2, 220, 5),  # hits word 0 (latency 100)
        Detection(1, 1900, 2, 220, 5),  # second detection of word 0: false
        Detection(2, 5300, 2, 220, 5),  # wrong word (word 1 is label 3): false
        Detection(3, 10600, 2, 220, 5),
    ]  # 1.1 s after word 2 ended: too late, false
    out = scoring.match(dets, words)
    assert out.hit_word.tolist() == [0, -1, -1, -1]
    labels = ["_silence_", "_unknown_", "yes", "no"]
    fig = scoring.keyword_figures(labels, words, out, None, pos_hours=1.0, neg_hours=0.0)
    assert fig["yes"]["words"] == 2 and fig["yes"]["hits"] == 1 and fig["yes"]["misses"] == 1
    assert fig["yes"]["false_detections_positive"] == 3
    assert fig["yes"]["latency_ms"]["median"] == 100.0
    assert fig["no"]["hits"] == 0 and fig["no"]["frr"] == 1.0


def test_calibrate_picks_fewest_misses_within_budget():
    from kwstool.stream.det import calibrate

    n = 256
    fa = np.linspace(10, 0, n)  # false accepts fall as the threshold rises
    misses = np.round(np.linspace(0, 20, n)).astype(int)
    curves = {
        "yes": {
            "frr": (misses / 20).tolist(),
            "fa_per_hour": fa.round(3).tolist(),
            "misses": misses.tolist(),
        },
        "no": {"frr": [1.0] * n, "fa_per_hour": [5.0] * n, "misses": [9] * n},
    }
    picks = calibrate(curves, budget=1.0, min_recall=0.0)  # the plain rule: shares stay equal
    t = picks["yes"]["threshold"]
    ok = [i for i in range(n) if curves["yes"]["fa_per_hour"][i] <= 1.0]
    fewest = min(misses[i] for i in ok)
    # fewest misses within the budget; among those, the fewest false accepts (highest threshold)
    assert t == max(i for i in ok if misses[i] == fewest) and picks["yes"]["met_budget"]
    assert fa[t] <= 1.0 < fa[min(ok) - 1]
    assert picks["no"] == {
        "threshold": 255,
        "frr": 1.0,
        "fa_per_hour": 5.0,
        "misses": 9,
        "met_budget": False,
        "share": 1.0,
    }
    from kwstool.stream.det import budget_warning

    warning = budget_warning(picks, 1.0)
    assert warning is not None and "no within 1 false accepts" in warning and "yes" not in warning
    assert budget_warning({"yes": picks["yes"]}, 1.0) is None


def _curve(fa: list[float], misses: list[int], words: int) -> dict:
    return {
        "thresholds": list(range(len(fa))),
        "fa_per_hour": fa,
        "misses": misses,
        "frr": [m / words for m in misses],
    }


def test_calibrate_gives_a_weak_keyword_a_larger_share_not_a_mute():
    from kwstool.stream.det import budget_warning, calibrate

    # thresholds 0..4: false accepts fall, misses rise; 10 words each
    strong = _curve([3.0, 1.0, 0.1, 0.0, 0.0], [0, 1, 1, 2, 3], 10)
    weak = _curve([3.0, 0.5, 0.3, 0.0, 0.0], [2, 4, 6, 8, 10], 10)
    curves = {"yes": strong, "no": dict(strong), "go": weak}
    picks = calibrate(curves, budget=0.2)
    # go is found 50 % of the time first at 0.5 FA/h: that becomes its share (cap 4 x 0.2)
    assert picks["go"]["share"] == 0.5 and picks["go"]["threshold"] == 1
    assert picks["go"]["frr"] == 0.4 and picks["go"]["met_budget"]
    # the 0.3 FA/h it takes beyond its equal share comes evenly off the others' shares
    assert picks["yes"]["share"] == pytest.approx(0.05) and picks["yes"]["threshold"] == 3
    assert sum(p["share"] for p in picks.values()) == pytest.approx(3 * 0.2)
    # without the rule (min_recall 0) go would be muted to its highest threshold
    plain = calibrate(curves, budget=0.2, min_recall=0.0)
    assert plain["go"]["frr"] == 0.8 and plain["yes"]["threshold"] == 2
    # a keyword that needs more than the whole budget still gets it: the total goes over
    far = _curve([3.0, 2.0, 1.0, 0.0, 0.0], [4, 6, 8, 9, 10], 10)
    over = calibrate({"yes": strong, "no": dict(strong), "go": far}, budget=0.2)
    assert over["go"]["share"] == 3.0 and over["go"]["threshold"] == 0
    assert over["yes"]["share"] == 0.0 and over["yes"]["threshold"] == 3
    warning = budget_warning(over, 0.2)
    assert warning is not None and "go 3 false accepts" in warning and "3 in all" in warning
    # one that is never found 50 % of the time gets 4 equal shares
    never = _curve([3.0, 2.0, 1.0, 0.0, 0.0], [6, 7, 8, 9, 10], 10)
    capped = calibrate({"yes": strong, "no": dict(strong), "go": never}, budget=0.2)
    assert capped["go"]["share"] == pytest.approx(0.8) and capped["go"]["threshold"] == 3


def test_pool_curves_adds_misses_and_false_accepts():
    from kwstool.stream.det import at_thresholds, pool_curves

    a = {"go": _curve([2.0, 1.0, 0.0], [1, 2, 3], 4)}
    b = {"go": _curve([4.0, 0.0, 0.0], [0, 0, 5], 6)}
    pooled = pool_curves([(a, {"go": 4}, 1.0), (b, {"go": 6}, 0.5)])["go"]
    assert pooled["misses"] == [1, 2, 8]
    # 2 + 2 false accepts over 1.5 h; 1 + 0; 0 + 0
    assert pooled["fa_per_hour"] == [round(4 / 1.5, 3), round(1 / 1.5, 3), 0.0]
    assert pooled["frr"] == [0.1, 0.2, 0.8]
    assert at_thresholds({"go": pooled}, {"go": 1})["go"]["misses"] == 2


def test_stream_eval_reports_the_inserted_words_and_calibrates(run_copy, demo_data, tmp_path):
    from kwstool.core.calibration import load_calibration, read_calibration
    from kwstool.stream.evaluate import stream_eval

    design = synth.StreamDesign(seed=1, **SHORT)
    res = stream_eval(
        run_copy,
        demo_data,
        design=design,
        calibrate_fa=30.0,
        out_dir=tmp_path / "out",
        threads=2,
    )
    rep = res.report
    data, clips, names = _clips(demo_data)
    pos, neg = synth.build_streams(clips, names, list(data.background_noise.values()), design)
    want = {lab: sum(w.label == lab for w in pos.words) for lab in ("yes", "no")}
    assert {k: rep["per_keyword"][k]["words"] for k in want} == want
    assert rep["negative"]["words"] == {"_unknown_": len(neg.words)}
    # the energy model calls every loud word "yes": the yes words are found, "no" never is,
    # and the unknown words of the negative stream are false accepts of "yes"
    yes = rep["per_keyword"]["yes"]
    assert yes["hits"] >= 0.8 * yes["words"] and yes["latency_ms"]["median"] is not None
    assert rep["per_keyword"]["no"]["hits"] == 0
    assert yes["false_accepts"] >= 0.5 * len(neg.words)
    assert rep["parity"]["windows"] > 0 and rep["parity"]["max_abs_diff"] == 0
    assert res.det_path.stat().st_size > 1000
    assert json.loads(res.json_path.read_text())["design"]["seed"] == 1
    # calibration: within the budget with the fewest misses, stored, read back for export
    curves = rep["sweep"]["suppression_ms"]["1500"]["yes"]
    pick = rep["calibration"]["picks"]["yes"]
    # (within its share: yes is found < 50 % at 30 FA/h, so it gets the share it needs)
    ok = [i for i, f in enumerate(curves["fa_per_hour"]) if f <= pick["share"]]
    assert pick["threshold"] in ok
    assert curves["misses"][pick["threshold"]] == min(curves["misses"][i] for i in ok)
    record = read_calibration(run_copy)
    assert record["thresholds"]["yes"] == pick["threshold"]
    assert record["stream"]["design"]["seed"] == 1 and len(record["model_sha256"]) == 64
    # the thresholds and the recognizer settings they were chosen with
    assert load_calibration(run_copy) == {
        "thresholds": record["thresholds"],
        "suppression_ms": 1500,
        "average_window_ms": record["recognizer"]["average_window_ms"],
        "minimum_coverage_ms": record["recognizer"]["minimum_coverage_ms"],
    }


def test_calibration_of_another_model_is_refused(run_copy):
    from kwstool.core.calibration import load_calibration, save_calibration

    save_calibration(run_copy, {"model_sha256": "0" * 64, "thresholds": {"yes": 100}})
    with pytest.raises(KwsError, match="calibrated for another model"):
        load_calibration(run_copy)


def test_export_and_listen_use_the_calibration(run_copy, tmp_path, monkeypatch):
    import hashlib

    from kwstool.core.calibration import save_calibration
    from kwstool.deploy import export as export_mod
    from kwstool.stream import engine
    from kwstool.stream.listen import settings_for

    sha = hashlib.sha256((run_copy / "model_int8.tflite").read_bytes()).hexdigest()
    save_calibration(
        run_copy,
        {
            "model_sha256": sha,
            "thresholds": {"yes": 111, "no": 222},
            "recognizer": {"suppression_ms": 900},
        },
    )
    seen = {}
    real = export_mod.render_header

    def spy(*args, **kwargs):
        seen.update(args[5])  # render_header(report, name, sha256, bytes, board, recognizer, ...)
        return real(*args, **kwargs)

    monkeypatch.setattr(export_mod, "render_header", spy)
    export_mod.export(run_copy, tmp_path / "export")
    assert seen["thresholds"] == {"yes": 111, "no": 222} and seen["suppression_ms"] == 900
    model = engine.StreamModel.load(run_copy)
    s = settings_for(model, None)
    assert dict(zip(model.labels, s.thresholds))["no"] == 222 and s.suppression_ms == 900
    assert set(settings_for(model, {"threshold": 50}).thresholds) == {50}


def test_per_label_thresholds(energy_run, demo_data, tmp_path):
    """Per-label thresholds: one keyword's threshold moves only that keyword's detections."""
    from streamkit import words_wav

    from kwstool.core.audio import load_wav
    from kwstool.stream import engine

    wav, _ = words_wav(tmp_path / "w.wav", demo_data, count=4)
    model = engine.StreamModel.load(energy_run)
    r = engine.batch_results(model, load_wav(wav, None), threads=1)
    base = {
        "average_window_ms": 1000,
        "threshold": 200,
        "suppression_ms": 1500,
        "minimum_coverage_ms": 200,
    }
    same = native.recognize(
        r.scores, r.times_ms, native.RecognizerSettings.build(model.labels, base)
    )
    split = native.recognize(
        r.scores,
        r.times_ms,
        native.RecognizerSettings.build(
            model.labels, base | {"thresholds": {"yes": 200, "no": 10}}
        ),
    )
    deaf = native.recognize(
        r.scores,
        r.times_ms,
        native.RecognizerSettings.build(
            model.labels, base | {"thresholds": {"yes": 255, "no": 200}}
        ),
    )
    assert len(same) == 4 and split == same and deaf == []


def test_cli_stream_eval_json(run_copy, demo_data, tmp_path, capsys):
    rc = main(
        [
            "stream-eval",
            str(run_copy),
            str(demo_data),
            "--hours",
            "0.01",
            "--negative-hours",
            "0.005",
            "--out",
            str(tmp_path / "o"),
            "--json",
            "--threads",
            "2",
        ]
    )
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["positive"]["hours"] == 0.01 and "yes" in rep["per_keyword"]
    assert main(["stream-eval", str(run_copy), str(demo_data), "--gap", "3:1"]) == 2


def test_calibration_falls_back_when_the_split_holds_no_keyword(run_copy, demo_data, tmp_path):
    """Issue 22: validation without keyword clips (own recordings of few speakers, older
    prepares) calibrates on the next split that has them, saying so, instead of exiting 2."""
    import shutil

    from kwstool.core.calibration import read_calibration
    from kwstool.core.labels import is_filler
    from kwstool.stream.evaluate import stream_eval

    data_dir = tmp_path / "data"
    shutil.copytree(demo_data, data_dir)
    manifest = json.loads((data_dir / "manifest.json").read_text())
    labels = np.load(data_dir / "validation_labels.npy")
    keep = np.array([is_filler(manifest["labels"][int(k)]) for k in labels])
    for part in ("features", "audio", "labels"):
        f = data_dir / f"validation_{part}.npy"
        np.save(f, np.load(f)[keep])
    files = (data_dir / "validation_files.txt").read_text().splitlines()
    (data_dir / "validation_files.txt").write_text(
        "".join(f + "\n" for f, k in zip(files, keep) if k)
    )
    per = manifest["splits"]["validation"]["per_class"]
    manifest["splits"]["validation"] = {
        "count": int(keep.sum()),
        "per_class": {lab: (n if is_filler(lab) else 0) for lab, n in per.items()},
    }
    (data_dir / "manifest.json").write_text(json.dumps(manifest))
    said: list[str] = []
    res = stream_eval(
        run_copy,
        data_dir,
        design=synth.StreamDesign(seed=1, split="validation", **SHORT),
        calibrate_fa=30.0,
        out_dir=tmp_path / "out",
        threads=2,
        log=said.append,
    )
    warning = [m for m in said if "holds no keyword clips" in m]
    assert len(warning) == 1 and "using the test split's instead" in warning[0]
    assert res.report["design"]["split"] == "test"
    assert read_calibration(run_copy)["stream"]["design"]["split"] == "test"


# --- issue 23: settings checked before any work, output folder, calibration refused --------------
@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["--suppression-ms", "-5"], "error: --suppression-ms -5: out of range"),
        (["--hours", "-1"], "error: --hours -1.0: out of range"),
        (["--negative-hours", "-1"], "error: --negative-hours -1.0: out of range"),
        (["--calibrate", "-1"], "error: --calibrate -1.0: out of range; give a number from 0"),
        (["--threads", "0"], "error: --threads 0: out of range"),
    ],
)
def test_bad_settings_fail_before_any_work(tmp_path, capsys, args, start):
    # the run does not even exist: the settings are refused before anything is loaded
    assert main(["stream-eval", str(tmp_path / "no_run"), str(tmp_path / "no_data"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(start) and len(err.splitlines()) == 1, err


def test_read_only_out_is_refused_before_any_work(tmp_path, capsys, read_only_dir):
    out = read_only_dir / "se"
    rc = main(["stream-eval", str(tmp_path / "no_run"), str(tmp_path / "d"), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith(f"error: --out {out}: ") and "not writable" in err


def test_cli_stream_eval_shows_progress(run_copy, demo_data, tmp_path, capsys):
    rc = main(
        [
            "stream-eval",
            str(run_copy),
            str(demo_data),
            "--hours",
            "0.01",
            "--negative-hours",
            "0.005",
            "--out",
            str(tmp_path / "o"),
            "--threads",
            "2",
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "streams (audio seconds)" in err and "threshold sweep" in err and "100%" in err


def test_stream_eval_table_fits_80_columns_and_keeps_numbers_whole(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from kwstool.cli import stream as cli_stream
    from kwstool.stream.evaluate import StreamEvalResult

    figures = {"frr": 0.125, "fa_per_hour": 12345.678, "false_per_hour_positive": 1.5,
               "words": 1234, "hits": 1080, "latency_ms": {"median": 312, "p95": 1629}}  # fmt: skip
    report = {
        "per_keyword": {"yes": figures, "no": figures},
        "recognizer": {"thresholds": {"yes": 201, "no": 128}},
        "parity": {},
        "positive": {"hours": 1.0},
        "negative": {"hours": 1.0},
        "seconds": {"total": 9.0, "build": 1.0, "stream": 7.0, "sweep": 1.0},
    }
    buf = io.StringIO()
    monkeypatch.setattr(cli_stream, "console", Console(file=buf, width=80, soft_wrap=False))
    cli_stream.print_stream_eval(StreamEvalResult(report, tmp_path / "j", tmp_path / "d"))
    text = buf.getvalue()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    row = next(line for line in text.splitlines() if line.strip().startswith("yes"))
    assert row.split() == ["yes", "201", "1234", "1080", "0.125", "12345.68", "1.50", "312", "1629"]


def test_a_calibration_that_mutes_every_keyword_is_refused_on_load(run_copy, capsys):
    import hashlib

    from kwstool.core.calibration import load_calibration, save_calibration

    sha = hashlib.sha256((run_copy / "model_int8.tflite").read_bytes()).hexdigest()
    save_calibration(run_copy, {"model_sha256": sha, "thresholds": {"yes": 255, "no": 90}})
    assert load_calibration(run_copy)["thresholds"] == {"yes": 255, "no": 90}  # one still fires
    save_calibration(run_copy, {"model_sha256": sha, "thresholds": {"yes": 255, "no": 255}})
    with pytest.raises(KwsError, match="every keyword is at threshold 255 and would never fire"):
        load_calibration(run_copy)
    assert main(["export", str(run_copy), "--out", str(run_copy / "fw")]) == 2  # not shipped
    assert "would never fire" in capsys.readouterr().err
    rec = {"suppression_ms": -5}
    save_calibration(run_copy, {"model_sha256": sha, "thresholds": {"yes": 9}, "recognizer": rec})
    with pytest.raises(KwsError, match=r"calibration.json: --suppression-ms -5: out of range"):
        load_calibration(run_copy)


@pytest.fixture
def one_word_run(tmp_path):
    """The energy model for the single keyword "yes": loud other words are false accepts."""
    from conftest import DEMO, write_run_config
    from streamkit import energy_model

    from kwstool.data import load_prepared, prepare
    from kwstool.model.quantize import quantize

    data_dir = tmp_path / "yes_data"
    prepare(str(DEMO), data_dir, words="yes", validation_pct=20, testing_pct=20, progress=False)
    data = load_prepared(data_dir)
    run = tmp_path / "run"
    run.mkdir()
    model = energy_model(len(data.labels), data.labels.index("yes"))
    model.save(run / "best.keras")
    write_run_config(run, model, "energy", data_dir)
    quantize(run, strict=True)
    return run, data_dir


@pytest.mark.slow
def test_calibration_never_mutes_every_keyword(one_word_run, tmp_path):
    from kwstool.core.calibration import read_calibration
    from kwstool.stream.det import calibrate
    from kwstool.stream.evaluate import refuse_all_muted, stream_eval

    run, data_dir = one_word_run
    # a 100 ms average: every loud other word of the negative stream scores the top of the
    # scale, so no threshold keeps "yes" at 0 false accepts per hour; the calibration rule then
    # gives it the share it needs to be found, instead of threshold 255 (which once shipped)
    short = {"average_window_ms": 100, "minimum_coverage_ms": 0}
    res = stream_eval(run, data_dir, design=synth.StreamDesign(seed=1, **SHORT), recognizer=short,
                      calibrate_fa=0.0, out_dir=tmp_path / "o", threads=2)  # fmt: skip
    pick = res.report["calibration"]["picks"]["yes"]
    assert pick["share"] > 0 and read_calibration(run)["thresholds"]["yes"] < 255
    # a keyword never found half the time, with false accepts at every threshold: muted, and a
    # calibration that mutes every keyword is refused, not written
    never = {"yes": _curve([1.0] * 256, [9] * 256, 10)}
    thresholds = {k: p["threshold"] for k, p in calibrate(never, 0.0).items()}
    assert thresholds == {"yes": 255}
    with pytest.raises(KwsError, match=r"^--calibrate 0: .* every keyword would be muted; "):
        refuse_all_muted(thresholds, ["yes"], 0.0)
    refuse_all_muted({"yes": 200}, ["yes"], 0.0)  # one that fires is kept
