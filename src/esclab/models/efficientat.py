"""EfficientAT's AudioSet MobileNets (``mn01`` ... ``mn40``): one MobileNetV3 with a width multiplier.

Schmid, Koutini, Widmer, "Efficient Large-Scale Audio Tagging via Transformer-to-CNN Knowledge
Distillation" (ICASSP 2023), code and weights under the MIT licence (github.com/fschmid56/EfficientAT).
The body is torchvision's MobileNetV3-Large (its ``InvertedResidual`` blocks and channel table, scaled by
``width_mult``) on one input channel, with EfficientAT's squeeze-excitation: two Linear layers over the
channel means (``conc_se_layers.0.fc1/fc2``, ReLU then sigmoid) instead of torchvision's 1x1 convolutions.
Module names follow the released checkpoints, so ``mn04_as_mAP_432.pt`` loads with ``strict=True``.

Input: EfficientAT's front end (``features.kind: kaldi_logmel``, 32 kHz, 128 mels, hop 320), shaped
``(batch, 1, 128, frames)``. ``forward_features`` gives the embedding, the global average of the last
feature map (384-d for mn04, 960-d for mn10); ``forward_head`` the classifier:

* ``head="mlp"`` (default): EfficientAT's own head, Linear -> Hardswish -> Dropout -> Linear. With
  ``num_classes=527`` it is the AudioSet tagger; with another count only the last Linear starts new.
* ``head="linear"``: one Linear on the embedding (the linear probe's head).

``taps`` and ``pool`` widen the embedding for probes: the pooled outputs of earlier layers are
concatenated before the last one's (``taps=[13, 15], pool="meanmax"``: mean and max over frequency and
time of layers 13, 15 and the last, 2 x (64 + 64 + 384) = 1024 values for mn04). The head then reads the
wider embedding (``head="linear"`` only: EfficientAT's MLP head was trained on the 384-d mean).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import torch
from torch import nn

from esclab.models._base import EscModel
from esclab.models._registry import register_model
from esclab.weights import WeightsError

AUDIOSET_CLASSES = 527
HEADS = ("mlp", "linear")
POOLS = ("mean", "meanmax")


def pool_map(x: torch.Tensor, pool: str) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C)`` mean over frequency and time, or ``(B, 2C)`` mean then max."""
    mean = x.mean(dim=(2, 3))
    return mean if pool == "mean" else torch.cat([mean, x.amax(dim=(2, 3))], dim=1)


