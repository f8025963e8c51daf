"""Every config file builds; bad values and files fail with a clear message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from esclab.config import ConfigError, ExperimentConfig, from_dict, load_config, save_config, to_dict

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted((CONFIGS / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_experiment_builds_and_names_a_registered_model(path):
    from esclab.models import is_model

    cfg = load_config(path)
    assert isinstance(cfg, ExperimentConfig)
    assert is_model(cfg.model.name), cfg.model.name


@pytest.mark.parametrize("group", ["features", "augment", "model", "train"])
def test_every_group_file_builds(group, tmp_path):
    files = sorted((CONFIGS / group).glob("*.yaml"))
    assert files, f"no configs/{group}/*.yaml"
    for f in files:
        exp = tmp_path / "experiment" / "x.yaml"
        exp.parent.mkdir(exist_ok=True)
        # EfficientAT's front end reads up to 15 kHz: it is built at the 32 kHz its weights were trained at,
        # and a model file naming EfficientAT's weights takes their front end (their contract, esclab.weights).
        text = f.read_text()
        kaldi = "efficientat:" in text or "level_" in text  # weights' contract, or level augmentation
        audio = "audio:\n  sample_rate: 32000\n" if "kind: kaldi_logmel" in text or kaldi else ""
        features = "  features: kaldi_logmel_32k\n" if kaldi else ""
        exp.write_text(f"name: x\ndefaults:\n  {group}: {f.stem}\n{features}{audio}")
        load_config(exp, configs_root=CONFIGS)


def test_experiment_states_only_what_differs_and_overrides_win():
    cfg = load_config(CONFIGS / "experiment" / "paper_cnn.yaml", ["train.max_epochs=3", "data.folds=[1,2]"])
    assert cfg.train.max_epochs == 3 and cfg.data.folds == [1, 2]
    assert cfg.features.n_mels == 128 and cfg.model.name == "paper_cnn"


@pytest.mark.parametrize("model", ["paper_cnn", "resnet18", "conformer", "attention_cnn"])
def test_the_base_experiment_picks_a_model_and_is_named_after_it(model):
    cfg = load_config(CONFIGS / "experiment" / "base.yaml", [f"model={model}"])
    assert cfg.model.name == model and cfg.name == model
    assert cfg.features.input_size == (128, 215) and cfg.augment.mixup_alpha == 0


def test_empty_mapping_override_clears_a_group_section():
    # The ablation's "one group only" variants: strong preset minus the other groups.
    cfg = load_config(CONFIGS / "experiment" / "paper_cnn.yaml",
                      ["augment=strong", "augment.spectrogram={}", "augment.mixup_alpha=0"])
    assert cfg.augment.spectrogram == {} and cfg.augment.mixup_alpha == 0
    assert "time_stretch" in cfg.augment.waveform and cfg.augment.bank_size == 8
    with pytest.raises(ConfigError, match="augment.bank_size must be >= 1"):
        load_config(CONFIGS / "experiment" / "paper_cnn.yaml", ["augment=strong", "augment.bank_size=0"])


@pytest.mark.parametrize("override,message", [
    ("train.batch_size=0", "train.batch_size must be >= 1"),
    ("train.lr=-1", "train.lr must be > 0"),
    ("train.precision=fp8", "train.precision must be one of"),
    ("train.logger=wandb", "train.logger must be one of"),
    ("features.hop_length=4096", "features.hop_length must be in"),
    ("features.fmax=20000", "features.fmax must be in"),
    ("data.val_fraction=0.7", "data.val_fraction must be in"),
    ("data.folds=[]", "data.folds must be a non-empty list"),
    ("data.exclude_folds=[0]", "data.exclude_folds must be a list of fold numbers >= 1"),
    ("data.exclude_folds=[5]", "data.exclude_folds must not share a fold with data.folds"),
    ("data.dataset=folder", "data.csv is required"),
    ("train.max_epochs=many", "invalid configuration"),
    ("train.no_such_key=1", "no_such_key"),
    ("train.progressive=[{fraction: 2, epochs: 1}]", "train.progressive must be"),
    ("augment.tta_views=0", "augment.tta_views must be in"),
    ("augment.tta_views=216", "augment.tta_views must be in"),
    ("train.wise_alpha=1.5", "train.wise_alpha must be in [0, 1]"),
    ("train.wise_alpha=0.5", "train.wise_alpha < 1 needs train.head_init 'probe'"),
])
def test_bad_values_raise_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(CONFIGS / "experiment" / "paper_cnn.yaml", [override])


@pytest.mark.parametrize("override", ["model.kwargs.input_size=[128,215]", "model.kwargs.n_mels=64"])
def test_the_input_size_is_stated_only_in_the_feature_config(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(f"{key} is not a model option")):
        load_config(CONFIGS / "experiment" / "paper_cnn.yaml", [override])


@pytest.mark.parametrize("experiment,choice", [("paper_cnn", []), ("best_cpu", []), ("base", ["model=ast_tiny"])])
def test_changing_the_front_end_resizes_the_model(experiment, choice):
    from esclab.models import create_model

    cfg = load_config(CONFIGS / "experiment" / f"{experiment}.yaml",
                      [*choice, "features.n_mels=64", "features.frames=96"])
    assert cfg.features.input_size == (64, 96)
    model = create_model(cfg.model.name, 3, input_size=cfg.features.input_size, **cfg.model.kwargs).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 64, 96)).shape == (2, 3)


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "experiment" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text("defaults:\n  features: no_such_front_end\n")
    with pytest.raises(ConfigError, match="no_such_front_end"):
        load_config(bad, configs_root=CONFIGS)
    # a model without a file of its own is its family's defaults; the registry refuses an unknown name
    bad.write_text("defaults:\n  model: no_such_model\n")
    cfg = load_config(bad, configs_root=CONFIGS)
    from esclab.models import create_model

    with pytest.raises(ValueError, match="unknown model 'no_such_model'"):
        create_model(cfg.model.name, num_classes=2)
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(bad)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(CONFIGS / "experiment" / "paper_cnn.yaml", ["train.seed=7"])
    save_config(cfg, tmp_path / "c.yaml")
    from esclab.config import load_config_file

    assert to_dict(load_config_file(tmp_path / "c.yaml")) == to_dict(cfg)
    assert to_dict(from_dict(to_dict(cfg))) == to_dict(cfg)


def test_group_choice_on_the_command_line_swaps_the_file():
    cfg = load_config(CONFIGS / "experiment" / "paper_cnn.yaml", ["augment=strong", "augment.mixup_alpha=0.4"])
    assert cfg.augment.bank_size == 8 and "time_stretch" in cfg.augment.waveform
    assert cfg.augment.mixup_alpha == 0.4  # dotted overrides still win
    with pytest.raises(ConfigError, match="available: .*strong"):
        load_config(CONFIG_EXP, ["augment=nope"])


CONFIG_EXP = CONFIGS / "experiment" / "paper_cnn.yaml"


def test_packaged_presets_work_from_any_directory_and_by_name(tmp_path, monkeypatch):
    from esclab.config import find_experiment, packaged_configs

    monkeypatch.chdir(tmp_path)
    cfg = load_config("mn04_probe", ["augment=strong"])  # a packaged experiment by name, a packaged group
    assert cfg.name == "mn04_probe" and cfg.audio.sample_rate == 32000  # the features preset carries its rate
    assert cfg.augment.bank_size == 8
    assert find_experiment("paper_cnn") == packaged_configs() / "experiment" / "paper_cnn.yaml"
    with pytest.raises(ConfigError, match="packaged experiments"):
        find_experiment("no_such_experiment")
    assert load_config(None, ["model=resnet18"]).model.name == "resnet18"  # no file: the family's defaults


def test_an_experiment_that_extends_another_states_only_what_differs(tmp_path):
    """``extends: NAME``: the other experiment (a file beside it, else a packaged one), then this file's keys;
    a group default swapped here replaces the parent's; a missing parent or a circle is a clear error."""
    folder = tmp_path / "experiment"
    folder.mkdir()
    (folder / "variant.yaml").write_text("extends: mn04_finetune_lpft\nname: variant\ntrain:\n  wise_alpha: 0.5\n")
    parent = to_dict(load_config(CONFIGS / "experiment" / "mn04_finetune_lpft.yaml"))
    variant = to_dict(load_config(folder / "variant.yaml"))
    assert variant["train"]["wise_alpha"] == 0.5 and variant["name"] == "variant"
    parent["train"]["wise_alpha"], parent["name"] = 0.5, "variant"
    assert variant == parent
    (folder / "child.yaml").write_text("extends: variant\nname: child\ndefaults:\n  augment: none\n")
    child = load_config(folder / "child.yaml")
    assert child.train.wise_alpha == 0.5 and child.augment.waveform == {} and child.model.kwargs["taps"] == [11, 13, 15]
    assert load_config(folder / "child.yaml", ["train.wise_alpha=0.75"]).train.wise_alpha == 0.75
    (folder / "orphan.yaml").write_text("extends: no_such_experiment\n")
    with pytest.raises(ConfigError, match="extends 'no_such_experiment'"):
        load_config(folder / "orphan.yaml")
    (folder / "a.yaml").write_text("extends: b\n")
    (folder / "b.yaml").write_text("extends: a\n")
    with pytest.raises(ConfigError, match=r"in a circle \(a -> b -> a\)"):
        load_config(folder / "a.yaml")
