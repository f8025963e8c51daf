"""Event tables (issue 25): the pure steps on score matrices, a Predictor on a synthetic recording, the CLI's
``--events`` and the API's ``/api/events``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from esclab.cli import main
from esclab.inference import Predictor
from esclab.inference.events import (
    SILENT_DB,
    EventError,
    EventSettings,
    find_events,
    median_smooth,
    window_bounds,
    window_levels,
)
from esclab.inference.results import Event
from tests.conftest import tone
from tests.unit.test_inference import CLASSES

WINDOW, HOP = 2.0, 0.5
LOUD = -20.0  # dBFS: above the default gate


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends of ``n`` windows of 2 s every 0.5 s (the recording ends with the last one)."""
    starts = np.arange(n) * HOP
    return starts, starts + WINDOW


def one_hot(labels: list[int], score: float = 0.9) -> np.ndarray:
    """A window per entry: ``score`` on that class (-1: spread evenly over the classes), the rest shared."""
    rows = np.full((len(labels), len(CLASSES)), (1 - score) / (len(CLASSES) - 1))
    for i, label in enumerate(labels):
        if label < 0:
            rows[i] = 1 / len(CLASSES)
        else:
            rows[i, label] = score
    return rows


def events_of(labels: list[int], levels: list[float] | None = None, reject_below: float | None = 0.5,
              **settings) -> list[Event]:
    starts, ends = grid(len(labels))
    rule = None if reject_below is None else (lambda row: float(row.max()) < reject_below)
    return find_events(one_hot(labels), starts, ends, levels or [LOUD] * len(labels), CLASSES,
                       EventSettings(**settings), rule)


def test_settings_are_checked():
    with pytest.raises(EventError, match="odd"):
        EventSettings(median=2)
    with pytest.raises(EventError, match="merge_gap_s"):
        EventSettings(merge_gap_s=-1.0)
    assert EventSettings().min_duration(2.0) == 1.5 and EventSettings(min_duration_s=0.2).min_duration(2.0) == 0.2


def test_median_smoothing_and_window_times():
    x = np.array([[0.0], [0.0], [1.0], [0.0], [0.0]])
    assert median_smooth(x, 3)[:, 0].tolist() == [0, 0, 0, 0, 0]
    assert median_smooth(x, 1)[:, 0].tolist() == x[:, 0].tolist()
    assert median_smooth(np.array([[1.0], [0.0], [0.0]]), 3)[:, 0].tolist() == [1, 0, 0]  # edges repeated
    starts, ends = grid(4)  # centres 1.0, 1.5, 2.0, 2.5
    assert window_bounds(starts, ends).tolist() == [0.0, 1.25, 1.75, 2.25, 3.5]


def test_smoothing_removes_a_one_window_blip():
    labels = [0] * 10 + [1] + [0] * 10
    assert [e.label for e in events_of(labels)] == ["dog"]
    assert {e.label for e in events_of(labels, median=1, min_duration_s=0)} == {"dog", "rain"}


def test_events_of_one_label_closer_than_the_merge_gap_are_joined():
    labels = [0] * 6 + [-1] * 2 + [0] * 6  # two windows (1 s) that are no event between two dog runs
    assert len(events_of(labels, median=1, merge_gap_s=1.5)) == 1
    joined = events_of(labels, median=1, merge_gap_s=1.5)[0]
    split = events_of(labels, median=1, merge_gap_s=0.5)
    assert len(split) == 2 and split[1].onset - split[0].offset == pytest.approx(1.0)
    assert (joined.onset, joined.offset) == (split[0].onset, split[1].offset)


def test_events_shorter_than_the_minimum_are_dropped():
    labels = [-1] * 5 + [1] * 3 + [-1] * 5  # a 1.5-s run of rain
    assert [e.label for e in events_of(labels, median=1, min_duration_s=1.5)] == ["rain"]
    assert events_of(labels, median=1, min_duration_s=1.6) == []
    assert len(events_of(labels, median=1)) == 1  # default: 3/4 of the 2-s window


def test_quiet_windows_are_silence():
    labels = [2] * 20
    levels = [LOUD] * 6 + [-80.0] * 8 + [LOUD] * 6
    events = events_of(labels, levels)
    assert [e.label for e in events] == ["siren", "siren"]
    assert events[0].offset <= events[1].onset
    assert [e.label for e in events_of(labels, levels, min_level_db=float("-inf"))] == ["siren"]


def test_windows_the_rule_rejects_are_no_event():
    labels = [-1] * 8 + [1] * 6 + [-1] * 8  # background: every class equally likely, below the threshold
    assert [e.label for e in events_of(labels)] == ["rain"]
    assert events_of([-1] * 20) == []
    assert events_of(labels, reject_below=0.95) == []  # even the rain windows are below 0.95