class _SqueezeExcitation(nn.Module):
    """Channel gates from the channel means: ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``."""

    def __init__(self, channels: int, squeeze_channels: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze_channels)
        self.fc2 = nn.Linear(squeeze_channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * scale[:, :, None, None]


class ChannelSE(nn.Module):
    """EfficientAT's ``ConcurrentSEBlock`` with its one (channel) branch, under the checkpoints' names."""

    def __init__(self, channels: int, squeeze_channels: int):
        super().__init__()
        self.conc_se_layers = nn.ModuleList([_SqueezeExcitation(channels, squeeze_channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class EfficientATMobileNet(EscModel):
    """MobileNetV3 body scaled by ``width_mult``, global average pooling, then the chosen head.

    Args:
        num_classes: output classes (527 for AudioSet tagging).
        width_mult: channel multiplier (0.4 for mn04, 1.0 for mn10, 4.0 for mn40).
        head: ``"mlp"`` (EfficientAT's classifier) or ``"linear"`` (one Linear on the embedding).
        dropout: dropout inside the MLP head.
        freeze: ``"none"`` or ``"base"`` (no gradient to the body: train the head only).
        frozen_blocks: how many leading layers of ``features`` (the stem is layer 0) are frozen and kept in
            eval mode: the seed's "freeze the first layers, train the last". Their outputs depend on the
            input alone, so training caches them (:mod:`esclab.train.frozen`); the first five layers hold
            under 1 % of mn04's weights and most of a training step's time.
        base_lr_mult: learning-rate multiplier for the body (fine-tuning: lower than the head's).
        head_lr_mult: learning-rate multiplier for the head.
        taps: earlier layers (indices into ``features``, after the frozen ones) whose pooled outputs join the
            embedding (see the module notes).
        pool: ``"mean"`` (EfficientAT's embedding) or ``"meanmax"`` (mean and max) for every pooled layer.
        input_size: ``(n_mels, frames)``; unused (global pooling takes any size; the weights expect 128 mels).
    """

    default_input_size = (128, 500)

    def __init__(self, num_classes: int, width_mult: float = 0.4, head: str = "mlp", dropout: float = 0.2,
                 freeze: str = "none", base_lr_mult: float = 1.0, head_lr_mult: float = 1.0,
                 frozen_blocks: int = 0, taps: list[int] | tuple[int, ...] = (), pool: str = "mean",
                 input_size: tuple[int, int | None] | None = None):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if freeze not in ("none", "base"):
            raise ValueError(f"freeze must be 'none' or 'base', got {freeze!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if width_mult <= 0 or base_lr_mult <= 0 or head_lr_mult <= 0:
            raise ValueError(f"width_mult and lr multipliers must be > 0, got {width_mult}, {base_lr_mult}, "
                             f"{head_lr_mult}")
        # torchvision takes seconds to import: only a MobileNet being built pays for it.
        from torchvision.models.mobilenetv3 import InvertedResidual, _mobilenet_v3_conf
        from torchvision.ops.misc import Conv2dNormActivation

        blocks, last_channel = _mobilenet_v3_conf("mobilenet_v3_large", width_mult=width_mult)
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        stem = Conv2dNormActivation(1, blocks[0].input_channels, kernel_size=3, stride=2, norm_layer=norm,
                                    activation_layer=nn.Hardswish)
        body = [InvertedResidual(cfg, norm, se_layer=ChannelSE) for cfg in blocks]
        last_width = 6 * blocks[-1].out_channels
        last = Conv2dNormActivation(blocks[-1].out_channels, last_width, kernel_size=1, norm_layer=norm,
                                    activation_layer=nn.Hardswish)
        self.features = nn.Sequential(stem, *body, last)
        self.taps = tuple(sorted(int(t) for t in taps))
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        if any(not frozen_blocks <= t < len(self.features) - 1 for t in self.taps):
            raise ValueError(f"taps must be layers in [frozen_blocks={frozen_blocks}, {len(self.features) - 2}], "
                             f"got {list(taps)}")
        if (self.taps or pool != "mean") and head != "linear":
            raise ValueError("taps and pool='meanmax' widen the embedding: they need head='linear'")
        self.pool = pool
        widths = [self.features[t].out_channels for t in self.taps] + [last_width]
        self.num_features = sum(widths) * (2 if pool == "meanmax" else 1)
        pooling = [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]  # kept for the checkpoints' key names (classifier.2, .5)
        if head == "mlp":
            self.classifier = nn.Sequential(*pooling, nn.Linear(self.num_features, last_channel), nn.Hardswish(),
                                            nn.Dropout(dropout), nn.Linear(last_channel, num_classes))
        else:
            self.classifier = nn.Sequential(*pooling, nn.Linear(self.num_features, num_classes))
        if not 0 <= frozen_blocks < len(self.features):
            raise ValueError(f"frozen_blocks must be in [0, {len(self.features) - 1}] (the body has "
                             f"{len(self.features)} layers), got {frozen_blocks}")
        self.num_classes, self.width_mult, self.head = num_classes, width_mult, head
        self.base_lr_mult, self.head_lr_mult = base_lr_mult, head_lr_mult
        self.frozen_blocks = frozen_blocks
        if freeze == "base":
            self.features.requires_grad_(False)
        self.features[:frozen_blocks].requires_grad_(False)

    def train(self, mode: bool = True) -> EfficientATMobileNet:
        """As ``nn.Module.train``, but the frozen leading layers stay in eval mode (fixed BatchNorm statistics)."""
        super().train(mode)
        self.features[:self.frozen_blocks].eval()
        return self

    def forward_frozen(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 128, T)`` -> the output of the first ``frozen_blocks`` layers (``x`` itself for none)."""
        return self.features[:self.frozen_blocks](x)

    def forward_features_from_frozen(self, hidden: torch.Tensor) -> torch.Tensor:
        pooled = []
        for index in range(self.frozen_blocks, len(self.features)):
            hidden = self.features[index](hidden)
            if index in self.taps:
                pooled.append(pool_map(hidden, self.pool))
        return torch.cat([*pooled, pool_map(hidden, self.pool)], dim=1) if pooled else pool_map(hidden, self.pool)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 128, T)`` -> ``(B, num_features)`` embedding (mean of the last feature map, or with ``taps`` /
        ``pool`` the pooled maps of several layers)."""
        return self.forward_features_from_frozen(self.forward_frozen(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier[2:](features)

    def get_classifier(self) -> nn.Module:
        return self.classifier[2] if self.head == "linear" else self.classifier[2:]

    def _set_classifier(self, head: nn.Module) -> None:
        self.classifier = nn.Sequential(*self.classifier[:2], head)
        self.head = "linear"

    def gradcam_layer(self) -> nn.Module:
        return self.features[-1]

    def parameter_groups(self, lr: float) -> list[dict]:
        """Body and head groups with their own learning rates; empty groups are left out."""
        groups = [
            {"params": [p for p in self.features.parameters() if p.requires_grad], "lr": lr * self.base_lr_mult},
            {"params": [p for p in self.classifier.parameters() if p.requires_grad], "lr": lr * self.head_lr_mult},
        ]
        return [g for g in groups if g["params"]]

    def check_pretrained(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        """Refuse a checkpoint of another width or family before any tensor is loaded.

        Every body tensor (``features.*``) must be present with this model's shape; the head may differ
        (another label set). Raises :class:`~esclab.weights.WeightsError` naming the first mismatches and both
        widths.
        """
        own = {k: v.shape for k, v in self.state_dict().items() if k.startswith("features.")}
        theirs = {k: v.shape for k, v in state.items() if k.startswith("features.")}
        problems = [f"{k}: checkpoint {tuple(theirs[k])} vs model {tuple(shape)}"
                    for k, shape in own.items() if k in theirs and theirs[k] != shape]
        absent = sorted(set(own) - set(theirs))
        extra = sorted(set(theirs) - set(own))
        if not (problems or absent or extra):
            return
        stem = state.get("features.0.0.weight")
        their_width = f"stem of {stem.shape[0]} channels" if stem is not None else "no EfficientAT stem"
        details = problems[:3] + [f"missing {k}" for k in absent[:3]] + [f"unexpected {k}" for k in extra[:3]]
        raise WeightsError(
            f"{source} does not fit this EfficientAT MobileNet (width {self.width_mult:g}, stem of "
            f"{self.features[0][0].out_channels} channels): the checkpoint has {their_width}; "
            f"{len(problems)} shape mismatches, {len(absent)} missing and {len(extra)} unexpected body tensors "
            f"({'; '.join(details)}). Pick the model of the checkpoint's width (mn04 for *mn04*, mn10 for *mn10*)."
        )


def _mn(num_classes: int, width_mult: float, **kwargs) -> EfficientATMobileNet:
    return EfficientATMobileNet(num_classes, width_mult=width_mult, **kwargs)


@register_model
def mn01(num_classes: int, **kwargs) -> EfficientATMobileNet:
    """EfficientAT MobileNet, width 0.1 (weights: ``efficientat:mn01_as``)."""
    return _mn(num_classes, 0.1, **kwargs)


@register_model
def mn02(num_classes: int, **kwargs) -> EfficientATMobileNet:
    """EfficientAT MobileNet, width 0.2 (weights: ``efficientat:mn02_as``)."""
    return _mn(num_classes, 0.2, **kwargs)


@register_model
def mn04(num_classes: int, **kwargs) -> EfficientATMobileNet:
    """EfficientAT MobileNet, width 0.4, 0.98 M parameters with the AudioSet head (``efficientat:mn04_as``)."""
    return _mn(num_classes, 0.4, **kwargs)


@register_model
def mn05(num_classes: int, **kwargs) -> EfficientATMobileNet:
    """EfficientAT MobileNet, width 0.5 (weights: ``efficientat:mn05_as``)."""
    return _mn(num_classes, 0.5, **kwargs)


@register_model
def mn10(num_classes: int, **kwargs) -> EfficientATMobileNet:
    """EfficientAT MobileNet, width 1.0 (weights: ``efficientat:mn10_as``)."""
    return _mn(num_classes, 1.0, **kwargs)


@register_model
def mn20(num_classes: int, **kwargs) -> EfficientATMobileNet:
    """EfficientAT MobileNet, width 2.0 (weights: ``efficientat:mn20_as``)."""
    return _mn(num_classes, 2.0, **kwargs)


@register_model
def mn30(num_classes: int, **kwargs) -> EfficientATMobileNet:
    """EfficientAT MobileNet, width 3.0 (weights: ``efficientat:mn30_as``)."""
    return _mn(num_classes, 3.0, **kwargs)


@register_model
def mn40(num_classes: int, **kwargs) -> EfficientATMobileNet:
    """EfficientAT MobileNet, width 4.0 (weights: ``efficientat:mn40_as``, ``efficientat:mn40_as_ext``)."""
    return _mn(num_classes, 4.0, **kwargs)
