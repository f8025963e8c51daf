"""Weight averaging of a fold's training trajectory (``train.weight_averaging``), on Lightning's callback.

``ema``: an exponential moving average of the weights, updated after every optimiser step from epoch
``train.average_from_epoch`` on, with decay ``train.ema_decay`` per step. ``swa``: the equal-weight average
of the weights at the end of every epoch from ``train.average_from_epoch`` on (stochastic weight averaging,
Izmailov et al., 2018). Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging` keeps the average
in every checkpoint (a resumed fold continues it), validates with it, and leaves it in the module when
fitting ends, so the tested checkpoint and the bundle are the averaged network.

BatchNorm running statistics are averaged like the weights; with ``train.freeze_bn_stats`` they never change,
so the average keeps the pretrained ones.

:func:`interpolate_weights` is the other average a fit can end with (``train.wise_alpha``, WiSE-FT, Wortsman et
al., CVPR 2022): the trained weights moved back toward the weights fitting started from.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn

from esclab.config import TrainConfig


class TrajectoryAverage(WeightAveraging):
    """Averages the weights from epoch ``start_epoch`` (zero-based) on.

    Args:
        per_step: update after every optimiser step (an EMA) or only at the end of each epoch (SWA).
        start_epoch: the first epoch whose weights enter the average.
        kwargs: for :class:`torch.optim.swa_utils.AveragedModel` (``multi_avg_fn`` for an EMA; none: the
            equal-weight average).
    """

    def __init__(self, per_step: bool, start_epoch: int, **kwargs) -> None:
        super().__init__(use_buffers=True, **kwargs)
        self.per_step = per_step
        self.start_epoch = start_epoch
        self._epoch = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch = trainer.current_epoch

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if self.per_step:
            return step_idx is not None and self._epoch >= self.start_epoch
        return epoch_idx is not None and epoch_idx >= self.start_epoch

    def facts(self) -> dict[str, object]:
        """For ``metrics.json``: the kind, the first averaged epoch (one-based) and how many updates the
        average holds (epochs for SWA, optimiser steps for an EMA; a resumed fold counts its earlier ones)."""
        updates = int(self._average_model.n_averaged) if self._average_model is not None else 0
        return {"weight_averaging": "ema" if self.per_step else "swa", "averaged_from_epoch": self.start_epoch + 1,
                "averaged_updates": updates}


def build_weight_averaging(t: TrainConfig) -> TrajectoryAverage | None:
    """The callback ``t.weight_averaging`` names (``None`` for ``none``)."""
    if t.weight_averaging == "ema":
        return TrajectoryAverage(per_step=True, start_epoch=t.average_from_epoch,
                                 multi_avg_fn=get_ema_multi_avg_fn(t.ema_decay))
    if t.weight_averaging == "swa":
        return TrajectoryAverage(per_step=False, start_epoch=t.average_from_epoch)
    return None


def interpolate_weights(start: dict[str, torch.Tensor], end: dict[str, torch.Tensor],
                        alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * start + alpha * end`` for every floating-point tensor of two state dicts of one network.

    Integer tensors (BatchNorm's ``num_batches_tracked``) are counters, not weights: they come from ``end``.
    ``alpha`` = 1 gives ``end``, 0 gives ``start``.

    Raises:
        ValueError: the two state dicts do not hold the same tensors (names and shapes).
    """
    if start.keys() != end.keys():
        raise ValueError(f"cannot interpolate two different networks: tensors only in the start "
                         f"{sorted(start.keys() - end.keys())[:5]}, only in the end {sorted(end.keys() - start.keys())[:5]}")
    shapes = [k for k in end if start[k].shape != end[k].shape]
    if shapes:
        raise ValueError(f"cannot interpolate two different networks: {shapes[0]} is {tuple(start[shapes[0]].shape)} "
                         f"at the start and {tuple(end[shapes[0]].shape)} at the end")
    return {k: torch.lerp(start[k].to(v.dtype), v, alpha) if v.is_floating_point() else v.clone()
            for k, v in end.items()}
