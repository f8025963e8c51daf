"""The optimiser: the L2 penalty as weight decay gives the updates of the penalty in the loss; fused steps."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from esclab.config import TrainConfig
from esclab.models import create_model
from esclab.train.optimizer import build_optimizer, penalty_in_loss, with_l2_decay


def tiny_cnn(l2: float = 0.01):
    torch.manual_seed(0)
    return create_model("paper_cnn", num_classes=3, input_size=(16, 24), channels=[4, 8, 8], dense_units=[16], l2=l2)


def train_steps(model, optimizer, penalty: bool, steps: int = 4) -> None:
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(2)  # the same dropout masks for every model trained here
    model.train()
    for _ in range(steps):
        x, y = torch.randn(6, 1, 16, 24, generator=gen), torch.randint(0, 3, (6,), generator=gen)
        loss = F.cross_entropy(model(x), y) + (model.regularization_loss() if penalty else 0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("name,reference", [
    ("adam", lambda params, t: torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, foreach=False)),
    ("sgd", lambda params, t: torch.optim.SGD(params, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay,
                                              nesterov=True, foreach=False)),
])
def test_l2_as_weight_decay_equals_the_penalty_in_the_loss(name, reference):
    t = TrainConfig(optimizer=name, lr=1e-2, weight_decay=1e-3)
    in_loss, as_decay = tiny_cnn(), tiny_cnn()
    assert not penalty_in_loss(as_decay, name)
    train_steps(in_loss, reference(in_loss.parameters(), t), penalty=True)
    optimizer = build_optimizer(as_decay, t)
    assert all(g["fused"] for g in optimizer.param_groups)
    train_steps(as_decay, optimizer, penalty=False)
    for (key, a), b in zip(in_loss.state_dict().items(), as_decay.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=key)


def test_without_the_penalty_the_update_differs():
    """The check above can fail: leaving the penalty out altogether changes the dense weights."""
    t = TrainConfig(optimizer="adam", lr=1e-2)
    in_loss, none = tiny_cnn(l2=0.5), tiny_cnn(l2=0.5)
    train_steps(in_loss, torch.optim.Adam(in_loss.parameters(), lr=t.lr), penalty=True)
    train_steps(none, torch.optim.Adam(none.parameters(), lr=t.lr), penalty=False)
    assert not torch.allclose(in_loss.classifier.weight, none.classifier.weight, atol=1e-4)


def test_adamw_keeps_the_penalty_in_the_loss_and_one_decay():
    model = tiny_cnn()
    assert penalty_in_loss(model, "adamw")
    optimizer = build_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.05))
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.05}
    assert not penalty_in_loss(tiny_cnn(l2=0.0), "adamw")


def test_with_l2_decay_splits_each_group_and_keeps_learning_rates():
    a, b, c = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    groups = [{"params": [a, b], "lr": 0.1}, {"params": [c], "lr": 1.0}]
    split = with_l2_decay(groups, [b, c], decay=0.02, base_decay=0.001)
    assert [([id(p) for p in g["params"]], g["lr"], g["weight_decay"]) for g in split] == [
        ([id(a)], 0.1, 0.001), ([id(b)], 0.1, 0.021), ([id(c)], 1.0, 0.021)]


def test_unknown_optimizer_is_refused():
    bad = copy.copy(TrainConfig())
    object.__setattr__(bad, "optimizer", "lamb")
    with pytest.raises(ValueError, match="adam, adamw or sgd"):
        build_optimizer(tiny_cnn(), bad)
