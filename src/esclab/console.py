"""What the command line prints: esclab's own lines and real warnings; Lightning's chatter only with ``-v``.

Lightning reports at INFO what it sees (``GPU available: False``, ``TPU available``, a tip to install
a cloud logger, ``LOCAL_RANK``, checkpoint restores) and warns about choices esclab makes on purpose.
Quiet mode raises Lightning's loggers to WARNING and ignores the warnings below by their message;
every other warning still shows.
"""

from __future__ import annotations

import logging
import re
import warnings

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
CHATTER_WARNINGS = (
    # torch deprecated LeafSpec; the isinstance check is inside Lightning's own pytree helper.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # Small datasets have fewer batches than log_every_n_steps; the curves are logged per epoch anyway.
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    # The test fold is predicted from the tested checkpoint's weights on purpose, without its training callbacks.
    r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be provided",
    # A fold resumed from last.ckpt writes into its own checkpoint folder on purpose.
    r"Checkpoint directory .* exists and is not empty",
)
CHATTER_LOGS = {
    # Each fold's MLflow store is new (train.logger=mlflow), so its experiment is always created.
    "lightning.pytorch.loggers.mlflow": r"Experiment with name .* not found\. Creating it\.",
}


class _Drop(logging.Filter):
    """Drops the records whose message matches ``pattern``."""

    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.match(record.getMessage())


def configure_console(verbose: bool = False, lightning: bool = True) -> None:
    """Log esclab's INFO lines; Lightning's INFO lines and the chatter above only when ``verbose``.

    Args:
        verbose: DEBUG logging, with everything Lightning says.
        lightning: the command may use Lightning. Its import (seconds) sets its loggers to INFO, so it is
            imported here first; a command that never trains or predicts (``esclab features``) skips it.
    """
    if lightning:
        import lightning.pytorch  # noqa: F401  # its import sets its loggers to INFO: set ours after it

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    for name, pattern in CHATTER_LOGS.items():
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, _Drop)]:
            logger.removeFilter(old)
        if not verbose:
            logger.addFilter(_Drop(pattern))
    if not verbose:
        for pattern in CHATTER_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
