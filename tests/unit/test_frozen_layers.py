"""Frozen leading layers: the split forward equals the whole one, frozen layers get no gradient and keep
their BatchNorm statistics in training mode, and the time roll that acts on their output maps."""

from __future__ import annotations

import pytest
import torch

from esclab.augment.spectrogram import TimeRoll, roll_time
from esclab.config import ConfigError, load_config
from esclab.models import create_model


@pytest.fixture(scope="module")
def mn04_frozen() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("mn04", num_classes=5, head="linear", frozen_blocks=5)


def test_split_forward_equals_the_whole_forward(mn04_frozen):
    x = torch.randn(2, 1, 128, 100)
    model = mn04_frozen.eval()
    with torch.no_grad():
        hidden = model.forward_frozen(x)
        assert hidden.shape == (2, 16, 16, 13)  # stride 8 in both axes after five layers
        torch.testing.assert_close(model.forward_from_frozen(hidden), model(x))
        torch.testing.assert_close(model.forward_features_from_frozen(hidden), model.forward_features(x))


def test_frozen_layers_get_no_gradient_and_stay_in_eval_mode(mn04_frozen):
    model = mn04_frozen.train()
    assert all(not m.training for i in range(5) for m in model.features[i].modules())
    assert all(m.training for i in range(5, 17) for m in model.features[i].modules())
    before = model.features[2].block[0][1].running_mean.clone()
    model(torch.randn(4, 1, 128, 64)).sum().backward()
    torch.testing.assert_close(model.features[2].block[0][1].running_mean, before)  # eval-mode statistics
    assert all(p.grad is None and not p.requires_grad for p in model.features[:5].parameters())
    assert all(p.grad is not None for p in model.features[5:].parameters())
    model.zero_grad()


def test_frozen_blocks_out_of_range_is_refused():
    with pytest.raises(ValueError, match="frozen_blocks must be in"):
        create_model("mn04", num_classes=5, frozen_blocks=17)


def test_models_without_frozen_layers_pass_their_input_through():
    model = create_model("paper_cnn", num_classes=3, input_size=(32, 32)).eval()
    x = torch.randn(2, 1, 32, 32)
    assert model.frozen_blocks == 0 and model.forward_frozen(x) is x
    with torch.no_grad():
        torch.testing.assert_close(model.forward_from_frozen(x), model(x))


def test_roll_time_matches_torch_roll_per_example():
    x = torch.arange(2 * 3 * 2 * 7, dtype=torch.float32).view(2, 3, 2, 7)
    shifts = torch.tensor([2, -3])
    expected = torch.stack([torch.roll(x[0], 2, dims=-1), torch.roll(x[1], -3, dims=-1)])
    torch.testing.assert_close(roll_time(x, shifts), expected)


def test_time_roll_stays_within_its_range_and_keeps_the_values():
    x = torch.randn(64, 1, 4, 40)
    rolled = TimeRoll(max_fraction=0.1)(x, torch.Generator().manual_seed(1))
    for original, out in zip(x, rolled, strict=True):
        matches = [k for k in range(-4, 5) if torch.equal(torch.roll(original, k, dims=-1), out)]
        assert matches, "every example is its input rolled by at most 10 % of 40 frames"
    assert not torch.equal(rolled, x)
    with pytest.raises(ValueError, match="max_fraction"):
        TimeRoll(max_fraction=0.0)
    assert torch.equal(TimeRoll(0.5).freeze(fraction=0.25)(x), roll_time(x, torch.full((64,), 10)))


def test_frozen_layers_refuse_per_fold_standardisation():
    with pytest.raises(ConfigError, match="features.standardize"):
        load_config("configs/experiment/mn04_probe.yaml", ["model.kwargs.frozen_blocks=5", "features.standardize=true"])


def test_probe_head_init_needs_pretrained_weights():
    with pytest.raises(ConfigError, match="head_init"):
        load_config(None, ["train.head_init=probe"])


def test_taps_widen_the_embedding_with_pooled_earlier_layers():
    torch.manual_seed(0)
    plain = create_model("mn04", num_classes=5, head="linear").eval()
    wide = create_model("mn04", num_classes=5, head="linear", taps=[13, 15], pool="meanmax").eval()
    wide.load_state_dict({k: v for k, v in plain.state_dict().items() if not k.startswith("classifier")},
                         strict=False)
    x = torch.randn(2, 1, 128, 64)
    with torch.no_grad():
        embedding = wide.forward_features(x)
        assert embedding.shape == (2, wide.num_features) == (2, 2 * (64 + 64 + 384))
        hidden = x
        for layer in plain.features[:14]:
            hidden = layer(hidden)
        torch.testing.assert_close(embedding[:, :64], hidden.mean(dim=(2, 3)))  # layer 13's mean comes first
        torch.testing.assert_close(embedding[:, 64:128], hidden.amax(dim=(2, 3)))
        torch.testing.assert_close(embedding[:, 640:], plain.forward_features(x))  # the last layer's mean
        assert wide(x).shape == (2, 5)


def test_taps_need_a_linear_head_and_layers_of_the_body():
    with pytest.raises(ValueError, match="head='linear'"):
        create_model("mn04", num_classes=5, taps=[13])
    with pytest.raises(ValueError, match="taps must be layers"):
        create_model("mn04", num_classes=5, head="linear", taps=[16])
    with pytest.raises(ValueError, match="pool must be"):
        create_model("mn04", num_classes=5, head="linear", pool="max")
