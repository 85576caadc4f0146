"""evaluate: top-1, per-class P/R/F1 and confusion matrix on prepared splits and label trees."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO, LABELS

from kwstool.errors import KwsError


@pytest.fixture(scope="module")
def label_tree(tmp_path_factory) -> Path:
    """Canonical test layout: yes/, no/, _silence_/, an unknown word (up/), _unknown_/, noise,
    and one broken WAV."""
    from kwstool.core.audio import save_wav

    root = tmp_path_factory.mktemp("tree")
    for word, n in (("yes", 5), ("no", 4), ("up", 3)):
        (root / word).mkdir()
        for src in sorted((DEMO / word).glob("*.wav"))[:n]:
            shutil.copy(src, root / word / src.name)
    (root / "_unknown_").mkdir()
    left = sorted((DEMO / "left").glob("*.wav"))[0]
    shutil.copy(left, root / "_unknown_" / "left_a_nohash_0.wav")
    (root / "_silence_").mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        hiss = (rng.standard_normal(16000) * 30).astype(np.int16)
        save_wav(root / "_silence_" / f"s{i}.wav", hiss)
    (root / "_background_noise_").mkdir()
    shutil.copy(DEMO / "_background_noise_" / "white_noise.wav", root / "_background_noise_")
    (root / "no" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return root


def test_class_scores_exact():
    from kwstool.model.evaluate import class_scores, confusion_matrix

    y = np.array([0, 0, 1, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 0, 1])
    cm = confusion_matrix(y, p, 3)
    assert cm.tolist() == [[1, 1, 0], [1, 2, 0], [0, 1, 0]]
    s = class_scores(cm, ["a", "b", "c"])
    assert [(c.precision, c.recall, c.f1, c.support) for c in s] == [
        (0.5, 0.5, 0.5, 2),
        (0.5, 0.666667, 0.571429, 3),
        (None, 0.0, 0.0, 1),  # never predicted: precision undefined, F1 0
    ]


def test_evaluate_label_tree_with_unknown_word_and_silence(quantized_run, label_tree, tmp_path):
    from kwstool.model.evaluate import evaluate

    run, _ = quantized_run
    r = evaluate(
        run / "model_int8.tflite",
        label_tree,
        json_out=tmp_path / "e.json",
        png_out=tmp_path / "cm.png",
    )
    assert r.labels == LABELS and r.split is None and r.runtime == "litert"
    assert r.count == 15  # 5 yes + 4 no (+1 broken) + 3 up + 1 _unknown_ + 2 _silence_
    assert [c.support for c in r.per_class] == [2, 4, 5, 4]  # up/ counts as _unknown_
    assert r.skipped == [
        {"file": str(label_tree / "no" / "broken.wav"), "reason": r.skipped[0]["reason"]}
    ]
    assert r.skipped[0]["reason"].startswith("not a readable WAV file")
    assert int(r.confusion.sum()) == 15
    assert r.top1 == round(float(np.trace(r.confusion)) / 15, 6)
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved == json.loads(json.dumps(r.to_json()))
    assert saved["per_class"]["_unknown_"]["support"] == 4
    assert saved["confusion"]["matrix"] == r.confusion.tolist()
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tflm_runtime_gives_the_same_figures(quantized_run, label_tree):
    from kwstool.model.evaluate import evaluate

    run, _ = quantized_run
    a = evaluate(run / "model_int8.tflite", label_tree, runtime="litert")
    b = evaluate(run / "model_int8.tflite", label_tree, runtime="tflm")
    assert b.runtime == "tflm"
    assert np.array_equal(a.confusion, b.confusion) and a.top1 == b.top1


def test_evaluate_prepared_split_matches_quantize_record(quantized_run, demo_data):
    from kwstool.data import load_prepared
    from kwstool.model.evaluate import evaluate

    run, q = quantized_run
    for split in ("validation", "test"):
        r = evaluate(run, demo_data, split=split)  # a run folder works as MODEL too
        assert r.split == split
        assert r.count == len(load_prepared(demo_data).split(split).labels)
        assert r.top1 == q.accuracy["int8"][split]


def test_model_from_another_front_end_or_old_report_is_refused(quantized_run, label_tree, tmp_path):
    """quantize.json is validated: another front end's features or a missing field is refused."""
    from kwstool.model.evaluate import evaluate

    run, _ = quantized_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    report = json.loads((copy / "quantize.json").read_text())
    report["features"]["frontend_hash"] = "e" * 64
    (copy / "quantize.json").write_text(json.dumps(report))
    with pytest.raises(
        KwsError,
        match=r"quantize.json: features were computed by another C front "
        r"end \(hash eeeeeeeeeeee, .*re-run `kwstool prepare "
        r"--force`, then `kwstool train` and `kwstool quantize`$",
    ):
        evaluate(copy, label_tree)
    del report["labels"]
    (copy / "quantize.json").write_text(json.dumps(report))
    with pytest.raises(
        KwsError,
        match=r"quantize.json: field 'labels' missing; re-run `kwstool "
        r"quantize`$",
    ):
        evaluate(copy, label_tree)


