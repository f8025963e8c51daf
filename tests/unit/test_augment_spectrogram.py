"""Spectrogram transforms and mixup: exact bands, rigid geometry, per-example draws, soft targets."""

from __future__ import annotations

import pytest
import torch

from esclab.augment import FrequencyMasking, Mixup, RandomAffine, SpecAugment, TimeMasking, mixup
from esclab.augment.spectrogram import band_mask, mask_bands

MASKS = [(TimeMasking, 3), (FrequencyMasking, 2)]


def specs(batch: int = 4, n_mels: int = 32, frames: int = 48, seed: int = 0) -> torch.Tensor:
    """Random log-mel-like batch; no cell equals its example's mean."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, n_mels, frames, generator=g) * -80


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_band_mask_marks_exactly_the_bands():
    mask = band_mask(10, torch.tensor([[1, 6], [0, 9]]), torch.tensor([[2, 0], [3, 1]]))
    expected = torch.tensor([[0, 1, 1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]]).bool()
    assert torch.equal(mask, expected)


def test_mask_bands_sets_the_bands_to_fill_and_keeps_the_rest():
    x = specs(batch=2)
    out = mask_bands(x, torch.tensor([[5], [40]]), torch.tensor([[3], [8]]), dim=3, fill=0.0)
    assert not out[0, ..., 5:8].any() and not out[1, ..., 40:48].any()
    assert torch.equal(out[0, ..., :5], x[0, ..., :5]) and torch.equal(out[0, ..., 8:], x[0, ..., 8:])
    assert torch.equal(out[1, ..., :40], x[1, ..., :40])


@pytest.mark.parametrize(("cls", "dim"), MASKS)
def test_masking_changes_exactly_the_drawn_bands_to_the_mean(cls, dim):
    x, transform = specs(batch=8), cls(num_masks=2, max_width=10)
    params = transform.randomize_parameters(x, gen(3))
    out = transform.apply(x, params)
    length = x.shape[dim]
    assert ((params["widths"] >= 0) & (params["widths"] <= 10)).all()
    assert ((params["starts"] >= 0) & (params["starts"] + params["widths"] <= length)).all()
    drawn = band_mask(length, params["starts"], params["widths"])  # (batch, length)
    per_position = (out != x).squeeze(1).movedim(dim - 1, 1)  # (batch, length, other axis)
    assert torch.equal(per_position.all(-1), drawn) and torch.equal(per_position.any(-1), drawn)
    means = x.mean(dim=(1, 2, 3))
    for i in range(8):
        assert torch.allclose(out[i][(out[i] != x[i])], means[i])


@pytest.mark.parametrize(("cls", "dim"), MASKS)
def test_frozen_masks_hit_the_given_bands(cls, dim):
    x = specs(batch=3)
    out = cls(num_masks=2, max_width=10).freeze(starts=[2, 20], widths=[4, 1])(x)
    expected = band_mask(x.shape[dim], torch.tensor([[2, 20]] * 3), torch.tensor([[4, 1]] * 3))
    touched = (out != x).any(dim=(1, 5 - dim))  # (batch, length along dim)
    assert torch.equal(touched, expected)


def test_mask_width_is_capped_at_the_axis_length():
    x = specs(batch=16, n_mels=8)
    out = FrequencyMasking(num_masks=1, max_width=100)(x, gen(0))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_masks_apply_per_example_with_probability_p():
    x = specs(batch=200, n_mels=8, frames=8)
    out = TimeMasking(num_masks=3, max_width=8, p=0.5)(x, gen(1))
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.35 < changed < 0.6  # some drawn masks are empty (width 0), so slightly below p


def test_affine_identity_parameters_keep_the_input():
    x = specs()
    out = RandomAffine(10, 0.1, 0.1).freeze(angle_deg=0.0, zoom=1.0, shift_time=0.0, shift_mel=0.0)(x)
    assert torch.allclose(out, x, atol=1e-3)  # float32 grid rounding on values of -80..0


def test_affine_translation_moves_content_and_fills_with_the_mean():
    x = specs(batch=2, frames=48)
    out = RandomAffine().freeze(angle_deg=0.0, zoom=1.0, shift_time=6 / 48, shift_mel=0.0)(x)
    assert torch.allclose(out[..., 6:], x[..., :-6], atol=1e-3)
    assert torch.allclose(out[..., :6], x.mean(dim=(1, 2, 3), keepdim=True).expand(-1, -1, -1, 6), atol=1e-3)


def test_affine_rotation_by_90_degrees_is_rot90():
    x = specs(batch=2, n_mels=16, frames=16)
    out = RandomAffine(max_rotation_deg=90).freeze(angle_deg=90.0, zoom=1.0, shift_time=0.0, shift_mel=0.0)(x)
    assert torch.allclose(out, torch.rot90(x, k=1, dims=(3, 2)), atol=1e-3)


def test_affine_zoom_magnifies_about_the_centre():
    ramp = torch.arange(48.0).expand(1, 1, 32, 48).contiguous()
    out = RandomAffine().freeze(angle_deg=0.0, zoom=2.0, shift_time=0.0, shift_mel=0.0)(ramp)
    centre = out[0, 0, 16, 12:36]
    assert torch.allclose(centre.diff(), torch.full((23,), 0.5), atol=1e-4)
    assert centre.mean().item() == pytest.approx(23.5, abs=1e-3)


def test_affine_draws_stay_in_range():
    params = RandomAffine(15, 0.2, 0.1).randomize_parameters(specs(batch=500), gen(0))
    assert params["angle_deg"].abs().max() <= 15 and params["shift_mel"].abs().max() <= 0.1
    assert ((params["zoom"] >= 0.8) & (params["zoom"] <= 1.2)).all()
    assert params["angle_deg"].std() > 5  # per-example draws, not one per batch


ALL = [TimeMasking(2, 10, p=1.0), FrequencyMasking(2, 10, p=1.0), RandomAffine(10, 0.1, 0.1, p=1.0)]


@pytest.mark.parametrize("transform", ALL, ids=lambda t: type(t).__name__)
def test_p_zero_is_the_identity(transform):
    x = specs()
    zero = type(transform)(p=0.0)
    assert zero(x, gen(0)) is x


@pytest.mark.parametrize("transform", ALL, ids=lambda t: type(t).__name__)
def test_same_seed_same_output_other_seed_other_output(transform):
    x = specs()
    first, again, other = transform(x, gen(5)), transform(x, gen(5)), transform(x, gen(6))
    assert first.shape == x.shape and torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: TimeMasking(num_masks=0), "num_masks must be an integer >= 1"),
    (lambda: FrequencyMasking(max_width=2.5), "max_width must be an integer >= 1"),
    (lambda: RandomAffine(max_rotation_deg=200), r"max_rotation_deg must be in \[0, 180\]"),
    (lambda: RandomAffine(max_zoom=1.0), r"max_zoom must be in \[0, 1\)"),
    (lambda: RandomAffine(max_translate=-0.1), r"max_translate must be in \[0, 1\]"),
    (lambda: TimeMasking(p=-0.1), "p must be a probability"),
    (lambda: RandomAffine().freeze(rotation=3), r"unknown parameter\(s\) \['rotation'\]"),
    (lambda: TimeMasking()(torch.zeros(2, 8, 8)), r"expected \(batch, 1, n_mels, frames\)"),
    (lambda: Mixup(alpha=0), "mixup alpha must be > 0"),
    (lambda: Mixup(p=2), "p must be a probability"),
    (lambda: mixup(torch.zeros(4, 3), torch.zeros(4), 0.2), r"y_onehot must be \(batch, num_classes\)"),
])
def test_bad_arguments_raise_a_clear_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_reprs_list_the_arguments():
    assert repr(TimeMasking(2, 16)) == "TimeMasking(num_masks=2, max_width=16, p=1.0)"
    assert repr(RandomAffine(5, 0.1, 0.2, p=0.3)) == \
        "RandomAffine(max_rotation_deg=5, max_zoom=0.1, max_translate=0.2, p=0.3)"
    assert repr(Mixup(0.4, p=0.5)) == "Mixup(alpha=0.4, p=0.5)"
    assert "FrequencyMasking(num_masks=1, max_width=4, p=1.0)" in repr(SpecAugment([FrequencyMasking(1, 4)]))


def test_spec_augment_runs_in_training_mode_only():
    x, module = specs(), SpecAugment([TimeMasking(2, 10), FrequencyMasking(2, 10)])
    assert not torch.equal(module.train()(x, gen(0)), x)
    assert module.eval()(x) is x


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_spectrogram_transforms_run_on_the_gpu():
    x = specs().cuda()
    for transform in ALL:
        assert transform(x, torch.Generator("cuda").manual_seed(0)).device == x.device
        assert transform(x, gen(0)).device == x.device
    mixed, soft = mixup(x, torch.eye(4, device="cuda"), 0.2)
    assert mixed.device == soft.device == x.device


def test_mixup_mixes_inputs_and_targets_with_the_same_lambda():
    x = torch.randn(6, 1, 4, 5, generator=gen(0))
    mixed, soft = mixup(x, torch.eye(6), alpha=0.4, generator=gen(1))
    assert torch.allclose(soft.sum(1), torch.ones(6))
    assert torch.allclose(mixed.flatten(1), soft @ x.flatten(1), atol=1e-6)


def test_mixup_lambda_follows_the_beta_distribution():
    alpha, batch = 0.4, 2000
    _, soft = mixup(torch.zeros(batch, 1), torch.eye(batch), alpha, gen(2))
    lam = soft.diagonal()
    lam = lam[lam < 1]  # drop the rare examples paired with themselves
    assert lam.mean().item() == pytest.approx(0.5, abs=0.03)
    assert lam.var().item() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.1)


def test_mixup_is_seeded_and_mixup_p_zero_is_the_identity():
    x, y = torch.randn(8, 1, 4, 4, generator=gen(0)), torch.eye(8)
    assert torch.equal(mixup(x, y, 0.2, gen(3))[0], mixup(x, y, 0.2, gen(3))[0])
    assert not torch.equal(mixup(x, y, 0.2, gen(3))[0], mixup(x, y, 0.2, gen(4))[0])
    out_x, out_y = Mixup(0.2, p=0.0)(x, y, gen(0))
    assert out_x is x and out_y is y
