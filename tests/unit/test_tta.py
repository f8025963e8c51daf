"""Time-shift test-time augmentation: offsets, views, and the averaged probabilities."""

from __future__ import annotations

import pytest
import torch

from esclab.tta import shift_offsets, time_shift_views, tta_probabilities


def test_offsets_are_evenly_spaced_from_zero():
    assert shift_offsets(215, 1) == [0]
    assert shift_offsets(200, 4) == [0, 50, 100, 150]


@pytest.mark.parametrize("n_views", [0, 9])
def test_bad_view_count_is_refused(n_views):
    with pytest.raises(ValueError, match="n_views must be in"):
        shift_offsets(8, n_views)


def test_views_are_rolled_copies_and_the_first_is_the_clip():
    spec = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(2, 1, 3, 8)
    views = time_shift_views(spec, 4)
    assert len(views) == 4 and all(v.shape == spec.shape for v in views)
    assert torch.equal(views[0], spec)
    assert torch.equal(views[1][..., 2:], spec[..., :6]) and torch.equal(views[1][..., :2], spec[..., 6:])


def test_one_view_is_the_plain_softmax_and_more_views_average():
    torch.manual_seed(0)
    spec = torch.randn(5, 1, 4, 16)
    weight = torch.randn(4 * 16, 3)

    def logits_fn(x):
        return x.flatten(1) @ weight

    plain = torch.softmax(logits_fn(spec), dim=1)
    assert torch.allclose(tta_probabilities(logits_fn, spec, 1), plain)
    averaged = tta_probabilities(logits_fn, spec, 2)
    expected = (plain + torch.softmax(logits_fn(torch.roll(spec, 8, dims=-1)), dim=1)) / 2
    assert torch.allclose(averaged, expected, atol=1e-6)
    assert torch.allclose(averaged.sum(dim=1), torch.ones(5))


def test_a_shift_invariant_model_gains_nothing_and_loses_nothing():
    spec = torch.randn(3, 1, 4, 10)

    def pooled(x):  # global time pooling: every rolled view gives the same logits
        return x.mean(dim=-1).flatten(1)

    assert torch.allclose(tta_probabilities(pooled, spec, 5), tta_probabilities(pooled, spec, 1), atol=1e-6)
