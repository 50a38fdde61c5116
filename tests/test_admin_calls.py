"""The call list and the call page (Flask test client, real templates)."""
import re
from datetime import datetime, timezone

import pytest

from tests.support.apps import dispose, make_app

from .support.admin_data import make_admin, make_call, sign_in

# 20:30 UTC on 1 March is 01:30 on 2 March in Yekaterinburg (UTC+5).
LATE_EVENING = datetime(2025, 3, 1, 20, 30, tzinfo=timezone.utc)
MORNING = datetime(2025, 3, 1, 6, 0, tzinfo=timezone.utc)  # 11:00 local, 1 March


def rows(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'class="call-row" data-call-id="(\d+)"', html)]


def test_list_newest_first_with_every_column(app, admin_client):
    old = make_call(app, MORNING, [("caller", "Здравствуйте")], caller="+73432000000")
    new = make_call(app, LATE_EVENING, [("bot", "Добрый день"), ("caller", "Сколько стоит пресс?")],
                    caller="+79120000777", caller_name="Анна Смирнова", caller_company="ООО «Прочность»",
                    outcome="transferred", duration_s=125.0, n_interrupted=1, n_unanswered=2,
                    first_piece_ms_sum=1500.0, first_piece_n=2)
    html = admin_client.get("/logs-ui/").get_data(as_text=True)
    assert rows(html) == [new, old]
    assert "02.03.2025 01:30" in html  # the company's time zone, not UTC
    assert "01.03.2025 11:00" in html
    assert "Анна Смирнова" in html and "ООО «Прочность»" in html
    assert "2:05" in html and "переведён на сотрудника" in html and "750 мс" in html
    row = html[html.index(f'data-call-id="{new}"'):html.index("</tr>", html.index(f'data-call-id="{new}"'))]
    cells = re.findall(r'class="num[^"]*">([^<]*)<', row)
    assert cells == ["2:05", "2", "1", "2", "750 мс"]  # duration, turns, interruptions, unanswered, latency
    assert "Всего звонков: 2" in html


def test_pagination(tmp_path, database_url):
    app = make_app(tmp_path / "d", database_url, ADMIN_PAGE_SIZE=2)
    try:
        make_admin(app)
        ids = [make_call(app, datetime(2025, 3, d, 9, 0, tzinfo=timezone.utc), [("caller", "Вопрос")])
               for d in range(1, 6)]
        client = app.test_client()
        sign_in(client)
        first = client.get("/logs-ui/").get_data(as_text=True)
        assert rows(first) == [ids[4], ids[3]] and "Страница 1 из 3" in first and 'rel="next"' in first
        last = client.get("/logs-ui/?page=3").get_data(as_text=True)
        assert rows(last) == [ids[0]] and 'rel="next"' not in last and 'rel="prev"' in last
        assert rows(client.get("/logs-ui/?page=abc").get_data(as_text=True)) == [ids[4], ids[3]]
    finally:
        dispose(app)


def test_date_filter_uses_the_company_time_zone(app, admin_client):
    morning = make_call(app, MORNING, [("caller", "Утренний звонок")])
    late = make_call(app, LATE_EVENING, [("caller", "Ночной звонок")])
    assert rows(admin_client.get("/logs-ui/?date_from=2025-03-02").get_data(as_text=True)) == [late]
    assert rows(admin_client.get("/logs-ui/?date_to=2025-03-01").get_data(as_text=True)) == [morning]
    both = admin_client.get("/logs-ui/?date_from=2025-03-01&date_to=2025-03-02").get_data(as_text=True)
    assert rows(both) == [late, morning] and "Найдено звонков: 2" in both


def test_bad_dates_are_explained_and_the_rest_still_filters(app, admin_client):
    make_call(app, MORNING, [("caller", "Нужен пресс")])
    kazan = make_call(app, LATE_EVENING, [("caller", "Доставка в Казань")])
    response = admin_client.get("/logs-ui/?q=казани&date_from=01.03.2025")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Дата в формате ГГГГ-ММ-ДД" in html and 'value="01.03.2025"' in html  # the input is kept
    assert rows(html) == [kazan]
    html = admin_client.get("/logs-ui/?date_from=2025-03-05&date_to=2025-03-01").get_data(as_text=True)
    assert "Конечная дата раньше начальной." in html


