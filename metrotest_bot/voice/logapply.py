"""Call log records applied to the database: one transaction per batch, idempotent.

A record is a plain dict (JSON in the spool): `op` (start | turn | recording | finish), `call` (the
call's local key), and the call's natural key `vox` + `t0` (Voximplant id and start time), by which a
replay finds a call row written before. Turns are snapshots keyed by (call, seq): a turn already in
the database is updated, never inserted twice. The Call counters are recomputed from the turns, and a
finish applies only to a call still in progress (or closed by the abandoned-call sweep meanwhile). So
replaying a record twice (a crash between a commit and the spool's offset) changes nothing. Turns are
written with Core statements, many rows each (cheaper than the ORM's unit of work); what the ORM's
flush hooks do for ORM writes is done here: the turn's new words go to the transcript index in the
same transaction, and with Elasticsearch an outbox row per inserted turn (search.outbox sees UPDATEs
by itself). The Call row is written by Core statements too (logcalls.py).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import JSON, and_, bindparam, create_engine, insert, null, or_, select, text, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.pool import NullPool

from ..database import write_lock
from ..extensions import db
from ..models import OUTCOME_IN_PROGRESS, OUTCOME_LOST, Turn
from ..reports import finalize_call
from ..timeutil import utcnow
from .logcalls import CALLS, counters_statement, insert_call
from .logindex import Indexing

log = logging.getLogger(__name__)

TURNS = Turn.__table__
SWEPT_REASON = "server stopped"  # the end_reason of a call the abandoned-call sweep closed
COUNTED = frozenset({"interrupted", "answered", "first_piece_ms"})  # the turn columns the Call counters read
YIELD_EVERY = 8  # records applied between two yields to the calls (each a switch through the hub)
# Statements built once, values as parameters (SQLAlchemy caches the compiled form per set of columns).
# A batch's new turns in one, every column given (a default, SQL NULL for JSON), in order: PostgreSQL
# assigns serials in VALUES order only when SQLAlchemy is asked to sort the rows (SQLite does anyway).
UPDATE_TURN = update(TURNS).where(TURNS.c.id == bindparam("turn_id_"))
INSERT_TURN = insert(TURNS)
INSERT_TURNS = insert(TURNS).returning(TURNS.c.id, TURNS.c.call_id, TURNS.c.seq)
INSERT_TURNS_PG = insert(TURNS).returning(TURNS.c.id, TURNS.c.call_id, TURNS.c.seq, sort_by_parameter_order=True)
# Also a call the sweep closed while its end waited in a spool: the real end wins.
OPEN_CALL = or_(CALLS.c.outcome == OUTCOME_IN_PROGRESS,
                and_(CALLS.c.outcome == OUTCOME_LOST, CALLS.c.end_reason == SWEPT_REASON))
FINISH_CALL = update(CALLS).where(CALLS.c.id == bindparam("cid_"), OPEN_CALL)
FILL = {c.name: null() if isinstance(c.type, JSON) else (c.default.arg if c.default is not None and c.default.is_scalar
                                                         else None) for c in TURNS.columns if c.name != "id"}

@dataclass
class CallState:
    """What the writer knows of a call once committed (ids, last turn snapshots, indexed words)."""

    id: int | None = None
    fields: dict | None = None  # the start record's, to create the row should it be missing
    turns: dict = field(default_factory=dict)  # seq -> (turn id, columns as committed)
    words: set = field(default_factory=set)  # words already in the transcript index
    said: dict = field(default_factory=dict)  # seq -> (turn text whose words are indexed, its last word's start)
    finished: bool = False


def is_outage(exc: BaseException) -> bool:
    """An error of the kind an unreachable database raises (also raised for some permanent refusals)."""
    return isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


# Errors that pass by themselves: another writer's lock (SQLite), a deadlock or serialization failure.
TRANSIENT = ("database is locked", "database table is locked", "deadlock detected",
             "could not serialize", "could not obtain lock")


def away(app, exc: BaseException) -> bool:
    """The database is away or busy (keep the records and retry later), not refusing these records.

    An OperationalError also covers permanent refusals (psycopg's DiskFull, QueryCanceled,
    ProgramLimitExceeded; every sqlite3 error): if the database answers a probe, it is one.
    """
    if not is_outage(exc):
        return False
    if isinstance(exc, InterfaceError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return True
    if any(t in str(getattr(exc, "orig", exc)).lower() for t in TRANSIENT):
        return True
    return not database_answers(app)


def database_answers(app) -> bool:
    """`SELECT 1` on a fresh connection (not the pool's: its connections may be stale)."""
    with app.app_context():
        engine = db.engine
        options = app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}
        probe = create_engine(engine.url, poolclass=NullPool, connect_args=options.get("connect_args", {}))
        try:
            with probe.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception as exc:
            log.info("call log: the database does not answer (%s)", str(exc).splitlines()[0][:200])
            return False
        finally:
            probe.dispose()


