"""CSV export: Excel-friendly format, one row per turn, the list's filters, streamed."""
import csv
import io
from datetime import datetime, timezone

from .support.admin_data import make_call

MORNING = datetime(2025, 3, 1, 6, 0, tzinfo=timezone.utc)
NEXT_DAY = datetime(2025, 3, 2, 6, 0, tzinfo=timezone.utc)


def parse(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 BOM first, for Excel"
    text = data.decode("utf-8-sig")
    assert "\r\n" in text
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))


def test_export_format_and_rows(app, admin_client):
    cid = make_call(app, MORNING, [
        ("caller", "Сколько стоит пресс; и доставка в Казань?"),
        {"role": "bot", "text": "Цена от 1 250 000 рублей.", "interrupted": True,
         "planned_text": "Цена от 1 250 000 рублей. Доставка три дня.", "spoken_text": "Цена от 1 250 000 рублей.",
         "answered": True, "source": "offline", "retrieval_ms": 12.6, "first_piece_ms": 240.4, "total_ms": 900.0},
        ("caller", "=HYPERLINK(\"http://evil\")"),
    ], caller="+79120000555", caller_name="Иван Петров", caller_company="ООО «Прочность»", duration_s=61.25)
    empty = make_call(app, NEXT_DAY, [], caller="+79120000999")

    response = admin_client.get("/logs-ui/export.csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="metrotest-calls-')
    table = parse(response.get_data())
    header, body = table[0], table[1:]
    assert header[:3] == ["Звонок", "Начало звонка", "Номер абонента"] and "Текст" in header
    col = {name: i for i, name in enumerate(header)}
    assert [r[col["Звонок"]] for r in body] == [str(empty), str(cid), str(cid), str(cid)]  # newest call first
    assert body[0][col["Шаг"]] == "" and body[0][col["Номер абонента"]] == '="+79120000999"'

    q, a, evil = body[1:]
    assert q[col["Начало звонка"]] == "2025-03-01 11:00:00"  # company time zone
    assert q[col["Номер абонента"]] == '="+79120000555"'  # text in a spreadsheet: the plus stays (issue #15)
    assert q[col["Имя"]] == "Иван Петров" and q[col["Компания"]] == "ООО «Прочность»"
    assert q[col["Длительность, с"]] in ("61,2", "61,3")  # decimal comma
    assert q[col["Итог"]] == "завершён" and q[col["Кто"]] == "Абонент"
    assert q[col["Текст"]] == "Сколько стоит пресс; и доставка в Казань?"  # ';' inside text is quoted
    assert a[col["Кто"]] == "Бот" and a[col["Прервано"]] == "да"
    assert a[col["Текст"]] == "Цена от 1 250 000 рублей." and a[col["Не прозвучало"]] == "Доставка три дня."
    assert a[col["Ответ найден"]] == "да" and a[col["Поиск, мс"]] == "13" and a[col["Первая фраза, мс"]] == "240"
    assert evil[col["Текст"]].startswith("'=")  # never a live formula in Excel


def test_export_follows_the_filters(app, admin_client):
    kazan = make_call(app, MORNING, [("caller", "Доставка в Казань"), ("bot", "Да, возим.")])
    make_call(app, MORNING, [("caller", "Доставка в Пермь")])
    later = make_call(app, NEXT_DAY, [("caller", "Казанский филиал есть? Казань интересует")])
    by_q = parse(admin_client.get("/logs-ui/export.csv?q=казани").get_data())[1:]
    assert {r[0] for r in by_q} == {str(kazan), str(later)}
    assert len([r for r in by_q if r[0] == str(kazan)]) == 2  # every turn of a matching call
    by_both = parse(admin_client.get("/logs-ui/export.csv?q=казани&date_to=2025-03-01").get_data())[1:]
    assert {r[0] for r in by_both} == {str(kazan)}
    assert parse(admin_client.get("/logs-ui/export.csv?q=луноход").get_data())[1:] == []


def test_the_list_links_to_the_export_of_its_filters(admin_client):
    html = admin_client.get("/logs-ui/?q=казань&date_from=2025-03-01").get_data(as_text=True)
    assert 'href="/logs-ui/export.csv?q=%D0%BA%D0%B0%D0%B7%D0%B0%D0%BD%D1%8C&amp;date_from=2025-03-01"' in html


def test_export_streams_in_batches(app, admin_client):
    from metrotest_bot.admin import export

    ids = [make_call(app, MORNING.replace(minute=i), [("caller", f"Вопрос {i}")]) for i in range(7)]
    with app.test_request_context("/logs-ui/export.csv"):
        from metrotest_bot.admin.filters import CallFilter

        chunks = list(export.csv_chunks(CallFilter(), batch=3))
    assert len(chunks) == 1 + 3  # header, then one chunk per 3 calls
    body = parse(b"".join(chunks))[1:]
    assert [int(r[0]) for r in body] == list(reversed(ids))


def test_bad_filter_is_a_clear_error(admin_client):
    response = admin_client.get("/logs-ui/export.csv?date_from=вчера")
    assert response.status_code == 400 and "ГГГГ-ММ-ДД" in response.get_data(as_text=True)
