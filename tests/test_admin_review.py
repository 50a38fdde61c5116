"""Answer review (issue 15, part 2): marks on bot answers, analytics, saved test questions, JSONL export.

The browser test marks an answer wrong on a call's page in Chromium and finds it in analytics,
in the export and in the replay set.
"""
import json

import pytest

from metrotest_bot.admin.replay import replay_questions
from metrotest_bot.admin.review import answerable_of
from metrotest_bot.extensions import db
from metrotest_bot.models import AnswerReview, TestQuestion, Turn

from .support.admin_data import ADMIN, PASSWORD, csrf_token, make_admin, make_call
from .support.browser import screenshot, sign_in_browser
from .support.live_server import serving

QUESTION = "Сколько стоит доставка в Казань?"
ANSWER = "Доставка по Екатеринбургу бесплатная."
FACT = "Доставка в Казань — 4 500 рублей"


def call_with_answer(app, question=QUESTION, answer=ANSWER, answered=True) -> tuple[int, int]:
    call_id = make_call(app, turns=[("caller", question),
                                    {"role": "bot", "text": answer, "question": question, "answered": answered,
                                     "source": "offline"}])
    with app.app_context():
        turn_id = db.session.scalar(db.select(Turn.id).where(Turn.call_id == call_id, Turn.role == "bot"))
    return call_id, turn_id


def mark(client, call_id, turn_id, verdict, fact="", note=""):
    token = csrf_token(client.get(f"/logs-ui/calls/{call_id}").get_data(as_text=True))
    return client.post(f"/logs-ui/calls/{call_id}/turns/{turn_id}/review",
                       data={"csrf_token": token, "verdict": verdict, "correct_fact": fact, "note": note})


def test_marking_an_answer_wrong_saves_a_test_question_shown_in_analytics_and_export(app, admin_client):
    call_id, turn_id = call_with_answer(app)
    html = admin_client.get(f"/logs-ui/calls/{call_id}").get_data(as_text=True)
    assert "Оценить ответ" in html and f"/turns/{turn_id}/review" in html

    response = mark(admin_client, call_id, turn_id, "wrong", FACT, "про Казань ни слова")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/logs-ui/calls/{call_id}#turn-1")
    with app.app_context():
        review = db.session.scalar(db.select(AnswerReview))
        assert (review.verdict, review.correct_fact, review.note, review.question, review.answer_text,
                review.created_by) == ("wrong", FACT, "про Казань ни слова", QUESTION, ANSWER, ADMIN)
        test = db.session.scalar(db.select(TestQuestion))
        assert (test.question, test.answerable, test.correct_fact) == (QUESTION, True, FACT)
    html = admin_client.get(f"/logs-ui/calls/{call_id}").get_data(as_text=True)
    assert "tag-review-wrong" in html and FACT in html

    html = admin_client.get("/logs-ui/analytics").get_data(as_text=True)
    stat = html.split('data-stat="reviewed_wrong"')[1].split("</div>")[0]
    assert "100 %" in stat and "(1 из 1)" in stat
    wrong = html.split('id="wrong-answers"')[1]
    assert QUESTION in wrong and FACT in wrong and f"/logs-ui/calls/{call_id}" in wrong

    export = admin_client.get("/logs-ui/review/questions.jsonl")
    assert export.status_code == 200 and "attachment" in export.headers["Content-Disposition"]
    lines = export.get_data(as_text=True).splitlines()
    assert [json.loads(x) for x in lines] == [{"question": QUESTION, "answerable": True, "any_of": [FACT]}]
    assert "\\u" not in lines[0]  # Cyrillic as is, as in bench/*.jsonl

    with app.app_context():
        assert replay_questions(200)[0] == (QUESTION, True)