def test_labels_override_for_a_foreign_model(quantized_run, label_tree, tmp_path):
    """--labels works without quantize.json; silence/unknown mean _silence_/_unknown_."""
    from kwstool.model.evaluate import evaluate, parse_labels

    assert parse_labels("silence, unknown,yes,no") == LABELS
    run, _ = quantized_run
    bare = tmp_path / "m.tflite"
    shutil.copy(run / "model_int8.tflite", bare)
    with pytest.raises(KwsError, match=r"quantize.json: not found; run `kwstool quantize RUN`"):
        evaluate(bare, label_tree)
    r = evaluate(bare, label_tree, labels="silence,unknown,yes,no")
    ours = evaluate(run / "model_int8.tflite", label_tree)
    assert r.labels == LABELS and np.array_equal(r.confusion, ours.confusion)
    with pytest.raises(KwsError, match=r"has 4 outputs but 3 labels were given"):
        evaluate(bare, label_tree, labels="silence,yes,no")


def test_micro_speech_model_with_labels_override(tmp_path):
    """TensorFlow's micro_speech model (int8 features fed as is) on its own sample clips."""
    from conftest import shared_path

    from kwstool.model.evaluate import evaluate

    ms = shared_path("micro_speech")
    for label, name in (
        ("yes", "yes_1000ms.wav"),
        ("no", "no_1000ms.wav"),
        ("_silence_", "silence_1000ms.wav"),
    ):
        (tmp_path / label).mkdir()
        shutil.copy(ms / name, tmp_path / label / name)
    r = evaluate(
        ms / "micro_speech_quantized.tflite",
        tmp_path,
        labels="silence,unknown,yes,no",
        runtime="tflm",
    )
    assert r.confusion.tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]


def test_evaluate_errors(quantized_run, label_tree, tmp_path):
    from kwstool.model.evaluate import evaluate

    run, _ = quantized_run
    model = run / "model_int8.tflite"
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(KwsError, match=r"bad.tflite: not a TFLite flatbuffer"):
        evaluate(bad, label_tree, labels="a,b")
    with pytest.raises(KwsError, match=r"^unknown runtime 'gpu'; choose litert or tflm$"):
        evaluate(model, label_tree, runtime="gpu")
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    with pytest.raises(KwsError, match=r"empty: no readable .wav clips in label subfolders"):
        evaluate(model, tmp_path / "empty")
    with pytest.raises(KwsError, match=r"nowhere: no such folder"):
        evaluate(model, tmp_path / "nowhere")
    with pytest.raises(KwsError, match=r"has _silence_ clips but the model has no _silence_"):
        evaluate(model, label_tree, labels="unknown,x,yes,no")
    with pytest.raises(
        KwsError,
        match=r"label '_unknown_' is not one of the model's .* no "
        r"_unknown_ class",
    ):
        evaluate(model, label_tree, labels="silence,x,yes,no")


def test_cli_evaluate(quantized_run, label_tree, tmp_path, capsys):
    from kwstool.cli import main

    run, _ = quantized_run
    code = main(
        [
            "evaluate",
            str(run / "model_int8.tflite"),
            str(label_tree),
            "--json",
            str(tmp_path / "r.json"),
            "--png",
            str(tmp_path / "r.png"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert f"top-1 {saved['top1']:.4f} on 15 clips" in out
    assert "_unknown_" in out and (tmp_path / "r.png").exists()
    assert main(["evaluate", str(tmp_path / "none.tflite"), str(label_tree)]) == 2
    assert "none.tflite: not found" in capsys.readouterr().err
