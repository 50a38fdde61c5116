"""The default transcript index: a (lemma, call) table in the same SQL database.

A call's lemmas are those of what was said in it, and of who called: the
caller's name and company (from the CRM) and number (call_search_text).

It works the same on SQLite and PostgreSQL. Postings are written in the
transaction that writes the turns, so the index never lags the log.

A query is a list of words, each a set of lemmas; a call matches when it has
every word. The plan is chosen like a search engine would:
- some word is rare (its postings fit under DENSE): read its postings, keep
  the calls that have the other words and fall in the dates, sort them. The
  cost is bounded by DENSE, whatever the size of the log, and the count is exact;
- every word is common: walk the calls newest first by index and probe the
  postings of each word by primary key. A page is found after about
  limit * N / df calls, again bounded; the total is not counted.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Collection, Iterable, Iterator

from sqlalchemy import ForeignKey, String, and_, delete, exists, func, insert, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models import Call, Turn
from .base import DateRange, SearchPage, TurnText
from .lemmas import call_query_terms, phone_terms, text_lemmas

log = logging.getLogger(__name__)

# Above this many postings a word counts as common (see the module docstring).
DENSE = 2000
INSERT_BATCH = 20_000


class TranscriptTerm(db.Model):
    """One lemma said somewhere in one call."""

    __tablename__ = "transcript_terms"
    __table_args__ = {"sqlite_with_rowid": False}  # clustered by (lemma, call_id), as PostgreSQL's index is

    lemma: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True, index=True)


T = TranscriptTerm.__table__


def turn_search_text(text: str | None, spoken_text: str | None) -> str:
    """What was said in a turn: its text, plus the heard part of a bot answer if it differs."""
    text = text or ""
    if spoken_text and spoken_text not in text:
        return f"{text} {spoken_text}".strip()
    return text


def call_search_text(caller: str | None, caller_name: str | None, caller_company: str | None) -> str:
    """What a call is found by besides its words: who called (name, company, number)."""
    return " ".join(filter(None, [caller_name, caller_company, *phone_terms(caller)]))


def date_conditions(dates: DateRange) -> list:
    conds = []
    if dates.start is not None:
        conds.append(Call.started_at >= dates.start)
    if dates.end is not None:
        conds.append(Call.started_at < dates.end)
    return conds


def call_ids_newest_first(conditions: list, batch: int = 500) -> Iterator[list[int]]:
    """Every call id matching `conditions`, newest first, in batches, by keyset pagination."""
    last = None
    while True:
        stmt = select(Call.id, Call.started_at).where(*conditions)
        if last is not None:
            started, cid = last
            stmt = stmt.where(or_(Call.started_at < started, and_(Call.started_at == started, Call.id < cid)))
        rows = db.session.execute(stmt.order_by(Call.started_at.desc(), Call.id.desc()).limit(batch)).all()
        if not rows:
            return
        yield [r.id for r in rows]
        if len(rows) < batch:
            return
        last = (rows[-1].started_at, rows[-1].id)


_IGNORING: dict = {}  # dialect name -> its INSERT … ON CONFLICT DO NOTHING, built once (not per batch)


def _insert_ignoring(name: str):
    stmt = _IGNORING.get(name)
    if stmt is None:
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        stmt = _IGNORING[name] = dialect_insert(T).on_conflict_do_nothing()
    return stmt


def _insert_ignoring_duplicates(conn, rows: list[dict]) -> None:
    if not rows:
        return
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        conn.execute(_insert_ignoring(name), rows)
        return
    for row in rows:  # other databases: check first (slow, but correct)
        found = conn.execute(select(T.c.lemma).where(T.c.lemma == row["lemma"], T.c.call_id == row["call_id"])).first()
        if not found:
            conn.execute(insert(T), [row])


class SqlTranscriptIndex:
    name = "sql"

    def __init__(self, app=None):
        self.app = app

    # --- writing -----------------------------------------------------------
    def index_turns(self, session, turns: list[TurnText]) -> None:
        per_call: dict[int, set[str]] = defaultdict(set)
        for turn in turns:
            per_call[turn.call_id] |= text_lemmas(turn.text)
        rows = [{"lemma": lemma, "call_id": cid} for cid, lemmas in per_call.items() for lemma in sorted(lemmas)]
        conn = session.connection()
        try:
            # A savepoint: should the index fail, the turns themselves are still committed.
            with conn.begin_nested():
                _insert_ignoring_duplicates(conn, rows)
        except SQLAlchemyError:
            log.exception("transcript index: calls %s not indexed; `flask reindex-transcripts` repairs it",
                          sorted(per_call))

    def clear(self, keep: Collection[int] = ()) -> None:
        """Drop every call's entries but those of `keep`; committed by the caller."""
        db.session.execute(delete(T).where(T.c.call_id.not_in(list(keep))) if keep else delete(T))

    def reindex_all(self) -> int:
        """Rebuild the table from the turns, a thousand calls at a time (constant memory)."""
        session = db.session
        session.execute(delete(T))
        n_calls, last_id, pending = 0, 0, []
        while True:
            ids = session.execute(
                select(Call.id).where(Call.id > last_id).order_by(Call.id).limit(1000)).scalars().all()
            if not ids:
                break
            per_call: dict[int, set[str]] = defaultdict(set)
            for cid, caller, name, company in session.execute(
                    select(Call.id, Call.caller, Call.caller_name, Call.caller_company)
                    .where(Call.id >= ids[0], Call.id <= ids[-1])):
                per_call[cid] |= text_lemmas(call_search_text(caller, name, company))
            rows = session.execute(
                select(Turn.call_id, Turn.text, Turn.spoken_text)
                .where(Turn.call_id >= ids[0], Turn.call_id <= ids[-1]))
            for cid, text, spoken in rows:
                per_call[cid] |= text_lemmas(turn_search_text(text, spoken))
            for cid, lemmas in per_call.items():
                pending.extend({"lemma": lemma, "call_id": cid} for lemma in lemmas)
            if len(pending) >= INSERT_BATCH:
                session.execute(insert(T), pending)
                pending = []
            n_calls += len(ids)
            last_id = ids[-1]
        if pending:
            session.execute(insert(T), pending)
        session.commit()
        return n_calls

    # --- reading -----------------------------------------------------------
    def _capped_df(self, lemmas: Iterable[str]) -> int:
        sub = select(T.c.call_id).where(T.c.lemma.in_(list(lemmas))).limit(DENSE).subquery()
        return db.session.execute(select(func.count()).select_from(sub)).scalar_one()

    def _has_word(self, lemmas: Iterable[str]):
        return exists().where(T.c.lemma.in_(list(lemmas)), T.c.call_id == Call.id)

    def _plan(self, query: str):
        """(terms, rare word or None); terms is empty when nothing can match."""
        terms = call_query_terms(query)
        if not terms:
            return [], None
        dfs = [self._capped_df(t) for t in terms]
        if min(dfs) == 0:
            return [], None
        i = dfs.index(min(dfs))
        return terms, (terms[i] if dfs[i] < DENSE else None)

    def _sparse_ids(self, terms, rare, dates: DateRange) -> list[int]:
        candidates = db.session.execute(
            select(T.c.call_id).where(T.c.lemma.in_(list(rare))).distinct()).scalars().all()
        others = [self._has_word(t) for t in terms if t is not rare]
        stmt = (select(Call.id).where(Call.id.in_(candidates), *date_conditions(dates), *others)
                .order_by(Call.started_at.desc(), Call.id.desc()))
        return list(db.session.execute(stmt).scalars())

    def search(self, query: str, dates: DateRange, limit: int = 50, offset: int = 0) -> SearchPage:
        terms, rare = self._plan(query)
        if not terms:
            return SearchPage([], 0, False, backend=self.name)
        if rare is not None:
            ids = self._sparse_ids(terms, rare, dates)
            return SearchPage(ids[offset:offset + limit], len(ids), len(ids) > offset + limit, backend=self.name)
        stmt = (select(Call.id).where(*date_conditions(dates), *[self._has_word(t) for t in terms])
                .order_by(Call.started_at.desc(), Call.id.desc()).limit(limit + 1).offset(offset))
        ids = list(db.session.execute(stmt).scalars())
        return SearchPage(ids[:limit], None, len(ids) > limit, backend=self.name)

    def status(self) -> dict:
        return {"backend": self.name, "degraded": False, "outbox_pending": None, "outbox_last_error": None}

    def iter_call_ids(self, query: str, dates: DateRange, batch: int = 500) -> Iterator[list[int]]:
        terms, rare = self._plan(query)
        if not terms:
            return
        if rare is not None:
            ids = self._sparse_ids(terms, rare, dates)
            for i in range(0, len(ids), batch):
                yield ids[i:i + batch]
            return
        yield from call_ids_newest_first(date_conditions(dates) + [self._has_word(t) for t in terms], batch)
