"""Where a model looks: its own attention maps, or Grad-CAM on its ``gradcam_layer()``.

Uses only the :class:`esclab.models.EscModel` interface, never the architecture. Grad-CAM
(Selvaraju et al., 2017) is a forward hook and a tensor hook on one layer: weigh the layer's
channels by their spatially averaged gradient of the target logit, sum, keep the positive
part. Written here in a few lines of torch rather than adding pytorch-grad-cam, whose
wrappers expect image-classification models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from esclab.bundle import Bundle
from esclab.models import EscModel


def gradcam(model: EscModel, layer: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of the ``target`` logits at ``layer``.

    Args:
        model: the model, in eval mode.
        layer: a module inside ``model`` whose output is ``(B, C, h, w)``.
        x: ``(B, 1, M, T)`` model input.
        target: ``(B,)`` class index per example.

    Returns:
        ``(B, h, w)`` non-negative maps.
    """
    captured: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        captured["activation"] = output
        output.register_hook(lambda grad: captured.__setitem__("gradient", grad))

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True))  # a graph even where the weights are frozen
            logits.gather(1, target.view(-1, 1)).sum().backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    weights = captured["gradient"].mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * captured["activation"]).sum(dim=1)).detach()


def class_heatmap(model: EscModel, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor | None, str]:
    """The model's attention maps if it has them, else Grad-CAM, resized to ``x`` and scaled to ``[0, 1]``.

    Args:
        model: the model, in eval mode.
        x: ``(B, 1, M, T)`` model input.
        target: ``(B,)`` class per example (used by Grad-CAM; attention maps ignore it).

    Returns:
        ``(B, M, T)`` maps and the method's name (``"attention"`` or ``"Grad-CAM"``), or
        ``(None, "none")`` for a model that exposes neither.
    """
    with torch.no_grad():
        maps = model.attention_maps(x)
    method = "attention"
    if maps is None:
        layer = model.gradcam_layer()
        if layer is None:
            return None, "none"
        maps, method = gradcam(model, layer, x, target), "Grad-CAM"
    maps = F.interpolate(maps.unsqueeze(1).float(), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = (maps.amax(dim=(1, 2), keepdim=True) - low).clamp_min(1e-12)
    return (maps - low) / span, method


@dataclass
class Explanation:
    """One clip as the report draws it: log-mel in dB ``(M, T)``, heatmap ``(M, T)`` or ``None``, method."""

    spec_db: np.ndarray
    heat: np.ndarray | None
    method: str


def explain(bundle: Bundle, waves: np.ndarray, target: np.ndarray) -> list[Explanation]:
    """Log-mel images and heatmaps for ``(B, samples)`` waveforms and ``(B,)`` target classes."""
    wave = torch.from_numpy(np.asarray(waves, dtype=np.float32))
    with torch.no_grad():
        spec_db = bundle.frontend[0](wave)  # the LogMel before standardisation: what a listener's eye reads
        x = bundle.frontend[1](spec_db)
    heat, method = class_heatmap(bundle.model, x, torch.tensor(np.asarray(target), dtype=torch.long))
    return [Explanation(spec_db[i, 0].numpy(), None if heat is None else heat[i].numpy(), method)
            for i in range(len(wave))]
