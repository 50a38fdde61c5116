"""Ask the bot as a caller would (/logs-ui/try): the same engine.answer() that serves calls.

The page's script POSTs the question to /try/stream and reads Server-Sent
Events from the response body as they come:

    event: passages   data: {"answered", "source", "retrieval_ms", "passages": [{section, text, score}]}
    event: piece      data: {"text"}            one speakable piece, as soon as it is ready
    event: done       data: {"answer", "source", "answered", "timings", "error"}

Without JavaScript the form posts to /try and the whole answer is rendered.
Both are CSRF-protected POSTs (field csrf_token, or the X-CSRFToken header).
"""
from __future__ import annotations

import json
import logging

from flask import Response, render_template, stream_with_context
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from ..bot_settings import get_bot_settings
from ..rag import get_engine
from . import bp
from .forms import RussianForm

log = logging.getLogger(__name__)


class TryForm(RussianForm):
    question = TextAreaField("Вопрос, как его сказал бы абонент",
                             validators=[DataRequired("Напишите вопрос."), Length(max=500)],
                             filters=[lambda v: v.strip() if isinstance(v, str) else v],
                             render_kw={"rows": 2, "maxlength": 500, "autofocus": True,
                                        "placeholder": "например: до скольки вы работаете в пятницу?"})


def passages_payload(stream) -> dict:
    return {
        "answered": stream.answered,
        "source": stream.source,
        "retrieval_ms": stream.timings.retrieval_ms,
        "passages": [{"section": p.section, "text": p.text, "score": round(p.score, 4)} for p in stream.passages],
    }


def done_payload(stream) -> dict:
    return {"answer": stream.planned_text, "answered": stream.answered, "source": stream.source,
            "timings": stream.timings.to_dict(), "error": getattr(stream, "error", None)}


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@bp.route("/try", methods=["GET", "POST"])
def try_it():
    form = TryForm()
    result = None
    if form.validate_on_submit():
        stream = get_engine().answer(form.question.data, get_bot_settings())
        try:
            pieces = list(stream)
        finally:
            stream.close()
        result = {**passages_payload(stream), **done_payload(stream), "pieces": pieces}
    status = 400 if form.is_submitted() and form.errors else 200
    return render_template("admin/try.html", form=form, result=result), status


@bp.route("/try/stream", methods=["POST"])
def try_stream():
    form = TryForm()
    if not form.validate():
        return Response(sse("invalid", {"errors": [e for f in form for e in f.errors]}), status=400,
                        mimetype="text/event-stream")
    engine = get_engine()
    stream = engine.answer(form.question.data, get_bot_settings())  # retrieval runs here

    def events():
        try:
            yield sse("passages", passages_payload(stream))
            for piece in stream:
                yield sse("piece", {"text": piece})
            yield sse("done", done_payload(stream))
        except GeneratorExit:  # the admin left the page: stop generating (closes the LLM stream)
            raise
        except Exception:
            log.exception("try page: answering failed")
            yield sse("failed", {"message": "Не удалось получить ответ: внутренняя ошибка. Подробности в журнале сервера."})
        finally:
            stream.close()

    response = Response(stream_with_context(events()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
