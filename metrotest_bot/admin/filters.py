"""The call list's filters (q, date_from, date_to, outcome, sort, page), shared by the list and the export.

Without a search the database filters and sorts. With one, the transcript
index finds the calls (newest first) and the outcome and order are applied to
its matches in SQL, up to SEARCH_REFINE_MAX of the newest matches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from flask import current_app, request
from sqlalchemy import func, select

from ..extensions import db
from ..models import Call
from ..search import DateRange, SearchPage, get_index
from ..search.sql import call_ids_newest_first, date_conditions
from ..timeutil import company_tz
from .forms import UNANSWERED, CallFilterForm
from .ranges import clamp_day, page_number

SORTS = {
    "newest": (Call.started_at.desc(),),
    "oldest": (Call.started_at.asc(),),
    "longest": (Call.duration_s.desc().nulls_last(),),
    "shortest": (Call.duration_s.asc().nulls_last(),),
    "most_turns": (Call.n_turns.desc(),),
    "fewest_turns": (Call.n_turns.asc(),),
}
DEFAULT_SORT = "newest"
SEARCH_REFINE_MAX = 20_000  # search matches an outcome filter or another order is applied to
CHUNK = 1000  # ids per IN (...): well under SQLite's and PostgreSQL's parameter limits


@dataclass
class CallFilter:
    q: str = ""
    date_from: date | None = None
    date_to: date | None = None
    outcome: str = ""
    sort: str = DEFAULT_SORT
    page: int = 1
    form: CallFilterForm | None = None
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_request(cls) -> "CallFilter":
        form = CallFilterForm(request.args)
        form.validate()
        errors = [msg for f in form for msg in f.errors]
        page = page_number(request.args.get("page", 1))
        return cls(
            q=(form.q.data or "").strip() if not form.q.errors else "",
            # An invalid field filters nothing, but its error is shown and the input kept.
            date_from=clamp_day(form.date_from.data) if not form.date_from.errors else None,
            date_to=clamp_day(form.date_to.data) if not form.date_to.errors else None,
            outcome=(form.outcome.data or "") if not form.outcome.errors else "",
            sort=(form.sort.data or DEFAULT_SORT) if not form.sort.errors else DEFAULT_SORT,
            page=page, form=form, errors=errors,
        )

    @property
    def active(self) -> bool:
        return bool(self.q or self.date_from or self.date_to or self.outcome)

    @property
    def refined(self) -> bool:
        """Anything the transcript index does not do itself: an outcome, an order but newest first."""
        return bool(self.outcome) or self.sort != DEFAULT_SORT

    def outcome_conditions(self) -> list:
        if self.outcome == UNANSWERED:
            return [Call.n_unanswered > 0]
        return [Call.outcome == self.outcome] if self.outcome else []

    def conditions(self) -> list:
        """SQL conditions on Call for the dates and the outcome."""
        return date_conditions(self.dates()) + self.outcome_conditions()

    def order_by(self) -> tuple:
        tiebreak = Call.started_at.asc() if self.sort == "oldest" else Call.started_at.desc()
        return (*SORTS.get(self.sort, SORTS[DEFAULT_SORT]), tiebreak, Call.id.asc() if self.sort == "oldest"
                else Call.id.desc())

    def dates(self) -> DateRange:
        """The dates as [start, end) in UTC: whole days in the company's time zone."""
        tz = company_tz()

        def start_of(day: date) -> datetime:
            return datetime.combine(day, time.min, tzinfo=tz).astimezone(timezone.utc)

        return DateRange(
            start=start_of(self.date_from) if self.date_from else None,
            end=start_of(self.date_to + timedelta(days=1)) if self.date_to else None,
        )

    def args(self, page: int | None = None) -> dict:
        """Query parameters for a link that keeps these filters (and goes to `page`)."""
        out = {}
        if self.q:
            out["q"] = self.q
        if self.date_from:
            out["date_from"] = self.date_from.isoformat()
        if self.date_to:
            out["date_to"] = self.date_to.isoformat()
        if self.outcome:
            out["outcome"] = self.outcome
        if self.sort != DEFAULT_SORT:
            out["sort"] = self.sort
        if page and page > 1:
            out["page"] = page
        return out


def page_size() -> int:
    return int(current_app.config["ADMIN_PAGE_SIZE"])


def find_calls(flt: CallFilter) -> SearchPage:
    """One page of call ids for the filters, in the chosen order."""
    limit = page_size()
    offset = (flt.page - 1) * limit
    if flt.q and not flt.refined:
        return get_index().search(flt.q, flt.dates(), limit, offset)
    if flt.q:
        ids = _refined_search_ids(flt)
        return SearchPage(ids[offset:offset + limit], len(ids), offset + limit < len(ids))
    conds = flt.conditions()
    total = db.session.scalar(select(func.count(Call.id)).where(*conds))
    ids = db.session.scalars(select(Call.id).where(*conds).order_by(*flt.order_by())
                             .limit(limit).offset(offset)).all()
    return SearchPage(list(ids), total, offset + len(ids) < total)


def _refine(flt: CallFilter, ids: list[int]) -> list[int]:
    """Those of `ids` that have the filter's outcome (the dates are the index's business)."""
    conds = flt.outcome_conditions()
    if not conds or not ids:
        return ids
    kept = set()
    for i in range(0, len(ids), CHUNK):
        kept.update(db.session.scalars(select(Call.id).where(Call.id.in_(ids[i:i + CHUNK]), *conds)))
    return [i for i in ids if i in kept]


def _refined_search_ids(flt: CallFilter) -> list[int]:
    """Search matches with the outcome applied, in the chosen order (the newest SEARCH_REFINE_MAX matches)."""
    ids: list[int] = []
    for batch in get_index().iter_call_ids(flt.q, flt.dates(), CHUNK):
        ids.extend(_refine(flt, batch))
        if len(ids) >= SEARCH_REFINE_MAX:
            break
    if flt.sort == DEFAULT_SORT:
        return ids
    rows = []
    for i in range(0, len(ids), CHUNK):
        rows += db.session.execute(select(Call.id, Call.started_at, Call.duration_s, Call.n_turns)
                                   .where(Call.id.in_(ids[i:i + CHUNK]))).all()
    key, reverse = {
        "oldest": (lambda r: (r.started_at, r.id), False),
        "longest": (lambda r: (r.duration_s is not None, r.duration_s or 0, r.started_at, r.id), True),
        "shortest": (lambda r: (r.duration_s is None, r.duration_s or 0, -r.id), False),
        "most_turns": (lambda r: (r.n_turns or 0, r.started_at, r.id), True),
        "fewest_turns": (lambda r: (r.n_turns or 0, -r.id), False),
    }[flt.sort]
    return [r.id for r in sorted(rows, key=key, reverse=reverse)]


def iter_call_ids(flt: CallFilter, batch: int = 500):
    """Every call id the filters select, newest first, in batches (constant memory)."""
    if flt.q:
        for ids in get_index().iter_call_ids(flt.q, flt.dates(), batch):
            ids = _refine(flt, ids)
            if ids:
                yield ids
    else:
        yield from call_ids_newest_first(flt.conditions(), batch)
