"""Group commit: one writer thread per process runs every write, sharing commits.

Callers submit units of work from any thread and get a Future; callers on an event loop
pass `loop=` and get an asyncio future of that loop, and the writer answers all of a
round's asyncio futures in ONE hop to the loop (one wake-up per commit, not per request).
The writer takes whatever has queued up and runs it in as few durable commits as it can:

- `unit(fn)`: `fn(session)` writes inside a transaction someone else holds. All units queued
  together run in ONE `BEGIN IMMEDIATE`, each in its own SAVEPOINT (a unit that raises is
  rolled back alone and gets its exception), then ONE commit (synchronous=FULL), and only
  then is any of them answered: every answer a caller sees is durable.
- `gather(fn, arg)`: like a unit, but all of a round's jobs of one `fn` are handed to ONE
  call, `fn(session, [(operator, arg), …])`, inside the same transaction as the units, which
  returns one result per job, or the exception that job gets (a job that fails that way
  must not have written anything); e.g. a group's ticket scans judged with one read and one
  write (checkin.ScanSet) instead of a few statements each. If the call raises, the
  group is replayed (see run_units) and each job then gets a call of its own.
- `batch(fn, arg)`: `fn(session, [args…])` does its own grouped transactions for many
  requests of one kind at once (e.g. `orders.purchase_many`) and returns one result (or
  TicketHubError) per arg.
- `solo(fn)`: `fn(session)` manages its own transactions (multi-phase flows that talk to the
  provider between commits); run one at a time on the writer's connection.

Writes of one process never contend with each other for SQLite's lock; several processes
against one file still contend, fairly, through `db.transaction`'s jittered BEGIN IMMEDIATE.
`run_units` is the transaction-with-savepoints piece on its own, for callers that already
hold a group (a gate reading lines, a batch file). While it runs, `session.group` is a dict
the units of that one transaction share (facts read under its write lock, which no other
writer can change before it commits); it is None outside a group.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from ..db import (
    Connection,
    DatabaseError,
    drop_later,
    flush_later,
    savepoint,
    transaction,
    translate,
)
from ..errors import TicketHubError
from ..session import Session

MAX_GROUP = 512  # units per commit: bounds the latency a unit waits behind the others


class _Job:
    """One submitted piece of work and where its answer goes: a concurrent Future, or an
    asyncio future of `loop` (answered on that loop, see `_deliver`)."""

    __slots__ = ("arg", "fn", "future", "kind", "loop", "operator")

    def __init__(
        self,
        kind: str,  # unit | batch | solo
        fn: Callable[..., Any],
        arg: Any,
        operator: str,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.kind, self.fn, self.arg, self.operator, self.loop = kind, fn, arg, operator, loop
        self.future: Any = Future() if loop is None else loop.create_future()


Outcome = tuple[_Job, Any, BaseException | None]
GatherFn = Callable[[Session, list[tuple[str, Any]]], list[Any]]


class Gathered:
    """Jobs of one `gather` function in a group: run as one call (see Writer.gather)."""

    __slots__ = ("fn", "items")

    def __init__(self, fn: GatherFn, items: list[tuple[str, Any]]) -> None:
        self.fn, self.items = fn, items

    def outcomes(self, s: Session, items: list[tuple[str, Any]]) -> list[Any]:
        out = self.fn(s, items)
        if len(out) != len(items):
            raise RuntimeError(f"{self.fn!r} answered {len(out)} of {len(items)} jobs")
        return [(None, r) if isinstance(r, BaseException) else (r, None) for r in out]


Step = Callable[[Session], Any] | Gathered


def run_units(s: Session, units: Sequence[Step]) -> list[tuple[Any, BaseException | None]]:
    """Run each unit as if in its own savepoint inside one transaction, commit once. Returns
    (result, error) per unit (a Gathered step: one per item, in its place); if the
    transaction itself fails (busy, disk), it raises and nothing of any unit was kept.

    Units nearly always succeed, so they first run without a savepoint each (two statements
    fewer per unit, and none for the group: each statement hands the GIL to the event loop
    and waits to get it back); when one raises, the whole transaction is rolled back and
    the units run again in a new one with a savepoint per unit, so the failing unit is
    undone alone. A unit may therefore run twice: units only write to the database (as
    every caller's do). Rows a unit hands to `db.write_later` are written before its
    savepoint is released (or the group commits), so they share its fate."""
    try:
        with transaction(s.conn) as c:
            s.group = {}
            try:
                out: list[tuple[Any, BaseException | None]] = []
                for unit in units:
                    if isinstance(unit, Gathered):
                        out.extend(unit.outcomes(s, unit.items))
                    else:
                        out.append((unit(s), None))
                flush_later(s.group, c)  # the group's deferred rows, a few statements
            except Exception as exc:  # rolled back (transaction), replayed below
                raise _Replay from exc
            finally:
                s.group = None
        return out
    except _Replay:
        pass
    with transaction(s.conn) as c:
        s.group = {}  # facts counted with the undone work: read again
        try:
            out = []
            for unit in units:
                if isinstance(unit, Gathered):  # each item on its own now
                    for item in unit.items:
                        out.append(_alone(s, c, lambda s, i=item, u=unit: u.outcomes(s, [i])))
                else:
                    out.append(_alone(s, c, lambda s, u=unit: [(u(s), None)]))
        finally:
            s.group = None
    return out


class _Replay(Exception):
    """A unit raised in a group's first run: its transaction was rolled back, run again."""


def _alone(
    s: Session, c: Connection, run: Callable[[Session], list[Any]]
) -> tuple[Any, BaseException | None]:
    """One unit (or one gathered item) in its own savepoint: undone alone if it raises."""
    try:
        with savepoint(c, "unit"):
            (outcome,) = run(s)
            flush_later(s.group, c)  # this unit's own rows, in its savepoint
            return outcome
    except Exception as exc:  # noqa: BLE001 - handed to that unit's caller
        drop_later(s.group)  # its kept rows are undone with it
        return None, exc


def _answer(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """On the event loop: answer the futures of one round (a caller gone meanwhile, e.g. a
    client that hung up, has cancelled its future: skipped)."""
    for fut, result, error in outcomes:
        if fut.done():
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)


class Writer:
    """The process's single writer (a daemon thread with its own session)."""

    def __init__(self, open_session: Callable[[], Session]) -> None:
        self._open = open_session
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tickethub-writer", daemon=True)
        self._closed = False
        self.commits = 0  # group transactions committed (for tests and the bench)
        self._thread.start()

    # ----------------------------------------------------------------- submitting
    # Each returns a concurrent Future, or with `loop=` an asyncio future of that loop.
    def unit(self, fn: Callable[[Session], Any], operator: str, loop: Any = None) -> Any:
        return self._put(_Job("unit", fn, None, operator, loop))

    def gather(self, fn: GatherFn, arg: Any, operator: str, loop: Any = None) -> Any:
        return self._put(_Job("gather", fn, arg, operator, loop))

    def batch(
        self,
        fn: Callable[[Session, list[Any]], list[Any]],
        arg: Any,
        operator: str,
        loop: Any = None,
    ) -> Any:
        return self._put(_Job("batch", fn, arg, operator, loop))

    def solo(self, fn: Callable[[Session], Any], operator: str, loop: Any = None) -> Any:
        return self._put(_Job("solo", fn, None, operator, loop))

    def _put(self, job: _Job) -> Any:
        if self._closed:
            raise RuntimeError("writer is closed")
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Finish everything queued, then stop (shutdown drains, it never drops work)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    # ----------------------------------------------------------------- the thread
    def _run(self) -> None:
        s: Session | None = None
        with contextlib.suppress(Exception):  # cannot open: the first round tries again
            s = self._open()
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                jobs = [job]
                while len(jobs) < MAX_GROUP:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)  # stop after this round
                        break
                    jobs.append(nxt)
                s = self._reopened(s, jobs)
                if s is not None:
                    self._round(s, jobs)
        finally:
            if s is not None:
                s.close()

    def _reopened(self, s: Session | None, jobs: list[_Job]) -> Session | None:
        """The session for this round: a new one when there is none or its connection is
        gone (a PostgreSQL server restarted or timed it out: without this every later
        write of the process failed). If none can be opened, each job is told why (none
        hangs) and the next round tries again."""
        if s is not None and not s.broken:
            return s
        if s is not None:
            with contextlib.suppress(Exception):
                s.close()
        try:
            return self._open()
        except Exception as exc:  # noqa: BLE001 - every caller is told
            self._deliver([(j, None, exc) for j in jobs])
            return None

    @staticmethod
    def _deliver(outcomes: list[Outcome]) -> None:
        """Hand each job its answer: concurrent Futures here, asyncio futures in one
        call_soon_threadsafe per loop (a loop already closed has nobody left to answer)."""
        on_loops: dict[Any, list[tuple[Any, Any, BaseException | None]]] = {}
        for job, result, error in outcomes:
            if job.loop is not None:
                on_loops.setdefault(job.loop, []).append((job.future, result, error))
            elif error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)
        for loop, answers in on_loops.items():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_answer, answers)

    def _round(self, s: Session, jobs: list[_Job]) -> None:
        units = [j for j in jobs if j.kind == "unit" or j.kind == "gather"]
        if units:
            self._units(s, units)
        batches: dict[tuple[Any, str], list[_Job]] = {}
        for j in jobs:
            if j.kind == "batch":
                batches.setdefault((j.fn, j.operator), []).append(j)
        for (fn, operator), group in batches.items():
            s.operator = operator
            self._settle(s, group, lambda fn=fn, group=group: fn(s, [j.arg for j in group]))
        for j in jobs:
            if j.kind == "solo":
                s.operator = j.operator
                self._settle(s, [j], lambda j=j: [j.fn(s)])

    def _units(self, s: Session, jobs: list[_Job]) -> None:
        def bound(job: _Job) -> Callable[[Session], Any]:
            def call(session: Session) -> Any:
                session.operator = job.operator
                return job.fn(session)

            return call

        steps: list[Step] = []
        order: list[_Job] = []  # the jobs in the order of run_units' outcomes
        gathered: dict[Any, tuple[Gathered, list[_Job]]] = {}
        for j in jobs:
            if j.kind == "unit":
                steps.append(bound(j))
                order.append(j)
            elif j.fn in gathered:
                gathered[j.fn][0].items.append((j.operator, j.arg))
                gathered[j.fn][1].append(j)
            else:  # judged together, at the place of the first of them
                gathered[j.fn] = (Gathered(j.fn, [(j.operator, j.arg)]), [j])
                steps.append(gathered[j.fn][0])
                order.append(j)  # placeholder: replaced by the group's jobs below
        if gathered:
            ordered: list[_Job] = []
            for step, j in zip(steps, order, strict=True):
                ordered.extend(gathered[j.fn][1] if isinstance(step, Gathered) else [j])
            order = ordered
        try:
            results = run_units(s, steps)
        except Exception as exc:  # noqa: BLE001 - the whole group failed: tell each caller
            err = translate(exc) if isinstance(exc, DatabaseError) else exc
            self._deliver([(j, None, err) for j in jobs])
            return
        self.commits += 1
        self._deliver(
            [(j, result, error) for j, (result, error) in zip(order, results, strict=True)]
        )

    def _settle(self, s: Session, jobs: list[_Job], call: Callable[[], list[Any]]) -> None:
        """Run a batch or solo call and hand each job its result or error."""
        try:
            results = call()
        except Exception as exc:  # noqa: BLE001 - handed to the callers
            if s.conn.in_transaction:  # never leave the next round inside this one's
                # (on a connection the server dropped this fails too: the round is over
                # either way, and the thread must live on to answer the next one)
                with contextlib.suppress(Exception):
                    s.conn.rollback()
            err = translate(exc) if isinstance(exc, DatabaseError) else exc
            self._deliver([(j, None, err) for j in jobs])
            return
        self.commits += 1
        self._deliver(
            [
                (j, None, r) if isinstance(r, TicketHubError) else (j, r, None)
                for j, r in zip(jobs, results, strict=True)
            ]
        )
