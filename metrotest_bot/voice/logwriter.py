"""The call log's writer: one per worker process, committing the records of all calls together.

Calls hand their records to `put()` and never wait on the database (a caller must not hear an
outage). The writer commits what has come in at most every CALLLOG_FLUSH_MS (the first record after
a quiet spell at once), in order, in one transaction: a kill -9 loses at most that much.

When a commit fails because the database is away, the batch goes to the spool (voice/spool.py), and
while the spool holds anything, new records go behind them there, so order is kept. A retry loop with
backoff (up to CALLLOG_RETRY_MAX_S) replays the spool in order; records are dropped from it only after
their commit. At start the writer first replays spools that dead processes left (under their lock),
and the abandoned-call sweep waits for that (voice/abandoned.py).
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque

from ..background import BackgroundWorker
from ..reports import wake as wake_webhook
from . import logapply, spool

log = logging.getLogger(__name__)

FORGET_FINISHED_S = 120.0  # a finished call's ids are kept this long for late records (a barge-in's last save)


class Outage(Exception):
    pass


class CallLogWriter(BackgroundWorker):
    thread_name = "call-log-writer"
    extension_key = "calllog_writer"

    def __init__(self, app):
        super().__init__()
        self.app = app
        cfg = app.config
        self.interval = max(float(cfg["CALLLOG_FLUSH_MS"]), 0.0) / 1000.0
        self.retry_max = max(float(cfg["CALLLOG_RETRY_MAX_S"]), self.interval, 0.05)
        self.queue: deque = deque()
        self.calls: dict[str, logapply.CallState] = {}
        self.spool = spool.Spool(spool.spool_dir(cfg), int(float(cfg["CALLLOG_SPOOL_MAX_MB"]) * 1024 * 1024))
        self.enqueued = 0
        self.handled = 0  # records committed or spooled
        self.orphans_done = threading.Event()
        self._busy = threading.Lock()  # one batch at a time: the thread, or the last flush at exit
        self._put_lock = threading.Lock()
        self._now = False
        self._backoff = 0.0
        self._retry_at = 0.0
        self._spooling_since: float | None = None
        self._finished: deque = deque()  # (when, call key), to forget
        _writers.add(self)

    # -- the calls' side ---------------------------------------------------------------

    def put(self, record: dict) -> None:
        with self._put_lock:  # the count is what flush() waits for
            self.queue.append(record)
            self.enqueued += 1
        if not self._alive():
            self.ensure_running()
        self._wake.set()

    def call_id(self, key: str) -> int | None:
        state = self.calls.get(key)
        return state.id if state is not None else None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record put so far is committed or spooled; True when nothing is spooled."""
        target = self.enqueued
        deadline = time.monotonic() + timeout
        while self.handled < target and time.monotonic() < deadline:
            self._now = True
            self.wake()
            time.sleep(0.01)
        return self.handled >= target and not self.spool.pending

    # -- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        with self._busy:
            self._replay_orphans()
        last = 0.0
        while not self._stopped.is_set():
            timeout = None
            if self.spool.pending or not self.orphans_done.is_set():
                timeout = max(self._retry_at - time.monotonic(), 0.0)
            self._wake.wait(timeout)
            self._wake.clear()
            gather = last + self.interval - time.monotonic()
            if gather > 0 and not self._now:
                self._stopped.wait(gather)  # at most one commit per interval: what comes meanwhile joins it
            self._now = False
            last = time.monotonic()
            try:
                self.process()
            except Exception:  # never let the writer die: the next round tries again
                log.exception("call log writer: a round failed")

    def process(self) -> None:
        with self._busy:
            n = len(self.queue)
            batch = [materialize(self.queue.popleft()) for _ in range(n)]
            due = time.monotonic() >= self._retry_at
            if not self.orphans_done.is_set() and due:
                self._replay_orphans()
            if batch:
                try:
                    if self.spool.pending:
                        self._to_spool(batch)  # behind what is waiting there: order is kept
                    else:
                        try:
                            self._commit(batch, replay=False)
                        except Outage:
                            self._to_spool(batch)
                finally:  # also when something fails after the commit: flush() must not wait in vain
                    self.handled += n
            if self.spool.pending and due:
                self._replay()
            self._forget()

    def _commit(self, records: list[dict], replay: bool, state: dict | None = None) -> None:
        state = self.calls if state is None else state
        try:
            batch = logapply.commit(self.app, state, records, replay)
        except Exception as exc:
            # An OperationalError is also a permanent refusal (a disk full, a limit): the database
            # answering a probe tells it from an outage, so one bad record never blocks the spool.
            if logapply.away(self.app, exc):
                raise Outage(str(exc)) from exc
            if len(records) == 1:
                log.exception("call log: a record the database refuses was DROPPED: %.300r", records[0])
                return
            # A record the database refuses (or a bug): each on its own, so only that one is lost.
            log.warning("call log: a batch of %d failed (%s); writing its records one by one", len(records), exc)
            for record in records:
                self._commit([record], replay=True, state=state)
            return
        if batch.webhook:
            wake_webhook(self.app)  # delivered by a background thread: nothing waits for it
        now = time.monotonic()
        for key in batch.finished:
            self._finished.append((now, key))

    def _to_spool(self, batch: list[dict]) -> None:
        if self._spooling_since is None:
            self._spooling_since = time.monotonic()
            self._retry_at = time.monotonic() + self._next_backoff()
            log.warning("call log: the database is unavailable; records go to %s until it is back", self.spool.dir)
        try:
            # A bot turn is saved at every piece: only its last snapshot of the batch is worth keeping.
            self.spool.append(logapply.coalesce(batch))
        except spool.SpoolFull as exc:
            log.error("call log: %d record(s) LOST: %s (CALLLOG_SPOOL_MAX_MB)", len(batch), exc)
        except OSError:
            log.exception("call log: %d record(s) LOST: the spool cannot be written", len(batch))

    def _next_backoff(self) -> float:
        self._backoff = min(max(self._backoff * 2, self.interval, 0.05), self.retry_max)
        return self._backoff

    def _replay(self) -> None:
        while self.spool.pending:
            records, end = self.spool.read()
            if end == self.spool.offset:
                end = self.spool.size  # nothing readable left
            try:
                if records:
                    self._commit(records, replay=True)
            except Outage as exc:
                self._retry_at = time.monotonic() + self._next_backoff()
                log.info("call log: the database is still unavailable (%s); next try in %.1f s",
                         str(exc).splitlines()[0][:200], self._backoff)
                return
            self.spool.committed(end)
        if self._spooling_since is not None:
            log.warning("call log: the database is back; the spool was replayed after %.1f s",
                        time.monotonic() - self._spooling_since)
        self._spooling_since = None
        self._backoff = 0.0

    def _replay_orphans(self) -> bool:
        """Replay spools left by dead processes; True when none is left."""
        try:
            for path, offset in spool.orphans(self.spool.dir, self.spool.path):
                log.warning("call log: replaying %s, left by a stopped worker", path.name)
                state: dict = {}  # its calls are not ours: their ids are found by their natural key
                while True:
                    records, end = spool.read_records(path, offset)
                    if end == offset:
                        break
                    if records:
                        self._commit(records, replay=True, state=state)
                    offset = end
                    spool.advance(path, offset)
                spool.discard(path)
        except Outage:
            self._retry_at = time.monotonic() + self._next_backoff()
            return False
        except OSError:
            log.exception("call log: a stopped worker's spool could not be read")
            self._retry_at = time.monotonic() + self._next_backoff()
            return False
        self.orphans_done.set()
        return True

    def _forget(self) -> None:
        cutoff = time.monotonic() - FORGET_FINISHED_S
        while self._finished and self._finished[0][0] < cutoff:
            _, key = self._finished.popleft()
            self.calls.pop(key, None)

    def close(self, timeout: float = 5.0) -> None:
        """At process exit: what is still queued (or being committed) is committed, or spooled for the next process."""
        if self.handled >= self.enqueued:
            return
        if self._alive():
            self.flush(timeout)
        elif self._busy.acquire(timeout=timeout):
            self._busy.release()
            self.process()


