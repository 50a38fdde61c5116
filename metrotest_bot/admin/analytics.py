"""Analytics for a period (/logs-ui/analytics?date_from=…&date_to=…), days in the company's zone.

Counts, means and percentiles are SQL aggregates that run the same on SQLite
and PostgreSQL (CASE, COUNT, AVG, ORDER BY … OFFSET for a nearest-rank
percentile). Question grouping needs lemmas, so it reads the period's
questions (one narrow column set, streamed) and groups them in Python.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from flask import render_template, request
from sqlalchemy import case, func, select
from wtforms import DateField
from wtforms.validators import Optional, ValidationError

from ..extensions import db
from ..models import OUTCOME_NO_OPERATOR, OUTCOME_TRANSFERRED, ROLE_BOT, Call, Turn
from ..outcomes import OUTCOME_LABELS
from ..timeutil import company_tz, to_local, utcnow
from . import bp
from .charts import bar_chart
from .forms import DATE_MESSAGE, RussianForm
from .questions import QuestionGroup, QuestionGroups
from .ranges import clamp_day

DEFAULT_DAYS = 30
MAX_DAYS = 366
TOP_QUESTIONS = 20
UNANSWERED_SHOWN = 100
MAX_QUESTIONS_READ = 200_000  # a bound on the rows grouped per page view


class PeriodForm(RussianForm):
    class Meta(RussianForm.Meta):
        csrf = False  # GET filters

    date_from = DateField("С даты", validators=[Optional()], invalid_value_message=DATE_MESSAGE)
    date_to = DateField("По дату", validators=[Optional()], invalid_value_message=DATE_MESSAGE)

    def validate_date_from(self, f):
        # Too long a period keeps its end: the default length is counted back from it.
        if f.data and self.date_to.data and (self.date_to.data - f.data).days >= MAX_DAYS:
            raise ValidationError(f"Период не длиннее {MAX_DAYS} дней.")

    def validate_date_to(self, f):
        if f.data and self.date_from.data and f.data < self.date_from.data:
            raise ValidationError("Конечная дата раньше начальной.")


@dataclass
class Period:
    first: date
    last: date  # inclusive

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def start_of(self, day: date) -> datetime:
        """Midnight of a company day, in UTC (as stored)."""
        return datetime.combine(day, time.min, tzinfo=company_tz()).astimezone(timezone.utc)

    @property
    def start(self) -> datetime:
        return self.start_of(self.first)

    @property
    def end(self) -> datetime:
        return self.start_of(self.last + timedelta(days=1))


def period_from_request() -> tuple[Period, PeriodForm, list[str]]:
    form = PeriodForm(request.args)
    form.validate()
    errors = [m for f in form for m in f.errors]
    today = to_local(utcnow()).date()
    last = clamp_day(form.date_to.data) if form.date_to.data and not form.date_to.errors else today
    first = clamp_day(form.date_from.data) if form.date_from.data and not form.date_from.errors else None
    if first is None or first > last or (last - first).days >= MAX_DAYS:
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    form.date_from.data, form.date_to.data = first, last
    return Period(first, last), form, errors


# --- aggregates ----------------------------------------------------------------------------

@dataclass
class Summary:
    calls: int = 0
    mean_duration_s: float | None = None
    transferred: int = 0
    no_operator: int = 0  # asked for a person when no operator number was set
    calls_with_unanswered: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    calls_interrupted: int = 0
    answers: int = 0
    answers_interrupted: int = 0
    unanswered: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    latency_n: int = 0
    per_day: list[tuple[date, int]] = field(default_factory=list)

    @staticmethod
    def rate(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    @property
    def transfer_rate(self):
        return self.rate(self.transferred, self.calls)

    @property
    def no_operator_rate(self):
        return self.rate(self.no_operator, self.calls)

    @property
    def interruption_rate(self):
        return self.rate(self.answers_interrupted, self.answers)

    @property
    def calls_interrupted_rate(self):
        return self.rate(self.calls_interrupted, self.calls)

    @property
    def unanswered_rate(self):
        return self.rate(self.unanswered, self.answers)


def in_period(period: Period):
    return [Call.started_at >= period.start, Call.started_at < period.end]


def bot_answers(period: Period):
    """Bot answer turns of the period's calls (answers to questions, not fixed phrases)."""
    return [Turn.role == ROLE_BOT, Turn.kind == "answer", *in_period(period)]


def percentile(column, conditions, n: int, q: float) -> float | None:
    """Nearest-rank percentile by ORDER BY … OFFSET: portable SQL, index-friendly."""
    if not n:
        return None
    k = max(0, math.ceil(q * n) - 1)
    return db.session.scalar(select(column).join(Call, Turn.call_id == Call.id).where(*conditions)
                             .order_by(column).offset(k).limit(1))


