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

__all__ = ["CommitQueue", "PipelinedQueue"]

T = TypeVar("T")
R = TypeVar("R")

#: Every queue, so that a forked child can drop the parent's waiting state.
_QUEUES: weakref.WeakSet[CommitQueue[object, object]] = weakref.WeakSet()


class _Call(Generic[T, R]):
    """The items of one :meth:`CommitQueue.outcomes` call, and how its caller waits.

    Each caller sleeps on its own event: it is woken once, when its batch is
    done or when it is to lead the next one, never by another caller's batch.
    """

    __slots__ = ("event", "items", "lead", "outcomes")

    def __init__(self, items: Sequence[T]) -> None:
        self.items = items
        self.event = threading.Event()
        self.lead = False
        self.outcomes: list[R | BaseException] | None = None


class CommitQueue(Generic[T, R]):
    """Batches concurrent :meth:`submit` calls into calls of ``commit(items)``.

    ``commit`` gets the items in the order they were submitted and returns a
    sequence of the same length: each entry the item's result, or an exception
    (instance) that is raised to that item's caller only.
    """

    def __init__(self, commit: Callable[[list[T]], Sequence[R | BaseException]]) -> None:
        self._commit = commit
        self._lock = threading.Lock()
        self._pending: list[_Call[T, R]] = []
        self._leading = False
        #: Batches committed and items in them, for tests and the benchmarks.
        self.batches = 0
        self.items = 0
        _QUEUES.add(self)  # type: ignore[arg-type]

    @property
    def waiting(self) -> int:
        """Items queued for the next batch (behind the one being committed)."""
        with self._lock:
            return sum(len(call.items) for call in self._pending)

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
        """Commit ``items`` together (one batch); each one's result or exception, in order."""
        call = _Call[T, R](items)
        with self._lock:
            self._pending.append(call)
            call.lead = not self._leading
            self._leading = True
        while True:
            if not call.lead:
                call.event.wait()
                call.event.clear()
            if call.outcomes is not None:
                return call.outcomes
            call.lead = False
            with self._lock:
                batch, self._pending = self._pending, []
            self._lead(batch)

    def _lead(self, batch: list[_Call[T, R]]) -> None:
        """Commit ``batch``, hand out the outcomes, let the next leader in."""
        items = [item for call in batch for item in call.items]
        outcomes = _checked(len(items), lambda: self._commit(items))
        self._deliver(batch, outcomes)
        self._hand_over(batch, len(items))

    def _deliver(self, batch: list[_Call[T, R]], outcomes: Sequence[R | BaseException]) -> None:
        """Give each call of ``batch`` its outcomes (it returns once woken)."""
        start = 0
        for call in batch:
            call.outcomes = list(outcomes[start : start + len(call.items)])
            start += len(call.items)

    def _hand_over(self, batch: list[_Call[T, R]], items: int) -> None:
        """Count the batch, make the first waiter the next leader, wake those done."""
        with self._lock:
            self.batches += 1
            self.items += items
            successor = self._pending[0] if self._pending else None
            if successor is None:
                self._leading = False
            else:
                successor.lead = True  # it takes everything queued meanwhile
        for call in batch:
            if call.outcomes is not None:
                call.event.set()
        if successor is not None:
            successor.event.set()

    def _forget(self) -> None:
        """In a forked child: the parent's waiters and leader do not exist here."""
        self._lock = threading.Lock()
        self._pending = []
        self._leading = False


S = TypeVar("S")


class PipelinedQueue(CommitQueue[T, R], Generic[T, S, R]):
    """A :class:`CommitQueue` whose commit has two steps, the second overlapping the next batch.

    The leader runs ``stage(items)`` (work that must be done one batch at a
    time) and at once lets the next leader take the items queued meanwhile;
    then it runs ``finish(state)`` on what ``stage`` returned, beside the next
    batch's ``stage``, and hands out its outcomes. If ``stage`` raises, every
    item of the batch gets the exception and ``finish`` is not run.
    """

    def __init__(
        self,
        stage: Callable[[list[T]], S],
        finish: Callable[[S], Sequence[R | BaseException]],
    ) -> None:
        super().__init__(self._unused)
        self._stage = stage
        self._finish = finish

    @staticmethod
    def _unused(items: list[T]) -> Sequence[R | BaseException]:
        raise AssertionError("a pipelined queue commits in two steps")

    def _lead(self, batch: list[_Call[T, R]]) -> None:
        items = [item for call in batch for item in call.items]
        try:
            state = self._stage(items)
        except BaseException as exc:  # handed to every item of the batch
            self._deliver(batch, [exc] * len(items))
            self._hand_over(batch, len(items))
            return
        self._hand_over(batch, len(items))  # the next batch stages while this one finishes
        outcomes = _checked(len(items), lambda: self._finish(state))
        self._deliver(batch, outcomes)
        for call in batch:
            call.event.set()


def _checked(
    count: int, commit: Callable[[], Sequence[R | BaseException]]
) -> Sequence[R | BaseException]:
    """``commit()``'s outcomes, or its exception once per item."""
    try:
        outcomes = commit()
        if len(outcomes) != count:
            raise RuntimeError(
                f"a group commit returned {len(outcomes)} outcomes for {count} items"
            )
    except BaseException as exc:  # handed to every item of the batch
        return [exc] * count
    return outcomes


def _forget_all() -> None:
    for queue in list(_QUEUES):
        queue._forget()


os.register_at_fork(after_in_child=_forget_all)
