"""The one base of the errors a user can cause: a wrong config, missing data or weights, a bad file.

Each family derives from :class:`EsclabError` where it lives (``ConfigError`` in :mod:`esclab.config`,
``BundleError`` in :mod:`esclab.bundle`, ...), keeping the builtin base callers catch (``ValueError``,
``FileNotFoundError``, ``RuntimeError``) as a second base. The command line prints such an error as one
line; any other exception is a bug and keeps its traceback. This module imports nothing, so the command
line can name the base without loading any library.
"""

from __future__ import annotations


class EsclabError(Exception):
    """Something the user can fix; the message says what and how, in one line."""
