"""VGGish: the AudioSet VGG embedding network, framed over a clip, mean-pooled, with a new head.

VGGish embeds 0.96 s patches of a 16 kHz, 64-band log-mel spectrogram (25 ms window,
10 ms hop, 125-7500 Hz), i.e. 96 frames x 64 mels, into 128-d vectors. This model cuts a
``(B, 1, 64, T)`` spectrogram into ``T // 96`` non-overlapping patches (a tail shorter
than a patch is dropped, as VGGish does), embeds each patch, averages the embeddings over
the clip and classifies the average.

Module names and layer order follow the public PyTorch port (harritaylor/torchvggish:
``features.{0,3,6,8,11,13}``, ``embeddings.{0,2,4}``), so its state dict loads with
``pretrained: vggish-10086976.pth``; patches enter the network time-major
``(N, 1, 96, 64)`` and the last conv map is flattened (time, mel, channel) as there.
The 128-d embedding layer is linear, as in the TensorFlow original.

Front-end caveat: VGGish was trained on ``log(mel magnitude + 0.01)``; esclab's features
are ``power_to_db`` (about 8.7x that scale, shifted per clip by ``ref=max``). With
pretrained weights, standardise the features (``features.standardize: true``) and fine-tune.
"""

from __future__ import annotations

import torch
from torch import nn

from esclab.models._base import EscModel
from esclab.models._registry import register_model

PATCH_FRAMES = 96
N_MELS = 64


def _vgg_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 1
    for spec in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, spec, 3, padding=1), nn.ReLU(inplace=True)]
            in_ch = spec
    return nn.Sequential(*layers)


class VGGish(EscModel):
    """VGGish patch embeddings -> mean over patches -> dropout -> linear head.

    Args:
        num_classes: output classes.
        dropout: dropout before the head.
        input_size: ``(64, frames)`` with at least 96 frames (VGGish's patches fix the 64 bands).
    """

    default_input_size = (N_MELS, 5 * PATCH_FRAMES)

    def __init__(self, num_classes: int, dropout: float = 0.0, input_size: tuple[int, int | None] | None = None):
        super().__init__()
        mels, frames = input_size or self.default_input_size
        if mels != N_MELS or (frames is not None and frames < PATCH_FRAMES):
            raise ValueError(f"VGGish needs {N_MELS} mels and >= {PATCH_FRAMES} frames, got input_size {input_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.features = _vgg_features()
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 128),
        )
        self.num_classes = num_classes
        self.num_features = 128
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, num_classes))

    @staticmethod
    def patches(x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 64, T)`` -> ``(B, T // 96, 96, 64)`` time-major patches."""
        batch, _, mels, frames = x.shape
        if mels != N_MELS or frames < PATCH_FRAMES:
            raise ValueError(
                f"VGGish needs (B, 1, {N_MELS}, >={PATCH_FRAMES}) log-mel input, got {tuple(x.shape)}"
            )
        count = frames // PATCH_FRAMES
        x = x[..., : count * PATCH_FRAMES].reshape(batch, mels, count, PATCH_FRAMES)
        return x.permute(0, 2, 3, 1)

    def embed(self, patches: torch.Tensor) -> torch.Tensor:
        """``(N, 96, 64)`` patches -> ``(N, 128)`` VGGish embeddings."""
        maps = self.features(patches.unsqueeze(1))
        return self.embeddings(maps.permute(0, 2, 3, 1).flatten(1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.patches(x)
        return self.embed(patches.flatten(0, 1)).view(*patches.shape[:2], -1).mean(dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def get_classifier(self) -> nn.Module:
        return self.head[-1]  # after the dropout (the identity in eval mode)

    def _set_classifier(self, head: nn.Module) -> None:
        self.head[-1] = head


@register_model
def vggish(num_classes: int, **kwargs) -> VGGish:
    """VGGish (16 kHz, 64 mels, 0.96 s patches) with mean pooling over patches and a linear head."""
    return VGGish(num_classes=num_classes, **kwargs)
