"""The optimiser of a training run: its parameter groups, the model's L2 penalty as weight decay, fused steps.

A Keras-style L2 penalty ``c * sum(w**2)`` adds ``2 c w`` to each penalised weight's gradient. Adam and SGD
add ``weight_decay * w`` to the gradient before their update, so the penalty is the same update as a weight
decay of ``2 c`` on those weights, without two passes over them (square and its backward) in every step.
AdamW's decay is decoupled from the gradient, so with AdamW the penalty stays in the loss. The update runs
fused (one pass over each tensor instead of several) where torch has a fused kernel for the device.
"""

from __future__ import annotations

import torch
from torch import nn

from esclab.config import TrainConfig
from esclab.models import EscModel

FUSED_DEVICES = ("cpu", "cuda")
DECAY_IS_PENALTY = ("adam", "sgd")  # optimisers whose weight decay is added to the gradient, like an L2 penalty


def penalty_in_loss(model: EscModel, optimizer: str) -> bool:
    """Whether ``model``'s L2 penalty must be added to the loss (it has one, and ``optimizer``'s weight decay
    is not the same update, i.e. AdamW)."""
    coefficient, weights = model.l2_penalty()
    return bool(coefficient and weights) and optimizer not in DECAY_IS_PENALTY


def with_l2_decay(groups: list[dict], weights: list[nn.Parameter], decay: float, base_decay: float) -> list[dict]:
    """``groups`` with each group's ``weights`` moved to a copy of it whose ``weight_decay`` is ``base_decay + decay``.

    The other parameters keep ``base_decay``; empty groups are left out; the order of groups is kept.
    """
    penalised = {id(w) for w in weights}
    out = []
    for group in groups:
        plain = [p for p in group["params"] if id(p) not in penalised]
        chosen = [p for p in group["params"] if id(p) in penalised]
        out += [{**group, "params": plain, "weight_decay": base_decay}] if plain else []
        out += [{**group, "params": chosen, "weight_decay": base_decay + decay}] if chosen else []
    return out


def build_optimizer(model: EscModel, t: TrainConfig) -> torch.optim.Optimizer:
    """``t.optimizer`` over ``model.parameter_groups(t.lr)``, the L2 penalty as weight decay where it is the same.

    Raises:
        ValueError: ``t.optimizer`` is not adam, adamw or sgd.
    """
    groups = model.parameter_groups(t.lr)
    coefficient, weights = model.l2_penalty()
    if coefficient and weights and t.optimizer in DECAY_IS_PENALTY:
        groups = with_l2_decay(groups, [w for w in weights if w.requires_grad], 2.0 * coefficient, t.weight_decay)
    params = [p for g in groups for p in g["params"]]
    fused = bool(params) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params)
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, nesterov=True, fused=fused)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay, fused=fused)
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=t.lr, weight_decay=t.weight_decay, fused=fused)
    raise ValueError(f"train.optimizer must be adam, adamw or sgd, got {t.optimizer!r}")
