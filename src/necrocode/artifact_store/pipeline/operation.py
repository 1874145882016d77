"""One public call of the store: its failure is logged once, by the outermost call.

Every public method of :class:`~..artifact_store.ArtifactStore` is an
*operation*. Operations call each other (``delete_by_spec_name`` calls
``search`` and ``delete``); the caller gets the exception anyway, so only the
outermost one logs it, at DEBUG, with :data:`FAILED_OPERATION` set on the
record (the command line drops those records: it reports the error itself).

:func:`operation` is the decorator form for methods; :class:`Operation` the
context form for a call that must stay open around a generator or reader.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

from ..exceptions import ArtifactStoreError

__all__ = ["FAILED_OPERATION", "Operation", "operation"]

log = logging.getLogger("necrocode.artifact_store")

#: Attribute of the log record a failing public call writes.
FAILED_OPERATION = "necrocode_failed_operation"

P = ParamSpec("P")
R = TypeVar("R")

#: How many operations the current thread is inside (of any store).
_depth = threading.local()


class Operation:
    """The context of one public call (a class: it wraps every download, so it is cheap)."""

    __slots__ = ("_name", "_outer", "_target")

    def __init__(self, name: str, target: str | None = None) -> None:
        self._name = name
        self._target = target
        self._outer = 0

    def __enter__(self) -> None:
        self._outer = getattr(_depth, "value", 0)
        _depth.value = self._outer + 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _depth.value = self._outer
        if self._outer == 0 and isinstance(exc, ArtifactStoreError):
            # The caller gets the exception; a library that also printed it would say
            # everything twice. DEBUG, so it shows only where someone asked for it.
            log.debug(
                "%s %s failed: %s: %s",
                self._name,
                self._target or "",
                type(exc).__name__,
                exc,
                extra={FAILED_OPERATION: self._name},
            )


def operation(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Make a method an operation named ``name``; its first argument after ``self``,
    when a string (a URI, a spec or task name), is logged as the target."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            target = args[1] if len(args) > 1 and isinstance(args[1], str) else None
            with Operation(name, target):
                return method(*args, **kwargs)

        return run

    return decorate
