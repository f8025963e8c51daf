"""``esclab.pipeline``: Hugging Face's audio-classification call conventions over a Predictor, the same
scores as ``predict``, and a clear error (or an error record in a list) for every bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import esclab
from esclab.audio import AudioDecodeError
from esclab.errors import EsclabError
from esclab.inference import Predictor
from esclab.inference.pipeline import AudioClassificationPipeline, PipelineInputError, pipeline
from tests.conftest import tone
from tests.unit.test_inference import CLASSES, write_clip


@pytest.fixture(scope="module")
def classify(bundle_path: Path) -> AudioClassificationPipeline:
    return pipeline(bundle_path)


def as_records(prediction) -> list[dict]:
    return [{"label": s.label, "score": s.score} for s in prediction.top_k]


def assert_same(records: list[dict], expected: list[dict], tol: float = 1e-6) -> None:
    assert [r["label"] for r in records] == [r["label"] for r in expected]
    assert [r["score"] for r in records] == pytest.approx([r["score"] for r in expected], abs=tol)


def test_a_path_gives_what_predict_gives_best_first(classify, bundle_path: Path, tmp_path: Path):
    clip = write_clip(tmp_path / "clip.wav", seconds=0.8, sr=22050)
    records = classify(str(clip))
    assert [set(r) for r in records] == [{"label", "score"}] * len(CLASSES)  # top_k 5, capped at 3 classes
    assert all(isinstance(r["label"], str) and isinstance(r["score"], float) for r in records)
    assert [r["score"] for r in records] == sorted((r["score"] for r in records), reverse=True)
    assert_same(records, as_records(Predictor.from_checkpoint(bundle_path).predict_file(clip, 5)))
    assert_same(classify(clip), records)  # a Path as well as a str


def test_waveforms_with_their_rate_in_every_form(classify, bundle_path: Path):
    wave = tone(440, seconds=1.2, sr=16000)
    expected = as_records(Predictor.from_checkpoint(bundle_path).predict_wave(wave, 16000, 5))
    for given in (classify(wave, sampling_rate=16000), classify({"array": wave, "sampling_rate": 16000}),
                  classify({"raw": wave, "sampling_rate": 16000, "path": "ignored.wav"}), classify((wave, 16000)),
                  classify(torch.from_numpy(wave).requires_grad_(), sampling_rate=16000)):
        assert_same(given, expected)
    pcm = np.round(wave * 32768).astype(np.int16)  # integer PCM is scaled like a decoded file
    assert_same(classify((pcm, 16000)), expected, tol=1e-4)


def test_top_k_per_pipeline_and_per_call(bundle_path: Path, classify):
    wave = tone(440)
    assert len(pipeline(bundle_path, top_k=1)(wave, sampling_rate=8000)) == 1
    assert len(classify(wave, sampling_rate=8000, top_k=2)) == 2
    assert len(pipeline(bundle_path, top_k=None)(wave, sampling_rate=8000)) == len(CLASSES)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(PipelineInputError, match="top_k"):
            classify(wave, sampling_rate=8000, top_k=bad)


def test_a_waveform_without_its_rate_is_refused_not_guessed(classify):
    with pytest.raises(PipelineInputError, match="sampling_rate") as caught:
        classify(tone(440))
    assert isinstance(caught.value, EsclabError) and isinstance(caught.value, ValueError)
    assert "8000 Hz" in str(caught.value)


@pytest.mark.parametrize("bad, message", [
    ({"array": np.zeros(8000, np.float32)}, "'array' \\(or 'raw'\\) and 'sampling_rate'"),
    ({"sampling_rate": 8000}, "'array' \\(or 'raw'\\) and 'sampling_rate'"),
    ((np.zeros(8000, np.float32), 0), "sampling_rate must be"),
    ((np.zeros(8000, np.float32), 8000.5), "sampling_rate must be"),
    ((np.zeros((8000, 2), np.float32), 8000), "mono"),
    ((np.array([0.1, np.nan], np.float32), 8000), "NaN"),
    ((np.zeros(0, np.float32), 8000), "non-empty"),
    ((np.zeros(8000, np.float32), 8000, 1), "a tuple input is"),
    (b"RIFF....", "bytes are not read"),
    (42, "cannot classify a int"),
])
def test_bad_inputs_get_one_clear_error(classify, bad, message):
    with pytest.raises(PipelineInputError, match=message):
        classify(bad)


def test_a_bad_file_raises_what_predict_reports(classify, bundle_path: Path, tmp_path: Path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all")
    for path in (garbage, tmp_path / "missing.wav"):
        with pytest.raises(AudioDecodeError) as ours:
            classify(str(path))
        with pytest.raises(AudioDecodeError) as predicts:
            Predictor.from_checkpoint(bundle_path).predict_file(path)
        assert str(ours.value) == str(predicts.value)


def test_a_list_gives_a_list_and_bad_items_get_error_records(classify, tmp_path: Path):
    good = write_clip(tmp_path / "good.wav")
    wave = tone(660, sr=16000)
    results = classify([str(good), str(tmp_path / "missing.wav"), {"array": wave, "sampling_rate": 16000},
                        np.zeros(10, np.float32), (wave, 16000)])
    assert len(results) == 5
    assert_same(results[0], classify(str(good)))
    assert_same(results[2], classify(wave, sampling_rate=16000)) and assert_same(results[4], results[2])
    missing, no_rate = results[1], results[3]
    assert missing == [{"label": None, "score": None, "error": f"{tmp_path / 'missing.wav'}: no such file"}]
    assert no_rate[0]["label"] is None and "sampling_rate" in no_rate[0]["error"]
    assert classify([]) == []
    with pytest.raises(AudioDecodeError):
        classify([str(good), str(tmp_path / "missing.wav")], errors="raise")
    with pytest.raises(PipelineInputError, match="errors must be"):
        classify([str(good)], errors="ignore")
    assert classify(str(tmp_path / "missing.wav"), errors="record")[0]["error"].endswith("no such file")


def test_the_rejection_rule_answers_unknown_first(bundle_path: Path):
    records = pipeline(bundle_path, top_k=2, reject_below=1.0)(tone(440), sampling_rate=8000)
    assert [r["label"] for r in records][0] == "unknown" and len(records) == 3
    assert records[0]["score"] == records[1]["score"]


def test_esclab_pipeline_is_one_line_and_import_esclab_stays_cheap(bundle_path: Path, tmp_path: Path):
    clip = write_clip(tmp_path / "clip.wav")
    assert_same(esclab.pipeline(bundle_path)(str(clip)), pipeline(bundle_path)(str(clip)))
    code = "import sys, esclab; print(sorted(m for m in ('torch', 'numpy', 'esclab.inference') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
