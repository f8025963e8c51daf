"""EfficientAT's mn04 through cross-validation on the tiny real fixture (9 ESC-50 clips, folds 1-3):
the linear probe (cached embeddings, bundles that reproduce their predictions, ONNX parity of the
waveform graph) and one epoch of fine-tuning (no validation split: the last epoch is tested)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch.hub

from esclab import weights
from esclab.audio import native_rate, pad_or_trim
from esclab.bundle import load_bundle
from esclab.config import ExperimentConfig, load_config, load_config_file
from esclab.export import export_bundle
from esclab.inference.predictor import Predictor
from esclab.train import probe
from esclab.train.cv import run_cv
from tests.conftest import DATA

MINI = DATA / "esc50_mini"
FOLDS = (1, 2, 3)


def tiny(experiment: str, tmp: Path, *extra: str) -> ExperimentConfig:
    return load_config(f"configs/experiment/{experiment}.yaml",
                       [f"data.root={MINI}", "data.download=false", f"features.cache_dir={tmp / 'cache'}",
                        "train.progress_bar=false", "train.batch_size=4", *extra])


def assert_bundle_reproduces_predictions(fold_dir: Path) -> None:
    """The fold's bundle, fed the test clips' audio, gives the probabilities its ``predictions.csv`` reports."""
    predictor = Predictor.from_checkpoint(fold_dir / "model.ckpt")
    predictions = pd.read_csv(fold_dir / "predictions.csv")
    clips = [pad_or_trim(predictor.load(path), predictor.clip_samples) for path in predictions["path"]]
    expected = predictions[[f"p_{i}" for i in range(len(predictor.class_names))]].to_numpy()
    np.testing.assert_allclose(predictor.probabilities(clips), expected, atol=1e-4)


@pytest.fixture(scope="module")
def offline(shared_mn04: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The shared weights only (every test here skips without them): an empty user cache, no ``$ESCLAB_WEIGHTS``,
    no download."""

    def no_network(url: str, *args, **kwargs) -> None:
        raise AssertionError(f"a test tried to download {url}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch")))
        mp.delenv(weights.ENV_VAR, raising=False)
        mp.setattr(torch.hub, "download_url_to_file", no_network)
        yield


@dataclass
class ProbeRun:
    tmp: Path
    cfg: ExperimentConfig
    out: Path


@pytest.fixture(scope="module")
def probe_run(offline, tmp_path_factory: pytest.TempPathFactory) -> ProbeRun:
    tmp = tmp_path_factory.mktemp("probe")
    cfg = tiny("mn04_probe", tmp, "data.folds=[1,2,3]")
    run_cv(cfg, tmp / "run", progress=False)
    return ProbeRun(tmp, cfg, tmp / "run")


def test_probe_writes_every_fold(probe_run: ProbeRun):
    assert probe_run.cfg.train.mode == "probe" and probe_run.cfg.model.kwargs["head"] == "linear"
    for fold in FOLDS:
        fold_dir = probe_run.out / f"fold_{fold}"
        metrics = json.loads((fold_dir / "metrics.json").read_text())
        assert metrics["checkpoint_rule"] == "linear probe (no epochs)"
        assert metrics["n_train"] == 6 and metrics["n_test"] == 3 and metrics["probe_c"] == 1.0
        assert metrics["model"] == "mn04" and metrics["data_sample_rate"] == 22050
        assert (fold_dir / "model.ckpt").is_file()
        predictions = pd.read_csv(fold_dir / "predictions.csv")
        assert len(predictions) == 3 and set(predictions["fold"]) == {fold}
    assert (probe_run.out / "summary.json").is_file()


def test_probe_bundle_reproduces_its_predictions_from_the_files(probe_run: ProbeRun):
    for fold in FOLDS:
        fold_dir = probe_run.out / f"fold_{fold}"
        assert_bundle_reproduces_predictions(fold_dir)


