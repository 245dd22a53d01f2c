"""The ingest process: on a SQLite file, ingest batches run in a process of their own.

Python runs one thread of a process at a time (the GIL). In one process, the event
loop (HTTP, parsing, answering) and the writer thread (routing, correlating,
building and writing rows) took turns on one core while the machine had more. With
`storage.ingest_process` (the default on SQLite), the daemon starts one child
process that runs each ingest batch (`runtime.batches.Batch`) on its own connection
to the same file and answers with what the writer counts and replies; the daemon
keeps everything else: the queue and group commit, every other unit of work, all
reads, the checkpoints.

SQLite's single writer stays uncontended: the writer queue hands over up to `depth`
batches in order (the child runs those waiting in one transaction, and each alone
again, in order, if that fails for another reason than an outage), and the daemon's
own units of work run from the same queue once the batches in flight are answered,
never beside one. The child keeps the current incidents in memory
(runtime/hotstate.py), told to forget them when another unit wrote incidents.

What crosses the pipe: the batch's alerts, `now` from the daemon's clock, and the
rules, SLA targets and outbox routes only when a reload changed them; back come the
answers, the events and the outbox count, or the exception (a database error keeps
its class and the driver's error, so the writer retries, splits or answers 503 as it
does in process). If the child dies, its batches in flight fail with 503 (the
sender sends them again; a batch that did commit is then found as duplicates) and
the next batch starts a new child. The child ignores SIGINT, SIGTERM and SIGHUP: the daemon stops it
after draining its queue, by closing the pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import faulthandler
import io
import logging
import os
import pickle
import signal
import socket
import struct
import sys
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from itsmd.logs import LOG_FORMAT
from itsmd.models import Alert
from itsmd.runtime import forkserver
from itsmd.runtime.batches import Batch, Context, Done
from itsmd.runtime.collector import tune_gc
from itsmd.runtime.hotstate import CurrentIncidents
from itsmd.runtime.writer import SQLITE_CONFLICT_ATTEMPTS, is_conflict
from itsmd.store.engine import SqliteWriter, StoreUnavailable, is_unavailable

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # imports on a slow, busy machine
STOP_TIMEOUT_S = 10.0
MERGED_REQUESTS_MAX = 16  # batches of the writer the child runs in one transaction
_READY = "ready"


@dataclass(frozen=True, slots=True)
class Spec:
    """How the child opens the store and logs."""

    url: str
    busy_timeout: timedelta
    synchronous: str
    log_level: int


@dataclass(frozen=True, slots=True)
class Failure:
    """A batch that failed in the child: the exception, and the child's traceback (which
    does not pickle; a note on the exception once received)."""

    error: BaseException
    where: str

    def received(self) -> BaseException:
        self.error.add_note(self.where)
        return self.error


@dataclass(frozen=True, slots=True)
class Request:
    jobs: Sequence[Sequence[Alert]]
    now: datetime
    context: Context | None  # None: the one sent before
    forget: bool  # clear the current incidents first


def _parts(context: Context) -> tuple[object, ...]:
    return context.rules, context.sla, context.enqueue


class ProcessBatches:
    """Runs ingest batches in the ingest process (a `runtime.batches.BatchRunner`).

    The pipe is read and written on the event loop itself: a thread in between would
    wait for the GIL, held by the loop, at every hand-over, while the child idles.
    Up to `depth` batches are in the pipe at once, so that the child finds the next
    there when it commits one; it runs them in order (those waiting together, in one
    transaction), and answers each in order."""

    # Batches of the writer in the pipe at once: the child runs those waiting in one
    # transaction. 8 ran batch-20 fastest of 2, 4 and 8 (bench/RESULTS.md).
    depth = 8

    def __init__(self, spec: Spec, context: Callable[[], Context]) -> None:
        self._spec, self._context = spec, context
        self._child: BaseProcess | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._answers: asyncio.Task[None] | None = None
        self._waiting: deque[asyncio.Future[tuple[bool, Any]]] = deque()  # in send order
        self._starting = asyncio.Lock()
        self._held: Context | None = None  # the context the child holds
        self._forget = False
        self.sent = 0  # batches handed to a child so far

    @property
    def pid(self) -> int | None:
        return None if self._child is None else self._child.pid

    async def start(self) -> None:
        """Start the child and wait until it can take batches."""
        async with self._starting:
            await self._spawn()

    async def run(self, jobs: Sequence[Sequence[Alert]], now: datetime) -> Done:
        context = self._context()
        async with self._starting:  # fair: batches reach a new child in their order
            if self._writer is None:
                await self._spawn()
        writer = self._writer
        assert writer is not None
        held = self._held
        same = held is not None and all(
            a is b for a, b in zip(_parts(held), _parts(context), strict=True)
        )
        request = Request(jobs, now, None if same else context, self._forget)
        answer = asyncio.get_running_loop().create_future()
        # No await from the context's check to the write: batches reach the pipe in
        # the order they were decided to carry (or not) the context.
        writer.write(_frame(pickle_request(request)))
        self._waiting.append(answer)
        self._held, self._forget = context, False
        self.sent += 1
        with contextlib.suppress(ConnectionError):  # the answers' reader fails the batch
            await writer.drain()
        ok, value = await answer
        if ok:
            assert isinstance(value, Done)
            return value
        assert isinstance(value, BaseException)
        raise value

    def forget(self) -> None:
        self._forget = True

    async def stop(self) -> None:
        child, writer, answers = self._child, self._writer, self._answers
        self._child = self._writer = self._answers = self._held = None
        if answers is not None:  # first: the end of the pipe is no loss now
            answers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answers
        if writer is not None:  # the child reads the end of the pipe and exits
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        if child is not None:
            await asyncio.get_running_loop().run_in_executor(None, _end, child)

    async def _read_answers(self, reader: asyncio.StreamReader, child: BaseProcess) -> None:
        try:
            while True:
                ok, value = pickle.loads(await _read_frame(reader))  # noqa: S301 - our child's
                answer = self._waiting.popleft()
                if not answer.done():  # a batch cancelled meanwhile: its answer is dropped
                    answer.set_result((ok, value if ok else value.received()))
        except Exception as exc:  # noqa: BLE001 - the end of the pipe, or an answer unread
            self._lost(child, exc)

    def _lost(self, child: BaseProcess, exc: BaseException) -> None:
        """The child died (or broke the pipe): its batches in flight fail with 503 (a
        batch that committed is found as duplicates when sent again); the next batch
        starts another child."""
        if self._child is child:
            writer = self._writer
            self._child = self._writer = self._answers = self._held = None
            if writer is not None:
                writer.close()
        _kill(child)
        ended = _exit_of(child)
        log.error(
            "the ingest process %s ended (%s); the next batch starts another", child.pid, ended
        )
        error = f"the ingest process ended ({ended}): {exc!r}"
        while self._waiting:
            answer = self._waiting.popleft()
            if not answer.done():
                answer.set_result((False, StoreUnavailable(error)))

    async def _spawn(self) -> None:
        mine, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        try:
            child = await loop.run_in_executor(None, _fork, theirs, self._spec)
        finally:
            theirs.close()
        try:
            reader, writer = await asyncio.open_unix_connection(sock=mine)
            async with asyncio.timeout(START_TIMEOUT_S):
                ready = pickle.loads(await _read_frame(reader))  # noqa: S301 - our child's
            if ready != _READY:
                raise StoreUnavailable(f"the ingest process said {ready!r} when starting")
        except BaseException as exc:
            mine.close()
            await loop.run_in_executor(None, _kill, child)
            if isinstance(exc, TimeoutError):
                raise StoreUnavailable(
                    f"the ingest process did not start in {START_TIMEOUT_S:g}s"
                ) from None
            if isinstance(exc, (asyncio.IncompleteReadError, ConnectionError)):
                raise StoreUnavailable(
                    f"the ingest process ended while starting ({_exit_of(child)})"
                ) from None
            raise
        self._child, self._writer, self._held = child, writer, None
        self._answers = asyncio.create_task(
            self._read_answers(reader, child), name="itsmd-ingest-answers"
        )
        log.debug("ingest process %s started", child.pid)


def _end(child: BaseProcess) -> None:
    child.join(STOP_TIMEOUT_S)
    if child.exitcode is None:
        log.warning("the ingest process %s did not stop in %gs: killed", child.pid, STOP_TIMEOUT_S)
        _kill(child)


def _fork(theirs: socket.socket, spec: Spec) -> BaseProcess:
    """Start the child from the fork server (runtime/forkserver.py)."""
    mp = forkserver.context()
    child = mp.Process(target=_child_main, args=(theirs, spec), name="itsmd-ingest")
    child.daemon = True
    child.start()
    return child


def pickle_request(request: Request) -> bytes:
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _PIPE_REDUCERS
    pickler.dump(request)
    return out.getvalue()


def _alert_for_the_child(alert: Alert) -> tuple[Any, ...]:
    """The alert with its fields in order (a frozen dataclass's own pickling looks
    them up for each alert), and of its raw payload only whether it gave startsAt,
    what correlation reads of it: the rest would only weigh on the pipe (about a
    third of a pickled alert)."""
    raw = _GAVE_STARTS_AT if "startsAt" in alert.raw else _NO_STARTS_AT
    return Alert, (
        alert.fingerprint,
        alert.status,
        alert.labels,
        alert.annotations,
        alert.starts_at,
        alert.ends_at,
        alert.generator_url,
        alert.source,
        raw,
    )


_GAVE_STARTS_AT: dict[str, Any] = {"startsAt": None}
_NO_STARTS_AT: dict[str, Any] = {}
_PIPE_REDUCERS = {**copyreg.dispatch_table, Alert: _alert_for_the_child}


# multiprocessing.connection's framing, which the child reads and writes with its
# blocking Connection: a 4-byte big-endian length, or -1 then 8 bytes of length.
_SHORT, _LONG = struct.Struct("!i"), struct.Struct("!Q")


def _frame(data: bytes) -> bytes:
    if len(data) > 0x7FFFFFFF:
        return _SHORT.pack(-1) + _LONG.pack(len(data)) + data
    return _SHORT.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = _SHORT.unpack(await reader.readexactly(_SHORT.size))
    if size == -1:
        (size,) = _LONG.unpack(await reader.readexactly(_LONG.size))
    return await reader.readexactly(size)


def _kill(child: BaseProcess) -> None:
    """By its pid: `Process.kill` skips a child once the fork server said it ended,
    which it says of every child when it goes itself (systemd's stop signals every
    process of the service)."""
    assert child.pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(child.pid, signal.SIGKILL)
    child.join(STOP_TIMEOUT_S)


def _exit_of(child: BaseProcess) -> str:
    code = child.exitcode
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _child_main(sock: socket.socket, spec: Spec) -> None:
    pipe = Connection(sock.detach())
    # The daemon stops the child, after its queue: not a signal sent to the whole
    # process group or service (Ctrl-C in a terminal, systemd's stop, a reload).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    faulthandler.enable(file=sys.stderr, all_threads=True)
    logging.basicConfig(level=spec.log_level, stream=sys.stderr, format=LOG_FORMAT)
    store = SqliteWriter(spec.url, busy_timeout=spec.busy_timeout, synchronous=spec.synchronous)
    current = CurrentIncidents()
    context: Context | None = None
    tune_gc(collect=False)
    pipe.send(_READY)
    waiting: deque[Request] = deque()
    while True:
        try:
            requests = _next_requests(pipe, waiting)
        except EOFError:  # the daemon closed the pipe, or died
            break
        first = requests[0]
        if first.context is not None:
            context = first.context
        assert context is not None, "the first request carries the context"
        if any(r.forget for r in requests):
            current.clear()
        for answer in store_requests(store, requests, context, current):
            pipe.send(answer)
    store.dispose()


_Answer = tuple[bool, "Done | Failure"]


def store_requests(
    store: SqliteWriter,
    requests: Sequence[Request],
    context: Context,
    current: CurrentIncidents,
) -> list[_Answer]:
    """The answers to the requests that wait: one transaction for them all (group
    commit, as the writer does), at the latest of their times. If it fails for
    another reason than an outage, each request runs again on its own, in order, as
    the writer splits a batch it merged: only a faulty one fails."""
    jobs = [job for r in requests for job in r.jobs]
    ok, value = _attempt(store, jobs, max(r.now for r in requests), context, current)
    if ok:
        assert isinstance(value, Done)
        answers: list[_Answer] = []
        for r in requests:  # the counts go with the first answer
            count = len(r.jobs)
            answers.append(
                (
                    True,
                    Done(value.results[:count], value.events, value.correlation_s, value.notified),
                )
            )
            value = Done(value.results[count:], [], 0.0, 0)
        return answers
    assert isinstance(value, Failure)
    outage = is_unavailable(value.error) and not is_conflict(value.error)
    if len(requests) == 1 or outage:
        return [(False, value)] * len(requests)
    return [_attempt(store, r.jobs, r.now, context, current) for r in requests]


def _attempt(
    store: SqliteWriter,
    jobs: Sequence[Sequence[Alert]],
    now: datetime,
    context: Context,
    current: CurrentIncidents,
) -> _Answer:
    """One transaction, run again on a conflict (on SQLite, a cache made stale by a
    failed batch: settled by reading again), as the writer does."""
    for attempt in range(1, SQLITE_CONFLICT_ATTEMPTS + 1):
        try:
            batch = Batch(jobs, now, context, current)
            store.write(batch.unit)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the writer
            current.clear()  # whether anything committed is uncertain: read again
            if is_conflict(exc) and attempt < SQLITE_CONFLICT_ATTEMPTS:
                continue
            return False, portable(exc)
        return True, batch.committed()
    raise AssertionError("unreachable")


def _next_requests(pipe: Connection, waiting: deque[Request]) -> list[Request]:
    """The next request and those already in the pipe behind it that change neither
    rules nor targets (those begin the next transaction)."""
    first = waiting.popleft() if waiting else pipe.recv()
    requests = [first]
    while pipe.poll(0) and len(requests) < MERGED_REQUESTS_MAX:
        try:
            following: Request = pipe.recv()
        except EOFError:  # the next call meets it again, after these are answered
            break
        if following.context is not None:
            waiting.append(following)
            break
        requests.append(following)
    return requests


def portable(exc: Exception) -> Failure:
    """The exception as the daemon can receive it, and where it was raised (its class
    and driver error kept where it pickles, else its text as a RuntimeError)."""
    where = "raised in the ingest process:\n" + "".join(traceback.format_tb(exc.__traceback__))
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, just made
    except Exception:  # noqa: BLE001 - any exception that does not cross: its text does
        return Failure(RuntimeError(f"{type(exc).__name__}: {exc}"), where)
    return Failure(exc, where)
