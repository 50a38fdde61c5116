"""Times are stored in UTC; the admin panel shows them in the company's zone."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def company_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["COMPANY_TZ"])


def as_utc(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything we store is UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def to_local(dt: datetime | None) -> datetime | None:
    dt = as_utc(dt)
    return dt.astimezone(company_tz()) if dt else None
