"""Call transcripts in Elasticsearch (used when ELASTICSEARCH_URL is set).

Two indexes, each behind an alias so `flask reindex` can rebuild into a new
index and switch atomically:
- `<prefix>-turns`: a document per turn carrying its call's fields, for
  Kibana (unanswered questions, interruptions, latencies);
- `<prefix>-calls`: a document per call with its whole transcript, for the
  admin panel's search ("every word in some form, anywhere in the call or in
  who called": transcript, caller's name and company, number) and for Kibana
  (calls per day, outcomes).

SQL stays the source of truth. Changes reach Elasticsearch after commit
through the outbox (outbox.py); the SQL lemma table is kept as well, so while
Elasticsearch is unreachable the admin panel searches SQL instead.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Iterable, Iterator

from elasticsearch import Elasticsearch

from . import outbox
from .base import DateRange, SearchPage, TurnText
from .documents import CALLS_MAPPINGS, ES_ERRORS, INDEX_SETTINGS, TURNS_MAPPINGS, SearchUnavailable, es_date
from .lemmas import collapse_phones, lemmas_of, phone_terms, words
from .sql import SqlTranscriptIndex

log = logging.getLogger(__name__)

BULK_CHUNK = 500

# Fields a query word may match, all analysed by ru_text.
SEARCH_FIELDS = ["transcript", "caller_name", "caller_company"]


def word_clauses(query: str) -> list[dict]:
    """One required clause per query word, as the SQL index reads a query (lemmas.call_query_terms).

    A word matches in any of SEARCH_FIELDS in any of its forms: the word itself and
    its dictionary forms (pymorphy), each through the Russian stemmer; the stemmer
    alone misses forms such as «Сидорова» of the surname «Сидоров». A phone number
    also matches the caller's number, in the forms a caller id takes."""
    clauses, seen = [], []
    for _, _, word in words(collapse_phones(query)):
        lemmas = lemmas_of(word)
        if not lemmas or lemmas in seen:  # a function word, or a repeated one
            continue
        seen.append(lemmas)
        forms = sorted(lemmas | {word})
        clause = {"multi_match": {"query": " ".join(forms), "fields": SEARCH_FIELDS, "operator": "or"}}
        phones = [f for f in forms if f.isdigit() and phone_terms(f)]
        if phones:
            numbers = {n for f in phones for n in phone_terms(f)} | {"+" + phone_terms(f)[0] for f in phones}
            clause = {"bool": {"should": [clause, {"terms": {"caller": sorted(numbers)}}], "minimum_should_match": 1}}
        clauses.append(clause)
    return clauses


def make_client(url: str, timeout: float) -> Elasticsearch:
    # No retry chains: the outbox retries later, and search falls back to SQL at once.
    return Elasticsearch(url, request_timeout=timeout, max_retries=0, retry_on_timeout=False)


