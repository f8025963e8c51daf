"""``train.precision: auto``: bf16 autocast only where the hardware computes bf16 natively.

On a CPU without AVX512-BF16 or AMX (an AVX2-only EPYC, say) PyTorch emulates bf16, and a
bf16-autocast step of the paper CNN takes 5x the fp32 step (11.8 s against 2.4 s at batch 32 on
one thread here); with them it is the faster choice. A recipe that says ``auto`` runs at the speed
the machine allows; the precision used is recorded in each fold's ``metrics.json``.
"""

from __future__ import annotations

import torch

from esclab.provenance import read_cpuinfo

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when ``/proc/cpuinfo`` (or the text given) lists AVX512-BF16 or AMX-BF16."""
    if cpuinfo is None:
        cpuinfo = read_cpuinfo()
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split()}
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def resolve_precision(precision: str, accelerator: str = "cpu") -> str:
    """The Lightning precision for ``precision`` (``"auto"`` resolved, anything else as given).

    ``auto``: on a GPU ``bf16-mixed`` where supported (else ``16-mixed``); on the CPU ``bf16-mixed``
    with native bf16 instructions, else ``"32"``.
    """
    if precision != "auto":
        return precision
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_native_bf16() else "32"
