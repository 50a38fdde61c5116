"""The transcript-index interface the admin panel uses.

Backends: `sql.SqlTranscriptIndex` (default; a lemma table in the same
database) and, when ELASTICSEARCH_URL is set, an Elasticsearch one
(`elastic.py`). SQL stays the source of truth; an index
can always be rebuilt from it with `reindex_all()`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Collection, Iterator, Protocol


@dataclass(frozen=True)
class TurnText:
    """What the index needs of one turn."""

    call_id: int
    turn_id: int | None
    text: str
    started_at: datetime | None = None  # the call's start, for backends that filter dates themselves


@dataclass
class SearchPage:
    """One page of matching calls, newest first.

    `total` is None when counting every match would cost a scan (a query of
    very common words); `has_more` always tells whether a next page exists.
    `backend` names the index that answered ("sql" when Elasticsearch failed
    and the SQL index stood in: the panel says the search is degraded).
    """

    call_ids: list[int] = field(default_factory=list)
    total: int | None = 0
    has_more: bool = False
    backend: str | None = None


@dataclass(frozen=True)
class DateRange:
    """[start, end) in UTC; either side may be open."""

    start: datetime | None = None
    end: datetime | None = None


class TranscriptIndex(Protocol):
    name: str

    def index_turns(self, session, turns: list[TurnText]) -> None:
        """Called inside the transaction that writes the turns (from a flush)."""

    def search(self, query: str, dates: DateRange, limit: int, offset: int) -> SearchPage:
        """Calls whose transcript has every word of `query` in some form."""

    def iter_call_ids(self, query: str, dates: DateRange, batch: int = 500) -> Iterator[list[int]]:
        """All matching call ids, newest first, in batches (for export)."""

    def clear(self, keep: Collection[int] = ()) -> None:
        """Forget every call but `keep` (the log was cleared; live calls stay)."""

    def reindex_all(self) -> int:
        """Rebuild from the SQL call log; returns the number of calls indexed."""

    def status(self) -> dict:
        """For /healthz: backend, degraded (searches fall back to SQL), outbox backlog and last error."""
