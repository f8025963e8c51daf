"""The paper's CNN: three conv blocks (32/64/128), two dense layers, softmax head.

Each block is Conv3x3 (stride 1, same padding) -> BatchNorm -> ReLU -> MaxPool 2x2.
The dense layers use dropout 0.2 and an L2 penalty of 0.001 on their weights
(Keras ``kernel_regularizer=l2(0.001)`` semantics: ``0.001 * sum(w**2)`` added to the loss).
"""

from __future__ import annotations

import torch
from torch import nn

from esclab.models._base import EscModel
from esclab.models._registry import register_model


def conv_block(in_ch: int, out_ch: int, pool_first: bool = False) -> nn.Sequential:
    """Conv3x3 stride 1 -> BatchNorm -> ReLU -> MaxPool 2x2.

    With ``pool_first`` the max-pool runs before the ReLU: the same function (a max commutes with any
    non-decreasing map), with the ReLU and its backward pass on a quarter of the values. The weights keep
    their places (conv at 0, BatchNorm at 1) either way.
    """
    act, pool = nn.ReLU(inplace=True), nn.MaxPool2d(2)
    conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_ch), *((pool, act) if pool_first else (act, pool)))


class PaperCNN(EscModel):
    """Conv blocks -> pooling -> dense layers with dropout -> logits.

    Args:
        num_classes: output classes.
        channels: filters per conv block.
        dense_units: width of each hidden dense layer.
        dropout: dropout after each dense layer.
        l2: L2 coefficient on the dense layers' weights.
        pooling: ``"flatten"`` as in the paper (needs ``input_size``), or ``"avg"``
            (global average pooling, input-size independent).
        input_size: ``(n_mels, frames)`` the flatten layer is sized for (``None``: 128 x 215).
    """

    def __init__(
        self,
        num_classes: int,
        channels: tuple[int, ...] = (32, 64, 128),
        dense_units: tuple[int, ...] = (256, 128),
        dropout: float = 0.2,
        l2: float = 0.001,
        pooling: str = "flatten",
        input_size: tuple[int, int | None] | None = None,
    ):
        super().__init__()
        input_size = tuple(input_size or self.default_input_size)
        if pooling not in ("flatten", "avg"):
            raise ValueError(f"pooling must be 'flatten' or 'avg', got {pooling!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.num_classes = num_classes
        self.l2 = l2
        self.pooling = pooling
        widths = (1, *channels)
        # All but the last block pool before the ReLU (cheaper, same outputs); the last keeps its full-resolution
        # ReLU map, which Grad-CAM reads.
        last = len(channels) - 1
        self.blocks = nn.Sequential(*[conv_block(a, b, pool_first=i < last)
                                      for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True))])
        if pooling == "flatten":
            m, t = input_size
            if t is None:
                raise ValueError("the flatten layer needs a fixed number of frames (features.frames), got None; "
                                 "use paper_cnn_gap for variable-length input")
            for _ in channels:
                m, t = m // 2, t // 2
            if m < 1 or t < 1:
                raise ValueError(f"input_size {input_size} is too small for {len(channels)} pooling stages")
            flat = channels[-1] * m * t
            self.pool: nn.Module = nn.Flatten()
        else:
            flat = channels[-1]
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        layers: list[nn.Module] = []
        self.dense: list[nn.Linear] = []
        width = flat
        for units in dense_units:
            linear = nn.Linear(width, units)
            self.dense.append(linear)
            layers += [linear, nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = units
        self.hidden = nn.Sequential(*layers)
        self.num_features = width
        self.classifier = nn.Linear(width, num_classes)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, M, T)`` -> last conv map ``(B, C, M/8, T/8)``."""
        return self.blocks(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.pool(self.feature_map(x)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def _set_classifier(self, head: nn.Module) -> None:
        self.classifier = head

    def gradcam_layer(self) -> nn.Module:
        return self.blocks[-1][2]  # ReLU of the last block, before pooling

    def l2_penalty(self) -> tuple[float, list[nn.Parameter]]:
        """Keras ``kernel_regularizer=l2(l2)`` on the dense layers' and the classifier's weights (not biases)."""
        return self.l2, [m.weight for m in self.dense] + [self.classifier.weight]


@register_model
def paper_cnn(num_classes: int, **kwargs) -> PaperCNN:
    """The paper's CNN: 32/64/128 conv blocks, flatten, dense 256/128, dropout 0.2, L2 0.001."""
    return PaperCNN(num_classes=num_classes, **kwargs)


@register_model
def paper_cnn_gap(num_classes: int, **kwargs) -> PaperCNN:
    """The paper's CNN with global average pooling in place of flatten (input-size independent)."""
    return PaperCNN(num_classes=num_classes, pooling="avg", **kwargs)
