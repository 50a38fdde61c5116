"""CSV export of what the filters select: a row per turn, streamed in constant memory.

Excel with a Russian locale opens it as is: UTF-8 with a BOM, ';' between
fields, decimal commas, CRLF line ends. Phone numbers are written as text
formulas (="+79120000001"): a bare +79120000001 is read as a number and
loses its plus. Anything else that looks like a formula is neutralised.
"""
from __future__ import annotations

import csv
import io
import re

from flask import Response, abort, stream_with_context
from sqlalchemy import select

from ..extensions import db
from ..models import Call, Turn
from ..timeutil import to_local, utcnow
from . import bp
from .filters import CallFilter, iter_call_ids
from .labels import kind_label, outcome_label, role_label, source_label

BOM = "\ufeff"
HEADER = [
    "Звонок", "Начало звонка", "Номер абонента", "Имя", "Компания", "Набранный номер", "Длительность, с", "Итог",
    "Итог разговора", "Перевод на", "Запись", "Шаг", "Время реплики", "Кто", "Тип", "Текст", "Прервано", "Не прозвучало",
    "Ответ найден", "Источник", "Поиск, мс", "Первый токен LLM, мс", "Первая фраза, мс", "Всего, мс",
]
CALL_COLS = [Call.id, Call.started_at, Call.caller, Call.caller_name, Call.caller_company, Call.dialled,
             Call.duration_s, Call.outcome, Call.summary, Call.transferred_to, Call.recording_url]
TURN_COLS = [Turn.seq, Turn.created_at, Turn.role, Turn.kind, Turn.text, Turn.interrupted, Turn.planned_text,
             Turn.spoken_text, Turn.answered, Turn.source, Turn.retrieval_ms, Turn.llm_first_token_ms,
             Turn.first_piece_ms, Turn.total_ms]
PHONE = re.compile(r"^\+?[\d\s()-]+$")


def cell(value) -> str:
    """A text cell that Excel will not run as a formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not PHONE.match(text):
        return "'" + text
    return text


def phone(value) -> str:
    """A phone number as text: ="+79120000001" shows +79120000001 in Excel, LibreOffice and Google Sheets.

    Only strings of digits, spaces, brackets, hyphens and a leading plus get the formula, so
    nothing but a quoted number can ever be evaluated; anything else is an ordinary cell().
    """
    text = "" if value is None else str(value).strip()
    if text and PHONE.match(text) and any(ch.isdigit() for ch in text):
        return f'="{text}"'
    return cell(value)


def number(value, digits: int = 0) -> str:
    if value is None:
        return ""
    return (f"{value:.{digits}f}" if digits else str(int(round(value)))).replace(".", ",")


def yes_no(value) -> str:
    return "" if value is None else ("да" if value else "нет")


def local(dt) -> str:
    value = to_local(dt)
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _row(r) -> list[str]:
    heard = r.spoken_text if r.interrupted and r.spoken_text is not None else r.text
    cut = ""
    if r.interrupted and r.planned_text and heard and r.planned_text.startswith(heard):
        cut = r.planned_text[len(heard):].strip()
    return [
        str(r.id), local(r.started_at), phone(r.caller), cell(r.caller_name), cell(r.caller_company), phone(r.dialled),
        number(r.duration_s, 1), outcome_label(r.outcome), cell(r.summary), phone(r.transferred_to),
        cell(r.recording_url),
        "" if r.seq is None else str(r.seq), local(r.created_at), role_label(r.role) if r.role else "",
        kind_label(r.kind), cell(heard), yes_no(r.interrupted) if r.role == "bot" else "", cell(cut),
        yes_no(r.answered), source_label(r.source), number(r.retrieval_ms), number(r.llm_first_token_ms),
        number(r.first_piece_ms), number(r.total_ms),
    ]


def csv_chunks(flt: CallFilter, batch: int = 500):
    """BOM and header, then one chunk per batch of calls: memory does not grow with the log."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    buf.write(BOM)
    writer.writerow(HEADER)
    yield buf.getvalue().encode("utf-8")
    for ids in iter_call_ids(flt, batch):
        buf.seek(0)
        buf.truncate()
        rows = db.session.execute(
            select(*CALL_COLS, *TURN_COLS).select_from(Call).outerjoin(Turn, Turn.call_id == Call.id)
            .where(Call.id.in_(ids)).order_by(Call.started_at.desc(), Call.id.desc(), Turn.seq, Turn.id))
        for r in rows:
            writer.writerow(_row(r))
        yield buf.getvalue().encode("utf-8")
    db.session.rollback()  # end the read transaction: a long stream must not hold it


@bp.route("/export.csv")
def export_csv():
    flt = CallFilter.from_request()
    if flt.errors:
        abort(400, description="; ".join(flt.errors))
    name = f"metrotest-calls-{to_local(utcnow()):%Y%m%d-%H%M}.csv"
    return Response(
        stream_with_context(csv_chunks(flt)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"',
                 "Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
