"""Page building blocks: audio data URIs, the gallery order, tables and strict JSON."""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pandas as pd
import soundfile as sf

from esclab.evaluate.gallery import audio_data_uri, worst_mistakes
from esclab.evaluate.page import plain, table_from_frame, write_json
from tests.conftest import tone


def test_audio_data_uri_decodes_to_the_clip():
    uri = audio_data_uri(tone(440, sr=8000), 8000)
    assert uri.startswith("data:audio/ogg;base64,")
    wave, sr = sf.read(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert sr == 8000 and len(wave) == 8000


def test_audio_data_uri_writes_a_band_limited_clip_at_its_band_rate():
    uri = audio_data_uri(tone(440, sr=32000), 32000, band_rate=16000)
    wave, sr = sf.read(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert sr == 16000 and len(wave) == 16000
    assert len(uri) < len(audio_data_uri(tone(440, sr=32000), 32000))


def test_worst_mistakes_are_wrong_most_confident_first_and_capped():
    preds = pd.DataFrame({"target": [0, 1, 2, 0, 1], "pred": [1, 1, 0, 2, 0],
                          "confidence": [0.5, 0.99, 0.7, 0.9, 0.6]})
    worst = worst_mistakes(preds, 3)
    assert worst["confidence"].tolist() == [0.9, 0.7, 0.6]
    assert len(worst_mistakes(preds, None)) == 4


def test_table_cells_sort_by_number():
    table = table_from_frame(pd.DataFrame({"class": ["a"], "f1": [0.12345], "ratio": [math.inf]}), {"f1": ".2f"})
    name, f1, ratio = table.rows[0]
    assert (name.text, name.numeric) == ("a", False)
    assert (f1.text, f1.sort, f1.numeric) == ("0.12", "0.12345", True)
    assert ratio.sort == "Infinity"


def test_json_is_strict(tmp_path):
    data = {"a": np.float32(0.5), "b": [np.int64(3), math.nan], "c": np.array([1.0, math.inf])}
    assert plain(data) == {"a": 0.5, "b": [3, None], "c": [1.0, None]}
    assert json.loads(write_json(data, tmp_path / "x.json").read_text()) == plain(data)


def test_score_bars_have_round_ticks_within_the_score_range():
    from esclab.evaluate.plots import grouped_bar_figure

    fig = grouped_bar_figure(["fold 1", "fold 2"], {"accuracy": [0.9, 0.8], "macro-F1": [0.85, 0.75]}, ylim=(0, 1))
    ticks = fig.axes[0].get_yticks()
    assert np.allclose(ticks, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
