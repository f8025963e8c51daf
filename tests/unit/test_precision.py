"""``train.precision: auto`` picks bf16 only where the CPU computes it natively."""

from __future__ import annotations

import pytest

from esclab.config import load_config
from esclab.train import precision as P

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
AVX512_BF16 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert not P.cpu_has_native_bf16(AVX2_ONLY)
    assert P.cpu_has_native_bf16(AVX512_BF16)
    assert P.cpu_has_native_bf16("flags : amx_bf16 amx_tile\n")
    assert not P.cpu_has_native_bf16("model name : avx512_bf16 in a name, not a flag\n")


@pytest.mark.parametrize("cpuinfo,expected", [(AVX2_ONLY, "32"), (AVX512_BF16, "bf16-mixed")])
def test_auto_resolves_by_the_cpu(monkeypatch, cpuinfo, expected):
    reads = P.cpu_has_native_bf16
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: reads(cpuinfo))
    assert P.resolve_precision("auto", "cpu") == expected
    assert P.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"  # an explicit choice is kept
    assert P.resolve_precision("32", "cpu") == "32"


def test_the_cpu_recipes_ask_for_auto():
    for experiment in ("paper_cnn", "best_cpu"):
        assert load_config(f"configs/experiment/{experiment}.yaml").train.precision == "auto"
