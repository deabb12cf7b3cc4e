"""Writing a file atomically: the one place that does it for images, plots and logs.

The content goes to a temporary file in the target's folder, is flushed to disk, and then
replaces the target with one rename, so a crash, an error or Ctrl-C never leaves a half-written
file; the temporary file is removed on any failure.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from stylize.errors import OutputError


def write_atomically(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(handle)`` on a temporary binary file next to ``path``, then rename it to ``path``.

    A new file gets the usual permissions (0666 less the umask); a replaced file keeps its own.
    An ``OSError`` or ``ValueError`` (a full disk, a missing folder, a format the writer refuses)
    becomes an :class:`~stylize.errors.OutputError` naming ``path``; anything else (including
    ``KeyboardInterrupt``) propagates after the clean-up.
    """
    target = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(target, f"cannot write ({e.strerror or e})") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode_for(target))
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError | ValueError):
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise OutputError(target, f"cannot write ({reason})") from e
        raise
    return target


def write_text_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`write_atomically` for UTF-8 text (written as it is, no newline translation)."""
    data = text.encode("utf-8")
    return write_atomically(path, lambda handle: handle.write(data))


def file_mode_for(target: Path) -> int:
    """Permissions for the file that will replace ``target``."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    # Read it without os.umask(), which would briefly change it for every thread.
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


__all__ = ["file_mode_for", "write_atomically", "write_text_atomically"]
