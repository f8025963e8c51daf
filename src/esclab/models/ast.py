"""Audio Spectrogram Transformer (Gong et al., 2021) from ``transformers``, built for our input size.

Overlapping 16x16 patches (stride 10 in frequency and time), [CLS] and distillation
tokens, a ViT encoder; the pooled output is the mean of the two tokens, followed by
transformers' LayerNorm + linear head. ``transformers`` takes ``(B, T, M)``; this model
takes esclab's ``(B, 1, M, T)`` and transposes.

Pretrained weights (``pretrained: FOLDER`` from ``save_pretrained``, or
``hf:MIT/ast-finetuned-audioset-10-10-0.4593`` online) come through
:meth:`AST.transformers_state_dict`, which interpolates the patch position grid
(bilinear over frequency x time) when our input size differs from the checkpoint's.
AudioSet checkpoints were trained on 16 kHz, 128-mel, 10 ms-hop Kaldi fbanks scaled as
``(x + 4.27) / (2 * 4.57)``; feed similar features when fine-tuning them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from esclab.models._base import EscModel
from esclab.models._registry import register_model

if TYPE_CHECKING:  # transformers takes seconds to import: only an AST being built pays for it
    from transformers import ASTConfig

_BASE_PREFIX = "ast.audio_spectrogram_transformer."


class AST(EscModel):
    """transformers' ``ASTForAudioClassification`` on ``(B, 1, M, T)`` input.

    Args:
        num_classes: output classes.
        input_size: ``(n_mels, frames)`` of the input; the position grid is sized for it.
        hidden_size: token width.
        num_layers: transformer layers.
        num_heads: attention heads.
        intermediate_size: MLP width (default ``4 * hidden_size``).
        patch_size: square patch side.
        stride: patch stride in frequency and time (10 overlaps patches by 6).
        dropout: hidden and attention dropout.
    """

    head_prefixes = ("ast.classifier.",)  # transformers' classification head (LayerNorm + Linear)

    def __init__(
        self,
        num_classes: int,
        input_size: tuple[int, int | None] | None = None,
        hidden_size: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        intermediate_size: int | None = None,
        patch_size: int = 16,
        stride: int = 10,
        dropout: float = 0.0,
    ):
        super().__init__()
        n_mels, frames = input_size = tuple(input_size or self.default_input_size)
        if frames is None:
            raise ValueError("AST's position grid needs a fixed number of frames (features.frames), got None")
        if min(n_mels, frames) < patch_size:
            raise ValueError(
                f"input_size {tuple(input_size)} is smaller than one {patch_size}x{patch_size} patch"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        from transformers import ASTConfig, ASTForAudioClassification

        self.config = ASTConfig(
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            intermediate_size=intermediate_size or 4 * hidden_size,
            patch_size=patch_size,
            frequency_stride=stride,
            time_stride=stride,
            num_mel_bins=n_mels,
            max_length=frames,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            num_labels=num_classes,
        )
        self.ast = ASTForAudioClassification(self.config)
        self.input_size = (n_mels, frames)
        self.num_classes = num_classes
        self.num_features = hidden_size

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.input_size:
            raise ValueError(
                f"AST was built for (B, 1, {self.input_size[0]}, {self.input_size[1]}) input, "
                f"got {tuple(x.shape)}; set the model's input_size to the features' size"
            )
        return self.ast.audio_spectrogram_transformer(input_values=x[:, 0].transpose(1, 2)).pooler_output

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.ast.classifier(features)

    def get_classifier(self) -> nn.Module:
        return self.ast.classifier  # transformers' LayerNorm + Linear

    def _set_classifier(self, head: nn.Module) -> None:
        self.ast.classifier = head

    def transformers_state_dict(self, name_or_path: str) -> dict[str, torch.Tensor]:
        """The encoder weights of a transformers AST checkpoint, keyed and sized for this model.

        Args:
            name_or_path: a ``save_pretrained`` folder or a hub name.

        Returns:
            A state dict with this model's key names; the position embeddings are
            interpolated to this model's patch grid. The checkpoint's head is left out.
        """
        from transformers import ASTModel

        source = ASTModel.from_pretrained(name_or_path)
        state = source.state_dict()
        key = "embeddings.position_embeddings"
        state[key] = interpolate_position_grid(state[key], patch_grid(source.config), patch_grid(self.config))
        return {_BASE_PREFIX + k: v for k, v in state.items()}


def patch_grid(config: ASTConfig) -> tuple[int, int]:
    """``(frequency, time)`` patch counts of an AST config."""
    freq = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    time = (config.max_length - config.patch_size) // config.time_stride + 1
    return freq, time


def interpolate_position_grid(
    pos: torch.Tensor, source: tuple[int, int], target: tuple[int, int]
) -> torch.Tensor:
    """Resize ``(1, 2 + F*T, D)`` position embeddings from grid ``source`` to ``target`` (tokens kept).

    Patches are frequency-major (index ``f * T + t``), as transformers flattens them.
    """
    if source == target:
        return pos
    tokens, grid = pos[:, :2], pos[:, 2:]
    dim = grid.shape[-1]
    grid = grid.reshape(1, *source, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=target, mode="bilinear", align_corners=False)
    return torch.cat([tokens, grid.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)


@register_model
def ast_tiny(num_classes: int, **kwargs) -> AST:
    """AST with a DeiT-tiny-sized encoder (width 192, 4 layers, 3 heads): a CPU-friendly default."""
    return AST(num_classes, **{"hidden_size": 192, "num_layers": 4, "num_heads": 3, **kwargs})


@register_model
def ast_base(num_classes: int, **kwargs) -> AST:
    """AST-Base (width 768, 12 layers, 12 heads): the size of the published AudioSet checkpoints."""
    return AST(num_classes, **kwargs)
