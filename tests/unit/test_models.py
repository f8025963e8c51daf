"""Contract tests over every registered model, plus each family's own promises."""

from __future__ import annotations

import pytest
import torch

from esclab.models import EscModel, create_model, list_models
from esclab.models.timm_backbones import TimmBackbone
from esclab.models.vggish import VGGish

NUM_CLASSES = 5
# Every model is tested on its own default input size (``default_input_size``, timm-style).
TIMM = ["resnet18", "resnet50", "inception_v3", "efficientnet_b3"]


# Models that cannot be built without options get the smallest meaningful ones here.
REQUIRED = {"ensemble": {"members": [{"name": "paper_cnn", "kwargs": {"channels": [4, 8, 8], "dense_units": [8]}},
                                     {"name": "attention_cnn"}], "weights": [2.0, 1.0]}}


def build(name: str, seed: int = 0, **extra) -> tuple[EscModel, torch.Tensor]:
    """The model as registered and a batch of two spectrograms of its default input size."""
    torch.manual_seed(seed)
    model = create_model(name, num_classes=NUM_CLASSES, **{**REQUIRED.get(name, {}), **extra})
    mels, frames = model.default_input_size
    return model, torch.randn(2, 1, mels, frames)


def backward(model: EscModel, x: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])) + model.regularization_loss()
    loss.backward()
    return logits


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name):
    model, x = build(name)
    model.train()
    logits = backward(model, x)
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    for pname, p in model.named_parameters():
        assert p.requires_grad, f"{pname} is frozen by default"
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"


@pytest.mark.parametrize("name", list_models())
def test_interface(name):
    model, x = build(name)
    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, model.num_features)
        assert torch.equal(model.forward_head(features), model(x))
    assert model.num_classes == NUM_CLASSES
    grouped = [p for g in model.parameter_groups(1e-3) for p in g["params"]]
    assert sorted(map(id, grouped)) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    layer = model.gradcam_layer()
    assert layer is None or any(layer is m for m in model.modules())


@pytest.mark.parametrize("name", list_models())
def test_state_dict_round_trip(name):
    model, x = build(name, seed=0)
    fresh, _ = build(name, seed=1)
    fresh.load_state_dict(model.state_dict())
    model.eval()
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))


def test_attention_maps_are_distributions():
    model, x = build("attention_cnn")
    maps = model.attention_maps(x)
    assert maps.shape == (2, x.shape[2] // 8, x.shape[3] // 8)
    assert (maps >= 0).all()
    torch.testing.assert_close(maps.sum(dim=(1, 2)), torch.ones(2))


@pytest.mark.parametrize(
    ("name", "last_stage"),
    [
        ("resnet18", ("layer4.",)),
        ("resnet50", ("layer4.",)),
        ("inception_v3", ("Mixed_7c.",)),
        ("efficientnet_b3", ("blocks.6.", "conv_head.", "bn2.")),
        ("efficientnet_lite0", ("blocks.6.", "conv_head.", "bn2.")),
    ],
)
def test_unfreeze_last_maps_to_the_last_stage(name, last_stage):
    frozen, _ = build(name, freeze="base")
    assert not any(p.requires_grad for p in frozen.backbone.parameters())
    assert all(p.requires_grad for p in frozen.head.parameters())
    model, _ = build(name, freeze="base", unfreeze_last=1)
    trainable = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable
    assert trainable == {n for n, _ in model.backbone.named_parameters() if n.startswith(last_stage)}


def test_frozen_parameters_get_no_gradient():
    model, x = build("resnet18", freeze="base", unfreeze_last=2)
    backward(model, x)
    for name, p in model.named_parameters():
        trains = name.startswith(("head.", "backbone.layer3.", "backbone.layer4."))
        assert p.requires_grad == trains, name
        assert (p.grad is not None) == trains, name


def test_parameter_groups_scale_learning_rates():
    model, _ = build("resnet18", freeze="base", unfreeze_last=1, head_lr_mult=10.0, base_lr_mult=0.1)
    base, head = model.parameter_groups(1e-3)
    assert base["lr"] == pytest.approx(1e-4)
    assert head["lr"] == pytest.approx(1e-2)
    assert len(base["params"]) == len(model.stage_parameter_names()[-1])
    assert len(head["params"]) == 2
    head_only, _ = build("resnet18", freeze="base")
    assert [g["lr"] for g in head_only.parameter_groups(1e-3)] == [pytest.approx(1e-3)]


@pytest.mark.parametrize(
    "kwargs",
    [{"freeze": "all"}, {"unfreeze_last": 1}, {"freeze": "base", "unfreeze_last": 99}, {"dropout": 1.0}],
)
def test_timm_backbone_rejects_bad_options(kwargs):
    with pytest.raises(ValueError):
        TimmBackbone(NUM_CLASSES, arch="resnet18", **kwargs)


def test_timm_gradcam_layer_is_the_last_stage():
    model, _ = build("resnet18")
    assert model.gradcam_layer() is model.backbone.layer4


def test_vggish_frames_time_major_patches_and_averages_them():
    model, x = build("vggish")
    x = torch.randn(2, 1, 64, 2 * 96 + 10)
    patches = VGGish.patches(x)
    assert patches.shape == (2, 2, 96, 64)
    assert torch.equal(patches[1, 1], x[1, 0, :, 96:192].T)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            model.forward_features(x), model.embed(patches.flatten(0, 1)).view(2, 2, -1).mean(1)
        )


def test_vggish_rejects_short_or_wrong_input():
    model, _ = build("vggish")
    for shape in [(1, 1, 64, 95), (1, 1, 128, 96)]:
        with pytest.raises(ValueError, match="VGGish needs"):
            model(torch.zeros(shape))


def test_size_mismatches_fail_clearly():
    ast, _ = build("ast_tiny")
    with pytest.raises(ValueError, match="input_size"):
        ast(torch.zeros(1, 1, 64, 100))
    conformer, _ = build("conformer")
    with pytest.raises(ValueError, match="mel bands"):
        conformer(torch.zeros(1, 1, 64, 96))
    with pytest.raises(ValueError, match="divide"):
        create_model("conformer", NUM_CLASSES, d_model=10, num_heads=4)


def test_pooling_before_the_relu_gives_the_same_outputs_and_gradients():
    from esclab.models.cnn import conv_block

    torch.manual_seed(0)
    relu_first, pool_first = conv_block(3, 8), conv_block(3, 8, pool_first=True)
    pool_first.load_state_dict(relu_first.state_dict())
    assert [type(m).__name__ for m in pool_first] == ["Conv2d", "BatchNorm2d", "MaxPool2d", "ReLU"]
    x = torch.randn(4, 3, 16, 20)
    outs = []
    for block in (relu_first, pool_first):
        out = block(x)
        out.square().sum().backward()
        outs.append((out.detach(), block[0].weight.grad.clone(), block[1].weight.grad.clone()))
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_ensemble_output_is_the_weighted_mean_of_its_members_probabilities():
    model, x = build("ensemble")
    model.eval()
    with torch.no_grad():
        probs = [torch.softmax(m(x), dim=1) for m in model.members]
        torch.testing.assert_close(torch.softmax(model(x), dim=1), (2 * probs[0] + probs[1]) / 3)
    with pytest.raises(ValueError, match="one weight"):
        create_model("ensemble", NUM_CLASSES, members=[{"name": "paper_cnn"}], weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="not ensembles"):
        create_model("ensemble", NUM_CLASSES, members=[{"name": "ensemble"}])
