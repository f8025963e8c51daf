"""Test-time augmentation by circular time shifts of the log-mel.

The prediction for a clip is the mean of the class probabilities over ``n_views`` copies of
its spectrogram rolled along time by evenly spaced offsets (view 0 is the clip itself).
Training with circular waveform shifts makes these views in-distribution; a sound cut by the
clip's edges gets seen whole in some view.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def shift_offsets(frames: int, n_views: int) -> list[int]:
    """``n_views`` evenly spaced time offsets in ``[0, frames)``, starting at 0.

    Raises:
        ValueError: ``n_views < 1`` or more views than frames.
    """
    if not 1 <= n_views <= frames:
        raise ValueError(f"n_views must be in [1, {frames}] for {frames} frames, got {n_views}")
    return [round(i * frames / n_views) for i in range(n_views)]


def time_shift_views(spec: torch.Tensor, n_views: int) -> list[torch.Tensor]:
    """``(B, C, M, T)`` -> ``n_views`` tensors of the same shape, rolled along the last axis."""
    return [torch.roll(spec, shifts=offset, dims=-1) for offset in shift_offsets(spec.shape[-1], n_views)]


def tta_probabilities(logits_fn: Callable[[torch.Tensor], torch.Tensor], spec: torch.Tensor,
                      n_views: int = 1) -> torch.Tensor:
    """Mean softmax of ``logits_fn`` over the time-shifted views of ``spec``: ``(B, num_classes)``.

    With ``n_views=1`` it is the plain softmax of ``logits_fn(spec)``.
    """
    with torch.no_grad():
        probs = [torch.softmax(logits_fn(view).float(), dim=1) for view in time_shift_views(spec, n_views)]
    return torch.stack(probs).mean(dim=0)
