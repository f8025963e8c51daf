"""Folding BatchNorm into convolutions for inference: same outputs, fewer layers, refused in training mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esclab.models import create_model, fold_batchnorm, prepare_for_inference


def _with_running_stats(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine weights, as after training."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen))
    return model.eval()


@pytest.mark.parametrize("name,kwargs,size,expected", [
    ("paper_cnn", {"channels": [4, 8, 8], "dense_units": [16]}, (32, 40), 3),
    ("mn04", {}, (128, 100), 46),
])
def test_folded_model_gives_the_same_logits(name, kwargs, size, expected):
    model = _with_running_stats(create_model(name, num_classes=5, input_size=size, **kwargs))
    x = torch.randn(3, 1, *size)
    with torch.no_grad():
        before = model(x)
        folded = fold_batchnorm(model)
        after = model(x)
    batchnorms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert folded == expected and batchnorms == 0
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_fold_refuses_a_model_in_training_mode():
    model = create_model("paper_cnn", num_classes=3, input_size=(32, 40), channels=[4, 8, 8], dense_units=[8])
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(model.train())


def test_fold_leaves_a_batchnorm_that_follows_no_convolution():
    model = nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3)).eval()
    assert fold_batchnorm(model) == 0 and isinstance(model[1], nn.BatchNorm2d)


def test_prepare_for_inference_folds_in_place_and_keeps_the_outputs():
    model = _with_running_stats(create_model("paper_cnn", num_classes=4, input_size=(32, 40), channels=[4, 8, 8],
                                             dense_units=[8]))
    x = torch.randn(2, 1, 32, 40)
    with torch.no_grad():
        before = model(x)
        prepared = prepare_for_inference(model.train())  # eval mode is set for the caller
        after = prepared(x)
    assert prepared is model and not prepared.training
    assert prepared.blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_probe_embedding_leaves_the_callers_model_trainable():
    from esclab.train.probe import embed

    model = create_model("paper_cnn_gap", num_classes=3, channels=[4, 8, 8], dense_units=[8])
    embeddings = embed(model, torch.randn(5, 32, 40).numpy())
    assert embeddings.shape == (5, 8)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 3
