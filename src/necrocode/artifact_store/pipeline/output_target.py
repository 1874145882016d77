"""Checks on the local files that downloads and exports write to.

A download or export writes a temporary file beside the target and renames it
over the target, which replaces whatever the name held. That is right for a
regular file and wrong for anything else: a FIFO, a device node (``/dev/full``)
or a socket would be destroyed, and a symbolic link would be replaced by a
file instead of written through. Such targets are refused before any byte is
written.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..exceptions import InvalidInputError

__all__ = ["check_output_file"]

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def check_output_file(path: Path, *, folder_may_be_missing: bool = False) -> None:
    """Refuse ``path`` as a file to (re)place unless it is absent or a regular file.

    An absent ``path`` needs its folder, unless ``folder_may_be_missing`` (the caller
    creates it).
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        folder = path.parent
        if not folder_may_be_missing and not folder.is_dir():
            problem = "is not a folder" if folder.exists() else "does not exist"
            raise InvalidInputError(f"cannot write {path}: the folder {folder} {problem}") from None
        return
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot write there: {exc.strerror}") from exc
    if stat.S_ISLNK(mode):
        raise InvalidInputError(
            f"{path} is a symbolic link; refusing to replace it (give the path it points to)"
        )
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise InvalidInputError(f"{path} is {kind}, not a regular file; refusing to replace it")