def summary(period: Period) -> Summary:
    s = Summary()
    row = db.session.execute(select(
        func.count(Call.id),
        func.avg(Call.duration_s),
        func.coalesce(func.sum(case((Call.outcome == OUTCOME_TRANSFERRED, 1), else_=0)), 0),
        func.coalesce(func.sum(case((Call.n_interrupted > 0, 1), else_=0)), 0),
    ).where(*in_period(period))).one()
    s.calls, s.mean_duration_s, s.transferred, s.calls_interrupted = row[0], row[1], int(row[2]), int(row[3])
    counts = dict(db.session.execute(select(Call.outcome, func.count()).where(*in_period(period))
                                     .group_by(Call.outcome)).all())
    # Every outcome in the panel's order, then any other stored value; zeros left out.
    s.by_outcome = {k: int(counts.pop(k)) for k in OUTCOME_LABELS if counts.get(k)}
    s.by_outcome.update({k: int(v) for k, v in counts.items() if v})
    s.no_operator = s.by_outcome.get(OUTCOME_NO_OPERATOR, 0)
    s.calls_with_unanswered = db.session.scalar(
        select(func.count(Call.id)).where(*in_period(period), Call.n_unanswered > 0))

    row = db.session.execute(select(
        func.count(Turn.id),
        func.coalesce(func.sum(case((Turn.interrupted.is_(True), 1), else_=0)), 0),
        func.coalesce(func.sum(case((Turn.answered.is_(False), 1), else_=0)), 0),
    ).join(Call, Turn.call_id == Call.id).where(*bot_answers(period))).one()
    s.answers, s.answers_interrupted, s.unanswered = row[0], int(row[1]), int(row[2])

    timed = [*bot_answers(period), Turn.first_piece_ms.is_not(None)]
    s.latency_n = db.session.scalar(select(func.count(Turn.id)).join(Call, Turn.call_id == Call.id).where(*timed))
    s.p50_ms = percentile(Turn.first_piece_ms, timed, s.latency_n, 0.50)
    s.p95_ms = percentile(Turn.first_piece_ms, timed, s.latency_n, 0.95)

    # Calls per company day: the day is a CASE over that day's UTC bounds (no time zone SQL).
    days = period.days
    day_no = case(*[(Call.started_at < period.start_of(d + timedelta(days=1)), i) for i, d in enumerate(days)],
                  else_=len(days)).label("day_no")
    # Grouped in an outer query by the column name: PostgreSQL would not match a repeated CASE
    # with fresh bind parameters against the select list.
    numbered = select(day_no).where(*in_period(period)).subquery()
    counts = dict(db.session.execute(select(numbered.c.day_no, func.count())
                                     .group_by(numbered.c.day_no)).all())
    s.per_day = [(d, int(counts.get(i, 0))) for i, d in enumerate(days)]
    return s


def question_groups(period: Period) -> list[QuestionGroup]:
    groups = QuestionGroups()
    rows = db.session.execute(
        select(Turn.question, Turn.answered, Turn.call_id, Turn.created_at)
        .join(Call, Turn.call_id == Call.id)
        .where(*bot_answers(period), Turn.question.is_not(None))
        .order_by(Turn.created_at.desc(), Turn.id.desc())
        .limit(MAX_QUESTIONS_READ)
        .execution_options(yield_per=2000))
    for question, answered, call_id, at in rows:
        groups.add(question, call_id, answered is not False, at)
    return groups.groups()


@bp.route("/analytics")
def analytics():
    period, form, errors = period_from_request()
    s = summary(period)
    groups = question_groups(period)
    unanswered = sorted((g for g in groups if g.unanswered),
                        key=lambda g: (-g.unanswered, -(g.last_at.timestamp() if g.last_at else 0)))
    from .review import review_stats

    reviews = review_stats(period.start, period.end)
    chart = bar_chart(s.per_day, f"Звонков в день с {period.first:%d.%m.%Y} по {period.last:%d.%m.%Y}")
    return render_template("admin/analytics.html", form=form, errors=errors, period=period, s=s, chart=chart,
                           top=groups[:TOP_QUESTIONS], n_groups=len(groups),
                           unanswered=unanswered[:UNANSWERED_SHOWN], n_unanswered_groups=len(unanswered),
                           reviews=reviews)


@bp.app_template_filter("percent")
def percent(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f}".rstrip("0").rstrip(".").replace(".", ",") + " %"
