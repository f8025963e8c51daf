"""Heatmaps use the model interface only: attention maps where a model has them, else Grad-CAM."""

from __future__ import annotations

import torch
from torch import nn

from esclab.evaluate.heatmaps import class_heatmap, gradcam
from esclab.models import EscModel, create_model

TINY = {"channels": [4, 8, 8], "dense_units": [16]}


def test_gradcam_matches_its_definition():
    torch.manual_seed(0)
    model = create_model("paper_cnn", num_classes=3, input_size=[32, 48], **TINY).eval()
    x = torch.randn(2, 1, 32, 48)
    target = torch.tensor([0, 2])
    cam = gradcam(model, model.gradcam_layer(), x, target)
    # PaperCNN's forward split at its Grad-CAM layer (the last block's ReLU, before its max-pool)
    activation = model.blocks[-1][:3](model.blocks[:-1](x))
    logits = model.forward_head(model.hidden(model.pool(model.blocks[-1][3](activation))))
    grad = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), activation)[0]
    expected = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * activation).sum(dim=1))
    torch.testing.assert_close(cam, expected.detach())
    assert all(p.grad is None for p in model.parameters())


def test_class_heatmap_is_gradcam_for_a_cnn_scaled_to_the_input():
    model = create_model("paper_cnn", num_classes=3, input_size=[32, 48], **TINY).eval()
    heat, method = class_heatmap(model, torch.randn(2, 1, 32, 48), torch.tensor([1, 1]))
    assert method == "Grad-CAM"
    assert heat.shape == (2, 32, 48)
    assert heat.min() >= 0 and heat.max() <= 1


def test_class_heatmap_prefers_attention_maps():
    model = create_model("attention_cnn", num_classes=3, **TINY).eval()
    heat, method = class_heatmap(model, torch.randn(1, 1, 32, 48), torch.tensor([0]))
    assert method == "attention"
    assert heat.shape == (1, 32, 48)


class _Plain(EscModel):
    num_classes = 2
    num_features = 2

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2))[:, :4]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


def test_class_heatmap_without_attention_or_conv_layer():
    assert class_heatmap(_Plain(), torch.randn(1, 1, 8, 8), torch.tensor([0])) == (None, "none")
