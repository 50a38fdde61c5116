"""Analytics with the Flask test client: aggregates, calls per day, grouped and unanswered questions."""
import re
from datetime import datetime, timedelta, timezone

import pytest

from metrotest_bot.admin.charts import bar_chart, nice_max
from metrotest_bot.admin.questions import QuestionGroups, question_key

from .support.admin_data import make_call

# 20:30 UTC on 1 March is 01:30 on 2 March in Yekaterinburg (UTC+5).
LATE_EVENING = datetime(2025, 3, 1, 20, 30, tzinfo=timezone.utc)
MORNING = datetime(2025, 3, 1, 6, 0, tzinfo=timezone.utc)
PERIOD = "date_from=2025-03-01&date_to=2025-03-07"


def answer(question, answered=True, interrupted=False, first_piece_ms=None, text="Ответ."):
    return [{"role": "caller", "text": question},
            {"role": "bot", "kind": "answer", "text": text, "question": question, "answered": answered,
             "interrupted": interrupted, "first_piece_ms": first_piece_ms}]


def stat(html: str, name: str) -> str:
    m = re.search(rf'data-stat="{name}"><span class="stat-value">([^<]*)</span><span class="stat-label">([^<]*)', html)
    return f"{m.group(1)} | {m.group(2)}"


def question_rows(html: str, table: str) -> list[tuple[str, str]]:
    part = html.split(f'class="calls questions {table}"')[1].split("</table>")[0]
    return re.findall(r'question-count">([^<]*)</td>\s*<td data-label="Вопрос"><span class="question-text">([^<]*)', part)


# --- grouping ------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    ("до скольки вы работаете", "До скольки работаете вы?"),
    ("Как оформить заказ на твердомер?", "как оформить заказы на твердомеры"),
    ("Добрый день! Сколько стоит доставка?", "сколько стоит доставка"),
    ("Скажите, пожалуйста, где находится ваш офис?", "Где находится офис"),
    ("Сколько стоит поверка пресса", "сколько стоят поверки прессов"),
])
def test_one_question_in_other_words_has_one_key(a, b):
    assert question_key(a) and question_key(a) == question_key(b)


@pytest.mark.parametrize("a, b", [
    ("до скольки вы работаете", "где вы находитесь"),
    ("сколько стоит доставка", "сколько стоит поверка"),
    ("есть ли гарантия на пресс", "есть ли гарантия на твердомер"),
])
def test_different_questions_have_different_keys(a, b):
    assert question_key(a) != question_key(b)


def test_only_filler_words_is_no_question():
    assert question_key("Алло, алло! Здравствуйте.") == ""


def test_ambiguous_forms_meet_through_their_shared_lemma():
    # «прессы» is ranked as a form of «пресса», «пресс» as itself: they share a lemma all the same.
    groups = QuestionGroups()
    for q, call_id in [("Сколько стоят прессы?", 3), ("сколько стоит пресс", 2), ("почём поверка", 1)]:
        groups.add(q, call_id)
    top = groups.groups()[0]
    assert (top.count, top.call_ids) == (2, [3, 2])
    assert top.text in ("Сколько стоят прессы", "сколько стоит пресс")


# --- the page --------------------------------------------------------------------------------

