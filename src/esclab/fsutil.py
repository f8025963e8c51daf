"""Files written whole: a reader (or a resumed run) sees the old file or the new one, never part of one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

Writer = Callable[[BinaryIO], object]  # writes the content to the binary file it is given


def atomic_write(path: str | Path, data: bytes | str | Writer, encoding: str = "utf-8") -> Path:
    """Write ``data`` to ``path`` atomically, creating its folder.

    The content goes to a temporary file beside ``path`` (``.NAME.<random>.tmp``) that then replaces
    ``path`` in one rename: a process killed mid-write leaves the old file (or none) and that temporary
    file; an exception removes the temporary file. Unlike :func:`tempfile.mkstemp`, the file gets the
    usual permissions (``0o666`` less the umask).

    Args:
        path: the file to write.
        data: bytes; text (encoded with ``encoding``); or a function writing the content to the binary
            file it is given, for writers that take a file object (``lambda f: torch.save(obj, f)``,
            ``lambda f: np.save(f, array)``).
        encoding: the encoding of text ``data``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode(encoding) if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
