"""Predictor contracts: bundle round trip, run-folder selection, odd audio, sliding windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from esclab.bundle import load_bundle, save_bundle
from esclab.config import AudioConfig, FeatureConfig
from esclab.features.frontend import Standardize
from esclab.inference import Predictor, Scorer, WindowError
from esclab.inference.results import ClassScore, Window, merge_segments, window_starts
from esclab.inference.scorer import SCORE_NOTES
from esclab.models import create_model
from tests.conftest import tone

CLASSES = ["dog", "rain", "siren"]
TINY_KWARGS = {
    "paper_cnn": {"channels": (4, 8, 8), "dense_units": (16,)},
    "attention_cnn": {"channels": (4, 8, 8), "dense_units": (16,)},
}


def write_tiny_bundle(path: Path, model_name: str = "paper_cnn", seed: int = 0) -> Path:
    """An untrained 3-class bundle: 8 kHz 1 s clips, 32 mels x 60 frames, with standardisation."""
    torch.manual_seed(seed)
    kwargs = TINY_KWARGS[model_name]
    model = create_model(model_name, num_classes=len(CLASSES), input_size=(32, 60), **kwargs).eval()
    standardize = Standardize(torch.randn(32) - 30.0, torch.rand(32) * 5 + 10.0)
    features = FeatureConfig(n_mels=32, n_fft=256, hop_length=128, frames=60)
    return save_bundle(path, model, model_name, kwargs, CLASSES, AudioConfig(sample_rate=8000, duration=1.0),
                       features, standardize, metrics={"accuracy": 0.5})


def write_clip(path: Path, seconds: float = 1.0, sr: int = 8000, channels: int = 1, freq: float = 440.0) -> Path:
    wave = tone(freq, seconds, sr)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, sr)
    return path


def scorer_of(bundle_path: Path, **options) -> Scorer:
    """A scorer over a bundle's model and front end with ``options`` (``activation``, ``pooling``, ``inputs``)."""
    bundle = load_bundle(bundle_path)
    return Scorer(bundle.model, bundle.frontend, bundle.class_names, bundle.audio, bundle.features, **options)


@pytest.fixture(scope="module")
def predictor(bundle_path: Path) -> Predictor:
    return Predictor.from_checkpoint(bundle_path)


def test_bundle_round_trip_gives_identical_logits(tmp_path: Path):
    path = write_tiny_bundle(tmp_path / "model.ckpt", seed=3)
    torch.manual_seed(3)
    original = create_model("paper_cnn", num_classes=3, input_size=(32, 60), **TINY_KWARGS["paper_cnn"]).eval()
    loaded = load_bundle(path)
    wave = torch.from_numpy(np.stack([tone(300, 1.0), tone(900, 1.0)]))
    spec = loaded.frontend(wave)
    with torch.no_grad():
        assert torch.equal(loaded.model(spec), original(spec))
    assert torch.equal(loaded.logits(wave), loaded.logits(wave.clone()))
    assert loaded.class_names == CLASSES


def test_predictor_probabilities_equal_the_bundle_as_loaded(bundle_path: Path):
    """The predictor's channels-last model and batches of any size give the bundle's own softmax."""
    waves = np.stack([tone(freq, 1.0) for freq in (200, 500, 1300, 2900)])
    with torch.no_grad():
        expected = torch.softmax(load_bundle(bundle_path).logits(torch.from_numpy(waves)), dim=-1).numpy()
    predictor = Predictor.from_checkpoint(bundle_path)
    assert predictor.bundle.model.blocks[1][0].weight.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(predictor.probabilities(list(waves)), expected, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([predictor.probabilities([w]) for w in waves]), expected, atol=1e-5)


def test_run_folder_picks_the_best_fold(tmp_path: Path):
    for fold, accuracy in ((1, 0.4), (2, 0.9), (3, 0.6)):
        write_tiny_bundle(tmp_path / f"fold_{fold}" / "model.ckpt", seed=fold)
        (tmp_path / f"fold_{fold}" / "metrics.json").write_text(json.dumps({"fold": fold, "accuracy": accuracy}))
    assert Predictor.from_checkpoint(tmp_path).checkpoint == tmp_path / "fold_2" / "model.ckpt"


