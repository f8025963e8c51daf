"""The paper's CNN with attention pooling over its last convolutional feature map.

A 1x1 convolution scores every time-frequency position of the last conv block's output,
a softmax over all positions turns the scores into weights, and the weighted sum of the
feature vectors feeds the paper's dense layers (dropout, L2) and head. The weights are the
model's attention maps, so heatmaps come from the model itself.
"""

from __future__ import annotations

import torch
from torch import nn

from esclab.models._registry import register_model
from esclab.models.cnn import PaperCNN


class AttentionPool2d(nn.Module):
    """``(B, C, H, W)`` -> ``(B, C)``: softmax-weighted sum over the ``H*W`` positions.

    Args:
        channels: feature channels ``C``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.score = nn.Conv2d(channels, 1, kernel_size=1)

    def weights(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, H, W)`` weights summing to 1 over each map."""
        scores = self.score(features).flatten(1)
        return scores.softmax(dim=1).view(features.shape[0], *features.shape[2:])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        w = self.weights(features).unsqueeze(1)
        return (features * w).sum(dim=(2, 3))


class AttentionCNN(PaperCNN):
    """Paper CNN blocks -> attention pooling -> dense layers with dropout -> logits.

    Args:
        num_classes: output classes.
        channels: filters per conv block.
        **kwargs: :class:`PaperCNN`'s ``dense_units``, ``dropout`` and ``l2``.
    """

    def __init__(self, num_classes: int, channels: tuple[int, ...] = (32, 64, 128), **kwargs):
        super().__init__(num_classes, channels=channels, pooling="avg", **kwargs)
        self.pool = AttentionPool2d(channels[-1])

    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, M, T)`` -> ``(B, M', T')`` weights, each map summing to 1 (``M/8, T/8`` for 3 blocks)."""
        return self.pool.weights(self.feature_map(x))


@register_model
def attention_cnn(num_classes: int, **kwargs) -> AttentionCNN:
    """The paper's CNN (32/64/128, dense 256/128, dropout 0.2, L2 0.001) with attention pooling."""
    return AttentionCNN(num_classes=num_classes, **kwargs)
