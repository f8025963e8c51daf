"""Progress outside Lightning: log lines when stderr is not a terminal, a bar when it is; epoch lines."""

from __future__ import annotations

import logging

import pytest

import esclab.progress as P
from esclab.train.callbacks import epoch_line, fold_label


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (7.4, "7s"), (59.6, "1m00s"), (130, "2m10s"),
                                               (3900, "1h05m"), (-3, "0s")])
def test_format_duration(seconds, text):
    assert P.format_duration(seconds) == text


def test_progress_line_has_count_rate_elapsed_and_eta():
    assert P.progress_line("features", 400, 2000, 4.0) == "features: 400/2000 (20 %) · 100.0/s · 4s elapsed, ETA 16s"
    assert P.progress_line("bank", 0, 10, 0.0) == "bank: 0/10 (0 %) · -/s · 0s elapsed, ETA ?"
    assert P.progress_line("clips", 5, None, 2.0) == "clips: 5 · 2.5/s · 2s elapsed"


def test_track_logs_about_every_tenth_without_a_terminal(monkeypatch, caplog):
    monkeypatch.setattr(P, "stderr_is_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="esclab"):
        assert list(P.track(range(50), desc="clips")) == list(range(50))
    lines = [r.getMessage() for r in caplog.records if r.name == "esclab.progress"]
    assert len(lines) == 10
    assert lines[0].startswith("clips: 5/50 (10 %) · ") and lines[-1].startswith("clips: 50/50 (100 %) · ")
    assert all("elapsed, ETA" in line for line in lines)


def test_track_logs_after_every_s_seconds_even_between_tenths(monkeypatch, caplog):
    monkeypatch.setattr(P, "stderr_is_terminal", lambda: False)
    clock = iter(range(0, 10_000, 40))  # every reading 40 s after the last
    monkeypatch.setattr(P.time, "perf_counter", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="esclab"):
        progress = P.Progress(1000, "slow")
        progress.update()
        progress.update()
    assert [r.getMessage() for r in caplog.records] == ["slow: 1/1000 (0 %) · 0.0/s · 40s elapsed, ETA 11h06m",
                                                        "slow: 2/1000 (0 %) · 0.0/s · 1m20s elapsed, ETA 11h05m"]


def test_track_draws_a_bar_on_a_terminal_and_logs_nothing(monkeypatch, caplog, capsys):
    monkeypatch.setattr(P, "stderr_is_terminal", lambda: True)
    with caplog.at_level(logging.INFO, logger="esclab"):
        assert sum(P.track(range(20), desc="bar test")) == 190
    assert not caplog.records
    assert "bar test" in capsys.readouterr().err


def test_bar_shows_the_unit_rate_and_progress_knows_its_rate(monkeypatch, capsys):
    monkeypatch.setattr(P, "stderr_is_terminal", lambda: True)
    with P.Progress(2, "predict", unit="clip") as progress:
        progress.update(2)
    assert "clip/s" in capsys.readouterr().err
    assert progress.done == 2 and progress.elapsed > 0 and progress.rate == pytest.approx(2 / progress.elapsed, rel=0.5)


def test_disabled_track_says_nothing(monkeypatch, caplog, capsys):
    monkeypatch.setattr(P, "stderr_is_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="esclab"):
        assert list(P.track([1, 2, 3], desc="x", enabled=False)) == [1, 2, 3]
    assert not caplog.records and not capsys.readouterr().err


def test_epoch_line_with_validation_and_run_eta():
    line = epoch_line(fold_label(2, 2, 5), (7, 30), {"train_loss": 1.2341, "train_acc": 0.6123, "val_loss": 1.456,
                                                     "val_acc": 0.55}, 130, 15.0, folds_after=3)
    # fold ETA: 23 epochs x 15 s = 5m45s; run ETA adds 3 folds x 30 epochs x 15 s: 1695 s
    assert line == ("fold 2/5 · epoch 7/30 · train loss 1.234 acc 0.612 · val loss 1.456 acc 0.550 · "
                    "fold 2m10s, ETA 5m45s · run ETA 28m15s")


def test_epoch_line_without_validation_or_later_folds():
    line = epoch_line(fold_label(3, 1, 1), (2, 2), {"train_loss": 0.5, "train_acc": 1.0}, 61, 30.0, folds_after=0)
    assert line == "fold 3 (1/1) · epoch 2/2 · train loss 0.500 acc 1.000 · fold 1m01s, ETA 0s"
