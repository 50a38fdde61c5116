"""Bounds on numbers and dates that come from a URL, so no input reaches SQL or
datetime arithmetic out of range (a 500, or an export cut off mid-stream).

- ids in URLs fit SQL INTEGER (`<int(max=MAX_ID):…>`): a larger one is a 404;
- a page number is 1..MAX_PAGE: anything else is the first or the last page;
- dates are clamped to FIRST_DAY..LAST_DAY: «с 0001-01-01 по 9999-12-31» means
  «everything», and that is what it finds.
"""
from __future__ import annotations

from datetime import date

MAX_ID = 2**31 - 1  # PostgreSQL's integer, the type of every id column
MAX_PAGE = 100_000
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)


def page_number(raw) -> int:
    try:
        page = int(str(raw).strip())
    except (TypeError, ValueError):
        return 1
    return min(max(1, page), MAX_PAGE)


def clamp_day(day: date | None) -> date | None:
    if day is None:
        return None
    return min(max(day, FIRST_DAY), LAST_DAY)


def id_or_none(raw) -> int | None:
    """An id from a query parameter, or None when it is not one."""
    text = str(raw or "").strip()
    if not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None