def test_training_writes_numbers_and_evaluate_draws_the_pictures(probe_run: ProbeRun):
    from esclab.evaluate.run_figures import draw_run_figures

    assert (probe_run.out / "confusion_matrix.csv").is_file()
    assert not (probe_run.out / "confusion_matrix.png").exists()  # run_cv draws nothing
    assert draw_run_figures(probe_run.out) == [probe_run.out / "confusion_matrix.png"]
    assert (probe_run.out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probe_bundle_records_the_data_band(probe_run: ProbeRun):
    bundle = load_bundle(probe_run.out / "fold_1" / "model.ckpt")
    rate = native_rate(next((MINI / "audio").glob("*.ogg")))
    assert rate == 22050 < bundle.audio.sample_rate == 32000
    assert bundle.audio.band_rate == rate
    assert bundle.features.kind == "kaldi_logmel" and bundle.model_kwargs["head"] == "linear"


def test_probe_folds_choose_their_embedding_on_their_training_folds(probe_run: ProbeRun):
    candidates = [{"head": "linear", **change} for change in probe_run.cfg.train.probe_grid]
    assert len(candidates) == 3
    for fold in FOLDS:
        metrics = json.loads((probe_run.out / f"fold_{fold}" / "metrics.json").read_text())
        scores = metrics["probe_inner_accuracy"]
        assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
        assert metrics["model_kwargs"] == candidates[int(np.argmax(scores))]  # the first best inner score
        bundle = load_bundle(probe_run.out / f"fold_{fold}" / "model.ckpt")
        assert bundle.model_kwargs == metrics["model_kwargs"]
        assert bundle.model.num_features == {(): 384, (13, 15): 1024, (11, 13, 15): 1120}[bundle.model.taps]


def test_second_probe_run_reuses_the_embedding_cache(probe_run: ProbeRun, monkeypatch):
    cached = sorted((probe_run.tmp / "embeddings").glob("*.npz"))
    assert len(cached) == 3  # one per candidate embedding
    mtimes = [p.stat().st_mtime_ns for p in cached]

    def no_embedding(*args, **kwargs):
        raise AssertionError("the second run embedded the clips again instead of reading the cache")

    monkeypatch.setattr(probe, "embed", no_embedding)
    result = run_cv(probe_run.cfg, probe_run.tmp / "run2", progress=False)
    assert [p.stat().st_mtime_ns for p in cached] == mtimes
    assert sorted((probe_run.tmp / "embeddings").glob("*.npz")) == cached
    first = json.loads((probe_run.out / "summary.json").read_text())
    assert result.summary["accuracy_mean"] == pytest.approx(first["accuracy_mean"])


@pytest.mark.slow  # the torch.export-based ONNX exporter takes ~30 s on 2 busy cores
def test_onnx_waveform_export_matches_pytorch(probe_run: ProbeRun, tmp_path):
    """Front-end parity of the exported ONNX: pre-emphasis, STFT and Kaldi mels inside the graph."""
    bundle = load_bundle(probe_run.out / "fold_1" / "model.ckpt")
    result = export_bundle(bundle, tmp_path / "mn04_probe.onnx", "onnx", waveform=True)
    assert result.path.is_file() and result.input_name == "waveform"
    assert result.input_shape == (2, 160000)
    assert result.max_abs_diff <= 1e-3


# The recipe's bf16 autocast is ~5x slower than fp32 on a CPU without bf16 units; the rule does not depend on it.
@pytest.mark.parametrize("precision", ["32", pytest.param("bf16-mixed", marks=pytest.mark.slow)])
def test_finetune_one_epoch_tests_the_last_epoch(offline, tmp_path, precision):
    cfg = tiny("mn04_finetune", tmp_path, "data.folds=[3]", "train.max_epochs=1", "augment.bank_size=1",
               f"train.precision={precision}")
    assert cfg.data.val_fraction == 0.0 and cfg.model.pretrained == "efficientat:mn04_as"
    run_cv(cfg, tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "fold_3" / "metrics.json").read_text())
    assert metrics["checkpoint_rule"] == "last epoch" and metrics["tested_epoch"] == 1
    assert metrics["n_val"] == 0 and metrics["n_train"] == 6 and metrics["n_test"] == 3
    assert metrics["band_rate"] == 22050
    assert load_bundle(tmp_path / "run" / "fold_3" / "model.ckpt").audio.band_rate == 22050


def test_finetune_from_cached_frozen_layers_and_the_probe_head(offline, tmp_path, monkeypatch):
    """The first five layers frozen (their outputs cached for the clean clips and the bank), the head
    started from the training split's probe (LP-FT); the bundle is the whole network and reproduces the
    fold's predictions from the audio; a second run reads the frozen outputs from the cache."""
    from esclab.train import frozen

    extra = ("data.folds=[3]", "train.max_epochs=1", "augment.bank_size=1", "model.kwargs.head=linear",
             "model.kwargs.frozen_blocks=5", "train.head_init=probe", "train.cache_frozen=true",
             "augment.spectrogram={}", "augment.spectrogram.time_roll.max_fraction=0.05", "augment.level_mix_p=0",
             "augment.waveform.gain.min_db=-3.0", "augment.waveform.gain.max_db=3.0")
    cfg = tiny("mn04_finetune", tmp_path, *extra)
    run_cv(cfg, tmp_path / "run", progress=False)
    fold_dir = tmp_path / "run" / "fold_3"
    metrics = json.loads((fold_dir / "metrics.json").read_text())
    assert metrics["frozen_blocks"] == 5 and metrics["head_init"] == "probe"
    assert metrics["head_init_train_accuracy"] == 1.0 and metrics["n_train"] == 6
    cached = sorted((tmp_path / "frozen").glob("*.npy"))
    assert len(cached) == 2  # the clean clips and the one bank variant
    assert np.load(cached[0]).shape[1:] == (16, 16, 63)
    assert_bundle_reproduces_predictions(fold_dir)

    def no_frozen_pass(*args, **kwargs):
        raise AssertionError("the second run ran the frozen layers again instead of reading the cache")

    monkeypatch.setattr(frozen, "run_frozen", no_frozen_pass)
    mtimes = [p.stat().st_mtime_ns for p in cached]
    run_cv(cfg, tmp_path / "run2", progress=False)
    assert [p.stat().st_mtime_ns for p in cached] == mtimes
    again = json.loads((tmp_path / "run2" / "fold_3" / "metrics.json").read_text())
    assert again["accuracy"] == metrics["accuracy"]


