"""Distillation from the probe and frozen BatchNorm statistics: the loss, and what training leaves alone."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from esclab.config import ConfigError, load_config
from esclab.train.distill import blend_losses, distillation_loss
from esclab.train.module import ClassifierModule


def test_distillation_loss_is_zero_when_the_student_agrees_and_grows_as_it_departs():
    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    assert distillation_loss(teacher.clone(), teacher, 2.0).item() == pytest.approx(0.0, abs=1e-7)
    near = distillation_loss(teacher + torch.tensor([0.2, 0.0, 0.0]), teacher, 2.0).item()
    far = distillation_loss(teacher + torch.tensor([2.0, 0.0, 0.0]), teacher, 2.0).item()
    assert 0 < near < far
    # T^2 KL(p_T || q_T) by hand for the first row
    p = torch.softmax(teacher[:1] / 3.0, 1)
    q = torch.softmax(torch.zeros(1, 3), 1)
    expected = 9.0 * (p * (p.log() - q.log())).sum().item()
    assert distillation_loss(torch.zeros(1, 3), teacher[:1], 3.0).item() == pytest.approx(expected, rel=1e-5)


def test_distillation_loss_refuses_a_temperature_that_is_not_positive():
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), 0.0)


def test_blend_losses_weights_the_soft_loss():
    assert blend_losses(torch.tensor(2.0), torch.tensor(4.0), 0.25).item() == pytest.approx(2.5)
    assert blend_losses(torch.tensor(2.0), torch.tensor(4.0), 0.0).item() == pytest.approx(2.0)


def module(**train) -> ClassifierModule:
    torch.manual_seed(0)
    return ClassifierModule("mn04", 4, {"head": "linear"}, None, train={"channels_last": False, **train},
                            augment={})


def batchnorm_stats(model: nn.Module) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def test_frozen_batchnorm_statistics_stay_while_their_affine_weights_learn():
    mod = module(freeze_bn_stats=True).train()
    assert mod.training and not any(m.training for m in mod.model.modules() if isinstance(m, nn.BatchNorm2d))
    before = batchnorm_stats(mod.model)
    bn = next(m for m in mod.model.modules() if isinstance(m, nn.BatchNorm2d))
    loss = mod.training_step((torch.randn(3, 1, 128, 64), torch.tensor([0, 1, 2])), 0)
    loss.backward()
    for a, b in zip(batchnorm_stats(mod.model), before, strict=True):
        torch.testing.assert_close(a, b)
    assert bn.weight.grad is not None and bn.weight.grad.abs().sum() > 0
    # without the option the same step re-estimates them
    plain = module().train()
    plain.training_step((torch.randn(3, 1, 128, 64), torch.tensor([0, 1, 2])), 0)
    assert any(not torch.equal(a, b) for a, b in zip(batchnorm_stats(plain.model), before, strict=True))


def test_the_teacher_shapes_the_loss_learns_nothing_and_always_evaluates():
    x, y = torch.randn(3, 1, 128, 64), torch.tensor([0, 1, 2])
    labels_only = module(distill_weight=0.0)
    labels_only.train()
    plain = labels_only.training_step((x, y), 0).item()
    taught = module(distill_weight=0.5, distill_temperature=2.0)
    teacher = copy.deepcopy(taught.model)
    with torch.no_grad():
        teacher.get_classifier().weight.mul_(5.0)  # a teacher that disagrees with the student
    taught.set_teacher(teacher)
    taught.train()
    assert not any(m.training for m in taught.teacher.modules())
    loss = taught.training_step((x, y), 0)
    loss.backward()
    assert loss.item() != pytest.approx(plain)
    assert all(p.grad is None for p in taught.teacher.parameters())
    assert any(k.startswith("teacher.") for k in taught.state_dict())  # a resumed fold restores it
    assert not any(k.startswith("teacher") for k in taught.model.state_dict())  # the tested network has none


def test_online_the_frozen_layers_run_once_for_student_and_teacher_and_the_loss_is_unchanged(monkeypatch):
    x, y = torch.randn(3, 1, 128, 64), torch.tensor([0, 1, 2])
    torch.manual_seed(0)
    mod = ClassifierModule("mn04", 4, {"head": "linear", "frozen_blocks": 5}, None,
                           train={"channels_last": False, "distill_weight": 0.5, "distill_temperature": 2.0,
                                  "freeze_bn_stats": True}, augment={})
    teacher = copy.deepcopy(mod.model)
    with torch.no_grad():
        teacher.get_classifier().weight.mul_(5.0)
    mod.set_teacher(teacher)
    mod.train()
    with torch.no_grad():  # what the step computed before: each network on the whole input
        student_logits, teacher_logits = mod.model(x), teacher(x)
    expected = blend_losses(torch.nn.functional.cross_entropy(student_logits, torch.eye(4)[y]),
                            distillation_loss(student_logits, teacher_logits, 2.0), 0.5)
    calls = []
    monkeypatch.setattr(teacher, "forward_frozen", lambda h: calls.append("teacher") or h)
    real = mod.model.forward_frozen
    monkeypatch.setattr(mod.model, "forward_frozen", lambda h: calls.append("student") or real(h))
    loss = mod.training_step((x, y), 0)
    assert calls == ["student"]
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    loss.backward()
    assert all(p.grad is None for p in mod.model.features[:5].parameters())
    assert any(p.grad is not None for p in mod.model.features[5:].parameters())


@pytest.mark.parametrize(("override", "message"), [
    ("train.distill_weight=1.0", "train.distill_weight must be in"),
    ("train.distill_weight=-0.1", "train.distill_weight must be in"),
    ("train.distill_temperature=0", "train.distill_temperature must be > 0"),
])
def test_distillation_settings_are_checked(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("configs/experiment/mn04_finetune_distill.yaml", [override])


def test_distillation_needs_pretrained_weights():
    with pytest.raises(ConfigError, match="distill_weight > 0"):
        load_config("configs/experiment/base.yaml", ["train.distill_weight=0.5"])