def test_event_times_are_within_a_hop_of_the_truth():
    """Windows score a class when the sound covers their centre; events land within a hop of where it is."""
    truth = [(6.3, 9.1, 1), (15.0, 16.2, 2), (21.7, 26.0, 0)]
    starts, ends = grid(57)  # 30 s
    centres = (starts + ends) / 2
    labels = [next((c for a, b, c in truth if a <= t < b), -1) for t in centres]
    rng = np.random.default_rng(0)
    scores = np.clip(one_hot(labels) + rng.uniform(-0.05, 0.05, (len(labels), len(CLASSES))), 0, 1)
    events = find_events(scores, starts, ends, [LOUD] * len(labels), CLASSES, EventSettings(),
                         lambda row: float(row.max()) < 0.5)
    assert [e.label for e in events] == [CLASSES[c] for _, _, c in truth]
    for event, (onset, offset, _) in zip(events, truth, strict=True):
        assert abs(event.onset - onset) <= HOP and abs(event.offset - offset) <= HOP
        assert 0.8 < event.score < 1.0


def test_window_levels_in_dbfs():
    sine = np.sin(2 * np.pi * 100 * np.arange(8000) / 8000).astype(np.float32)
    wave = np.r_[sine, np.zeros(8000, np.float32)]
    levels = window_levels(wave, [0, 8000, 12000], 8000)
    assert levels[0] == pytest.approx(-3.01, abs=0.01) and levels[1] == SILENT_DB
    assert levels[2] == SILENT_DB  # past the end: only the recording's own samples count


def recording(sr: int = 8000) -> np.ndarray:
    """3 s of silence, 3 s of a tone, 3 s of silence."""
    silence = np.zeros(3 * sr, np.float32)
    return np.r_[silence, tone(440, 3.0, sr), silence].astype(np.float32)


def test_a_predictor_finds_events_only_where_there_is_sound(bundle_path: Path):
    predictor = Predictor.from_checkpoint(bundle_path, reject_below=0)
    result = predictor.detect_events(recording(), 8000)
    assert len(result.windows) == 17 and result.windows[1].start_s == 0.5  # 1-s windows (the clip), 0.5-s hop
    assert result.events and all(2.0 <= e.onset < e.offset <= 7.0 for e in result.events)
    assert all(e.label in CLASSES and 0 < e.score <= 1 for e in result.events)
    assert json.loads(json.dumps(result.to_dict()))["events"][0]["label"] == result.events[0].label
    refusing = Predictor.from_checkpoint(bundle_path, reject_below=1.0)  # every window is unknown
    assert refusing.detect_events(recording(), 8000).events == []


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "long.wav"
    sf.write(path, recording(), 8000)
    return path


def test_cli_writes_the_event_table(bundle_path: Path, long_file: Path, tmp_path: Path, capsys):
    out = tmp_path / "events.csv"
    assert main(["predict", "--checkpoint", str(bundle_path), "--reject-below", "0", "--long", str(long_file),
                 "--events", str(out), "--format", "json", "--min-level", "-50"]) == 0
    captured = capsys.readouterr()
    records = json.loads(captured.out)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == ["file", "onset", "offset", "label", "score"]
    assert [(r["label"], float(r["onset"])) for r in rows] == [(e["label"], pytest.approx(e["onset"], abs=1e-3))
                                                              for e in records[0]["events"]]
    assert all(r["file"] == str(long_file) for r in rows)
    assert f"{len(rows)} events in {out}" in captured.err


@pytest.mark.parametrize("command", [["predict", "--checkpoint", "model.ckpt"], ["tag"]])
def test_cli_events_need_long(command: list[str], capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "x.wav", "--events", "events.csv"])
    assert exit_info.value.code == 2 and "--events needs --long" in capsys.readouterr().err


def test_cli_refuses_an_even_median(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--checkpoint", "model.ckpt", "--long", "x.wav", "--events", "e.csv", "--median", "4"])
    assert "must be odd" in capsys.readouterr().err


def test_api_events(bundle_path: Path, long_file: Path):
    from fastapi.testclient import TestClient

    from esclab.serve import create_app

    client = TestClient(create_app(Predictor.from_checkpoint(bundle_path, reject_below=0)))

    def post(data: bytes, **params):
        return client.post("/api/events", params=params, files={"file": ("long.wav", data, "audio/wav")})

    good = post(long_file.read_bytes(), merge_gap_s=2.0)
    assert good.status_code == 200
    body = good.json()
    assert body["file"] == "long.wav" and body["events"] and len(body["windows"]) == 17
    assert all({"onset", "offset", "label", "score"} <= set(e) for e in body["events"])
    empty = post(b"")
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    not_audio = post(b"not audio at all")
    assert not_audio.status_code == 422 and "not usable audio" in not_audio.json()["detail"]
    even = post(long_file.read_bytes(), median=4)
    assert even.status_code == 422 and "odd" in even.json()["detail"]
    too_long = post(long_file.read_bytes(), window_s=5.0)
    assert too_long.status_code == 422 and "clip length" in too_long.json()["detail"]