def test_aggregates_and_calls_per_day(app, admin_client):
    make_call(app, MORNING, answer("Где вы находитесь?", first_piece_ms=100) + answer("А телефон?", first_piece_ms=300),
              duration_s=60.0, outcome="completed")
    make_call(app, LATE_EVENING, answer("Сколько стоит пресс?", interrupted=True, first_piece_ms=200),
              duration_s=120.0, outcome="transferred", n_interrupted=1)
    make_call(app, LATE_EVENING + timedelta(hours=1),
              answer("Продаёте слонов?", answered=False, first_piece_ms=1000), duration_s=30.0)
    make_call(app, MORNING - timedelta(days=3), answer("Не в периоде?"), duration_s=999.0)  # before the period

    html = admin_client.get(f"/logs-ui/analytics?{PERIOD}").get_data(as_text=True)
    assert stat(html, "calls") == "3 | звонков"
    assert stat(html, "duration").startswith("1:10 |")  # (60 + 120 + 30) / 3 s
    assert stat(html, "transfer") == "33,3 % | переведено на сотрудника (1)"
    assert stat(html, "interruptions").startswith("25 % | ответов перебито (1 из 4); звонков с перебиваниями 33,3 %")
    assert stat(html, "unanswered") == "25 % | вопросов без ответа (1)"
    # Nearest rank over 100, 200, 300, 1000 ms: p50 is the 2nd, p95 the 4th.
    assert stat(html, "latency").startswith("200 мс / 1000 мс |")
    bars = dict(re.findall(r'data-day="([\d-]+)" data-value="(\d+)"', html))
    assert len(bars) == 7
    assert (bars["2025-03-01"], bars["2025-03-02"], bars["2025-03-03"]) == ("1", "2", "0")  # company days


def test_empty_period(app, admin_client):
    html = admin_client.get(f"/logs-ui/analytics?{PERIOD}").get_data(as_text=True)
    assert stat(html, "calls") == "0 | звонков"
    assert stat(html, "latency").startswith("— / — |")
    assert "За этот период вопросов не было." in html and "Вопросов без ответа за этот период нет." in html


def test_frequent_questions_grouped_and_unanswered_linked(app, admin_client):
    a = make_call(app, MORNING, answer("Как оформить заказ на твердомер?"))
    b = make_call(app, MORNING + timedelta(hours=1), answer("как оформить заказы на твердомеры"))
    c = make_call(app, MORNING + timedelta(hours=2), answer("до скольки вы работаете")
                  + answer("Продаёте ли вы слонов?", answered=False))
    d = make_call(app, MORNING + timedelta(hours=3), answer("Продаете слона?", answered=False))
    html = admin_client.get(f"/logs-ui/analytics?{PERIOD}").get_data(as_text=True)

    top = question_rows(html, "top-questions")
    forms = [r for r in top if "твердомер" in r[1]]
    assert len(forms) == 1  # counted once, not per word form
    assert forms[0][0] == "2" and forms[0][1] in ("Как оформить заказ на твердомер", "как оформить заказы на твердомеры")
    assert ("1", "до скольки вы работаете") in top

    unanswered = question_rows(html, "unanswered-questions")
    assert unanswered == [("2", "Продаете слона")]
    part = html.split('class="calls questions unanswered-questions"')[1]
    links = re.findall(r'<a class="call-link" href="/logs-ui/calls/(\d+)">', part)
    assert links == [str(d), str(c)]  # newest first
    assert "твердомер" not in part and str(a) and str(b)
    assert admin_client.get(f"/logs-ui/calls/{d}").status_code == 200


def test_bad_dates_are_reported_and_a_default_period_is_used(admin_client):
    html = admin_client.get("/logs-ui/analytics?date_from=2025-03-10&date_to=2025-03-01").get_data(as_text=True)
    assert "Конечная дата раньше начальной." in html
    html = admin_client.get("/logs-ui/analytics?date_from=2023-01-01&date_to=2025-03-01").get_data(as_text=True)
    assert "Период не длиннее 366 дней." in html and "Период: 31.01.2025 — 01.03.2025" in html
    html = admin_client.get("/logs-ui/analytics?date_from=вчера").get_data(as_text=True)
    assert "Дата в формате ГГГГ-ММ-ДД" in html


def test_chart_scale_and_labels():
    assert nice_max(0) == (1.0, 1.0) and nice_max(7) == (8, 2) and nice_max(37) == (40, 10)
    from datetime import date

    svg = str(bar_chart([(date(2025, 3, 1), 3), (date(2025, 3, 2), 0)], "Звонков в день"))
    assert svg.startswith("<svg") and 'aria-label="Звонков в день"' in svg
    assert "<title>01.03.2025 (сб): 3</title>" in svg and 'class="bar weekend"' in svg