def _dt(value):
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def coalesce(records: list[dict]) -> list[dict]:
    """Snapshots of one turn in a batch: only the last is written, at the place of the first."""
    out: list[dict] = []
    at: dict[tuple, int] = {}
    for rec in records:
        if rec.get("op") == "turn":
            key = (rec["call"], rec["seq"])
            if key in at:
                first = out[at[key]]
                out[at[key]] = {**rec, "at": first.get("at", rec.get("at"))}
                continue
            at[key] = len(out)
        out.append(rec)
    return out


class Batch(Indexing):
    """One transaction's changes, merged into the writer's state only after the commit."""

    def __init__(self, app, state: dict[str, CallState], replay: bool):
        self.app = app
        self.state = state
        self.replay = replay  # records from a spool: look rows up before inserting
        self.call_ids: dict[str, int] = {}
        self.turns: dict[tuple, tuple] = {}
        self.words: dict[str, set] = {}
        self.said: dict[tuple, tuple] = {}  # (call key, seq) -> as CallState.said
        self.unsaid: set[str] = set()  # calls whose indexing failed: their turns are read in full again
        self.fields: dict[str, dict] = {}
        self.finished: set[str] = set()
        self.dirty: set[int] = set()  # calls whose counters must be recomputed
        self.webhook = False
        self.to_index: list = []  # (call key, TurnText, new words): indexed once per batch
        # UPDATEs of turns by the columns they change: an executemany each, run before the turns are read.
        self.updates: dict[frozenset, list] = {}
        self.inserts: list = []  # new turns: one INSERT (run_turns)

    # -- the call row ------------------------------------------------------------------

    def call_id(self, session, rec: dict) -> int:
        key = rec["call"]
        if key in self.call_ids:
            return self.call_ids[key]
        known = self.state.get(key)
        if known is not None and known.id is not None:
            return known.id
        cid = None
        if self.replay or rec["op"] != "start":
            cid = session.scalar(select(CALLS.c.id).where(CALLS.c.vox_call_id == rec.get("vox"),
                                                          CALLS.c.started_at == _dt(rec.get("t0")))
                                 .order_by(CALLS.c.id).limit(1))
        if cid is None:
            fields = rec.get("fields") or self.fields.get(key) or (known.fields if known else None) or {
                "vox_call_id": rec.get("vox"), "started_at": rec.get("t0")}
            cid, said = insert_call(session, fields)  # Core (logcalls.py): no ORM flush per call
            if said is not None:
                self.to_index.append((key, said, set()))  # who called: indexed with the batch's words
        self.call_ids[key] = cid
        return cid

    # -- records -----------------------------------------------------------------------

    def apply(self, session, rec: dict) -> None:
        op = rec["op"]
        if op == "start":
            self.fields[rec["call"]] = rec["fields"]
            self.call_id(session, rec)
        elif op == "turn":
            self._turn(session, rec)
        elif op == "recording":
            session.execute(update(CALLS).where(CALLS.c.id == self.call_id(session, rec))
                            .values(recording_url=rec["url"]))
        elif op == "finish":
            self._finish(session, rec)
        else:
            log.error("call log: a record of unknown kind %r skipped", op)

    def _known_turn(self, key: tuple):
        if key in self.turns:
            return self.turns[key]
        state = self.state.get(key[0])
        return state.turns.get(key[1]) if state is not None else None

    def _turn(self, session, rec: dict) -> None:
        cid = self.call_id(session, rec)
        key, cols = (rec["call"], rec["seq"]), rec["cols"]
        known = self._known_turn(key)
        tid = None
        counted = True  # whether the Call counters may change
        if known is not None:
            tid, old = known
            changed = {k: v for k, v in cols.items() if k not in old or old[k] != v}
            if not changed:
                return
            counted = not COUNTED.isdisjoint(changed)
            if not self.replay:
                self.updates.setdefault(frozenset(changed), []).append((rec, cid, tid, cols, changed))
                self.turns[key] = (tid, cols)
                if counted:
                    self.dirty.add(cid)
                return
            # Core statements on the session's connection: no ORM execution overhead per turn.
            if session.connection().execute(UPDATE_TURN, {"turn_id_": tid, **changed}).rowcount:
                if "text" in changed or "spoken_text" in changed:  # else no new words to index
                    self._index(session, rec, cid, tid, cols, inserted=False)
            else:
                tid, counted = None, True  # the row is gone (the log was cleared): written anew
        elif self.replay:
            tid = session.scalar(select(TURNS.c.id).where(TURNS.c.call_id == cid, TURNS.c.seq == rec["seq"])
                                 .order_by(TURNS.c.id).limit(1))
            if tid is not None:
                session.execute(update(TURNS).where(TURNS.c.id == tid).values(**cols))
                self._index(session, rec, cid, tid, cols, inserted=False)
        if tid is None and not self.replay:  # with the batch's other new turns (run_turns)
            self.inserts.append((rec, cid, cols, self._values(rec, cid, cols)))
            self.dirty.add(cid)
            return
        if tid is None:
            tid = self._insert(session, rec, cid, cols)
        self.turns[key] = (tid, cols)
        if counted:
            self.dirty.add(cid)

    @staticmethod
    def _values(rec: dict, cid: int, cols: dict) -> dict:
        values = dict(call_id=cid, seq=rec["seq"], **cols)
        if rec.get("at"):
            values["created_at"] = _dt(rec["at"])  # when it was said, not when the database came back
        return values

    def _insert(self, session, rec: dict, cid: int, cols: dict) -> int:
        tid = session.connection().execute(INSERT_TURN, self._values(rec, cid, cols)).inserted_primary_key[0]
        self._index(session, rec, cid, tid, cols, inserted=True)
        return tid

    def run_turns(self, session) -> None:
        """The batch's new turns (one INSERT … RETURNING, in order), then its updates; before anything
        reads the turns (a call's end, the index, the counters)."""
        items, self.inserts = self.inserts, []
        conn = session.connection()
        keys = {(values["call_id"], values["seq"]) for *_, values in items}
        if len(items) > 1 and len(keys) == len(items) and conn.dialect.insert_executemany_returning:
            rows = [{**FILL, "created_at": utcnow(), **values} for *_, values in items]
            stmt = INSERT_TURNS_PG if conn.dialect.name == "postgresql" else INSERT_TURNS
            got = {(cid, seq): tid for tid, cid, seq in conn.execute(stmt, rows)}
            ids = [got[(values["call_id"], values["seq"])] for *_, values in items]
        else:
            ids = [conn.execute(INSERT_TURN, values).inserted_primary_key[0] for *_, values in items]
        for (rec, cid, cols, _), tid in zip(items, ids):
            self.turns[(rec["call"], rec["seq"])] = (tid, cols)
            self._index(session, rec, cid, tid, cols, inserted=True)
        self.run_updates(session)

    def run_updates(self, session) -> None:
        """An executemany per set of changed columns (where the driver counts its rows); else one by one."""
        groups, self.updates = self.updates, {}
        conn = session.connection()
        for items in groups.values():
            # One by one also when the executemany missed a row (the log was cleared meanwhile), to find it.
            if len(items) > 1 and conn.dialect.supports_sane_multi_rowcount and conn.execute(UPDATE_TURN, [
                    {"turn_id_": tid, **changed} for _, _, tid, _, changed in items]).rowcount == len(items):
                for rec, cid, tid, cols, changed in items:
                    self._updated(session, rec, cid, tid, cols, changed)
                continue
            for rec, cid, tid, cols, changed in items:
                if conn.execute(UPDATE_TURN, {"turn_id_": tid, **changed}).rowcount:
                    self._updated(session, rec, cid, tid, cols, changed)
                else:  # written anew
                    self.turns[(rec["call"], rec["seq"])] = (self._insert(session, rec, cid, cols), cols)
                    self.dirty.add(cid)

    def _updated(self, session, rec, cid, tid, cols, changed) -> None:
        if "text" in changed or "spoken_text" in changed:  # else no new words to index
            self._index(session, rec, cid, tid, cols, inserted=False)

    def counters(self, session, cids) -> None:
        """The Call counters from its turns: right however often a record is applied."""
        cids = sorted(cids)
        if not cids:
            return
        conn = session.connection()
        conn.execute(counters_statement(conn.dialect.name), {"cids_": cids})
        self.dirty -= set(cids)

    def _finish(self, session, rec: dict) -> None:
        self.run_turns(session)  # the counters and the report read the turns
        cid = self.call_id(session, rec)
        if cid in self.dirty:
            self.counters(session, [cid])  # the report reads them
        values = dict(rec["values"])
        values["ended_at"] = _dt(values["ended_at"])
        values.setdefault("end_reason", None)  # not the sweep's, should it have closed the call meanwhile
        if self._outbox():  # Elasticsearch: session.execute, whose hook records the call's outbox row
            done = session.execute(update(CALLS).where(CALLS.c.id == cid, OPEN_CALL).values(**values)).rowcount
        else:  # the statement built once, its SET from the values' keys
            done = session.connection().execute(FINISH_CALL, {"cid_": cid, **values}).rowcount
        if done:
            session.expire_all()  # the report reads the call as just updated, not an ORM copy from before
            # The post-call report (summary, webhook outbox row) commits with the call's end or not at all.
            self.webhook |= finalize_call(session, cid, self.app.config, outbox=self._outbox())
        self.finished.add(rec["call"])

    # -- after the commit ----------------------------------------------------------------

    def merge(self) -> None:
        def of(key) -> CallState:  # no CallState built per lookup
            known = self.state.get(key)
            return known if known is not None else self.state.setdefault(key, CallState())

        for key, cid in self.call_ids.items():
            of(key).id = cid
        for key, fields in self.fields.items():
            of(key).fields = fields
        for (key, seq), turn in self.turns.items():
            of(key).turns[seq] = turn
        for key, words in self.words.items():
            of(key).words |= words
        for key in self.unsaid:
            of(key).said.clear()
        for (key, seq), said in self.said.items():
            of(key).said[seq] = said
        for key in self.finished:
            of(key).finished = True


def commit(app, state: dict[str, CallState], records: list[dict], replay: bool) -> Batch:
    """Apply `records` in one transaction and commit; the writer's state is updated only then."""
    batch = Batch(app, state, replay)
    with app.app_context():
        session = db.session
        try:
            with write_lock():  # SQLite: one writer at a time (database.py)
                for i, rec in enumerate(coalesce(records), 1):
                    batch.apply(session, rec)
                    if i % YIELD_EVERY == 0:
                        # Under gevent: let the calls run between records, so a big batch is no pause of
                        # the worker (SQLite's writer lock is ours meanwhile; readers go on in WAL mode).
                        time.sleep(0)
                batch.run_turns(session)
                batch.index(session)
                batch.counters(session, batch.dirty)
                session.commit()
        except BaseException:
            try:
                session.rollback()
            except Exception:  # the connection is gone: the pool replaces it
                log.debug("call log: rollback failed", exc_info=True)
            raise
        finally:
            db.session.remove()
    batch.merge()
    return batch