def test_a_second_mark_replaces_the_first_and_right_refusals_are_unanswerable(app, admin_client):
    call_id, turn_id = call_with_answer(app)
    mark(admin_client, call_id, turn_id, "wrong", FACT)
    mark(admin_client, call_id, turn_id, "right")
    refusal_call, refusal_turn = call_with_answer(app, "Можно заказать пиццу?", "Не нашла ответа.", answered=False)
    mark(admin_client, refusal_call, refusal_turn, "right")
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(AnswerReview.id))) == 2
        tests = {t.question: (t.answerable, t.correct_fact) for t in db.session.scalars(db.select(TestQuestion))}
    assert tests == {QUESTION: (True, None), "Можно заказать пиццу?": (False, None)}
    html = admin_client.get("/logs-ui/analytics").get_data(as_text=True)
    assert "0 %" in html.split('data-stat="reviewed_wrong"')[1].split("</div>")[0]
    assert "неверных ответов не отмечено" in html


def test_answerable_of():
    assert answerable_of("right", True, "") and not answerable_of("right", False, "")
    assert answerable_of("wrong", True, "факт") and answerable_of("wrong", False, "")
    assert not answerable_of("wrong", True, "")  # a wrong answer with no fact: it should have refused


def test_bad_marks(app, admin_client):
    call_id, turn_id = call_with_answer(app)
    assert mark(admin_client, call_id, turn_id, "maybe").status_code == 303
    assert mark(admin_client, call_id + 1, turn_id, "wrong").status_code == 404
    caller_turn = turn_id - 1
    assert mark(admin_client, call_id, caller_turn, "wrong").status_code == 404
    no_csrf = admin_client.post(f"/logs-ui/calls/{call_id}/turns/{turn_id}/review", data={"verdict": "wrong"})
    assert no_csrf.status_code == 400
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(AnswerReview.id))) == 0


def test_test_questions_outlive_a_cleared_log(app, admin_client):
    call_id, turn_id = call_with_answer(app)
    mark(admin_client, call_id, turn_id, "wrong", FACT)
    token = csrf_token(admin_client.get("/logs-ui/clear").get_data(as_text=True))
    assert admin_client.post("/logs-ui/clear", data={"csrf_token": token, "confirm": "yes"}).status_code == 302
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Turn.id))) == 0
        assert db.session.scalar(db.select(AnswerReview.turn_id)) is None
        assert replay_questions(200) == [(QUESTION, True)]
    html = admin_client.get("/logs-ui/review").get_data(as_text=True)
    assert QUESTION in html and FACT in html


# --- in Chromium ----------------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_browser_mark_wrong_then_analytics_export_and_replay_set(tmp_path_factory, page):
    with serving(tmp_path_factory.mktemp("review")) as srv:
        make_admin(srv.app)
        call_id, turn_id = call_with_answer(srv.app)
        sign_in_browser(page, srv.url, ADMIN, PASSWORD)
        page.wait_for_url("**/logs-ui/")
        page.goto(f"{srv.url}/logs-ui/calls/{call_id}")
        review = page.locator(f'details.answer-review[data-turn-id="{turn_id}"]')
        review.locator("summary").click()
        review.locator('input[name=verdict][value=wrong]').check()
        review.locator("input[name=correct_fact]").fill(FACT)
        review.locator("input[name=note]").fill("назвал цену не того города")
        screenshot(page, "review-call-form")
        review.locator("button[type=submit]").click()
        page.wait_for_selector(".alert-success")
        assert "неверно" in page.locator(f'details.answer-review[data-turn-id="{turn_id}"] summary').inner_text()

        page.goto(f"{srv.url}/logs-ui/analytics")
        assert "(1 из 1)" in page.locator('[data-stat="reviewed_wrong"]').inner_text()
        row = page.locator("table.wrong-answers tr.wrong-answer-row")
        assert row.count() == 1 and QUESTION in row.inner_text() and FACT in row.inner_text()
        screenshot(page, "review-analytics")

        page.goto(f"{srv.url}/logs-ui/review")
        assert QUESTION in page.locator("table.test-questions").inner_text()
        with page.expect_download() as info:
            page.click("a.review-export")
        body = open(info.value.path(), encoding="utf-8").read()
        assert json.loads(body) == {"question": QUESTION, "answerable": True, "any_of": [FACT]}
        screenshot(page, "review-questions")
        page.set_viewport_size({"width": 390, "height": 844})
        screenshot(page, "review-questions-phone")

        with srv.app.app_context():
            assert (QUESTION, True) in replay_questions(200)
