"""ESC-50 metadata and folds, ESC-10, folder + CSV, missing data, download."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from esclab.data import DatasetNotFoundError, load_esc50, load_folder
from esclab.data.datamodule import EpochSampler, FoldDataModule, split_validation, stage_fraction
from esclab.data.esc50 import download_esc50, sha256_of


def test_esc50_matches_wav_names_to_ogg_files(esc50_mini):
    table = load_esc50(esc50_mini, download=False)
    assert len(table) == 9 and not table.skipped
    assert table.folds() == [1, 2, 3]
    assert table.class_names == ["dog", "rooster", "pig"]  # official target order
    assert all(p.endswith(".ogg") for p in table.clips["path"])
    assert (table.clips["target"] == table.clips["label"].map({"dog": 0, "rooster": 1, "pig": 2})).all()


def test_absent_file_is_skipped_and_listed(tmp_path, esc50_mini):
    root = tmp_path / "esc"
    shutil.copytree(esc50_mini, root)
    victim = sorted((root / "audio").glob("*.ogg"))[0]
    victim.unlink()
    table = load_esc50(root, download=False)
    assert len(table) == 8
    assert len(table.skipped) == 1 and victim.stem in table.skipped[0][0]
    assert table.skipped[0][1] == "file not found"


def test_a_left_out_fold_takes_its_usable_and_its_skipped_clips_along(tmp_path, esc50_mini):
    root = tmp_path / "esc"
    shutil.copytree(esc50_mini, root)
    (root / "audio" / "1-100032-A-0.ogg").unlink()
    (root / "audio" / "2-100786-A-1.ogg").unlink()
    table = load_esc50(root, download=False).without_folds([1])
    assert table.folds() == [2, 3] and len(table) == 5
    assert [s.fold for s in table.skipped] == [2]
    assert table.class_names == ["dog", "rooster", "pig"]


def test_esc10_subset(esc50_mini):
    table = load_esc50(esc50_mini, esc10=True, download=False)
    assert table.class_names == ["dog", "rooster"]
    assert set(table.clips["target"]) == {0, 1}


def test_missing_dataset_says_how_to_point_at_a_copy(tmp_path, monkeypatch):
    monkeypatch.delenv("ESCLAB_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError, match="--data PATH or the ESCLAB_DATA"):
        load_esc50(tmp_path / "nowhere", download=False)


def test_env_variable_points_at_the_data(esc50_mini, monkeypatch):
    monkeypatch.setenv("ESCLAB_DATA", str(esc50_mini))
    assert len(load_esc50(None, download=False)) == 9


def _zip_of(folder, tmp_path):
    archive = tmp_path / "master.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in folder.rglob("*"):
            zf.write(f, "ESC-50-master/" + str(f.relative_to(folder)))
    return archive


def test_download_verifies_checksum_and_unpacks(tmp_path, esc50_mini, monkeypatch):
    monkeypatch.setattr("esclab.data.esc50.NUM_CLIPS", 9)
    url = _zip_of(esc50_mini, tmp_path).as_uri()
    root = download_esc50(tmp_path / "data" / "ESC-50", url, sha256_of(esc50_mini / "meta" / "esc50.csv"))
    assert len(load_esc50(root, download=False)) == 9
    with pytest.raises(DatasetNotFoundError, match="sha256"):
        download_esc50(tmp_path / "other", url, "0" * 64)
    assert not (tmp_path / "other").exists()


def test_download_failure_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="download failed"):
        download_esc50(tmp_path / "x", (tmp_path / "absent.zip").as_uri())


def test_folder_csv_with_and_without_folds(tone_dataset):
    table = load_folder(tone_dataset)
    assert table.folds() == [1, 2] and len(table) == 12
    rows = pd.read_csv(tone_dataset).drop(columns="fold")
    rows["group"] = [i // 2 for i in range(len(rows))]
    csv = tone_dataset.parent / "nofold.csv"
    rows.to_csv(csv, index=False)
    made = load_folder(csv, num_folds=2)
    assert made.folds() == [1, 2]
    by_group = made.clips.assign(group=rows["group"].values).groupby("group")["fold"].nunique()
    assert (by_group == 1).all()  # a group never straddles folds


def test_folder_csv_needs_path_and_label(tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("file,class\na.wav,x\n")
    with pytest.raises(ValueError, match="path,label"):
        load_folder(csv)


def test_relative_csv_and_its_paths_resolve_against_the_data_folder(tone_dataset, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # neither the CSV nor the clips are here
    table = load_folder("labels.csv", tone_dataset.parent)
    assert len(table) == 12 and not table.skipped
    assert all(p.startswith(str(tone_dataset.parent.resolve())) for p in table.clips["path"])


def test_relative_csv_falls_back_to_the_current_directory(tone_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tone_dataset.parent)
    table = load_folder("labels.csv", tmp_path / "empty")  # not in the data folder: found here
    assert len(table) == 0 and len(table.skipped) == 12  # but its paths are the data folder's


def test_missing_csv_names_both_places_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        load_folder("labels.csv", tmp_path / "my_sounds")
    assert str(tmp_path / "my_sounds" / "labels.csv") in str(err.value)
    assert str(tmp_path / "labels.csv") in str(err.value)


def test_validation_split_comes_from_training_folds_only():
    targets = np.repeat(np.arange(5), 20)
    folds = np.tile(np.repeat(np.arange(1, 6), 4), 5)
    dm = FoldDataModule(np.random.rand(100, 4, 8), targets, folds, test_fold=3, val_fraction=0.25,
                        standardize=True)
    assert set(folds[dm.test_idx]) == {3}
    assert not set(dm.val_idx) & set(dm.test_idx) and not set(dm.train_idx) & set(dm.val_idx)
    assert np.bincount(targets[dm.val_idx]).tolist() == [4] * 5  # stratified
    mean, _ = dm.norm_stats
    expected = dm.specs[dm.train_idx].mean(dim=(0, 2))
    assert np.allclose(mean.numpy(), expected.numpy(), atol=1e-5)


def test_progressive_fractions_are_nested_and_stratified():
    assert [stage_fraction([{"fraction": 0.5, "epochs": 2}], e) for e in range(3)] == [0.5, 0.5, 1.0]
    targets = np.repeat(np.arange(4), 10)
    dm = FoldDataModule(np.zeros((40, 2, 8)), targets, np.tile([1, 2], 20), test_fold=2, val_fraction=0)
    half, quarter = dm.train_indices(0.5), dm.train_indices(0.25)
    assert set(quarter) <= set(half) <= set(dm.train_idx)
    assert np.bincount(targets[half]).tolist() == [2, 2, 2, 2]  # 5 training clips a class, half rounded
    assert np.bincount(targets[quarter]).tolist() == [1, 1, 1, 1]


def test_no_validation_when_fraction_is_zero():
    train, val = split_validation(np.arange(10), np.zeros(10, int), np.arange(10), 0.0, 0)
    assert len(val) == 0 and len(train) == 10


def test_validation_split_never_shares_a_recording_with_training():
    # 5 classes x 8 recordings x 4 clips cut from each, like ESC-50's src_file.
    targets = np.repeat(np.arange(5), 32)
    groups = np.repeat(np.arange(40), 4)
    for seed in range(5):
        train, val = split_validation(np.arange(160), targets, groups, 0.25, seed)
        assert not set(groups[train]) & set(groups[val])
        assert sorted([*train, *val]) == list(range(160))
        assert np.bincount(targets[val]).tolist() == [8] * 5  # stratified: 2 of each class's 8 recordings


def test_grouped_split_falls_back_to_unstratified_when_classes_have_few_recordings():
    targets = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    groups = np.array([0, 0, 1, 2, 2, 3, 4, 5])
    train, val = split_validation(np.arange(8), targets, groups, 0.25, 0)
    assert len(val) and not set(groups[train]) & set(groups[val])


def test_a_single_recording_cannot_be_split():
    with pytest.raises(ValueError, match="at least 2 source groups"):
        split_validation(np.arange(4), np.zeros(4, int), np.zeros(4, int), 0.25, 0)


def test_training_order_and_variants_depend_on_seed_and_epoch_only():
    sampler = EpochSampler(10, seed=3, variants=2)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    resumed = EpochSampler(10, seed=3, variants=2, epoch=1)
    assert list(resumed) == second and first != second
    assert sorted(i for i, _ in second) == list(range(10)) and {k for _, k in second} <= {0, 1, 2}
    torch.manual_seed(0)
    assert list(EpochSampler(10, seed=3, variants=2, epoch=1)) == second  # the global RNG plays no part


def test_progressive_loader_grows_with_the_epoch():
    from types import SimpleNamespace

    targets = np.repeat(np.arange(4), 20)
    dm = FoldDataModule(np.zeros((80, 2, 8)), targets, np.tile([1, 2], 40), test_fold=2, val_fraction=0,
                        progressive=[{"fraction": 0.25, "epochs": 2}, {"fraction": 0.5, "epochs": 1}])
    sizes = []
    for epoch in range(4):
        dm.trainer = SimpleNamespace(current_epoch=epoch)
        sizes.append(len(dm.train_dataloader().dataset))
    assert sizes == [8, 8, 20, 40]


def test_progressive_run_trains_end_to_end(tiny_overrides, tmp_path):
    from esclab.config import load_config
    from esclab.train.cv import run_cv

    cfg = load_config("configs/experiment/paper_cnn.yaml", [*tiny_overrides, "data.folds=[1]", "train.max_epochs=3",
                                                            "train.progressive=[{fraction: 0.5, epochs: 1}]"])
    result = run_cv(cfg, tmp_path / "run", progress=False)
    assert result.fold_metrics[1]["epochs"] == 3