def test_run_folder_falls_back_to_the_summary(tmp_path: Path):
    for fold in (1, 2):
        write_tiny_bundle(tmp_path / f"fold_{fold}" / "model.ckpt", seed=fold)
    summary = {"folds": {"1": {"accuracy": 0.7}, "2": {"accuracy": 0.3}}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert Predictor.from_checkpoint(tmp_path).checkpoint == tmp_path / "fold_1" / "model.ckpt"


def test_predict_file_matches_the_bundle(predictor: Predictor, tmp_path: Path):
    path = write_clip(tmp_path / "a.wav")
    result = predictor.predict_file(path, top_k=2)
    decoded, _ = sf.read(path, dtype="float32")
    logits = predictor.bundle.logits(torch.from_numpy(decoded)[None])[0]
    best = int(logits.argmax())
    assert result.file == str(path) and result.duration_s == pytest.approx(1.0)
    assert [s.label for s in result.top_k][0] == CLASSES[best]
    assert result.top_k[0].score == pytest.approx(float(torch.softmax(logits, 0)[best]), abs=1e-6)
    assert len(result.top_k) == 2 and result.top_k[0].score >= result.top_k[1].score


@pytest.mark.parametrize(("seconds", "sr", "channels", "silent"), [
    (1.0, 8000, 1, False),      # the model's own rate
    (0.5, 96000, 3, False),     # high rate, multichannel
    (0.05, 8000, 1, False),     # 50 ms: padded
    (120.0, 16000, 1, False),   # two minutes: cut to the first clip
    (1.0, 8000, 1, True),       # silence
], ids=["8k", "96k-3ch", "50ms", "2min", "silence"])
def test_odd_but_valid_audio_is_classified(predictor: Predictor, tmp_path: Path, seconds: float, sr: int,
                                           channels: int, silent: bool):
    path = write_clip(tmp_path / "odd.wav", seconds, sr, channels)
    if silent:
        sf.write(path, np.zeros(int(seconds * sr), np.float32), sr)
    result = predictor.predict_file(path, top_k=3)
    probs = [s.score for s in result.top_k]
    assert np.all(np.isfinite(probs)) and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert result.duration_s == pytest.approx(seconds, rel=1e-3)


def test_silence_gives_a_finite_log_mel(predictor: Predictor):
    spec = predictor.bundle.frontend(torch.zeros(2, predictor.clip_samples))
    assert torch.isfinite(spec).all()


def test_predict_wave_resamples_and_rejects_bad_input(predictor: Predictor):
    at_16k = predictor.predict_wave(tone(440.0, 1.0, sr=16000), 16000)
    at_8k = predictor.predict_wave(tone(440.0, 1.0), 8000)
    assert at_16k.top_k[0].label == at_8k.top_k[0].label
    with pytest.raises(ValueError, match="NaN"):
        predictor.predict_wave(np.array([0.0, np.nan], np.float32), 8000)
    with pytest.raises(ValueError, match="non-empty"):
        predictor.predict_wave(np.zeros(0, np.float32), 8000)


@pytest.mark.parametrize(("n", "window", "hop"), [(10, 4, 2), (11, 4, 3), (4, 4, 1), (3, 4, 4), (100, 7, 7)])
def test_window_starts_cover_the_file(n: int, window: int, hop: int):
    starts = window_starts(n, window, hop)
    assert starts[0] == 0 and starts[-1] + window >= n
    assert all(b - a == hop for a, b in zip(starts, starts[1:], strict=False))
    assert len(starts) == 1 or starts[-2] + window < n  # no window past the one that reaches the end


def test_window_starts_refuse_gaps():
    with pytest.raises(WindowError):
        window_starts(10, 4, 5)


def test_predict_long_covers_the_whole_file(predictor: Predictor, tmp_path: Path):
    sr = 8000
    wave = np.concatenate([tone(300, 2.3, sr), np.zeros(int(1.4 * sr), np.float32), tone(1200, 1.75, sr)])
    path = tmp_path / "long.wav"
    sf.write(path, wave, sr)
    result = predictor.predict_long(path, window_s=1.0, hop_s=0.4)
    duration = len(wave) / sr
    assert result.windows[0].start_s == 0 and result.windows[-1].end_s == pytest.approx(duration)
    assert all(b.start_s <= a.end_s for a, b in zip(result.windows, result.windows[1:], strict=False))
    assert result.segments[0].start_s == 0 and result.segments[-1].end_s == pytest.approx(duration)
    assert all(a.end_s == b.start_s and a.label != b.label
               for a, b in zip(result.segments, result.segments[1:], strict=False))
    assert len(result.top_k) == 3 and np.isfinite([s.score for s in result.top_k]).all()


def test_predict_long_refuses_windows_longer_than_the_clip(predictor: Predictor):
    with pytest.raises(WindowError, match="clip length"):
        predictor.predict_long_wave(tone(300, 3.0), 8000, window_s=2.0)


def test_merge_segments_joins_runs_of_the_same_top_class():
    labels = ["dog", "dog", "rain", "rain", "rain", "dog"]
    windows = [Window(i * 0.5, i * 0.5 + 1.0, [ClassScore(label, 0.5 + 0.05 * i)]) for i, label in enumerate(labels)]
    segments = merge_segments(windows, duration_s=3.2)
    assert [(s.label, s.start_s, s.end_s) for s in segments] == [("dog", 0.0, 1.0), ("rain", 1.0, 2.5),
                                                                  ("dog", 2.5, 3.2)]
    assert segments[1].score == pytest.approx(np.mean([0.6, 0.65, 0.7]))


def test_predictor_folds_a_copy_and_leaves_the_callers_model_unchanged(bundle_path: Path):
    bundle = load_bundle(bundle_path)
    before = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    layers = [type(m) for m in bundle.model.modules()]
    predictor = Predictor(bundle)
    after = bundle.model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert [type(m) for m in bundle.model.modules()] == layers and torch.nn.BatchNorm2d in layers
    assert all(p.is_contiguous() for p in bundle.model.parameters())  # not made channels-last
    assert predictor.bundle.model is predictor.model is not bundle.model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in predictor.model.modules())  # the copy is folded


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_scores_are_the_activation_of_the_bundles_logits(bundle_path: Path, activation: str):
    waves = np.stack([tone(freq, 1.0) for freq in (200, 1300, 2900)])
    logits = load_bundle(bundle_path).logits(torch.from_numpy(waves))
    expected = torch.softmax(logits, -1) if activation == "softmax" else torch.sigmoid(logits)
    scorer = scorer_of(bundle_path, activation=activation)
    np.testing.assert_allclose(scorer.scores(list(waves)), expected.numpy(), atol=1e-5)
    assert scorer.predict_wave(waves[0], 8000).scores == SCORE_NOTES[activation]


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_a_long_recordings_scores_pool_its_windows(bundle_path: Path, pooling: str):
    scorer = scorer_of(bundle_path, activation="sigmoid", pooling=pooling)
    wave = np.concatenate([tone(300, 1.5), tone(2500, 1.7)])
    result = scorer.predict_long_wave(wave, 8000, window_s=1.0, hop_s=0.5, top_k=len(CLASSES))
    windows = np.array([[{s.label: s.score for s in w.top_k}[c] for c in CLASSES] for w in result.windows])
    pooled = {s.label: s.score for s in result.top_k}
    expected = windows.mean(axis=0) if pooling == "mean" else windows.max(axis=0)
    assert [pooled[c] for c in CLASSES] == pytest.approx(expected, abs=1e-6)