def test_finetune_distilled_from_the_probe_keeps_pretrained_batchnorm_statistics(offline, tmp_path):
    """The shipped fine-tune (mn04_finetune_distill): the teacher is the training split's probe, fitted before
    training and named in metrics.json; every BatchNorm of the tested network still has the pretrained
    running statistics; the bundle holds the fine-tune alone and reproduces the fold's predictions."""
    from esclab.models import create_model

    cfg = tiny("mn04_finetune_distill", tmp_path, "data.folds=[3]", "train.max_epochs=1", "augment.bank_size=1")
    assert cfg.train.freeze_bn_stats and cfg.train.distill_weight == 0.5 and cfg.train.cache_frozen
    run_cv(cfg, tmp_path / "run", progress=False)
    fold_dir = tmp_path / "run" / "fold_3"
    metrics = json.loads((fold_dir / "metrics.json").read_text())
    assert metrics["distill_teacher"] == "probe" and metrics["distill_teacher_train_accuracy"] == 1.0
    assert metrics["checkpoint_rule"] == "last epoch" and metrics["frozen_blocks"] == 13
    bundle = load_bundle(fold_dir / "model.ckpt")
    pretrained = create_model("mn04", num_classes=50, pretrained="efficientat:mn04_as", head="linear").state_dict()
    tuned = bundle.model.state_dict()
    assert not any("teacher" in key for key in tuned)
    stats = [k for k in tuned if k.endswith("running_mean") or k.endswith("running_var")]
    assert stats and all(torch.equal(tuned[k], pretrained[k]) for k in stats)
    trained = [k for k in tuned if k.startswith("features.16.") and k.endswith("weight")]
    assert any(not torch.equal(tuned[k], pretrained[k]) for k in trained)  # the last layers did learn
    assert_bundle_reproduces_predictions(fold_dir)


LPFT_TINY = ("data.folds=[3]", "train.max_epochs=2", "train.average_from_epoch=0", "augment.bank_size=1")


