"""How :meth:`ArtifactStore.upload` is called: the reference form, the swap check, progress.

``upload(task_id, spec_name, artifact_type, content)`` keeps its documented
order, which is the reverse of the URI (``<spec>/<task>/<type>``) and of the
command line. So it also takes ``ref="spec/task/type"``, every argument works
by keyword, and a call whose spec name looks like a task id while its task id
does not (``upload("chat-app", "8", ...)``) gets an :class:`ArgumentOrderWarning`:
such a call still stores (spec names made of digits are valid), but it almost
always means the two were swapped, and the artifact would land under
``8/chat-app/``. Silence it with ``warnings.simplefilter("ignore",
ArgumentOrderWarning)`` where numeric spec names are intended.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..exceptions import InvalidInputError
from ..models import ArtifactType

__all__ = ["ArgumentOrderWarning", "content_size", "upload_target", "with_progress"]

#: What a task id usually looks like (``8``, ``1.1``, ``2.10.3``).
_TASK_LIKE = re.compile(r"\d+(\.\d+)*")


class ArgumentOrderWarning(UserWarning):
    """``upload``'s spec name and task id look swapped (see the module docstring)."""


def upload_target(
    task_id: str | None,
    spec_name: str | None,
    artifact_type: ArtifactType | str | None,
    ref: str | None,
) -> tuple[str, str, ArtifactType | str]:
    """``(spec, task, type)`` from the positional/keyword form or from ``ref``."""
    if ref is not None:
        if task_id is not None or spec_name is not None or artifact_type is not None:
            raise InvalidInputError("give ref='spec/task/type' or task_id/spec_name/type, not both")
        parts = ref.split("/") if isinstance(ref, str) else []
        if len(parts) != 3:
            raise InvalidInputError(f"ref must be 'spec/task/type', got {ref!r}")
        spec, task, kind = parts
        try:
            return spec, task, ArtifactType.from_filename(kind)
        except ValueError:
            return spec, task, kind
    if task_id is None or spec_name is None or artifact_type is None:
        raise InvalidInputError("upload needs task_id, spec_name and artifact_type (or ref=)")
    if (
        isinstance(spec_name, str)
        and isinstance(task_id, str)
        and _TASK_LIKE.fullmatch(spec_name)
        and not _TASK_LIKE.fullmatch(task_id)
    ):
        warnings.warn(
            f"upload(task_id={task_id!r}, spec_name={spec_name!r}) looks swapped: the "
            f"artifact goes to {spec_name}/{task_id}/ (the order is task_id, spec_name; "
            "ref='spec/task/type' avoids the question)",
            ArgumentOrderWarning,
            stacklevel=_caller_level(),
        )
    return spec_name, task_id, artifact_type


def content_size(content: Any) -> int:
    """The byte count of ``content`` when known up front (bytes, text, a path), else 0."""
    if isinstance(content, str):
        return len(content.encode("utf-8"))
    if isinstance(content, bytes | bytearray):
        return len(content)
    if isinstance(content, memoryview):
        return content.nbytes
    if isinstance(content, os.PathLike):
        try:
            return os.stat(content).st_size
        except OSError:
            return 0  # reading it reports the problem
    return 0


def with_progress(
    chunks: Iterable[bytes], total: int, progress: Callable[[int, int], None]
) -> Iterator[bytes]:
    """``chunks``, calling ``progress(done, total)`` after each (``total`` 0: unknown)."""
    done = 0
    for chunk in chunks:
        done += len(chunk)
        progress(done, total)
        yield chunk


#: The package's folder: frames in it are the store's own, not the caller's.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _caller_level() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside the
    package (the user's call), however many of the store's own frames lie between."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level
