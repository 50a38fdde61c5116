"""Bounded KB uploads (issue #13): inflated size, pages, text and time limits, with the Russian message
in the panel, the KB in force untouched; and indexing beside live calls without starving them.
"""
import io
import re
import resource
import statistics
import time
import zlib

import pytest
import requests

from metrotest_bot.admin import kb_jobs
from metrotest_bot.rag import KBError
from metrotest_bot.rag.ingest import parse_bytes, parse_file
from metrotest_bot.rag.upload_limits import IngestLimits

from .support.admin_data import PASSWORD, csrf_token, kb_version, make_admin, sign_in, upload_id, upload_kb
from .support.apps import dispose, make_app
from .support.kb_samples import PRICE_A, kb_a_cp1251, spoken_answer
from .support.live_server import serving
from .support.ws_client import CallClient, text_of

MIB = 1024 * 1024


def raw_pdf(n_pages: int, content: bytes, compress: bool = True) -> bytes:
    """A PDF whose pages all draw the same content stream (object 3), Flate-compressed."""
    stream = zlib.compress(content, 9) if compress else content
    kids = " ".join(f"{4 + i} 0 R" for i in range(n_pages))
    font = 4 + n_pages
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode(),
        b"<< /Length %d%s >>\nstream\n" % (len(stream), b" /Filter /FlateDecode" if compress else b"")
        + stream + b"\nendstream",
    ] + [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
         b"/Resources << /Font << /F1 %d 0 R >> >> >>" % font] * n_pages + [
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % off for off in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


LINE = b"BT /F1 12 Tf 72 712 Td (Metrotest service and calibration price list) Tj ET\n"


def inflating_pdf(inflated: int = 40 * MIB, n_pages: int = 12) -> bytes:
    """A few dozen KB whose pages share one Flate stream inflating to `inflated` bytes."""
    return raw_pdf(n_pages, LINE * (inflated // len(LINE)))


def upload(client, data: bytes, filename: str) -> int:
    return upload_id(upload_kb(client, data, filename))



def refused(app, client, data: bytes, filename: str, message: str) -> float:
    """Upload a file the limits must refuse; checks the panel and the KB in force. Returns seconds taken."""
    good = upload(client, kb_a_cp1251(), "a.txt")
    kb_jobs.wait(good)
    started = time.monotonic()
    vid = upload(client, data, filename)
    kb_jobs.wait(vid)
    took = time.monotonic() - started
    row = kb_version(app, vid)
    assert (row.status, row.active) == ("failed", False)
    assert message in row.error, row.error
    html = client.get(f"/logs-ui/kb?upload={vid}").get_data(as_text=True)
    assert f"Файл «{filename}» не принят" in html and message in html
    assert client.get(f"/logs-ui/kb/versions/{vid}/status").get_json()["error"] == row.error
    assert kb_version(app, good).active  # the KB in force is untouched
    assert PRICE_A in spoken_answer(app)
    return took


def test_the_example_pdf_is_what_the_issue_describes():
    data = inflating_pdf()
    assert len(data) < 200_000
    assert len(zlib.decompress(data.split(b"stream\n")[1].split(b"\nendstream")[0])) >= 40 * MIB - len(LINE)


def test_a_pdf_whose_pages_share_one_huge_flate_stream_is_refused_quickly(app, admin_client):
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    took = refused(app, admin_client, inflating_pdf(), "каталог.pdf", "после распаковки занимают больше 32 МБ")
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    print(f"40 MiB inflating PDF refused in {took:.2f} s; peak RSS +{rss_growth:.0f} MB")
    assert took < 3.0
    assert rss_growth < 150


def test_a_pdf_under_the_inflated_limit_is_still_read():
    kb = parse_bytes(raw_pdf(1, LINE * 20), "small.pdf")  # one page: nothing repeats as a running header
    assert "Metrotest service and calibration price list" in kb.passages[0].text


@pytest.mark.parametrize("overrides, data, filename, message", [
    ({"KB_PDF_MAX_PAGES": 3}, raw_pdf(4, LINE * 20), "четыре.pdf", "В PDF слишком много страниц (4): можно не больше 3"),
    ({"KB_PDF_MAX_INFLATED_BYTES": 64 * 1024}, raw_pdf(2, LINE * 500), "два.pdf", "больше 64 КБ"),
    ({"KB_MAX_TEXT_CHARS": 300}, kb_a_cp1251(), "текст.txt", "В файле слишком много текста: больше 300 знаков"),
    ({"KB_MAX_TEXT_CHARS": 300}, kb_a_cp1251().decode("cp1251").encode(), "текст.md", "слишком много текста"),
])
def test_each_limit_is_a_clear_refusal_in_the_panel(tmp_path, database_url, overrides, data, filename, message):
    app = make_app(tmp_path / "d", database_url, **overrides)
    try:
        make_admin(app)
        client = app.test_client()
        sign_in(client)
        if "KB_MAX_TEXT_CHARS" in overrides:  # the good file is over it too: start from the sample KB
            vid = upload(client, data, filename)
            kb_jobs.wait(vid)
            row = kb_version(app, vid)
            assert row.status == "failed" and message in row.error and not row.active
            assert f"Файл «{filename}» не принят" in client.get(f"/logs-ui/kb?upload={vid}").get_data(as_text=True)
        else:
            refused(app, client, data, filename, message)
    finally:
        dispose(app)


def many_passages(n: int) -> bytes:
    return "\n\n".join(f"Раздел {i}\n\nПоверка прибора номер {i} занимает {i % 9 + 1} рабочих дней, "
                       f"калибровка датчика стоит {1000 + i} рублей." for i in range(n)).encode()


def test_reading_and_indexing_past_the_time_limit_is_refused(tmp_path, database_url):
    app = make_app(tmp_path / "d", database_url, KB_INDEX_TIMEOUT=0.3)
    try:
        make_admin(app)
        client = app.test_client()
        sign_in(client)
        took = refused(app, client, many_passages(4000), "большая.txt", "обрабатывался дольше 0.3 с")
        assert took < 5
    finally:
        dispose(app)


def test_a_kb_file_over_the_size_limit_is_not_even_read(tmp_path):
    path = tmp_path / "kb.txt"
    path.write_bytes(kb_a_cp1251())
    with pytest.raises(KBError, match="Файл слишком большой: можно загрузить не больше 1 КБ"):
        parse_file(path, IngestLimits(max_bytes=100))
    assert parse_file(path, IngestLimits(max_bytes=10_000)).passages


# -- beside live calls -------------------------------------------------------------------------


def test_indexing_uploads_does_not_starve_calls(tmp_path_factory):
    """On the gunicorn gevent worker: a big KB and the inflating PDF are indexed while a call talks."""
    with serving(tmp_path_factory.mktemp("upload-limits"), KB_HOLD_UPLOADS="false",
                 KB_CONFIRM_SHRINK_RATIO="0") as srv:
        make_admin(srv.app)
        http = requests.Session()
        page = http.get(srv.url + "/logs-ui/login").text
        http.post(srv.url + "/logs-ui/login", data={"username": "admin", "password": PASSWORD,
                                                    "csrf_token": csrf_token(page)}, allow_redirects=False)

        def post(data: bytes, filename: str) -> int:
            token = csrf_token(http.get(srv.url + "/logs-ui/kb").text)
            response = http.post(srv.url + "/logs-ui/kb/upload", data={"csrf_token": token},
                                 files={"file": (filename, data)}, allow_redirects=False)
            assert response.status_code == 303, response.text[:2000]
            return int(re.search(r"upload=(\d+)", response.headers["Location"]).group(1))

        def status(vid: int) -> dict:
            return http.get(f"{srv.url}/logs-ui/kb/versions/{vid}/status").json()

        call = CallClient.connect(srv, timeout=30)
        try:
            call.setup()

            def round_trip() -> float:
                started = time.monotonic()
                assert text_of(call.ask("Сколько стоит доставка?"))
                took = time.monotonic() - started
                time.sleep(0.4)
                return took

            baseline = statistics.median(round_trip() for _ in range(3))
            big, bomb = post(many_passages(20000), "большая.txt"), post(inflating_pdf(), "каталог.pdf")
            during = []
            while not (status(big)["done"] and status(bomb)["done"]):
                during.append(round_trip())
            assert status(bomb)["status"] == "failed" and "после распаковки" in status(bomb)["error"]
            assert status(big)["status"] == "ready", status(big)
        finally:
            call.close()
        print(f"call round trip {baseline * 1000:.0f} ms before, during indexing: median "
              f"{statistics.median(during) * 1000:.0f} ms, max {max(during) * 1000:.0f} ms over {len(during)}")
        assert during, "indexing finished before a single question: nothing measured"
        assert max(during) < baseline + 1.5
        assert "Traceback" not in srv.log(), srv.log()[-5000:]