def test_search_by_word_form_with_highlighted_snippet(app, admin_client):
    kazan = make_call(app, MORNING, [("bot", "Здравствуйте!"), ("caller", "Доставите ли пресс в Казань?")])
    make_call(app, LATE_EVENING, [("caller", "Доставка в Пермь")])
    html = admin_client.get("/logs-ui/?q=казани").get_data(as_text=True)
    assert rows(html) == [kazan]
    assert "<mark>Казань</mark>" in html and "Найдено звонков: 1" in html
    assert f'/logs-ui/calls/{kazan}?q=' in html  # the call page keeps the query to highlight it
    combined = admin_client.get("/logs-ui/?q=казани&date_from=2025-03-02").get_data(as_text=True)
    assert rows(combined) == [] and "Ничего не найдено" in combined


def test_text_is_escaped(app, admin_client):
    cid = make_call(app, MORNING, [("caller", "<script>alert(1)</script> Казань")],
                    caller_name="<img src=x onerror=alert(1)>")
    for url in ("/logs-ui/?q=казань", f"/logs-ui/calls/{cid}?q=казань"):
        html = admin_client.get(url).get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html


@pytest.fixture
def full_call(app):
    return make_call(app, MORNING, [
        {"role": "bot", "kind": "greeting", "text": "Здравствуйте! Компания Метротест.", "source": "phrase"},
        {"role": "caller", "text": "Какой срок поставки пресса в Казань?", "confidence": 0.93},
        {"role": "bot", "text": "Срок поставки пресса — от двух недель.", "interrupted": True,
         "planned_text": "Срок поставки пресса — от двух недель. Доставка в Казань занимает три дня.",
         "spoken_text": "Срок поставки пресса — от двух недель.", "answered": True, "source": "llm",
         "retrieval_ms": 35.4, "llm_first_token_ms": 420.0, "first_piece_ms": 612.0, "total_ms": 2100.0,
         "passages": [{"id": "p1", "section": "Доставка", "text": "Доставка по России транспортными компаниями.",
                       "score": 0.8123}]},
        {"role": "caller", "text": "А гарантия на луноход?"},
        {"role": "bot", "text": "К сожалению, в базе знаний нет ответа. Соединить со специалистом?",
         "answered": False, "source": "refusal", "first_piece_ms": 80.0},
    ], caller="+79120000555", caller_name="Иван Петров", caller_company="АО «Испытания»",
        outcome="completed", recording_url="https://records.example/rec-1.mp3", duration_s=95.0,
        end_reason="caller hung up")


def test_call_page_shows_the_whole_conversation(app, admin_client, full_call):
    html = admin_client.get(f"/logs-ui/calls/{full_call}").get_data(as_text=True)
    assert "Иван Петров" in html and "АО «Испытания»" in html and "+79120000555" in html
    assert "завершён" in html and "1:35" in html
    assert 'href="https://records.example/rec-1.mp3"' in html
    assert "11:00:01" in html and "11:00:11" in html  # turn times in the company's zone
    # The interrupted answer: what was heard, and the cut part.
    assert "перебит абонентом" in html
    assert "Не прозвучало:</span> <s>Доставка в Казань занимает три дня.</s>" in html
    # The refusal is marked; the passages are expandable; timings are shown.
    assert "нет ответа в базе знаний" in html and "is-refusal" in html
    assert "<details class=\"passages\">" in html and "Фрагменты базы знаний (1)" in html
    assert "Доставка по России транспортными компаниями." in html and "0,812" in html
    assert "поиск 35 мс" in html and "первый токен LLM 420 мс" in html and "первая фраза 612 мс" in html
    assert "всего 2100 мс" in html and "ответ LLM" in html
    assert html.index("Какой срок поставки") < html.index("А гарантия на луноход")


def test_call_page_highlights_the_query(app, admin_client, full_call):
    html = admin_client.get(f"/logs-ui/calls/{full_call}?q=прессы").get_data(as_text=True)
    assert html.count("<mark>пресса</mark>") == 2


def test_unsafe_recording_links_are_not_links(app, admin_client):
    cid = make_call(app, MORNING, [("caller", "Алло")], recording_url="javascript:alert(1)")
    html = admin_client.get(f"/logs-ui/calls/{cid}").get_data(as_text=True)
    assert "javascript:alert" not in html


def test_missing_call_is_a_russian_404(admin_client):
    response = admin_client.get("/logs-ui/calls/999999")
    assert response.status_code == 404 and "Не найдено" in response.get_data(as_text=True)


def test_nav_lists_only_existing_sections(admin_client):
    html = admin_client.get("/logs-ui/").get_data(as_text=True)
    nav = html[html.index('<nav class="nav"'):html.index("</nav>")]
    assert 'aria-current="page">Звонки<' in nav
    assert nav.count("<li>") == len(re.findall(r'<a href="/logs-ui/[^"]*"', nav))
