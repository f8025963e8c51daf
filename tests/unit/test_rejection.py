"""The rejection rule: below the threshold the answer is ``unknown``, in every output (``esclab.inference``)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from esclab.bundle import load_bundle, save_bundle
from esclab.calibration import UNKNOWN
from esclab.cli import main
from esclab.inference import Predictor
from esclab.inference.results import format_results
from tests.conftest import tone
from tests.unit.test_inference import write_clip


@pytest.fixture(scope="module")
def calibrated_path(bundle_path: Path) -> Path:
    """The tiny bundle with a calibration whose threshold (1.0) every answer falls below."""
    bundle = load_bundle(bundle_path)
    calibration = {"temperature": 1.0, "reject_below": 1.0, "false_rejection": 0.05, "source": "test", "n": 0}
    return save_bundle(bundle_path.with_name("calibrated.ckpt"), bundle.model, bundle.model_name, bundle.model_kwargs,
                       bundle.class_names, bundle.audio, bundle.features, bundle.frontend[1],
                       metrics={**bundle.metrics, "calibration": calibration})


def test_below_the_threshold_the_answer_is_unknown_then_the_known_classes(bundle_path: Path):
    predictor = Predictor.from_checkpoint(bundle_path, reject_below=1.0)
    result = predictor.predict_wave(tone(440, 1.0, 8000), 8000, top_k=2)
    assert result.unknown and result.reject_below == 1.0
    assert [s.label for s in result.top_k][0] == UNKNOWN and len(result.top_k) == 3
    assert result.top_k[0].score == result.top_k[1].score  # unknown carries the best class's score
    record = json.loads(format_results([result], "json"))[0]
    assert record["unknown"] is True and record["top_k"][0]["label"] == UNKNOWN
    csv = pd.read_csv(io.StringIO(format_results([result], "csv")))
    assert csv.loc[0, "label_1"] == UNKNOWN and csv.loc[0, "label_2"] in predictor.class_names


def test_no_threshold_and_zero_reject_nothing(bundle_path: Path):
    for predictor in (Predictor.from_checkpoint(bundle_path), Predictor.from_checkpoint(bundle_path, reject_below=0.0)):
        result = predictor.predict_wave(tone(440, 1.0, 8000), 8000)
        assert not result.unknown and UNKNOWN not in [s.label for s in result.top_k]


def test_a_calibrated_bundle_brings_its_threshold_and_an_argument_overrides_it(calibrated_path: Path):
    assert load_bundle(calibrated_path).reject_below == 1.0
    assert Predictor.from_checkpoint(calibrated_path).predict_wave(tone(440, 1.0, 8000), 8000).unknown
    assert not Predictor.from_checkpoint(calibrated_path, reject_below=0.0).predict_wave(tone(440, 1.0, 8000), 8000).unknown


def test_long_recordings_mark_each_window_and_merge_unknown_segments(bundle_path: Path):
    predictor = Predictor.from_checkpoint(bundle_path, reject_below=1.0)
    result = predictor.predict_long_wave(tone(440, 3.0, 8000), 8000)
    assert result.windows and all(w.unknown and w.top_k[0].label == UNKNOWN for w in result.windows)
    assert [s.label for s in result.segments] == [UNKNOWN]


def test_cli_reject_below_reaches_label_1_and_refuses_a_non_probability(bundle_path: Path, tmp_path: Path, capsys):
    clip = write_clip(tmp_path / "a.wav")
    with redirect_stdout(io.StringIO()) as out:
        assert main(["predict", "--checkpoint", str(bundle_path), str(clip), "--format", "csv",
                     "--reject-below", "1"]) == 0
    assert pd.read_csv(io.StringIO(out.getvalue())).loc[0, "label_1"] == UNKNOWN
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--checkpoint", str(bundle_path), str(clip), "--reject-below", "1.5"])
    assert exit_info.value.code == 2 and "[0, 1]" in capsys.readouterr().err
