"""The call list's filters (q, date_from, date_to, page), shared by the list and the export."""
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
from .forms import CallFilterForm
from .ranges import clamp_day, page_number


@dataclass
class CallFilter:
    q: str = ""
    date_from: date | None = None
    date_to: date | None = None
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
            page=page, form=form, errors=errors,
        )

    @property
    def active(self) -> bool:
        return bool(self.q or self.date_from or self.date_to)

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
        if page and page > 1:
            out["page"] = page
        return out


def page_size() -> int:
    return int(current_app.config.get("ADMIN_PAGE_SIZE", 50))


def find_calls(flt: CallFilter) -> SearchPage:
    """One page of call ids, newest first, for the filters."""
    limit = page_size()
    offset = (flt.page - 1) * limit
    dates = flt.dates()
    if flt.q:
        return get_index().search(flt.q, dates, limit, offset)
    conds = date_conditions(dates)
    total = db.session.scalar(select(func.count(Call.id)).where(*conds))
    ids = db.session.scalars(select(Call.id).where(*conds).order_by(Call.started_at.desc(), Call.id.desc())
                             .limit(limit).offset(offset)).all()
    return SearchPage(list(ids), total, offset + len(ids) < total)


def iter_call_ids(flt: CallFilter, batch: int = 500):
    """Every call id the filters select, newest first, in batches (constant memory)."""
    if flt.q:
        yield from get_index().iter_call_ids(flt.q, flt.dates(), batch)
    else:
        yield from call_ids_newest_first(date_conditions(flt.dates()), batch)
