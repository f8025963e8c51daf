"""The one small interface every esclab model implements.

Input layout everywhere: log-mel spectrograms shaped ``(batch, 1, n_mels, frames)``
in dB (after the optional per-band standardisation). Output: logits ``(batch, num_classes)``.
Reports, galleries and heatmaps use only these methods, never the architecture.
"""

from __future__ import annotations

import torch
from torch import nn


class EscModel(nn.Module):
    """Base class: ``forward_features`` -> pooled embedding, ``forward_head`` -> logits.

    Subclasses set ``num_classes`` and ``num_features`` and implement the two
    forward halves. Optional hooks:

    * ``attention_maps(x)`` returns ``(batch, n_mels', frames')`` weights for models
      with an attention layer, ``None`` otherwise.
    * ``gradcam_layer()`` returns the last convolutional module (for Grad-CAM) or ``None``.
    * ``l2_penalty()`` returns ``(c, weights)`` for an explicit Keras-style penalty ``c * sum(w**2)``
      (the paper CNN's dense layers); training applies it as weight decay ``2c`` on those weights
      (Adam, SGD: the same update) or adds ``regularization_loss()`` to the loss (AdamW).
    * ``parameter_groups(lr)`` returns optimiser groups (per-group learning rates
      for fine-tuning); the default is one group.
    * ``check_pretrained(state_dict, source)`` (optional) raises ``ValueError`` for a checkpoint
      of another width or family before :func:`~esclab.models.pretrained.load_pretrained` loads it.
    * ``get_classifier()`` / ``reset_classifier(n)`` (timm's names): the module that maps the embedding
      to logits, and its replacement by one new ``Linear(num_features, n)``. A linear probe reads the
      embedding of ``forward_features`` and writes its solution into that Linear (resetting the head
      first where it is not one Linear); ``classifier_reset`` records it, so a bundle rebuilds the same head.
    * ``frozen_blocks`` > 0 (families that support it): the leading layers are frozen and stay in eval
      mode, so their outputs are a fixed function of the input that training may cache
      (:mod:`esclab.train.frozen`). ``forward_frozen`` runs them, ``forward_from_frozen`` the rest;
      ``forward(x) == forward_from_frozen(forward_frozen(x))``. Without frozen blocks the first is the
      identity and the second is ``forward``.
    """

    num_classes: int
    num_features: int
    #: ``(n_mels, frames)`` the model is built for when ``create_model`` gets no ``input_size``
    #: (the run's feature config gives it otherwise; families that pool globally take any size).
    default_input_size: tuple[int, int] = (128, 215)
    #: leading layers frozen in eval mode (see the class notes); 0: none.
    frozen_blocks: int = 0
    #: state-dict key prefixes of the classification head: a pretrained load may leave these at init
    #: (another label set); any other tensor left unfilled stops the load (``model.pretrained_partial``).
    head_prefixes: tuple[str, ...] = ("head.", "classifier.")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, M, T)`` log-mel -> ``(B, num_classes)`` logits."""
        return self.forward_head(self.forward_features(x))

    #: set by :meth:`reset_classifier`: the head is one new Linear, not the family's own.
    classifier_reset: bool = False

    def get_classifier(self) -> nn.Module:  # pragma: no cover - abstract
        """The module that maps the embedding (``forward_features``) to logits."""
        raise NotImplementedError

    def _set_classifier(self, head: nn.Module) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head by a new ``Linear(num_features, num_classes)`` on the embedding."""
        self._set_classifier(nn.Linear(self.num_features, num_classes))
        self.num_classes = num_classes
        self.classifier_reset = True

    def fold_temperature(self, temperature: float) -> None:
        """Divide the logits by ``temperature`` for good: the head's last ``Linear`` is scaled by ``1 / T``.

        The argmax does not change; the softmax of the new logits is the temperature-scaled one
        (:mod:`esclab.calibration`), so everything that runs the model gives calibrated probabilities.

        Raises:
            ValueError: a temperature that is not positive, or a head without a ``Linear`` layer.
        """
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        linears = [m for m in self.get_classifier().modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(f"{type(self).__name__}'s head has no Linear layer to fold a temperature into")
        with torch.no_grad():
            linears[-1].weight.div_(temperature)
            if linears[-1].bias is not None:
                linears[-1].bias.div_(temperature)

    def forward_frozen(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen leading layers' output (the identity for a model without them)."""
        return x

    def forward_features_from_frozen(self, hidden: torch.Tensor) -> torch.Tensor:
        """The embedding from :meth:`forward_frozen`'s output."""
        return self.forward_features(hidden)

    def forward_from_frozen(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from :meth:`forward_frozen`'s output."""
        return self.forward_head(self.forward_features_from_frozen(hidden))

    def attention_maps(self, x: torch.Tensor) -> torch.Tensor | None:
        return None

    def gradcam_layer(self) -> nn.Module | None:
        return None

    def l2_penalty(self) -> tuple[float, list[nn.Parameter]]:
        return 0.0, []

    def regularization_loss(self) -> torch.Tensor:
        """``c * sum(w**2)`` over :meth:`l2_penalty`'s weights (zero without a penalty)."""
        coefficient, weights = self.l2_penalty()
        total = torch.zeros((), device=next(self.parameters()).device)
        return total + coefficient * sum((w.float() ** 2).sum() for w in weights) if weights else total

    def parameter_groups(self, lr: float) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]
