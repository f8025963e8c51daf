"""Export: the ONNX and TorchScript copies match PyTorch within 1e-4 and run with a dynamic batch."""

from __future__ import annotations

import io
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
from tests.unit.test_inference import write_tiny_bundle


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bundle(tmp_path_factory.mktemp("bundle") / "model.ckpt")


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
