"""One model registry: ``register_model``, ``create_model``, ``list_models``.

A model family has one builder; each registered name is a short function that
calls it with the variant's settings, like timm's ``models/_registry.py``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from esclab.config import ConfigError
from esclab.models._base import EscModel

_MODEL_ENTRYPOINTS: dict[str, Callable[..., EscModel]] = {}


def register_model(fn: Callable[..., EscModel]) -> Callable[..., EscModel]:
    """Register ``fn`` under its function name; a duplicate name is an error."""
    name = fn.__name__
    if name in _MODEL_ENTRYPOINTS:
        raise ValueError(f"model {name!r} is already registered")
    _MODEL_ENTRYPOINTS[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching a shell-style ``pattern``."""
    _import_families()
    return sorted(n for n in _MODEL_ENTRYPOINTS if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    _import_families()
    return name in _MODEL_ENTRYPOINTS


def create_model(name: str, num_classes: int, pretrained: str | None = None,
                 input_size: tuple[int, int | None] | None = None, pretrained_partial: bool = False,
                 **kwargs) -> EscModel:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`.
        num_classes: size of the classification head.
        pretrained: a local weight file or folder, or a hub name; see
            :func:`esclab.models.pretrained.load_pretrained`.
        input_size: ``(n_mels, frames)`` of the input spectrograms, from the feature config
            (``None``: the family's ``default_input_size``). Models sized for their input (the
            paper CNN's flatten layer, AST's position grid, the Conformer's projection) use it.
        pretrained_partial: accept weights that fill only part of the body (otherwise that stops).
        **kwargs: family-specific options (dropout, widths, freezing, ...).

    The :class:`~esclab.models.pretrained.LoadReport` of a pretrained load is kept as
    ``model.pretrained_report`` (``None`` without pretrained weights).

    Raises:
        ConfigError: an unknown model, or options its family does not take or refuses.
        WeightsError: pretrained weights that cannot be found, read or loaded into the model.

    Example:
        >>> import torch
        >>> model = create_model("paper_cnn", num_classes=50, input_size=(64, 108)).eval()
        >>> model(torch.zeros(2, 1, 64, 108)).shape, model.forward_features(torch.zeros(2, 1, 64, 108)).shape
        (torch.Size([2, 50]), torch.Size([2, 128]))
        >>> list_models("mn0*")
        ['mn01', 'mn02', 'mn04', 'mn05']
    """
    _import_families()
    if name not in _MODEL_ENTRYPOINTS:
        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(sorted(_MODEL_ENTRYPOINTS))}")
    try:
        model = _MODEL_ENTRYPOINTS[name](num_classes=num_classes, input_size=input_size, **kwargs)
    except TypeError as err:  # an option this family does not take, or one given twice
        raise ConfigError(f"model {name!r} cannot be built with options {sorted(kwargs)}: {err}. "
                          f"Pick the model with its own config (--set model={name}) rather than "
                          f"model.name, so another model's options do not carry over") from err
    except ValueError as err:  # an option out of range: the family's constructor says which
        raise ConfigError(f"model {name!r}: {err}") from err
    model.pretrained_report = None
    if pretrained:
        from esclab.models.pretrained import load_pretrained

        model.pretrained_report = load_pretrained(model, pretrained, partial=pretrained_partial)
    return model


def _import_families() -> None:
    # Importing the package registers every family (each module decorates its variants).
    import esclab.models  # noqa: F401
