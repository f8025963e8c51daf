"""The transform contract shared by every augmentation (after audiomentations' ``BaseTransform``).

A transform draws its random parameters in :meth:`Transform.randomize_parameters`
and applies them, deterministically, in :meth:`Transform.apply`. Keeping the two
apart lets :meth:`Transform.freeze` pin parameters at given values (the robustness
curves reuse the training transforms this way) and makes a seeded generator
reproduce the same output.
"""

from __future__ import annotations

import copy
import inspect
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np


def check_probability(p: float) -> float:
    """Return ``p`` as a float, or raise ``ValueError`` unless it lies in ``[0, 1]``."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    return float(p)


def check_range(name: str, low: float, high: float, min_value: float, max_value: float) -> None:
    """Raise ``ValueError`` unless ``min_value <= low <= high <= max_value``.

    Args:
        name: stem of the two argument names, e.g. ``"rate"`` for ``min_rate``/``max_rate``.
        low: the range's lower end.
        high: the range's upper end.
        min_value: smallest allowed ``low``.
        max_value: largest allowed ``high``.
    """
    if not min_value <= low <= max_value or not min_value <= high <= max_value:
        raise ValueError(f"min_{name} and max_{name} must lie in [{min_value}, {max_value}], "
                         f"got {low!r} and {high!r}")
    if low > high:
        raise ValueError(f"min_{name} must be <= max_{name}, got {low!r} > {high!r}")


def init_args_repr(obj: object) -> str:
    """``ClassName(arg=value, ...)`` from the constructor's arguments, read back from ``obj``."""
    names = [n for n in inspect.signature(type(obj).__init__).parameters if n != "self"]
    args = ", ".join(f"{n}={getattr(obj, n)!r}" for n in names)
    return f"{type(obj).__name__}({args})"


class Transform:
    """One augmentation applied with probability ``p``.

    Subclasses list the keys of their random parameters in ``param_names`` and
    implement :meth:`randomize_parameters` and :meth:`apply`. Every constructor
    argument is stored under its own name, which makes the ``repr`` complete.

    This base handles one example at a time with a ``numpy.random.Generator``
    (the waveform case); :class:`esclab.augment.spectrogram.SpectrogramTransform`
    overrides :meth:`__call__` for batched torch input.

    Args:
        p: probability of applying the transform on a call.

    Raises:
        ValueError: ``p`` is outside ``[0, 1]``.
    """

    param_names: tuple[str, ...] = ()

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_probability(p)
        self.frozen: dict[str, Any] = {}

    def randomize_parameters(self, x: Any, rng: Any) -> dict[str, Any]:
        """Draw the parameters for one application to ``x``; keys are ``param_names``."""
        raise NotImplementedError

    def apply(self, x: Any, params: dict[str, Any]) -> Any:
        """Apply the transform with the given parameters; deterministic."""
        raise NotImplementedError

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """With probability ``p``, draw parameters (frozen ones win) and apply them to ``x``.

        Args:
            x: one example.
            rng: source of randomness; ``None`` uses a fresh, unseeded generator.
        """
        rng = np.random.default_rng() if rng is None else rng
        if rng.random() >= self.p:
            return x
        return self.apply(x, {**self.randomize_parameters(x, rng), **self.frozen})

    def freeze(self, **params: Any) -> Transform:
        """A copy that always applies (``p=1``) with ``params`` pinned; the others are still drawn.

        Example: ``AddWhiteNoise(0, 30).freeze(snr_db=10)`` adds fresh noise at exactly 10 dB.

        Raises:
            ValueError: a name is not one of ``param_names``.
        """
        unknown = sorted(set(params) - set(self.param_names))
        if unknown:
            raise ValueError(f"{type(self).__name__}.freeze: unknown parameter(s) {unknown}; "
                             f"valid: {list(self.param_names)}")
        frozen = copy.copy(self)
        frozen.p = 1.0
        frozen.frozen = {**self.frozen, **params}
        return frozen

    def __repr__(self) -> str:
        text = init_args_repr(self)
        if self.frozen:
            text += ".freeze(" + ", ".join(f"{k}={v!r}" for k, v in self.frozen.items()) + ")"
        return text


class Compose:
    """Apply transforms in order, passing the same generator to each.

    Args:
        transforms: the transforms, applied first to last.
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Any, rng: Any = None) -> Any:
        """Run ``x`` through every transform; ``rng`` as the transforms take it."""
        for transform in self.transforms:
            x = transform(x, rng)
        return x

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        if not self.transforms:
            return "Compose([])"
        return "Compose([\n" + "".join(f"    {t!r},\n" for t in self.transforms) + "])"
