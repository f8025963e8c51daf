"""Paired tests over the folds two runs share, against scipy."""

from __future__ import annotations

import pytest
from scipy.stats import ttest_rel, wilcoxon

from esclab.evaluate.compare import paired_tests


def test_paired_tests_equal_scipy_on_shared_folds():
    a = {1: 0.70, 2: 0.72, 3: 0.68, 4: 0.75, 5: 0.71}
    b = {1: 0.74, 2: 0.73, 3: 0.73, 4: 0.76, 5: 0.78, 6: 0.9}  # fold 6 is not shared
    result = paired_tests(a, b)
    x, y = [a[f] for f in range(1, 6)], [b[f] for f in range(1, 6)]
    assert result["folds"] == [1, 2, 3, 4, 5] and result["n"] == 5
    assert result["mean_difference"] == pytest.approx(sum(y) / 5 - sum(x) / 5)
    assert result["t_p"] == pytest.approx(ttest_rel(y, x).pvalue)
    assert result["wilcoxon_p"] == pytest.approx(wilcoxon([q - p for p, q in zip(x, y, strict=True)]).pvalue)


@pytest.mark.parametrize(("a", "b", "note"), [
    ({1: 0.5, 2: 0.6}, {1: 0.6, 2: 0.7}, "same on every fold"),
    ({1: 0.5}, {1: 0.6, 2: 0.7}, "fewer than 2"),
])
def test_undefined_tests_say_why(a, b, note):
    result = paired_tests(a, b)
    assert result["t_p"] is None and result["wilcoxon_p"] is None
    assert note in result["note"]
