"""Group commit: one writer thread per process runs every write, sharing commits.

Callers submit units of work from any thread (or the event loop) and get a Future. The
writer takes whatever has queued up and runs it in as few durable commits as it can:

- `unit(fn)`: `fn(session)` writes inside a transaction someone else holds. All units queued
  together run in ONE `BEGIN IMMEDIATE`, each in its own SAVEPOINT (a unit that raises is
  rolled back alone and gets its exception), then ONE commit (synchronous=FULL), and only
  then is any of them answered: every answer a caller sees is durable.
- `batch(fn, arg)`: `fn(session, [args…])` does its own grouped transactions for many
  requests of one kind at once (e.g. `orders.purchase_many`) and returns one result (or
  TicketHubError) per arg.
- `solo(fn)`: `fn(session)` manages its own transactions (multi-phase flows that talk to the
  provider between commits); run one at a time on the writer's connection.

Writes of one process never contend with each other for SQLite's lock; several processes
against one file still contend, fairly, through `db.transaction`'s jittered BEGIN IMMEDIATE.
`run_units` is the transaction-with-savepoints piece on its own, for callers that already
hold a group (a gate reading lines, a batch file).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..db import savepoint, transaction, translate
from ..errors import TicketHubError
from ..session import Session

MAX_GROUP = 512  # units per commit: bounds the latency a unit waits behind the others


@dataclass
class _Job:
    kind: str  # unit | batch | solo
    fn: Callable[..., Any]
    arg: Any
    operator: str
    future: Future[Any] = field(default_factory=Future)


def run_units(
    s: Session, units: Sequence[Callable[[Session], Any]]
) -> list[tuple[Any, BaseException | None]]:
    """Run each unit in its own savepoint inside one transaction, commit once. Returns
    (result, error) per unit; if the transaction itself fails (busy, disk), it raises and
    nothing of any unit was kept."""
    out: list[tuple[Any, BaseException | None]] = []
    with transaction(s.conn) as c:
        for unit in units:
            try:
                with savepoint(c, "unit"):
                    out.append((unit(s), None))
            except Exception as exc:  # noqa: BLE001 - handed to that unit's caller only
                out.append((None, exc))
    return out


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
    def unit(self, fn: Callable[[Session], Any], operator: str) -> Future[Any]:
        return self._put(_Job("unit", fn, None, operator))

    def batch(self, fn: Callable[[Session, list[Any]], list[Any]], arg: Any, operator: str):
        return self._put(_Job("batch", fn, arg, operator))

    def solo(self, fn: Callable[[Session], Any], operator: str) -> Future[Any]:
        return self._put(_Job("solo", fn, None, operator))

    def _put(self, job: _Job) -> Future[Any]:
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
        try:
            s = self._open()
        except Exception as exc:  # noqa: BLE001 - every caller is told, none hangs
            self._fail_all(exc)
            return
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
                self._round(s, jobs)
        finally:
            s.close()

    def _fail_all(self, exc: BaseException) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            job.future.set_exception(exc)

    def _round(self, s: Session, jobs: list[_Job]) -> None:
        units = [j for j in jobs if j.kind == "unit"]
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

        try:
            results = run_units(s, [bound(j) for j in jobs])
        except Exception as exc:  # noqa: BLE001 - the whole group failed: tell each caller
            err = translate(exc) if isinstance(exc, sqlite3.Error) else exc
            for j in jobs:
                j.future.set_exception(err)
            return
        self.commits += 1
        for j, (result, error) in zip(jobs, results, strict=True):
            if error is not None:
                j.future.set_exception(error)
            else:
                j.future.set_result(result)

    def _settle(self, s: Session, jobs: list[_Job], call: Callable[[], list[Any]]) -> None:
        """Run a batch or solo call and hand each job its result or error."""
        try:
            results = call()
        except Exception as exc:  # noqa: BLE001 - handed to the callers
            if s.conn.in_transaction:  # never leave the next round inside this one's
                s.conn.execute("ROLLBACK")
            err = translate(exc) if isinstance(exc, sqlite3.Error) else exc
            for j in jobs:
                j.future.set_exception(err)
            return
        self.commits += 1
        for j, result in zip(jobs, results, strict=True):
            if isinstance(result, TicketHubError):
                j.future.set_exception(result)
            else:
                j.future.set_result(result)
