"""Export a bundle's model for other runtimes (ONNX, TorchScript), checked against PyTorch.

The exported graph takes the log-mel in dB, ``(batch, 1, n_mels, frames)`` as the bundle's
``LogMel`` makes it, and includes the per-band standardisation, so a runtime needs only the
log-mel front end (see ``features``) and this file. With ``waveform=True`` the graph takes
the clip waveform ``(batch, clip_samples)`` at the bundle's rate instead and includes the STFT
and log-mel too. The batch dimension is dynamic in both.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from esclab.bundle import Bundle
from esclab.errors import EsclabError
from esclab.fsutil import atomic_write

EXPORT_FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


class ExportError(EsclabError, RuntimeError):
    """The exported model does not reproduce PyTorch's logits within the tolerance."""


@dataclass
class ExportResult:
    """Where the model went and how closely the exported copy matches PyTorch."""

    path: Path
    format: str
    input_name: str
    input_shape: tuple[int, ...]
    max_abs_diff: float
    check_batch: int
    sidecar: Path | None = None

    def summary(self) -> str:
        dims = ", ".join(["batch", *map(str, self.input_shape[1:])])
        runtime = "onnxruntime" if self.format == "onnx" else "TorchScript"
        facts = f" and {self.sidecar} (class names, input, rejection threshold)" if self.sidecar else ""
        return (f"wrote {self.path} ({self.format}, input {self.input_name!r} ({dims}), output 'logits'){facts}; "
                f"{runtime} vs PyTorch on a random batch of {self.check_batch}: "
                f"max |diff| = {self.max_abs_diff:.2e}")


def default_export_path(checkpoint: Path, fmt: str, waveform: bool = False) -> Path:
    """``fold_1/model.ckpt`` -> ``fold_1/model.onnx`` (``model_waveform.onnx`` with ``waveform``)."""
    return checkpoint.with_name(checkpoint.stem + ("_waveform" if waveform else "") + SUFFIXES[fmt])


def export_module(bundle: Bundle, waveform: bool = False) -> tuple[nn.Module, torch.Tensor, str]:
    """The module to export, an example input ``(2, ...)``, and the input's name.

    Args:
        bundle: a loaded bundle.
        waveform: include the log-mel front end (input ``(batch, clip_samples)``).
    """
    logmel, standardize = bundle.frontend
    clip = torch.zeros(2, bundle.audio.num_samples)
    if waveform:
        return nn.Sequential(logmel, standardize, bundle.model).eval(), clip, "waveform"
    with torch.no_grad():
        spec = logmel(clip)
    return nn.Sequential(standardize, bundle.model).eval(), spec, "logmel"


def _random_like(example: torch.Tensor, batch: int, bundle: Bundle) -> torch.Tensor:
    """A random batch shaped like ``example``: noise waveforms, or the bundle's log-mel of noise waveforms."""
    gen = torch.Generator().manual_seed(0)
    noise = 0.1 * torch.randn((batch, bundle.audio.num_samples), generator=gen)
    if example.ndim == 2:
        return noise
    with torch.no_grad():
        return bundle.frontend[0](noise)


def _export_onnx(module: nn.Module, example: torch.Tensor, name: str, path: Path) -> None:
    """``torch.onnx.export`` (the torch.export-based exporter), weights inside the one file."""
    batch = torch.export.Dim("batch", min=1)
    loggers = [logging.getLogger(logger_name) for logger_name in ("onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:  # their graph-optimiser passes log every step at INFO
        logger.setLevel(logging.WARNING)
    try:
        torch.onnx.export(module, (example,), path, dynamo=True, input_names=[name], output_names=["logits"],
                          dynamic_shapes=({0: batch},), external_data=False, verbose=False)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch.jit's deprecation notices, and its trace warnings about the fixed clip length."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def _export_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    with _quiet_jit():
        torch.jit.save(torch.jit.trace(module, example, check_trace=False), str(path))  # parity is checked after


def _run_exported(fmt: str, path: Path, name: str, batch: torch.Tensor) -> np.ndarray:
    if fmt == "onnx":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(["logits"], {name: batch.numpy()})[0]
    with torch.no_grad(), _quiet_jit():
        return torch.jit.load(str(path)).eval()(batch).numpy()


def export_bundle(bundle: Bundle, out: str | Path, fmt: str = "onnx", waveform: bool = False,
                  tolerance: float = 1e-4, check_batch: int = 3) -> ExportResult:
    """Export the bundle's model and check it against PyTorch on a random batch.

    Args:
        bundle: a loaded bundle.
        out: output file.
        fmt: ``"onnx"`` (checked with onnxruntime) or ``"torchscript"`` (traced, checked by reloading).
        waveform: export the whole waveform -> logits graph instead of log-mel -> logits.
        tolerance: largest allowed absolute difference of the logits.
        check_batch: size of the random check batch (differs from the export example's 2,
            so the dynamic batch dimension is exercised).

    Raises:
        ValueError: unknown format.
        ExportError: the exported model's logits differ from PyTorch's by more than ``tolerance``.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    module, example, name = export_module(bundle, waveform)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        _export_onnx(module, example, name, path)
    else:
        _export_torchscript(module, example, path)
    batch = _random_like(example, check_batch, bundle)
    with torch.no_grad():
        expected = module(batch).numpy()
    diff = float(np.abs(_run_exported(fmt, path, name, batch) - expected).max())
    if not diff <= tolerance:
        raise ExportError(f"{path}: exported logits differ from PyTorch by {diff:.2e} > {tolerance:g}")
    sidecar = atomic_write(path.with_suffix(path.suffix + ".json"),
                           json.dumps(export_facts(bundle, waveform), indent=2, default=str))
    return ExportResult(path=path, format=fmt, input_name=name, input_shape=tuple(example.shape),
                        max_abs_diff=diff, check_batch=check_batch, sidecar=sidecar)


def export_facts(bundle: Bundle, waveform: bool) -> dict[str, Any]:
    """What a runtime needs beside the graph: the classes in output order, the input, and the calibration.

    The logits are already calibrated (the temperature is folded into the head); ``reject_below`` is the
    rule a runtime applies: ``unknown`` when the best softmax probability is below it (``null``: never).
    """
    return {"class_names": bundle.class_names, "input": "waveform" if waveform else "log-mel",
            "audio": asdict(bundle.audio), "features": asdict(bundle.features), "output": "logits",
            "calibration": bundle.calibration, "reject_below": bundle.reject_below,
            "esclab_version": bundle.esclab_version}