class TranscriptStore:
    """The two transcript indexes of one Elasticsearch cluster: writes, rebuilds, queries."""

    def __init__(self, client: Elasticsearch, prefix: str):
        self.es = client
        self.turns_alias = f"{prefix}-turns"
        self.calls_alias = f"{prefix}-calls"
        self._ensured = False

    # -- indexes ---------------------------------------------------------
    def _specs(self):
        return ((self.turns_alias, TURNS_MAPPINGS), (self.calls_alias, CALLS_MAPPINGS))

    def ready(self) -> bool:
        """Both aliases exist. When not (a fresh cluster, an index deleted by hand), the
        outbox rebuilds them from SQL before writing anything."""
        if not self._ensured:
            self._ensured = all(self.es.indices.exists_alias(name=alias) for alias, _ in self._specs())
        return self._ensured

    def refresh(self) -> None:
        self.es.indices.refresh(index=f"{self.turns_alias},{self.calls_alias}")

    # -- writing ---------------------------------------------------------
    def _bulk(self, operations: list, require_alias: bool = True) -> None:
        for start in range(0, len(operations), BULK_CHUNK * 2):
            chunk = operations[start:start + BULK_CHUNK * 2]
            resp = self.es.bulk(operations=chunk, require_alias=require_alias)
            if not resp.get("errors"):
                continue
            for item in resp["items"]:
                (op, result), = item.items()
                if op == "delete" and result.get("status") == 404:
                    continue  # already gone
                if "error" in result:
                    self._ensured = False  # e.g. an index deleted by hand: rebuilt on the next drain
                    raise SearchUnavailable(f"bulk {op} {result.get('_id')}: {result['error']}")

    def write(self, calls: list[dict], turns: list[dict], gone_turn_ids: Iterable[int] = (),
              gone_call_ids: Iterable[int] = ()) -> None:
        """Index call and turn documents; remove deleted turns and calls (the aliases must exist)."""
        ops: list = []
        for doc in calls:
            ops += [{"index": {"_index": self.calls_alias, "_id": str(doc["call_id"])}}, doc]
        for doc in turns:
            ops += [{"index": {"_index": self.turns_alias, "_id": str(doc["turn_id"])}}, doc]
        for turn_id in gone_turn_ids:
            ops.append({"delete": {"_index": self.turns_alias, "_id": str(turn_id)}})
        gone_call_ids = sorted(set(gone_call_ids))
        for call_id in gone_call_ids:
            ops.append({"delete": {"_index": self.calls_alias, "_id": str(call_id)}})
        if ops:
            self._bulk(ops)
        for start in range(0, len(gone_call_ids), 1000):
            self.es.delete_by_query(index=self.turns_alias, conflicts="proceed", refresh=False,
                                    query={"terms": {"call_id": gone_call_ids[start:start + 1000]}})

    def rebuild(self, batches: Iterable[tuple[list[dict], list[dict]]]) -> Iterator[int]:
        """Build fresh indexes from (call docs, turn docs) batches, then switch the aliases.

        Yields the number of calls written after each batch. Searches use the
        old indexes until the switch, which is atomic.
        """
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f")
        new = {alias: f"{alias}-v{stamp}" for alias, _ in self._specs()}
        for alias, mappings in self._specs():
            # No replicas and no refresh while loading; restored before the switch.
            self.es.indices.create(index=new[alias], mappings=mappings,
                                   settings={**INDEX_SETTINGS, "refresh_interval": "-1"})
        try:
            for call_docs, turn_docs in batches:
                ops: list = []
                for doc in call_docs:
                    ops += [{"index": {"_index": new[self.calls_alias], "_id": str(doc["call_id"])}}, doc]
                for doc in turn_docs:
                    ops += [{"index": {"_index": new[self.turns_alias], "_id": str(doc["turn_id"])}}, doc]
                if ops:
                    self._bulk(ops, require_alias=False)
                yield len(call_docs)
            for index in new.values():
                self.es.indices.put_settings(index=index, settings={"refresh_interval": None})
            self.es.indices.refresh(index=",".join(new.values()))
            actions, old = [], []
            for alias, index in new.items():
                if self.es.indices.exists_alias(name=alias):
                    current = list(self.es.indices.get_alias(name=alias).body)
                    old += current
                    actions += [{"remove": {"index": ix, "alias": alias}} for ix in current]
                elif self.es.indices.exists(index=alias):
                    # A concrete index squatting on the alias name (auto-created by hand): replace it.
                    actions.append({"remove_index": {"index": alias}})
                actions.append({"add": {"index": index, "alias": alias}})
            self.es.indices.update_aliases(actions=actions)
        except BaseException:
            self.es.indices.delete(index=",".join(new.values()), ignore_unavailable=True)
            raise
        for index in old:
            self.es.indices.delete(index=index, ignore_unavailable=True)
        self._ensured = True

    # -- reading ---------------------------------------------------------
    def _query(self, query: str, dates: DateRange) -> dict:
        date_range = {}
        if dates.start is not None:
            date_range["gte"] = es_date(dates.start)
        if dates.end is not None:
            date_range["lt"] = es_date(dates.end)
        bool_q: dict = {"must": word_clauses(query)}
        if date_range:
            bool_q["filter"] = [{"range": {"started_at": date_range}}]
        return {"bool": bool_q}

    SORT = [{"started_at": {"order": "desc"}}, {"call_id": {"order": "desc"}}]

    def search(self, query: str, dates: DateRange, limit: int, offset: int) -> tuple[list[int], int]:
        if not word_clauses(query):
            return [], 0  # only function words: nothing to look for (an empty bool would match everything)
        resp = self.es.search(index=self.calls_alias, query=self._query(query, dates), sort=self.SORT,
                              from_=offset, size=limit, track_total_hits=True, source=["call_id"])
        hits = resp["hits"]
        return [h["_source"]["call_id"] for h in hits["hits"]], hits["total"]["value"]

    def iter_call_ids(self, query: str, dates: DateRange, batch: int) -> Iterator[list[int]]:
        if not word_clauses(query):
            return
        after = None
        while True:
            kwargs = {"search_after": after} if after else {}
            resp = self.es.search(index=self.calls_alias, query=self._query(query, dates), sort=self.SORT,
                                  size=batch, source=["call_id"], track_total_hits=False, **kwargs)
            hits = resp["hits"]["hits"]
            if not hits:
                return
            yield [h["_source"]["call_id"] for h in hits]
            if len(hits) < batch:
                return
            after = hits[-1]["sort"]


