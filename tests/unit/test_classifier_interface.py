"""timm's classifier interface on every registered model: ``get_classifier`` is the module on the embedding,
``reset_classifier(n)`` puts one new Linear there, and a bundle rebuilds a reset head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esclab.bundle import load_bundle, save_bundle
from esclab.config import AudioConfig, FeatureConfig
from esclab.models import create_model, list_models
from tests.unit.test_models import build

NETWORKS = [name for name in list_models() if name != "ensemble"]


@pytest.mark.parametrize("name", NETWORKS)
def test_the_classifier_maps_the_embedding_and_resets_to_one_linear(name):
    model, x = build(name)
    model.eval()
    head = model.get_classifier()
    own = {id(p) for p in model.parameters()}
    assert all(id(p) in own for p in head.parameters())  # the model's own head (a slice of it for mn* MLPs)
    with torch.no_grad():
        torch.testing.assert_close(head(model.forward_features(x)), model(x))
    model.reset_classifier(7)
    head = model.get_classifier()
    assert isinstance(head, nn.Linear) and head.weight.shape == (7, model.num_features)
    assert model.num_classes == 7 and model.classifier_reset
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        torch.testing.assert_close(model(x), head(model.forward_features(x)))


def test_a_bundle_rebuilds_a_reset_head(tmp_path):
    torch.manual_seed(0)
    model = create_model("mn04", num_classes=4, head="mlp").eval()
    model.reset_classifier(4)
    path = save_bundle(tmp_path / "model.ckpt", model, "mn04", {"head": "mlp"}, list("abcd"),
                       AudioConfig(sample_rate=32000, duration=1.0),
                       FeatureConfig(kind="kaldi_logmel", n_fft=1024, win_length=800, hop_length=320, fmax=15000.0,
                                     top_db=None, frames=None))
    bundle = load_bundle(path)
    assert isinstance(bundle.model.get_classifier(), nn.Linear)
    x = torch.randn(2, 1, 128, 40)
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(x), model(x))


def test_an_ensemble_has_no_single_head_to_reset():
    model, _ = build("ensemble")
    assert len(model.get_classifier()) == 2
    with pytest.raises(ValueError, match="members"):
        model.reset_classifier(3)
