"""A small Conformer encoder over mel frames, mean-pooled, with a linear head.

Gulati et al. (2020): a conv subsampling front end (two stride-2 3x3 convs, 4x fewer
frames and mels), then blocks of ``x + FFN/2 -> x + MHSA -> x + conv module -> x + FFN/2
-> LayerNorm``. Attention is plain multi-head self-attention without a positional
encoding: the subsampling convs and each block's depthwise conv carry the order
information (as in torchaudio's Conformer).
"""

from __future__ import annotations

import torch
from torch import nn

from esclab.models._base import EscModel
from esclab.models._registry import register_model


class ConvSubsampling(nn.Module):
    """``(B, 1, M, T)`` -> ``(B, T', d_model)`` with ``T' = ((T - 1) // 2 - 1) // 2``."""

    def __init__(self, n_mels: int, d_model: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, d_model, 3, stride=2), nn.ReLU(), nn.Conv2d(d_model, d_model, 3, stride=2), nn.ReLU()
        )
        mels_out = ((n_mels - 1) // 2 - 1) // 2
        if mels_out < 1:
            raise ValueError(f"n_mels={n_mels} is too small for 4x subsampling (need >= 7)")
        self.n_mels = n_mels
        self.proj = nn.Linear(d_model * mels_out, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != self.n_mels:
            raise ValueError(f"expected {self.n_mels} mel bands, got input {tuple(x.shape)}")
        maps = self.conv(x)
        return self.proj(maps.permute(0, 3, 1, 2).flatten(2))


class FeedForward(nn.Sequential):
    """Pre-norm position-wise FFN with Swish, expansion 4."""

    def __init__(self, d_model: int, dropout: float):
        super().__init__(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, 4 * d_model),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(4 * d_model, d_model),
            nn.Dropout(dropout),
        )


class ConvModule(nn.Module):
    """Pre-norm pointwise conv + GLU -> depthwise conv -> BatchNorm -> Swish -> pointwise conv."""

    def __init__(self, d_model: int, kernel_size: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.body = nn.Sequential(
            nn.Conv1d(d_model, 2 * d_model, 1),
            nn.GLU(dim=1),
            nn.Conv1d(d_model, d_model, kernel_size, padding="same", groups=d_model),
            nn.BatchNorm1d(d_model),
            nn.SiLU(),
            nn.Conv1d(d_model, d_model, 1),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, T, D)``."""
        return self.body(self.norm(x).transpose(1, 2)).transpose(1, 2)


class ConformerBlock(nn.Module):
    """Macaron FFN halves around self-attention and the conv module, then LayerNorm."""

    def __init__(self, d_model: int, num_heads: int, kernel_size: int, dropout: float):
        super().__init__()
        self.ff1 = FeedForward(d_model, dropout)
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.attn_dropout = nn.Dropout(dropout)
        self.conv = ConvModule(d_model, kernel_size, dropout)
        self.ff2 = FeedForward(d_model, dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, T, D)``."""
        x = x + 0.5 * self.ff1(x)
        h = self.attn_norm(x)
        x = x + self.attn_dropout(self.attn(h, h, h, need_weights=False)[0])
        x = x + self.conv(x)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


class Conformer(EscModel):
    """Conv subsampling -> Conformer blocks -> mean over frames -> dropout -> linear head.

    Args:
        num_classes: output classes.
        input_size: ``(n_mels, frames)``; the subsampling projection is sized for ``n_mels`` (default 128).
        d_model: model width.
        num_blocks: Conformer blocks.
        num_heads: attention heads (must divide ``d_model``).
        kernel_size: depthwise conv kernel over (subsampled) frames.
        dropout: dropout inside the blocks and before the head.
    """

    def __init__(
        self,
        num_classes: int,
        input_size: tuple[int, int | None] | None = None,
        d_model: int = 144,
        num_blocks: int = 4,
        num_heads: int = 4,
        kernel_size: int = 15,
        dropout: float = 0.1,
    ):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide d_model={d_model}")
        if num_blocks < 1 or kernel_size < 1:
            raise ValueError(f"num_blocks and kernel_size must be >= 1, got {num_blocks}, {kernel_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.subsampling = ConvSubsampling((input_size or self.default_input_size)[0], d_model)
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.Sequential(
            *[ConformerBlock(d_model, num_heads, kernel_size, dropout) for _ in range(num_blocks)]
        )
        self.num_classes = num_classes
        self.num_features = d_model
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.input_dropout(self.subsampling(x))).mean(dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def get_classifier(self) -> nn.Module:
        return self.head[-1]  # after the dropout (the identity in eval mode)

    def _set_classifier(self, head: nn.Module) -> None:
        self.head[-1] = head

    def gradcam_layer(self) -> nn.Module:
        """The last 2-D conv activation (subsampling), ``(B, d_model, M/4, T/4)``."""
        return self.subsampling.conv[-1]


@register_model
def conformer(num_classes: int, **kwargs) -> Conformer:
    """Conformer: d_model 144, 4 blocks, 4 heads, kernel 15, dropout 0.1 (2.8 M parameters at 128 mels);
    set ``d_model``/``num_blocks``/... to size it."""
    return Conformer(num_classes=num_classes, **kwargs)