HEALTH_CHECK_EVERY = 5.0  # seconds
HEALTH_CHECK_TIMEOUT = 2.0


class ElasticTranscriptIndex:
    """The admin panel's transcript index on Elasticsearch, with the SQL index as fallback.

    Writes go to both: the SQL lemma table in the same transaction (so a
    fallback search is always complete), Elasticsearch after commit through
    the outbox. Searches ask Elasticsearch; when it fails they answer from
    SQL and skip Elasticsearch for SEARCH_OUTBOX_RETRY_MAX seconds.
    """

    name = "elasticsearch"

    def __init__(self, app):
        self.app = app
        cfg = app.config
        self.sql = SqlTranscriptIndex(app)
        self.store = TranscriptStore(make_client(cfg["ELASTICSEARCH_URL"], cfg["ELASTICSEARCH_TIMEOUT"]),
                                     cfg["ELASTICSEARCH_PREFIX"])
        # After a failed request the panel searches SQL for this long before trying Elasticsearch again.
        self.down_for_s = float(cfg["SEARCH_OUTBOX_RETRY_MAX"])
        self._down_until = 0.0
        # /healthz asks Elasticsearch itself at most this often (a quiet panel never finds out otherwise).
        self.check_every_s = min(HEALTH_CHECK_EVERY, self.down_for_s)
        self.check_timeout_s = min(HEALTH_CHECK_TIMEOUT, float(cfg["ELASTICSEARCH_TIMEOUT"]))
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        self.last_backend = self.name  # which backend answered the last search (the panel may say "degraded")
        self.outbox = outbox.Outbox(app, self.store)

    # -- writing (the SQL side; Elasticsearch follows through the outbox) ---
    def index_turns(self, session, turns: list[TurnText]) -> None:
        self.sql.index_turns(session, turns)

    def clear(self, **kwargs) -> None:
        self.sql.clear(**kwargs)
        self.outbox.record_clear(kwargs.get("keep") or [])

    def reindex_all(self, progress=None) -> int:
        """Rebuild the SQL lemma table and both Elasticsearch indexes from the call log."""
        n = self.sql.reindex_all()
        self.outbox.rebuild(progress)
        return n

    # -- reading -----------------------------------------------------------
    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.down_for_s
        log.warning("Elasticsearch transcript search failed, using SQL for %.0f s: %s", self.down_for_s, exc)

    def search(self, query: str, dates: DateRange, limit: int = 50, offset: int = 0) -> SearchPage:
        if self._available():
            try:
                ids, total = self.store.search(query, dates, limit, offset)
            except ES_ERRORS as exc:
                self._failed(exc)
            else:
                self.last_backend = self.name
                return SearchPage(ids, total, offset + len(ids) < total, backend=self.name)
        self.last_backend = self.sql.name
        return self.sql.search(query, dates, limit, offset)

    # -- health --------------------------------------------------------------
    def check(self) -> bool:
        """Is Elasticsearch answering? Asks it (briefly) unless asked lately or known down.

        A failure sends the panel's searches to SQL at once, as a failed search would."""
        if not self._available():
            return False
        if time.monotonic() - self._checked_at < self.check_every_s:
            return True
        try:
            self.store.es.options(request_timeout=self.check_timeout_s).info()
        except ES_ERRORS as exc:
            self._failed(exc)
            return False
        self._checked_at = time.monotonic()
        return True

    def status(self) -> dict:
        """For /healthz (needs an app context): degraded means searches are answered from SQL."""
        from sqlalchemy.exc import SQLAlchemyError

        from ..extensions import db

        try:
            pending = self.outbox.pending()
        except SQLAlchemyError:  # the database check of /healthz reports that
            db.session.rollback()
            pending = None
        return {"backend": self.name, "degraded": not self.check(), "outbox_pending": pending,
                "outbox_last_error": self.outbox.last_error}

    def iter_call_ids(self, query: str, dates: DateRange, batch: int = 500) -> Iterator[list[int]]:
        if self._available():
            try:
                # The first page decides the backend; an export does not switch halfway.
                pages = self.store.iter_call_ids(query, dates, batch)
                first = next(pages, None)
            except ES_ERRORS as exc:
                self._failed(exc)
            else:
                self.last_backend = self.name
                if first is not None:
                    yield first
                    yield from pages
                return
        self.last_backend = self.sql.name
        yield from self.sql.iter_call_ids(query, dates, batch)
