"""Answer review: marking a bot answer right or wrong, saved test questions, their JSONL export.

On a call's page each bot answer has a small form (POST /calls/<id>/turns/<turn_id>/review):
right or wrong, an optional note and the correct fact. One mark per answer (saving again
replaces it). A marked answer's question becomes a saved test question (TestQuestion):
replayed before a KB version is published (admin/replay.py) and exported at
/logs-ui/review/questions.jsonl in the format of the benchmark sets (bench/*.jsonl):

    {"question": "…", "answerable": true, "any_of": ["the correct fact"]}

`answerable` is false when the mark says the KB holds no answer (a wrong answer with no
correct fact given: the bot should have refused) — see `answerable_of`.
"""
from __future__ import annotations

import json

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from ..extensions import db
from ..models import REVIEW_RIGHT, REVIEW_WRONG, ROLE_BOT, AnswerReview, TestQuestion, Turn
from ..timeutil import utcnow
from . import bp
from .forms import RussianForm
from .ranges import MAX_ID

NOTE_MAX = 2000
FACT_MAX = 2000
REVIEWS_SHOWN = 100
VERDICT_LABELS = {REVIEW_RIGHT: "верно", REVIEW_WRONG: "неверно"}


class ReviewForm(RussianForm):
    """Only the CSRF token: verdict, note and fact are read and bounded in the view."""


def answerable_of(verdict: str, answered: bool | None, fact: str) -> bool:
    """Whether the KB should answer the question.

    A right answer: as the bot did (a right refusal is an unanswerable question). A wrong
    one: answerable when the admin gives the correct fact or the bot refused (it should
    have answered); a wrong answer with no fact means it should have refused."""
    if verdict == REVIEW_RIGHT:
        return answered is not False
    return bool(fact) or answered is False


def _clean(value: str | None, limit: int) -> str:
    return " ".join((value or "").split())[:limit]


def save_review(turn: Turn, verdict: str, note: str, fact: str, username: str | None) -> AnswerReview:
    """Record (or replace) the mark on `turn` and keep its question as a test question."""
    review = db.session.scalar(select(AnswerReview).where(AnswerReview.turn_id == turn.id))
    if review is None:
        review = AnswerReview(turn_id=turn.id, call_id=turn.call_id)
        db.session.add(review)
    review.verdict, review.note, review.correct_fact = verdict, note or None, fact or None
    review.question = _clean(turn.question, 4000)
    review.answer_text = turn.text or ""
    review.answered = turn.answered
    review.answered_at = turn.created_at
    review.created_by, review.created_at = username, utcnow()
    db.session.flush()
    if review.question:
        test = db.session.scalar(select(TestQuestion).where(TestQuestion.review_id == review.id))
        if test is None:
            test = TestQuestion(review_id=review.id, created_by=username, created_at=utcnow())
            db.session.add(test)
        test.question = review.question
        test.answerable = answerable_of(verdict, turn.answered, fact)
        test.correct_fact = fact or None
    db.session.commit()
    return review


@bp.route(f"/calls/<int(max={MAX_ID}):call_id>/turns/<int(max={MAX_ID}):turn_id>/review", methods=["POST"])
def review_answer(call_id: int, turn_id: int):
    if not ReviewForm().validate_on_submit():
        abort(400, "Форма устарела: обновите страницу.")
    turn = db.session.get(Turn, turn_id)
    if turn is None or turn.call_id != call_id or turn.role != ROLE_BOT or turn.kind != "answer":
        abort(404)
    verdict = request.form.get("verdict")
    if verdict not in VERDICT_LABELS:
        flash("Отметьте ответ: верно или неверно.", "error")
        return redirect(url_for("admin.call", call_id=call_id, _anchor=f"turn-{turn.seq}"), 303)
    note, fact = _clean(request.form.get("note"), NOTE_MAX), _clean(request.form.get("correct_fact"), FACT_MAX)
    save_review(turn, verdict, note, fact, current_user.username)
    flash(f"Ответ отмечен: {VERDICT_LABELS[verdict]}. Вопрос сохранён в проверочных вопросах.", "success")
    return redirect(url_for("admin.call", call_id=call_id, _anchor=f"turn-{turn.seq}"), 303)


def reviews_of_call(call_id: int) -> dict[int, AnswerReview]:
    """turn id → its mark, for the call's page."""
    rows = db.session.scalars(select(AnswerReview).where(AnswerReview.call_id == call_id)).all()
    return {r.turn_id: r for r in rows if r.turn_id is not None}


# --- analytics ------------------------------------------------------------------------------

def review_stats(start, end) -> dict:
    """Marks on answers given in [start, end): counts and the wrong ones, newest first."""
    in_period = [AnswerReview.answered_at >= start, AnswerReview.answered_at < end]
    counts = dict(db.session.execute(select(AnswerReview.verdict, func.count()).where(*in_period)
                                     .group_by(AnswerReview.verdict)).all())
    right, wrong = int(counts.get(REVIEW_RIGHT, 0)), int(counts.get(REVIEW_WRONG, 0))
    listed = db.session.scalars(select(AnswerReview).where(*in_period, AnswerReview.verdict == REVIEW_WRONG)
                                .order_by(AnswerReview.answered_at.desc(), AnswerReview.id.desc())
                                .limit(REVIEWS_SHOWN)).all()
    return {"right": right, "wrong": wrong, "reviewed": right + wrong,
            "wrong_rate": wrong / (right + wrong) if right + wrong else None, "wrong_list": listed}


# --- saved test questions ---------------------------------------------------------------

def test_questions() -> list[TestQuestion]:
    return db.session.scalars(select(TestQuestion).order_by(TestQuestion.id)).all()


def jsonl_line(t: TestQuestion) -> str:
    return json.dumps({"question": t.question, "answerable": bool(t.answerable),
                       "any_of": [t.correct_fact] if t.correct_fact else []}, ensure_ascii=False)


@bp.route("/review")
def review_questions():
    return render_template("admin/review.html", questions=test_questions(), form=ReviewForm(formdata=None))


@bp.route("/review/questions.jsonl")
def review_export():
    body = "".join(jsonl_line(t) + "\n" for t in test_questions())
    return Response(body, mimetype="application/x-ndjson; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=test_questions.jsonl"})


@bp.route(f"/review/questions/<int(max={MAX_ID}):question_id>/delete", methods=["POST"])
def review_question_delete(question_id: int):
    if not ReviewForm().validate_on_submit():
        abort(400, "Форма устарела: обновите страницу.")
    row = db.session.get(TestQuestion, question_id) or abort(404)
    db.session.delete(row)
    db.session.commit()
    flash("Проверочный вопрос удалён (отметка ответа осталась).", "success")
    return redirect(url_for("admin.review_questions"), 303)