def test_clip_inputs_pad_windows_past_the_end_and_whole_inputs_end_where_the_recording_ends(bundle_path: Path):
    wave = tone(440, 3.2)
    clip = scorer_of(bundle_path).predict_long_wave(wave, 8000, window_s=1.0, hop_s=1.0)
    whole = scorer_of(bundle_path, inputs="whole").predict_long_wave(wave, 8000, window_s=1.0, hop_s=1.0)
    assert [w.start_s for w in clip.windows] == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert [w.start_s for w in whole.windows] == pytest.approx([0.0, 1.0, 2.0, 2.2])
    assert all(w.end_s - w.start_s == pytest.approx(1.0) for w in whole.windows)


def test_a_whole_input_scorer_pools_clip_length_pieces(bundle_path: Path):
    scorer = scorer_of(bundle_path, activation="sigmoid", pooling="max", inputs="whole")
    wave = np.concatenate([tone(300, 1.0), tone(2500, 1.0), tone(900, 0.5)])
    pieces = scorer.scores([wave[:8000], wave[8000:16000], wave[12000:]])  # the last moved back to end at 2.5 s
    result = scorer.predict_wave(wave, 8000, top_k=len(CLASSES))
    assert [{s.label: s.score for s in result.top_k}[c] for c in CLASSES] == pytest.approx(pieces.max(axis=0),
                                                                                            abs=1e-6)
    assert result.duration_s == pytest.approx(2.5)


@pytest.mark.parametrize("option", [{"activation": "relu"}, {"pooling": "median"}, {"inputs": "padded"}])
def test_unknown_scorer_options_are_refused(bundle_path: Path, option: dict[str, str]):
    with pytest.raises(ValueError, match=next(iter(option))):
        scorer_of(bundle_path, **option)


def test_top_k_below_one_is_refused(predictor: Predictor):
    with pytest.raises(ValueError, match="top_k"):
        predictor.predict_wave(tone(440, 1.0), 8000, top_k=0)
    with pytest.raises(ValueError, match="top_k"):
        predictor.top_k(np.zeros(len(CLASSES)), 0)


def test_json_records_carry_score_with_probability_as_its_alias(predictor: Predictor):
    record = predictor.predict_long_wave(tone(440, 2.3), 8000, window_s=1.0, top_k=2).to_dict()
    scores = [*record["top_k"], *(s for w in record["windows"] for s in w["top_k"]), *record["segments"]]
    assert scores and all(s["probability"] == s["score"] for s in scores)
    assert record["scores"] == SCORE_NOTES["softmax"]
