"""Group commit: threads that each need the same kind of costly commit share one.

An fsync or an index transaction costs about the same for one item as for
sixteen, so when several uploads of one process reach their commit at once,
one of them (the *leader*) takes every item queued so far, commits them all
with one call, and hands each waiting thread (the *followers*) its own result.
While the leader works, newcomers queue up; when it is done the next waiter
becomes leader and takes all of them. A thread alone never waits for anyone:
it leads a batch of one at once, so a single writer pays only a lock.

The batch function returns one outcome per item, in order: a value, or the
exception that belongs to that item alone. If the batch function itself
raises, every item of that batch gets the exception. Nothing is returned to a
caller before its batch finished, so whatever the batch makes durable is
durable when :meth:`CommitQueue.submit` returns.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["CommitQueue"]

T = TypeVar("T")
R = TypeVar("R")

#: Every queue, so that a forked child can drop the parent's waiting state.
_QUEUES: weakref.WeakSet[CommitQueue[object, object]] = weakref.WeakSet()


class _Slot(Generic[T, R]):
    """One submitted item and, once its batch ran, its outcome."""

    __slots__ = ("done", "error", "item", "value")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.value: R | None = None
        self.error: BaseException | None = None

    def outcome(self) -> R | BaseException:
        """The result, or the exception that belongs to this item."""
        if self.error is not None:
            return self.error
        return self.value  # type: ignore[return-value]


class CommitQueue(Generic[T, R]):
    """Batches concurrent :meth:`submit` calls into calls of ``commit(items)``.

    ``commit`` gets the items in the order they were submitted and returns a
    sequence of the same length: each entry the item's result, or an exception
    (instance) that is raised to that item's caller only.
    """

    def __init__(self, commit: Callable[[list[T]], Sequence[R | BaseException]]) -> None:
        self._commit = commit
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Slot[T, R]] = []
        self._leading = False
        #: Batches committed and items in them, for tests and the benchmarks.
        self.batches = 0
        self.items = 0
        _QUEUES.add(self)  # type: ignore[arg-type]

    def submit(self, item: T) -> R:
        """Commit ``item``, with whatever else is queued; return its result or raise its error."""
        return self.submit_many([item])[0]

    def submit_many(self, items: Sequence[T]) -> list[R]:
        """Commit ``items`` in one batch (with whatever else is queued).

        Returns their results in order; raises the error of the first item that
        failed (see :meth:`outcomes` to get every item's outcome instead).
        """
        results: list[R] = []
        for outcome in self.outcomes(items):
            if isinstance(outcome, BaseException):
                raise outcome
            results.append(outcome)
        return results

    def outcomes(self, items: Sequence[T]) -> list[R | BaseException]:
        """Commit ``items`` together; each one's result or exception, in order."""
        slots = [_Slot[T, R](item) for item in items]
        with self._cond:
            self._pending.extend(slots)
            while not all(slot.done for slot in slots):
                if not self._leading:
                    self._leading = True
                    batch, self._pending = self._pending, []
                    break
                self._cond.wait()
            else:
                return [slot.outcome() for slot in slots]
        self._lead(batch)
        with self._cond:
            while not all(slot.done for slot in slots):
                # Some of ours were queued after the batch was taken (not possible for
                # one call, which queues all its items at once); wait for their batch.
                self._cond.wait()
        return [slot.outcome() for slot in slots]

    def _lead(self, batch: list[_Slot[T, R]]) -> None:
        """Commit ``batch``, hand out the outcomes, let the next leader in."""
        try:
            outcomes: Sequence[R | BaseException] = self._commit([slot.item for slot in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(
                    f"a group commit returned {len(outcomes)} outcomes for {len(batch)} items"
                )
        except BaseException as exc:  # handed to every item of the batch
            outcomes = [exc] * len(batch)
        with self._cond:
            for slot, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    slot.error = outcome
                else:
                    slot.value = outcome
                slot.done = True
            self.batches += 1
            self.items += len(batch)
            self._leading = False
            self._cond.notify_all()

    def _forget(self) -> None:
        """In a forked child: the parent's waiters and leader do not exist here."""
        self._cond = threading.Condition(threading.Lock())
        self._pending = []
        self._leading = False


def _forget_all() -> None:
    for queue in list(_QUEUES):
        queue._forget()


os.register_at_fork(after_in_child=_forget_all)
