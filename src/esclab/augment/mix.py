"""Mixup (Zhang et al., 2018) for batched inputs and one-hot targets, in the model's front end.

Each example is mixed with a random partner from the same batch with its own
``lambda ~ Beta(alpha, alpha)``. Lambda comes from the inverse Beta CDF
(``scipy.special.betaincinv``) of uniforms drawn from the caller's
``torch.Generator``, because torch's Beta sampler cannot take a generator; a
seeded generator therefore reproduces the mix.
"""

from __future__ import annotations

import torch

from esclab.augment.base import check_probability, init_args_repr
from esclab.augment.spectrogram import uniform


def _check_alpha(alpha: float) -> float:
    if not alpha > 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha!r}")
    return float(alpha)


def mixup(x: torch.Tensor, y_onehot: torch.Tensor, alpha: float,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each example and its target with a random partner of the batch.

    Args:
        x: ``(batch, ...)`` inputs, e.g. ``(batch, 1, n_mels, frames)`` spectrograms.
        y_onehot: ``(batch, num_classes)`` one-hot (or already soft) targets.
        alpha: Beta concentration, > 0; small values keep most mixes close to one clip.
        generator: source of randomness (any device); ``None`` uses torch's default one.

    Returns:
        ``(x_mixed, y_soft)``: ``lam * x + (1 - lam) * x[perm]`` and the same mix of targets.

    Raises:
        ValueError: ``alpha <= 0`` or the targets are not ``(batch, num_classes)``.
    """
    alpha = _check_alpha(alpha)
    if y_onehot.ndim != 2 or y_onehot.shape[0] != x.shape[0]:
        raise ValueError(f"y_onehot must be (batch, num_classes) with batch {x.shape[0]}, "
                         f"got shape {tuple(y_onehot.shape)}")
    batch = x.shape[0]
    u = uniform((batch,), generator, torch.device("cpu")).double().numpy()
    from scipy.special import betaincinv  # a second to import: only when mixing

    lam = torch.from_numpy(betaincinv(alpha, alpha, u)).to(x.device)
    source = generator.device if generator is not None else x.device
    perm = torch.randperm(batch, generator=generator, device=source).to(x.device)
    lam_x = lam.view(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    lam_y = lam.view(-1, 1).to(y_onehot.dtype)
    return lam_x * x + (1 - lam_x) * x[perm], lam_y * y_onehot + (1 - lam_y) * y_onehot[perm]


class Mixup:
    """Mixup applied to a whole batch with probability ``p``.

    Args:
        alpha: Beta concentration, > 0.
        p: probability of mixing a batch.

    Raises:
        ValueError: ``alpha <= 0`` or ``p`` outside ``[0, 1]``.
    """

    def __init__(self, alpha: float = 0.2, p: float = 1.0) -> None:
        self.alpha = _check_alpha(alpha)
        self.p = check_probability(p)

    def __call__(self, x: torch.Tensor, y_onehot: torch.Tensor,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return :func:`mixup` of the batch with probability ``p``, else the batch unchanged."""
        if uniform((1,), generator, torch.device("cpu")).item() >= self.p:
            return x, y_onehot
        return mixup(x, y_onehot, self.alpha, generator)

    def __repr__(self) -> str:
        return init_args_repr(self)


class LevelMix:
    """Two clips heard at once: a share ``p`` of the batch is mixed with random partners at the signal level.

    For Kaldi log-mels (:func:`~esclab.features.functional.kaldi_log_mel`): the mixture ``lam x_i + (1 - lam)
    x_j`` of two uncorrelated clips has mel power ``lam^2 P_i + (1 - lam)^2 P_j``, computed exactly from the
    cached log-mels (no waveform needed), with ``lam ~ Beta(alpha, alpha)``; the targets mix as ``lam`` and
    ``1 - lam``. EfficientAT's fine-tuning mixes two waveforms on half the batch with Beta(2, 2).

    Args:
        p: share of the examples that are mixed, in [0, 1].
        alpha: Beta concentration, > 0.

    Raises:
        ValueError: ``p`` outside [0, 1] or ``alpha <= 0``.
    """

    def __init__(self, p: float = 0.5, alpha: float = 2.0) -> None:
        self.p = check_probability(p)
        self.alpha = _check_alpha(alpha)

    def __call__(self, x: torch.Tensor, y_soft: torch.Tensor,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, 1, n_mels, frames)`` Kaldi log-mels and ``(batch, classes)`` targets -> mixed ones."""
        from esclab.features.functional import kaldi_log_to_power, kaldi_power_to_log

        batch = x.shape[0]
        chosen = uniform((batch,), generator, x.device) < self.p
        if not chosen.any():
            return x, y_soft
        from scipy.special import betaincinv

        u = uniform((batch,), generator, torch.device("cpu")).double().numpy()
        lam = torch.from_numpy(betaincinv(self.alpha, self.alpha, u)).to(x.device, torch.float32)
        source = generator.device if generator is not None else x.device
        perm = torch.randperm(batch, generator=generator, device=source).to(x.device)
        power = kaldi_log_to_power(x.float())
        lam_x = lam.view(-1, *([1] * (x.ndim - 1)))
        mixed = kaldi_power_to_log(lam_x ** 2 * power + (1 - lam_x) ** 2 * power[perm]).to(x.dtype)
        lam_y = lam.view(-1, 1).to(y_soft.dtype)
        mixed_y = lam_y * y_soft + (1 - lam_y) * y_soft[perm]
        pick = chosen.view(-1, *([1] * (x.ndim - 1)))
        return torch.where(pick, mixed, x), torch.where(chosen.view(-1, 1), mixed_y, y_soft)

    def __repr__(self) -> str:
        return init_args_repr(self)
