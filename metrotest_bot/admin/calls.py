"""The call list (/logs-ui/) and one call's page (/logs-ui/calls/<id>)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from flask import abort, redirect, render_template, url_for
from markupsafe import Markup, escape
from sqlalchemy import select

from ..extensions import db
from ..models import ROLE_BOT, Call, Turn
from ..search import get_index, highlight, query_terms, snippets
from ..timeutil import as_utc
from . import bp
from .filters import CallFilter, find_calls, page_size
from .ranges import MAX_ID


@bp.route("/")
def calls():
    flt = CallFilter.from_request()
    found = find_calls(flt)
    by_id = {c.id: c for c in db.session.scalars(select(Call).where(Call.id.in_(found.call_ids)))}
    rows = [by_id[i] for i in found.call_ids if i in by_id]
    snips = snippets(flt.q, found.call_ids) if flt.q else {}
    pages = -(-found.total // page_size()) if found.total else None
    if pages and flt.page > pages and not found.call_ids:
        # A page past the end (an old link, an edited URL) shows the last page instead of nothing.
        return redirect(url_for("admin.calls", **flt.args(page=pages)))
    terms = query_terms(flt.q) if flt.q else []
    callers = {c.id: caller_label(c, terms) for c in rows if c.caller_name or c.caller_company}
    # Elasticsearch failed and the SQL index (always complete) answered: say so.
    degraded = found.backend is not None and found.backend != get_index().name
    return render_template("admin/calls.html", flt=flt, form=flt.form, calls=rows, found=found,
                           snippets=snips, pages=pages, callers=callers, search_degraded=degraded)


def caller_label(call: Call, terms) -> Markup:
    """«Name, company» from the CRM; words matching the search marked (calls are found by them too)."""
    text = ", ".join(filter(None, [call.caller_name, call.caller_company]))
    return highlight(text, terms) if terms else escape(text)


def _squash(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


@dataclass
class TurnView:
    """A turn as the call page shows it: what was heard, what was cut."""

    turn: Turn
    offset_s: float | None
    html: Markup  # the text (heard part for an interrupted answer), matches highlighted
    cut: str | None  # the part of the planned answer the caller did not hear
    refusal: bool


def turn_view(turn: Turn, call: Call, terms) -> TurnView:
    heard = turn.text or ""
    cut = None
    if turn.role == ROLE_BOT and turn.interrupted:
        heard = turn.spoken_text if turn.spoken_text is not None else heard
        planned = _squash(turn.planned_text or turn.text)
        spoken = _squash(heard)
        if planned.startswith(spoken):
            cut = planned[len(spoken):].strip() or None
        elif planned and planned != spoken:
            cut = planned  # the heard part is not a prefix: show the whole plan
    html = highlight(heard, terms) if terms else escape(heard)
    started, at = as_utc(call.started_at), as_utc(turn.created_at)
    offset = (at - started).total_seconds() if started and at else None
    return TurnView(turn, offset, html, cut, refusal=turn.role == ROLE_BOT and turn.answered is False)


@bp.route(f"/calls/<int(max={MAX_ID}):call_id>")
def call(call_id: int):
    flt = CallFilter.from_request()
    row = db.session.get(Call, call_id)
    if row is None:
        abort(404)
    terms = query_terms(flt.q) if flt.q else []
    turns = db.session.scalars(select(Turn).where(Turn.call_id == call_id).order_by(Turn.seq, Turn.id)).all()
    views = [turn_view(t, row, terms) for t in turns]
    recording = row.recording_url if (row.recording_url or "").startswith(("https://", "http://")) else None
    from .review import ReviewForm, reviews_of_call

    return render_template("admin/call.html", call=row, turns=views, flt=flt, recording=recording,
                           reviews=reviews_of_call(call_id), review_form=ReviewForm(formdata=None))
