"""Export: the ONNX and TorchScript copies match PyTorch within 1e-4 and run with a dynamic batch."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from esclab.bundle import Bundle, load_bundle
from esclab.cli import main
from esclab.export import export_bundle
from tests.conftest import tone


@pytest.fixture(scope="module")
def bundle(bundle_path: Path) -> Bundle:
    return load_bundle(bundle_path)


@pytest.fixture(scope="module")
def cli_export(bundle_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``esclab export CKPT --format onnx --out FILE``: the file and what the command printed."""
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    with redirect_stdout(io.StringIO()) as printed:
        assert main(["export", str(bundle_path), "--format", "onnx", "--out", str(out)]) == 0
    return out, printed.getvalue()


def test_cli_export_prints_the_parity_check(cli_export: tuple[Path, str]):
    out, printed = cli_export
    assert out.is_file() and "onnxruntime vs PyTorch" in printed and "max |diff|" in printed
    assert float(printed.rsplit("=", 1)[1]) <= 1e-4


def test_export_writes_what_a_runtime_needs_beside_the_graph(cli_export: tuple[Path, str], bundle: Bundle):
    out, printed = cli_export
    facts = json.loads(out.with_name("model.onnx.json").read_text())
    assert str(out.with_name("model.onnx.json")) in printed
    assert facts["class_names"] == bundle.class_names and facts["output"] == "logits"
    assert facts["audio"]["sample_rate"] == bundle.audio.sample_rate
    assert facts["reject_below"] == bundle.reject_below  # None: this tiny bundle was never calibrated


def test_onnx_matches_pytorch_on_log_mel_input(bundle: Bundle, cli_export: tuple[Path, str]):
    session = ort.InferenceSession(str(cli_export[0]), providers=["CPUExecutionProvider"])
    waves = torch.from_numpy(np.stack([tone(f, 1.0) for f in (200, 700, 1500, 3000, 3500)]))
    logmel = bundle.frontend[0](waves)  # the un-standardised log-mel: standardisation is in the graph
    (logits,) = session.run(["logits"], {"logmel": logmel.numpy()})
    assert logits.shape == (5, 3)  # exported with a batch of 2: the batch dimension is dynamic
    np.testing.assert_allclose(logits, bundle.logits(waves).numpy(), atol=1e-4)


def test_onnx_waveform_graph_includes_the_front_end(bundle: Bundle, tmp_path: Path):
    result = export_bundle(bundle, tmp_path / "wave.onnx", waveform=True)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    waves = torch.from_numpy(np.stack([tone(440, 1.0), np.zeros(8000, np.float32)]))
    (logits,) = session.run(["logits"], {"waveform": waves.numpy()})
    np.testing.assert_allclose(logits, bundle.logits(waves).numpy(), atol=1e-4)


def test_torchscript_matches_pytorch(bundle: Bundle, tmp_path: Path):
    result = export_bundle(bundle, tmp_path / "model.pt", fmt="torchscript")
    assert result.max_abs_diff <= 1e-4 and result.path.stat().st_size > 0


def test_an_ensemble_bundle_exports_and_predicts_as_one_model(tmp_path: Path):
    """An ensemble run's bundle (two members) exports to ONNX with the same outputs as in PyTorch."""
    from esclab.bundle import save_bundle
    from esclab.config import AudioConfig, FeatureConfig
    from esclab.inference.predictor import Predictor
    from esclab.models import create_model

    torch.manual_seed(0)
    members = [{"name": "paper_cnn", "kwargs": {"channels": [4, 8, 8], "dense_units": [8]}},
               {"name": "paper_cnn", "kwargs": {"channels": [4, 4, 8], "dense_units": [8]}}]
    model = create_model("ensemble", num_classes=3, input_size=(32, 60), members=members, weights=[1.0, 2.0]).eval()
    path = save_bundle(tmp_path / "model.ckpt", model, "ensemble", {"members": members, "weights": [1.0, 2.0]},
                       ["a", "b", "c"], AudioConfig(sample_rate=8000, duration=1.0),
                       FeatureConfig(n_mels=32, n_fft=256, hop_length=128, frames=60))
    bundle = load_bundle(path)
    waves = torch.from_numpy(np.stack([tone(440, 1.0), tone(1500, 1.0)]))
    with torch.no_grad():
        parts = [torch.softmax(m(bundle.frontend(waves)), dim=1) for m in bundle.model.members]
    torch.testing.assert_close(torch.softmax(bundle.logits(waves), dim=1), (parts[0] + 2 * parts[1]) / 3)
    result = export_bundle(bundle, tmp_path / "ensemble.onnx", waveform=True)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"waveform": waves.numpy()})
    np.testing.assert_allclose(logits, bundle.logits(waves).numpy(), atol=1e-4)
    probabilities = Predictor.from_checkpoint(path).probabilities([w.numpy() for w in waves])
    np.testing.assert_allclose(probabilities, torch.softmax(bundle.logits(waves), dim=1).numpy(), atol=1e-5)
