"""EfficientAT's AudioSet MobileNets: the released mn04 file loads strictly, transfers to a new label set,
and checkpoints of another width or family, or a damaged copy, are refused with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.hub
import torchvision

from esclab import weights
from esclab.models import create_model
from esclab.models.efficientat import EfficientATMobileNet
from esclab.models.pretrained import load_pretrained

X = torch.randn(2, 1, 128, 100, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def offline_weights(monkeypatch, tmp_path) -> None:
    """User cache under ``tmp_path``, no ``$ESCLAB_WEIGHTS``, and no download."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(weights.ENV_VAR, raising=False)

    def no_network(url: str, *args, **kwargs) -> None:
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


@pytest.fixture(scope="module")
def audioset_state(shared_mn04: Path) -> dict[str, torch.Tensor]:
    return torch.load(shared_mn04, map_location="cpu", weights_only=True)


def test_audioset_file_loads_strictly_and_runs(audioset_state):
    model = create_model("mn04", num_classes=527)
    assert isinstance(model, EfficientATMobileNet)
    model.load_state_dict(audioset_state, strict=True)
    model.eval()
    with torch.no_grad():
        embedding = model.forward_features(X)
        logits = model(X)
    assert embedding.shape == (2, 384) and model.num_features == 384
    assert logits.shape == (2, 527) and torch.isfinite(logits).all()
    torch.testing.assert_close(model.forward_head(embedding), logits)


def test_named_release_transfers_all_but_the_last_layer(audioset_state):
    model = create_model("mn04", num_classes=50, pretrained="efficientat:mn04_as")
    own = model.state_dict()
    assert own["classifier.5.weight"].shape == (50, 512)
    for key, tensor in audioset_state.items():
        if key.startswith("classifier.5."):
            continue
        assert torch.equal(own[key], tensor), key
    assert model(X).shape == (2, 50)

    report = load_pretrained(create_model("mn04", num_classes=50), "efficientat:mn04_as")
    assert sorted(report.skipped) == ["classifier.5.bias", "classifier.5.weight"]
    assert report.missing == ["classifier.5.bias", "classifier.5.weight"]


def test_linear_head_gives_one_linear_on_the_embedding(audioset_state, shared_mn04):
    model = create_model("mn04", num_classes=10, head="linear", pretrained=str(shared_mn04)).eval()
    assert isinstance(model.classifier[-1], torch.nn.Linear) and model.classifier[-1].in_features == 384
    assert torch.equal(model.state_dict()["features.16.0.weight"], audioset_state["features.16.0.weight"])
    with torch.no_grad():
        assert model(X).shape == (2, 10)


def test_checkpoint_of_another_width_is_refused_naming_both(shared_mn04):
    with pytest.raises(weights.WeightsError,
                       match=r"width 1\b.*stem of 16 channels.*stem of 8 channels.*shape mismatches"):
        create_model("mn10", num_classes=50, pretrained=str(shared_mn04))


def test_checkpoint_of_another_family_is_refused(tmp_path):
    path = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(weights.WeightsError,
                       match="does not fit this EfficientAT MobileNet.*no EfficientAT stem.*missing"):
        create_model("mn04", num_classes=50, pretrained=str(path))


def test_truncated_copy_is_refused_by_sha256(shared_mn04, monkeypatch, tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    (own / shared_mn04.name).write_bytes(shared_mn04.read_bytes()[:4096])
    monkeypatch.setenv(weights.ENV_VAR, str(own))
    with pytest.raises(weights.WeightsError, match="sha256"):
        create_model("mn04", num_classes=50, pretrained="efficientat:mn04_as")


def test_parameter_groups_give_the_body_its_own_learning_rate():
    model = create_model("mn04", num_classes=10, base_lr_mult=0.1, head_lr_mult=2.0)
    body, head = model.parameter_groups(1e-3)
    assert body["lr"] == pytest.approx(1e-4) and head["lr"] == pytest.approx(2e-3)
    grouped = [id(p) for g in (body, head) for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # every parameter exactly once
    assert {id(p) for p in body["params"]} == {id(p) for p in model.features.parameters()}


def test_freeze_base_trains_the_head_only():
    model = create_model("mn04", num_classes=10, freeze="base")
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(name.startswith("classifier.") for name in trainable)
    (group,) = model.parameter_groups(1e-3)
    assert len(group["params"]) == len(trainable)
    model(X).sum().backward()
    assert all(p.grad is None for p in model.features.parameters())
    assert all(p.grad is not None for p in model.classifier.parameters())


@pytest.mark.parametrize("kwargs,message", [
    ({"head": "transformer"}, "head must be one of"),
    ({"freeze": "all"}, "freeze must be"),
    ({"dropout": 1.0}, "dropout"),
])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EfficientATMobileNet(10, **kwargs)
