"""One error type: what a user can fix is an ``EsclabError``, one line from the command line; any other exception
is a bug and keeps its traceback."""

from __future__ import annotations

import importlib

import pytest

from esclab.cli import main
from esclab.errors import EsclabError

# (module, error, the builtin base callers catch it by)
USER_ERRORS = [
    ("esclab.config", "ConfigError", ValueError),
    ("esclab.audio", "AudioDecodeError", RuntimeError),
    ("esclab.weights", "WeightsError", RuntimeError),
    ("esclab.models.pretrained", "PartialLoadError", RuntimeError),
    ("esclab.data.esc50", "DatasetNotFoundError", FileNotFoundError),
    ("esclab.data.esc50", "DatasetError", ValueError),
    ("esclab.data.esc50", "IncompleteDatasetError", ValueError),
    ("esclab.bundle", "BundleError", ValueError),
    ("esclab.runs", "RunNotFoundError", FileNotFoundError),
    ("esclab.export", "ExportError", RuntimeError),
    ("esclab.inference.results", "WindowError", ValueError),
    ("esclab.evaluate.compare", "CompareError", ValueError),
    ("esclab.train.cv", "RunConflictError", ValueError),
    ("esclab.train.ensemble", "EnsembleError", ValueError),
]


@pytest.mark.parametrize(("module", "name", "builtin"), USER_ERRORS)
def test_user_errors_are_esclab_errors_and_keep_their_builtin_base(module, name, builtin):
    error = getattr(importlib.import_module(module), name)
    assert issubclass(error, EsclabError) and issubclass(error, builtin)


def test_an_esclab_error_is_one_line_and_verbose_adds_its_traceback(tmp_path, capsys):
    args = ["config", "--config", str(tmp_path / "nope.yaml")]
    line = f"esclab config: error: config file not found: {tmp_path / 'nope.yaml'}"
    assert main(args) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert err.startswith(line)
    assert main(["-v", *args]) == 2
    *traceback, last = capsys.readouterr().err.splitlines()
    assert traceback[0].startswith("Traceback") and "ConfigError" in traceback[-1] and last == err


def test_any_other_error_is_a_bug_and_keeps_its_traceback(monkeypatch):
    import esclab.config

    def numpy_bug(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(esclab.config, "load_config", numpy_bug)
    with pytest.raises(ValueError, match="broadcast"):  # out of main: Python prints the traceback, exit 1
        main(["config"])
