"""``pretrained:`` loads weights from files and folders, adapts them, and fails clearly. Never downloads."""

from __future__ import annotations

import huggingface_hub.constants
import pytest
import timm
import torch
from safetensors.torch import save_file
from transformers import ASTConfig, ASTForAudioClassification

from esclab.models import create_model
from esclab.models.ast import interpolate_position_grid, patch_grid
from esclab.models.pretrained import load_pretrained
from esclab.weights import WeightsError


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def seeded(name: str, num_classes: int, seed: int, **kwargs):
    torch.manual_seed(seed)
    return create_model(name, num_classes, **kwargs)


def test_timm_checkpoint_of_the_same_model_loads_all_but_the_head(tmp_path):
    source = seeded("resnet18", 10, seed=1)
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(2)
    model = create_model("resnet18", 5, pretrained=str(path))
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    report = load_pretrained(model, str(path))
    assert set(report.skipped) == {"head.1.weight", "head.1.bias"}
    assert report.missing == ["head.1.bias", "head.1.weight"]


def test_rgb_timm_checkpoint_is_summed_into_one_channel(tmp_path):
    torch.manual_seed(3)
    rgb = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    path = tmp_path / "resnet18_rgb.safetensors"
    save_file(rgb.state_dict(), str(path))
    model = seeded("resnet18", 5, seed=4, pretrained=str(path))
    ours = model.backbone.state_dict()
    torch.testing.assert_close(ours["conv1.weight"], rgb.conv1.weight.sum(dim=1, keepdim=True))
    for key, value in rgb.state_dict().items():
        if key != "conv1.weight" and not key.startswith("fc."):
            assert torch.equal(ours[key], value), key
    report = load_pretrained(model, str(path))
    assert list(report.adapted) == ["backbone.conv1.weight"]
    assert set(report.skipped) == {"backbone.fc.weight", "backbone.fc.bias"}


def test_torchvggish_state_dict_loads(tmp_path):
    # The public port's file holds only ``features.*`` and ``embeddings.*`` under these names and shapes.
    source = seeded("vggish", 128, seed=5)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
    shapes = {
        "features.0.weight": (64, 1, 3, 3),
        "features.13.weight": (512, 512, 3, 3),
        "embeddings.0.weight": (4096, 12288),
        "embeddings.4.weight": (128, 4096),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    assert len(state) == 18
    path = tmp_path / "vggish-10086976.pth"
    torch.save(state, path)
    model = seeded("vggish", 5, seed=6, pretrained=str(path))
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not torch.equal(model.head[1].weight[:5], source.head[1].weight[:5])


def test_lightning_style_nested_checkpoint_loads(tmp_path):
    source = seeded("attention_cnn", 5, seed=7)
    path = tmp_path / "last.ckpt"
    torch.save({"epoch": 3, "state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}, path)
    model = seeded("attention_cnn", 5, seed=8)
    report = load_pretrained(model, str(path))
    assert not report.skipped and not report.missing
    x = torch.randn(2, 1, 64, 96)
    model.eval()
    source.eval()
    with torch.no_grad():
        assert torch.equal(model(x), source(x))


def tiny_ast_folder(path, frames: int) -> ASTForAudioClassification:
    config = ASTConfig(
        hidden_size=192,
        num_hidden_layers=4,
        num_attention_heads=3,
        intermediate_size=768,
        num_mel_bins=64,
        max_length=frames,
        num_labels=7,
    )
    torch.manual_seed(9)
    hf = ASTForAudioClassification(config)
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_()
    hf.save_pretrained(path)
    return hf


def test_ast_loads_a_save_pretrained_folder_of_the_same_size(tmp_path):
    hf = tiny_ast_folder(tmp_path, frames=96)
    model = seeded("ast_tiny", 5, seed=10, input_size=(64, 96), pretrained=str(tmp_path))
    ours = model.ast.audio_spectrogram_transformer.state_dict()
    for key, value in hf.audio_spectrogram_transformer.state_dict().items():
        assert torch.equal(ours[key], value), key
    assert not torch.equal(model.ast.classifier.layernorm.weight, hf.classifier.layernorm.weight)


def test_ast_interpolates_positions_when_the_input_size_differs(tmp_path):
    hf = tiny_ast_folder(tmp_path, frames=196)
    model = seeded("ast_tiny", 5, seed=11, input_size=(64, 96), pretrained=str(tmp_path))
    source = hf.audio_spectrogram_transformer.embeddings.position_embeddings
    ours = model.ast.audio_spectrogram_transformer.embeddings.position_embeddings
    assert patch_grid(hf.config) == (5, 19) and patch_grid(model.config) == (5, 9)
    assert ours.shape == (1, 2 + 5 * 9, 192)
    assert torch.equal(ours[:, :2], source[:, :2])
    torch.testing.assert_close(ours, interpolate_position_grid(source, (5, 19), (5, 9)))
    encoder = model.ast.audio_spectrogram_transformer.state_dict()
    for key, value in hf.audio_spectrogram_transformer.state_dict().items():
        if key != "embeddings.position_embeddings":
            assert torch.equal(encoder[key], value), key


def test_position_grid_interpolation_keeps_a_constant_grid():
    pos = torch.cat([torch.randn(1, 2, 4), torch.ones(1, 12, 4)], dim=1)
    out = interpolate_position_grid(pos, (3, 4), (2, 7))
    assert out.shape == (1, 2 + 14, 4)
    torch.testing.assert_close(out[:, 2:], torch.ones(1, 14, 4))
    assert interpolate_position_grid(pos, (3, 4), (3, 4)) is pos


def test_missing_path_names_what_is_missing_and_how_to_provide_it(tmp_path):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(WeightsError, match="model.pretrained") as err:
        create_model("resnet18", 5, pretrained=str(missing))
    assert str(missing) in str(err.value)


@pytest.mark.parametrize(
    ("name", "spec"),
    [("ast_tiny", "hf:MIT/ast-finetuned-audioset-10-10-0.4593"), ("resnet18", "timm:resnet18.a1_in1k")],
)
def test_hub_names_offline_fail_clearly(name, spec):
    with pytest.raises(WeightsError, match="offline") as err:
        create_model(name, 5, pretrained=spec, **({"input_size": (64, 96)} if name == "ast_tiny" else {}))
    assert spec in str(err.value)


def test_wrong_sources_fail_clearly(tmp_path):
    with pytest.raises(WeightsError, match="transformers"):
        create_model("vggish", 5, pretrained=str(tmp_path))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        create_model("vggish", 5, pretrained=str(garbage))
    unrelated = tmp_path / "unrelated.pt"
    torch.save({"encoder.w": torch.zeros(3)}, unrelated)
    with pytest.raises(WeightsError, match="no tensor"):
        create_model("attention_cnn", 5, pretrained=str(unrelated))