_writers: "weakref.WeakSet[CallLogWriter]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for writer in list(_writers):
        try:
            writer.close()
        except Exception:
            log.exception("call log: the last records could not be written at exit")


def materialize(record: dict) -> dict:
    """A bot turn's record carries the live turn until the writer takes it: its columns are read then,
    once per batch. An answer saved at every piece would otherwise queue a copy of all its text so far
    per piece (quadratic in its length: a runaway 94 KB answer held ~90 MB while a slow client read
    nothing). `taken` first: a save after it queues a new record, one before it is in this snapshot."""
    turn = record.get("turn")
    if turn is None:
        return record
    record["taken"] = True
    return {k: v for k, v in record.items() if k not in ("turn", "taken")} | {"cols": turn.columns()}


def writer_for(app) -> CallLogWriter:
    return CallLogWriter.for_app(app)


def spooled(app) -> bool:
    """For the sweep: do records wait in any spool of this DATA_DIR (this worker's, a live or dead one's)?"""
    writer = writer_for(app)
    return writer.spool.pending or spool.holds_records(writer.spool.dir)


def replay_orphans(app) -> bool:
    """For the abandoned-call sweep: the spools of dead processes first (True when none is left)."""
    writer = writer_for(app)
    with writer._busy:  # also a worker that died since this one started
        return writer._replay_orphans()


def init_app(app) -> None:
    """The writer starts with this worker's first request (a forked worker starts its own), and
    replays dead workers' spools at once."""
    app.before_request(writer_for(app).ensure_running)
