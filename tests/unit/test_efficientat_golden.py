"""esclab's port of EfficientAT against EfficientAT's own outputs (``mn04_as_golden.npz`` in ``../shared``).

The file holds, for four 5-s waveforms at 32 kHz, what EfficientAT's code (commit a425fdc,
``AugmentMelSTFT`` in eval mode, ``get_model(width_mult=0.4, head_type="mlp")``, the shared weights
loaded strictly) outputs: the log-mel, the pooled embedding and the 527 AudioSet logits. The front end
must match within 1e-4, the logits within 1e-3, and ``esclab tag``'s sigmoid scores within 1e-3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from esclab.features.frontend import KaldiLogMel
from esclab.models import create_model


@pytest.fixture(scope="module")
def golden(shared_mn04: Path) -> dict[str, np.ndarray]:
    path = shared_mn04.parent / "mn04_as_golden.npz"
    if not path.is_file():
        pytest.skip(f"{path} is not on this disk (the shared folder beside the checkout holds it)")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def mn04_audioset(shared_mn04: Path) -> torch.nn.Module:
    return create_model("mn04", num_classes=527, pretrained=str(shared_mn04)).eval()


def test_front_end_matches_efficientat(golden):
    logmel = KaldiLogMel()(torch.from_numpy(golden["waveform_32k"]))[:, 0].numpy()
    assert logmel.shape == golden["logmel"].shape == (4, 128, 500)
    np.testing.assert_allclose(logmel, golden["logmel"], rtol=0, atol=1e-4)


def test_network_matches_efficientat_on_its_log_mels(golden, mn04_audioset):
    spec = torch.from_numpy(golden["logmel"]).unsqueeze(1)
    with torch.inference_mode():
        embedding = mn04_audioset.forward_features(spec).numpy()
        logits = mn04_audioset(spec).numpy()
    np.testing.assert_allclose(embedding, golden["embedding"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(logits, golden["logits"], rtol=0, atol=1e-3)


def test_waveform_to_logits_matches_efficientat(golden, mn04_audioset):
    with torch.inference_mode():
        logits = mn04_audioset(KaldiLogMel()(torch.from_numpy(golden["waveform_32k"]))).numpy()
    np.testing.assert_allclose(logits, golden["logits"], rtol=0, atol=1e-3)


def test_tagger_scores_match_efficientat_sigmoids(golden, shared_mn04, monkeypatch):
    from esclab.inference.tagging import Tagger

    monkeypatch.setenv("ESCLAB_WEIGHTS", str(shared_mn04.parent))
    tagger = Tagger.from_name("efficientat:mn04_as", download=False)
    expected = 1.0 / (1.0 + np.exp(-golden["logits"].astype(np.float64)))
    for wave, want in zip(golden["waveform_32k"], expected, strict=True):
        tags = tagger.tag_wave(wave, 32000, top_k=527)
        got = np.zeros(527)
        for score in tags.top_k:
            got[tagger.class_names.index(score.label)] = score.score
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
