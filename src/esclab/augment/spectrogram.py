"""Spectrogram augmentations: batched torch log-mels ``(batch, 1, n_mels, frames)`` on any device.

SpecAugment time and frequency masking, and image-style rotation, zoom and
translation. The math lives in plain functions (:func:`band_mask`,
:func:`mask_bands`, :func:`affine_theta`, :func:`affine_sample`); the transform
classes validate arguments and draw per-example parameters. Masked and uncovered
areas take the example's mean, a neutral value for log-mels in dB or
standardised. :class:`SpecAugment` wraps the transforms as the front end's
``nn.Module``, active in training mode only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from esclab.augment.base import Compose, Transform


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform ``[0, 1)`` samples on ``device``, drawn on the generator's device (None: the default)."""
    source = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=source).to(device)


def band_mask(length: int, starts: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Which of ``length`` positions fall in any band ``[start, start + width)``.

    Args:
        length: number of positions (mel bins or frames).
        starts: ``(batch, num_bands)`` first position of each band.
        widths: ``(batch, num_bands)`` band widths (0 is an empty band).

    Returns:
        ``(batch, length)`` boolean mask.
    """
    pos = torch.arange(length, device=starts.device)
    inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
    return inside.any(dim=1)


def mask_bands(x: torch.Tensor, starts: torch.Tensor, widths: torch.Tensor, dim: int,
               fill: torch.Tensor | float) -> torch.Tensor:
    """Set the bands along ``dim`` (2: mel bins, 3: frames) to ``fill``; everything else is kept.

    Args:
        x: ``(batch, 1, n_mels, frames)`` spectrograms.
        starts: ``(batch, num_bands)`` first index of each band.
        widths: ``(batch, num_bands)`` band widths.
        dim: 2 for frequency bands, 3 for time bands.
        fill: value for the masked cells, a float or a tensor broadcastable to ``x``.
    """
    shape = [x.shape[0], 1, 1, 1]
    shape[dim] = x.shape[dim]
    bands = band_mask(x.shape[dim], starts, widths).view(shape)
    return torch.where(bands, torch.as_tensor(fill, dtype=x.dtype, device=x.device), x)


def affine_theta(angle_deg: torch.Tensor, zoom: torch.Tensor, shift_time: torch.Tensor,
                 shift_mel: torch.Tensor, n_mels: int, frames: int) -> torch.Tensor:
    """Sampling matrices for ``F.affine_grid`` that rotate, zoom and move the content.

    The rotation is rigid in cell units (corrected for the image's aspect ratio)
    and about the centre; a positive angle turns the content counter-clockwise as
    plotted with low mels at the bottom; ``zoom > 1`` magnifies; positive shifts
    move the content to later frames and higher mels.

    Args:
        angle_deg: ``(batch,)`` rotation in degrees.
        zoom: ``(batch,)`` magnification, > 0.
        shift_time: ``(batch,)`` move along time, as a fraction of the frames.
        shift_mel: ``(batch,)`` move along frequency, as a fraction of the mel bins.
        n_mels: image height.
        frames: image width.

    Returns:
        ``(batch, 2, 3)`` matrices mapping output to input in normalised coordinates.
    """
    angle = torch.deg2rad(angle_deg)
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    aspect = n_mels / frames
    linear = torch.stack([torch.stack([cos, sin * aspect], -1),
                          torch.stack([-sin / aspect, cos], -1)], -2)
    shift = torch.stack([2 * shift_time, 2 * shift_mel], -1)
    offset = -(linear @ shift[..., None])
    return torch.cat([linear, offset], -1)


def affine_sample(x: torch.Tensor, theta: torch.Tensor, fill: torch.Tensor | float) -> torch.Tensor:
    """Resample ``x`` (bilinear) through ``theta``; cells mapped from outside take ``fill``.

    Args:
        x: ``(batch, 1, n_mels, frames)`` spectrograms.
        theta: ``(batch, 2, 3)`` matrices from :func:`affine_theta`.
        fill: value outside the source image, a float or a tensor broadcastable to ``x``.
    """
    shifted = x.float() - fill
    grid = F.affine_grid(theta.float(), list(x.shape), align_corners=False)
    out = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (out + fill).to(x.dtype)


def example_mean(x: torch.Tensor) -> torch.Tensor:
    """``(batch, 1, 1, 1)`` mean of each example."""
    return x.mean(dim=(1, 2, 3), keepdim=True)


class SpectrogramTransform(Transform):
    """A transform on batched spectrograms with per-example parameters and per-example ``p``.

    ``randomize_parameters`` returns tensors with a leading batch dimension;
    frozen values describe one example and are broadcast to the batch.
    """

    def randomize_parameters(self, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, Any]:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply to each example of ``x`` with probability ``p``, each with its own parameters.

        Args:
            x: ``(batch, 1, n_mels, frames)`` spectrograms.
            generator: source of randomness (any device); ``None`` uses torch's default one.

        Raises:
            ValueError: ``x`` is not 4-D.
        """
        if x.ndim != 4:
            raise ValueError(f"expected (batch, 1, n_mels, frames), got shape {tuple(x.shape)}")
        chosen = uniform((x.shape[0],), generator, x.device) < self.p
        if not chosen.any():
            return x
        params = self.randomize_parameters(x, generator)
        for name, value in self.frozen.items():
            drawn = params[name]
            params[name] = torch.as_tensor(value, dtype=drawn.dtype, device=x.device).expand_as(drawn)
        return torch.where(chosen.view(-1, 1, 1, 1), self.apply(x, params), x)


class AxisMasking(SpectrogramTransform):
    """SpecAugment masking along axis ``dim``: ``num_masks`` bands of width ``U{0..max_width}``.

    Args:
        num_masks: bands per example, >= 1.
        max_width: widest band, >= 1 (capped at the axis length).
        p: probability of masking each example.

    Raises:
        ValueError: ``num_masks`` or ``max_width`` is not a positive integer.
    """

    param_names = ("starts", "widths")
    dim: int

    def __init__(self, num_masks: int = 2, max_width: int = 20, p: float = 1.0) -> None:
        super().__init__(p)
        for name, value in (("num_masks", num_masks), ("max_width", max_width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.num_masks = num_masks
        self.max_width = max_width

    def randomize_parameters(self, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, Any]:
        length = x.shape[self.dim]
        shape = (x.shape[0], self.num_masks)
        widths = (uniform(shape, generator, x.device) * (min(self.max_width, length) + 1)).long()
        starts = (uniform(shape, generator, x.device) * (length - widths + 1)).long()
        return {"starts": starts, "widths": widths}

    def apply(self, x: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        return mask_bands(x, params["starts"], params["widths"], self.dim, example_mean(x))


class TimeMasking(AxisMasking):
    """Time masking (SpecAugment): bands of frames set to the example's mean.

    Arguments as :class:`AxisMasking`.
    """

    dim = 3


class FrequencyMasking(AxisMasking):
    """Frequency masking (SpecAugment): bands of mel bins set to the example's mean.

    Arguments as :class:`AxisMasking`.
    """

    dim = 2


def roll_time(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Circularly shift each example of ``(batch, ...)`` along the last (time) axis by its own ``shifts[b]``
    steps (positive: later), as ``torch.roll`` would one example at a time."""
    frames = x.shape[-1]
    index = (torch.arange(frames, device=x.device) - shifts.to(x.device).long()[:, None]) % frames
    index = index.view(x.shape[0], *([1] * (x.ndim - 2)), frames).expand_as(x)
    return x.gather(-1, index)


class TimeRoll(SpectrogramTransform):
    """Circular time shift by up to ``max_fraction`` of the frames either way, drawn per example.

    The cheap online counterpart of a waveform roll (EfficientAT rolls its waveforms by up to 125 ms):
    a log-mel rolled by ``k`` frames is the log-mel of the rolled waveform away from the seam. It also
    applies to the feature maps of frozen leading layers (their last axis is time, at a coarser step).

    Args:
        max_fraction: largest shift as a share of the time axis, in (0, 1].
        p: probability of shifting each example.

    Raises:
        ValueError: ``max_fraction`` outside (0, 1].
    """

    param_names = ("fraction",)

    def __init__(self, max_fraction: float = 0.025, p: float = 1.0) -> None:
        super().__init__(p)
        if not 0.0 < max_fraction <= 1.0:
            raise ValueError(f"max_fraction must be in (0, 1], got {max_fraction!r}")
        self.max_fraction = max_fraction

    def randomize_parameters(self, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, Any]:
        return {"fraction": (2 * uniform((x.shape[0],), generator, x.device) - 1) * self.max_fraction}

    def apply(self, x: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        return roll_time(x, torch.round(params["fraction"] * x.shape[-1]))


class LevelGain(SpectrogramTransform):
    """A random gain in dB, exact on Kaldi log-mels (:func:`~esclab.features.functional.kaldi_log_mel`).

    Those log-mels keep the clip's level (no per-clip normalisation), so a gain ``g`` on the waveform is the
    mel power times ``g^2``, computed from the cached log-mel without the audio. EfficientAT draws a random
    gain for every fine-tuning example.

    Args:
        min_db: lowest gain, >= -40.
        max_db: highest gain, <= 40 and >= ``min_db``.
        p: probability of changing each example.

    Raises:
        ValueError: a bound out of range.
    """

    param_names = ("gain_db",)

    def __init__(self, min_db: float = -6.0, max_db: float = 6.0, p: float = 1.0) -> None:
        super().__init__(p)
        if not -40.0 <= min_db <= max_db <= 40.0:
            raise ValueError(f"need -40 <= min_db <= max_db <= 40, got {min_db!r}, {max_db!r}")
        self.min_db, self.max_db = min_db, max_db

    def randomize_parameters(self, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, Any]:
        return {"gain_db": self.min_db + uniform((x.shape[0],), generator, x.device) * (self.max_db - self.min_db)}

    def apply(self, x: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        from esclab.features.functional import kaldi_log_to_power, kaldi_power_to_log

        factor = (10.0 ** (params["gain_db"].float() / 10.0)).view(-1, 1, 1, 1)
        return kaldi_power_to_log(kaldi_log_to_power(x.float()) * factor).to(x.dtype)


class RandomAffine(SpectrogramTransform):
    """Image-style random rotation, zoom and translation, each drawn uniformly per example.

    Args:
        max_rotation_deg: angles are drawn in ``[-max_rotation_deg, max_rotation_deg]``, in [0, 180].
        max_zoom: magnification in ``[1 - max_zoom, 1 + max_zoom]``; ``max_zoom`` in [0, 1).
        max_translate: shifts in ``[-max_translate, max_translate]`` of each axis's length, in [0, 1].
        p: probability of transforming each example.

    Raises:
        ValueError: an argument is out of range.
    """

    param_names = ("angle_deg", "zoom", "shift_time", "shift_mel")

    def __init__(self, max_rotation_deg: float = 10.0, max_zoom: float = 0.1, max_translate: float = 0.1,
                 p: float = 0.5) -> None:
        super().__init__(p)
        if not 0.0 <= max_rotation_deg <= 180.0:
            raise ValueError(f"max_rotation_deg must be in [0, 180], got {max_rotation_deg!r}")
        if not 0.0 <= max_zoom < 1.0:
            raise ValueError(f"max_zoom must be in [0, 1), got {max_zoom!r}")
        if not 0.0 <= max_translate <= 1.0:
            raise ValueError(f"max_translate must be in [0, 1], got {max_translate!r}")
        self.max_rotation_deg = max_rotation_deg
        self.max_zoom = max_zoom
        self.max_translate = max_translate

    def randomize_parameters(self, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, Any]:
        def symmetric(half_width: float) -> torch.Tensor:
            return (2 * uniform((x.shape[0],), generator, x.device) - 1) * half_width

        return {"angle_deg": symmetric(self.max_rotation_deg), "zoom": 1 + symmetric(self.max_zoom),
                "shift_time": symmetric(self.max_translate), "shift_mel": symmetric(self.max_translate)}

    def apply(self, x: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        theta = affine_theta(params["angle_deg"], params["zoom"], params["shift_time"], params["shift_mel"],
                             x.shape[2], x.shape[3])
        return affine_sample(x, theta, example_mean(x))


class SpecAugment(nn.Module):
    """The front end's spectrogram augmentation: applies the transforms in training mode, identity in eval.

    Args:
        transforms: spectrogram transforms, applied in order.
    """

    def __init__(self, transforms: Sequence[SpectrogramTransform]) -> None:
        super().__init__()
        self.transforms = Compose(transforms)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(batch, 1, n_mels, frames)`` -> same shape; augmented only when ``self.training``."""
        if not self.training or not self.transforms.transforms:
            return x
        return self.transforms(x, generator)

    def extra_repr(self) -> str:
        return repr(self.transforms)