@pytest.fixture(scope="module")
def lpft_fold(offline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fold 3 of the shipped LP-FT fine-tune on the tiny fixture (two epochs, both averaged): its folder."""
    tmp = tmp_path_factory.mktemp("lpft")
    cfg = tiny("mn04_finetune_lpft", tmp, *LPFT_TINY)
    assert cfg.train.head_init == "probe" and cfg.train.weight_averaging == "swa" and cfg.train.cache_frozen
    run_cv(cfg, tmp / "run", progress=False)
    return tmp / "run" / "fold_3"


def test_lpft_finetune_starts_at_the_probe_and_tests_the_averaged_network(lpft_fold: Path):
    """The shipped fine-tune (mn04_finetune_lpft, which mn04_finetune_ls10 extends): eleven layers frozen, a head
    on layers 11, 13, 15 and the last that starts at the training split's probe, pretrained BatchNorm statistics,
    and the SWA average as the tested network; metrics.json says so, and the bundle reproduces the fold."""
    from esclab.models import create_model

    fold_dir = lpft_fold
    metrics = json.loads((fold_dir / "metrics.json").read_text())
    assert metrics["head_init"] == "probe" and metrics["frozen_blocks"] == 11
    assert (metrics["weight_averaging"], metrics["averaged_from_epoch"], metrics["averaged_updates"]) == ("swa", 1, 2)
    assert metrics["checkpoint_rule"] == "last epoch" and metrics["tested_epoch"] == 2
    bundle = load_bundle(fold_dir / "model.ckpt")
    assert bundle.model.taps == (11, 13, 15) and bundle.model.pool == "meanmax"
    pretrained = create_model("mn04", num_classes=50, pretrained="efficientat:mn04_as", head="linear").state_dict()
    tuned = bundle.model.state_dict()
    stats = [k for k in tuned if k.endswith("running_mean") or k.endswith("running_var")]
    assert stats and all(torch.equal(tuned[k], pretrained[k]) for k in stats)
    frozen = [k for k in tuned if k.startswith("features.10.") and k.endswith("weight")]
    assert frozen and all(torch.equal(tuned[k], pretrained[k]) for k in frozen)
    assert_bundle_reproduces_predictions(fold_dir)


def test_wise_ft_tests_the_interpolation_between_the_probe_and_the_trained_network(lpft_fold: Path, tmp_path):
    """``train.wise_alpha`` (WiSE-FT): a = 0 tests the network fitting started from (the pretrained network with
    the probe's head), a = 1 the trained one (the LP-FT run itself), and a = 0.5 exactly their midpoint, with the
    same training; the bundle holds the tested network and metrics.json names a."""
    runs = {}
    for alpha in (0.0, 0.5, 1.0):
        fold_dir = lpft_fold if alpha == 1 else tmp_path / f"a{alpha}" / "fold_3"
        if alpha < 1:
            cfg = tiny("mn04_finetune_lpft", tmp_path, *LPFT_TINY, f"train.wise_alpha={alpha}")
            run_cv(cfg, fold_dir.parent, progress=False)
            assert_bundle_reproduces_predictions(fold_dir)
        runs[alpha] = (json.loads((fold_dir / "metrics.json").read_text()),
                       load_bundle(fold_dir / "model.ckpt").model.state_dict())
    assert runs[0.5][0]["wise_alpha"] == 0.5 and "wise_alpha" not in runs[1.0][0]
    start, mid, end = runs[0.0][1], runs[0.5][1], runs[1.0][1]
    moved = [k for k in end if end[k].is_floating_point() and not torch.equal(start[k], end[k])]
    assert moved, "two epochs changed no weight"
    for k in moved:
        torch.testing.assert_close(mid[k], (start[k] + end[k]) / 2, atol=1e-6, rtol=1e-5)
    assert all(torch.equal(start[k], end[k]) for k in end if k.startswith("features.10."))


def test_ensemble_of_probe_and_finetune_is_what_its_bundles_predict(probe_run: ProbeRun, tmp_path):
    """``esclab ensemble``: per fold the mean of the members' probabilities, and a bundle holding both
    networks that reproduces the ensemble's predictions from the audio (deployed = reported)."""
    from esclab.train.ensemble import EnsembleError, ensemble_runs

    cfg = tiny("mn04_finetune", tmp_path, "data.folds=[1,2,3]", "train.max_epochs=1")
    run_cv(cfg, tmp_path / "fit", progress=False)
    result = ensemble_runs([probe_run.out, tmp_path / "fit"], tmp_path / "ens", weights=[1.0, 3.0])
    assert sorted(result.fold_metrics) == list(FOLDS)
    for fold in FOLDS:
        members = [pd.read_csv(run / f"fold_{fold}" / "predictions.csv") for run in (probe_run.out, tmp_path / "fit")]
        ours = pd.read_csv(tmp_path / "ens" / f"fold_{fold}" / "predictions.csv")
        columns = [f"p_{i}" for i in range(3)]
        expected = (members[0][columns].to_numpy() + 3 * members[1][columns].to_numpy()) / 4
        np.testing.assert_allclose(ours[columns].to_numpy(), expected, atol=1e-5)
        predictor = Predictor.from_checkpoint(tmp_path / "ens" / f"fold_{fold}" / "model.ckpt")
        clips = [pad_or_trim(predictor.load(path), predictor.clip_samples) for path in ours["path"]]
        np.testing.assert_allclose(predictor.probabilities(clips), ours[columns].to_numpy(), atol=1e-4)
    saved = load_config_file(tmp_path / "ens" / "config.yaml")
    assert saved.train.mode == "ensemble" and saved.model.name == "ensemble"
    assert [m["mode"] for m in saved.model.kwargs["members"]] == ["probe", "fit"]
    with pytest.raises(EnsembleError, match="already holds a run"):
        ensemble_runs([probe_run.out, tmp_path / "fit"], tmp_path / "ens")
    from esclab.evaluate.report import ReportOptions, build_report

    report = build_report(tmp_path / "ens", options=ReportOptions(robustness_clips=2, max_gallery=2, max_heatmaps=2))
    assert report.html.is_file() and "mn04_probe+mn04_finetune" in report.html.read_text()


def test_run_cv_leaves_the_process_thread_count_as_it_found_it(probe_run: ProbeRun):
    assert probe_run.cfg.train.num_threads == 2
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_cv(probe_run.cfg, probe_run.tmp / "run_threads", progress=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
