"""AudioSet tagging with the real EfficientAT mn04 weights: scores, real clips, windows, the CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch.hub

from esclab.cli import main
from esclab.inference import WindowError, predict_paths
from esclab.inference.tagging import SAMPLE_RATE, Tagger, audioset_labels
from esclab.models import create_model
from esclab.weights import ENV_VAR, WeightsError
from tests.conftest import tone

WEIGHTS = Path(__file__).resolve().parents[2].parent / "shared" / "pretrained" / "mn04_as_mAP_432.pt"
pytestmark = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"EfficientAT mn04 weights not at {WEIGHTS} "
                                "(the offline copy beside the checkout); tagging needs the real weights")

#: AudioSet classes that count as a hit for each ESC-50 category of the fixture.
EXPECTED = {"dog": {"Dog", "Bark"}, "rooster": {"Chicken, rooster", "Crowing, cock-a-doodle-doo"},
            "pig": {"Pig", "Oink"}}


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger.from_name("efficientat:mn04_as", download=False)


@pytest.fixture
def clips(esc50_mini: Path) -> dict[str, Path]:
    """One fixture clip per category (fold 1)."""
    meta = pd.read_csv(esc50_mini / "meta" / "esc50.csv")
    first = meta[meta.fold == 1].set_index("category").filename
    return {cat: esc50_mini / "audio" / Path(name).with_suffix(".ogg").name for cat, name in first.items()}


@pytest.fixture
def long_file(clips: dict[str, Path], tmp_path: Path) -> Path:
    """12 s: the dog clip, the rooster clip, then 2 s of the pig clip."""
    parts = [sf.read(clips[c], dtype="float32") for c in ("dog", "rooster", "pig")]
    rate = parts[0][1]
    wave = np.concatenate([parts[0][0], parts[1][0], parts[2][0][: 2 * rate]])
    sf.write(tmp_path / "long.wav", wave, rate)
    return tmp_path / "long.wav"


def test_labels_are_the_527_audioset_names():
    labels = audioset_labels()
    assert len(labels) == len(set(labels)) == 527
    assert (labels[0], labels[74], labels[75]) == ("Speech", "Dog", "Bark")


def test_from_name_builds_the_model_of_the_weights_width(tagger: Tagger):
    assert tagger.model.width_mult == 0.4
    assert tagger.model.num_classes == 527
    assert not tagger.model.training


def test_synthetic_input_gives_527_finite_sigmoid_scores_with_names(tagger: Tagger):
    rng = np.random.default_rng(0)
    wave = tone(440.0, seconds=2.0, sr=16000) + 0.01 * rng.standard_normal(32000).astype(np.float32)
    result = tagger.tag_wave(wave, 16000, top_k=1000)
    scores = np.array([s.score for s in result.top_k])
    assert len(scores) == 527
    assert {s.label for s in result.top_k} == set(audioset_labels())
    assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))
    assert np.all(np.diff(scores) <= 0)  # best first
    assert result.duration_s == pytest.approx(2.0)
    assert "sigmoid" in result.scores


def test_every_fixture_clip_gets_its_animal_in_the_top_5(tagger: Tagger, esc50_mini: Path):
    meta = pd.read_csv(esc50_mini / "meta" / "esc50.csv")
    category = {Path(f).stem: c for f, c in zip(meta.filename, meta.category, strict=True)}
    results = predict_paths(tagger, [esc50_mini / "audio"], top_k=5)  # a folder expands to its 9 clips
    assert len(results) == len(meta)
    for r in results:
        top = {s.label for s in r.top_k}
        assert top & EXPECTED[category[Path(r.file).stem]], f"{r.file}: {top}"
    alone = tagger.tag_file(results[0].file)  # threads and shared batches score as one file at a time
    assert [s.score for s in alone.top_k] == pytest.approx([s.score for s in results[0].top_k], abs=1e-5)


def test_tagger_folds_a_copy_and_leaves_the_callers_model_unchanged():
    model = create_model("mn04", num_classes=527)  # in training mode, as a caller may hold it
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layers = [type(m) for m in model.modules()]
    tagger = Tagger(model)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert [type(m) for m in model.modules()] == layers and model.training
    assert tagger.model is not model and not tagger.model.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in tagger.model.modules())  # the copy is folded


def test_long_recording_is_tagged_in_max_pooled_pieces(tagger: Tagger, clips: dict[str, Path]):
    short = Tagger(tagger.model, max_seconds=2.0)
    wave = short.load(clips["dog"])  # 5 s: pieces at 0, 2 and 3 s (the last moved back to end at 5 s)
    piece = 2 * SAMPLE_RATE
    expected = tagger.scores([wave[s:s + piece] for s in (0, piece, len(wave) - piece)]).max(axis=0)
    got = {s.label: s.score for s in short.tag_wave(wave, SAMPLE_RATE, top_k=527).top_k}
    assert np.allclose([got[n] for n in tagger.class_names], expected, atol=1e-6)


def test_long_gives_a_timeline_of_whole_windows(tagger: Tagger, long_file: Path):
    result = tagger.tag_long(long_file, window_s=5.0, hop_s=2.5, top_k=5)
    assert result.duration_s == pytest.approx(12.0)
    bounds = [x for w in result.windows for x in (w.start_s, w.end_s)]
    assert bounds == pytest.approx([0, 5, 2.5, 7.5, 5, 10, 7, 12])  # the last window moved back to end at 12 s
    assert {s.label for s in result.windows[0].top_k} & EXPECTED["dog"]
    assert {s.label for s in result.windows[2].top_k} & EXPECTED["rooster"]
    assert result.segments[0].start_s == 0 and result.segments[-1].end_s == pytest.approx(12.0)
    # batched windows score as each window alone
    wave = tagger.load(long_file)
    alone = tagger.tag_wave(wave[5 * SAMPLE_RATE:10 * SAMPLE_RATE], SAMPLE_RATE, top_k=5).top_k
    assert [s.label for s in alone] == [s.label for s in result.windows[2].top_k]
    assert [s.score for s in alone] == pytest.approx([s.score for s in result.windows[2].top_k],
                                                           abs=1e-5)


@pytest.mark.parametrize(("window", "hop"), [(0.0, None), (31.0, None), (5.0, 6.0), (5.0, 0.0)])
def test_bad_windows_are_refused(tagger: Tagger, window: float, hop: float | None):
    with pytest.raises(WindowError):
        tagger.window_samples(window, hop)


def test_unknown_or_absent_weights_give_weights_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    with pytest.raises(WeightsError, match="unknown pretrained weights"):
        Tagger.from_name("efficientat:nope")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(WeightsError, match="mn10_as_mAP_471.pt not found"):
        Tagger.from_name("efficientat:mn10_as", download=False)


def test_cli_tags_good_files_and_gives_error_rows_for_bad_ones(clips: dict[str, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture,
                                                               capsys: pytest.CaptureFixture[str]):
    import esclab.progress

    monkeypatch.setattr(esclab.progress, "stderr_is_terminal", lambda: False)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")
    missing = tmp_path / "missing.wav"
    with caplog.at_level(logging.INFO, logger="esclab"):
        rc = main(["tag", str(clips["dog"]), str(not_audio), str(missing), "--top-k", "5", "--workers", "2"])
    out, err = capsys.readouterr()
    assert rc == 1
    progress = [r.getMessage() for r in caplog.records if r.name == "esclab.progress"]
    assert progress and progress[-1].startswith("tag: 3/3 (100 %) · ")
    assert "tag: 3 clips (2 failed) in " in err and "clips/s" in err and "tag:" not in out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["file", "label_1", "sigmoid_1"]
    dog_row = next(line for line in lines if line.startswith(str(clips["dog"])))
    assert "Dog" in dog_row or "Bark" in dog_row
    assert any(line.startswith(str(not_audio)) and "ERROR: cannot decode" in line for line in lines)
    assert any(line.startswith(str(missing)) and "ERROR: no such file" in line for line in lines)


def test_cli_long_json_parses(long_file: Path, capsys: pytest.CaptureFixture[str]):
    rc = main(["tag", str(long_file), "--long", "--window", "5", "--hop", "2.5", "--top-k", "3",
               "--format", "json"])
    records = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(records) == 1
    record = records[0]
    assert record["error"] is None and "sigmoid" in record["scores"]
    assert len(record["windows"]) == 4
    assert all(len(w["top_k"]) == 3 for w in record["windows"])
    scores = [*record["top_k"], *(s for w in record["windows"] for s in w["top_k"]), *record["segments"]]
    assert all(set(s) >= {"score", "probability"} and s["score"] == s["probability"] for s in scores)


def test_cli_long_csv_has_one_row_per_window(long_file: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["tag", str(long_file), "--long", "--top-k", "2", "--format", "csv"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header == "file,start_s,end_s,label_1,sigmoid_1,label_2,sigmoid_2,error"
    assert len(rows) == 4  # window 5 s, hop 2.5 s over 12 s


def test_cli_missing_weights_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clips: dict[str, Path],
                                         capsys: pytest.CaptureFixture[str]):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    rc = main(["tag", "--weights", "efficientat:mn10_as", str(clips["dog"])])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("esclab tag: error: efficientat:mn10_as: mn10_as_mAP_471.pt not found")
    assert "\n" not in err and "Traceback" not in err
