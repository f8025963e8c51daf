"""Inference-time folding of BatchNorm layers into the convolutions before them.

In eval mode a BatchNorm is a fixed per-channel affine map, so ``bn(conv(x))`` equals one convolution
with scaled weights and a shifted bias. Folding it removes a full pass over every activation map:
on 2 CPU cores the paper CNN's forward pass takes about half the time (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_PAIRS = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d))


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return any(isinstance(conv, c) and isinstance(norm, n) for c, n in _PAIRS) and (
        norm.track_running_stats and norm.running_mean is not None and norm.num_features == conv.out_channels)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold, in place, every BatchNorm that directly follows a convolution inside an ``nn.Sequential``.

    The convolution gets the folded weights and bias, the BatchNorm becomes ``nn.Identity``; outputs stay
    the same up to float rounding. Only for inference: the state dict loses the BatchNorm entries, and
    training the folded model would no longer normalise. Apply memory-format changes afterwards.

    Args:
        model: a module in eval mode.

    Returns:
        How many BatchNorm layers were folded.

    Raises:
        ValueError: ``model`` is in training mode.
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (call .eval() first)")
    folded = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, norm = seq[i], seq[i + 1]
            if _foldable(conv, norm):
                seq[i] = fuse_conv_bn_eval(conv, norm)
                seq[i + 1] = nn.Identity()
                folded += 1
    return folded


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with its BatchNorms folded (:func:`fold_batchnorm`) and channels-last weights.

    Changes ``model`` in place and returns it: pass a copy to keep one to train or save. Outputs are those of
    the eval-mode model up to float rounding; on 2 CPU cores the paper CNN and the EfficientAT MobileNets
    run in about half the time.
    """
    model.eval()
    fold_batchnorm(model)
    return model.to(memory_format=torch.channels_last)
