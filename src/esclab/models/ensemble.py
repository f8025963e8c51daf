"""Several trained networks as one model: the weighted mean of their class probabilities.

An ensemble is a registered model like any other (``create_model("ensemble", members=[...])``), so one
bundle holds it whole and ``predict``, ``serve``, ``export`` and the report use exactly what a run
reported. Its members read the same input (one front end: the bundle's feature config), and its output
is ``log(sum_i w_i softmax(member_i(x)))``, whose softmax is the weighted mean of the members'
probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from esclab.models._base import EscModel
from esclab.models._registry import create_model, register_model


class ProbabilityEnsemble(EscModel):
    """Weighted mean of the members' softmax probabilities, as log-probabilities.

    Args:
        num_classes: classes of every member.
        members: each ``{"name": registered model, "kwargs": its options}`` (and ``"classifier_reset": true``
            for a member whose head was reset to one Linear, e.g. a probe's).
        weights: one non-negative weight per member (normalised; default: equal).
        input_size: ``(n_mels, frames)``, passed to every member.

    Raises:
        ValueError: no member, a member that is itself an ensemble, or weights that do not fit.
    """

    head_prefixes = ()  # every tensor belongs to a member's own network

    def __init__(self, num_classes: int, members: Sequence[Mapping[str, Any]], weights: Sequence[float] | None = None,
                 input_size: tuple[int, int | None] | None = None):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if any(m.get("name") == "ensemble" for m in members):
            raise ValueError("an ensemble's members must be networks, not ensembles")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"need one weight >= 0 per member ({len(members)}), not all 0; got {weights}")
        self.members = nn.ModuleList(_member(m, num_classes, input_size) for m in members)
        self.register_buffer("weights", torch.tensor(weights) / sum(weights), persistent=False)
        self.num_classes = num_classes
        self.num_features = sum(m.num_features for m in self.members)
        self.default_input_size = self.members[0].default_input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, M, T)`` -> ``(B, num_classes)`` log of the weighted mean probability."""
        probs = sum(w * torch.softmax(m(x).float(), dim=1) for w, m in zip(self.weights, self.members, strict=True))
        return torch.log(probs.clamp_min(1e-12))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The members' embeddings side by side."""
        return torch.cat([m.forward_features(x) for m in self.members], dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        probs, start = 0.0, 0
        for w, m in zip(self.weights, self.members, strict=True):
            part = features[:, start:start + m.num_features]
            probs = probs + w * torch.softmax(m.forward_head(part).float(), dim=1)
            start += m.num_features
        return torch.log(probs.clamp_min(1e-12))

    def get_classifier(self) -> nn.Module:
        """The members' heads (an ensemble has no single one: :meth:`reset_classifier` refuses)."""
        return nn.ModuleList(m.get_classifier() for m in self.members)

    def _set_classifier(self, head: nn.Module) -> None:
        raise ValueError("an ensemble's heads are its members': reset them in the member runs, not here")

    def fold_temperature(self, temperature: float) -> None:
        """Refused: the output mixes the members' probabilities, which their own runs calibrate."""
        raise ValueError("an ensemble mixes its members' calibrated probabilities: calibrate the member runs")

    def gradcam_layer(self) -> nn.Module | None:
        """The first member's last convolutional layer (Grad-CAM of the ensemble's score through it)."""
        return self.members[0].gradcam_layer()


def _member(spec: Mapping[str, Any], num_classes: int, input_size: tuple[int, int | None] | None) -> EscModel:
    """One member from ``{"name", "kwargs", "classifier_reset"}`` (its head reset where its run reset it)."""
    model = create_model(spec["name"], num_classes=num_classes, input_size=input_size, **dict(spec.get("kwargs", {})))
    if spec.get("classifier_reset"):
        model.reset_classifier(num_classes)
    return model


@register_model
def ensemble(num_classes: int, members: Sequence[Mapping[str, Any]], weights: Sequence[float] | None = None,
             input_size: tuple[int, int | None] | None = None) -> ProbabilityEnsemble:
    """Weighted mean of trained members' probabilities (see :class:`ProbabilityEnsemble`)."""
    return ProbabilityEnsemble(num_classes, members, weights, input_size)
