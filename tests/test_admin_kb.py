"""The KB page with the Flask test client: upload, validation, background indexing, rollback, lost jobs.

The indexing job is a real thread here (a greenlet under gunicorn); tests
wait for it with kb_jobs.wait().
"""
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest

from metrotest_bot.admin import kb_jobs
from metrotest_bot.extensions import db
from metrotest_bot.models import AuditLog, KBVersion
from metrotest_bot.timeutil import utcnow

from .support.admin_data import csrf_token, kb_version, make_admin, sign_in, upload_id, upload_kb
from .support.apps import dispose, make_app
from .support.kb_samples import (BINARY_TXT, EXE, FAKE_PDF, PRICE_A, PRICE_B, kb_a_cp1251,
                                 kb_b_markdown, spoken_answer)

CYRILLIC_NAME = "База знаний Метротест (филиал).txt"


def uploaded(app, client, data: bytes, filename: str) -> KBVersion:
    vid = upload_id(upload_kb(client, data, filename))
    kb_jobs.wait(vid)
    return kb_version(app, vid)


def test_cp1251_upload_is_indexed_in_the_background_and_answers(app, admin_client):
    assert PRICE_A not in spoken_answer(app)  # the sample KB knows nothing of it
    response = upload_kb(admin_client, kb_a_cp1251(), CYRILLIC_NAME)
    vid = upload_id(response)
    assert response.headers["Location"].endswith(f"/logs-ui/kb?upload={vid}#upload")
    kb_jobs.wait(vid)

    row = kb_version(app, vid)
    assert (row.status, row.active, row.encoding, row.filename) == ("ready", True, "cp1251", CYRILLIC_NAME)
    assert (row.n_passages, row.n_sections, row.created_by, row.progress) == (3, 3, "admin", 1.0)
    stored = Path(row.stored_path)
    assert stored.parent == Path(app.config["DATA_DIR"]) / "kb" / "uploads"
    assert re.fullmatch(r"[0-9-]+-[0-9a-f]{10}\.txt", stored.name)  # a safe generated name on disk
    assert stored.read_bytes() == kb_a_cp1251()

    assert PRICE_A in spoken_answer(app)

    html = admin_client.get(f"/logs-ui/kb?upload={vid}").get_data(as_text=True)
    assert "проиндексирован (фрагментов: 3, разделов: 3) и теперь действует" in html
    assert CYRILLIC_NAME in html and "кодировка cp1251" in html
    assert f"Стоимость выезда инженера в Нижний Тагил составляет {PRICE_A} рублей." in html  # the KB in force
    status = admin_client.get(f"/logs-ui/kb/versions/{vid}/status").get_json()
    assert status | {"progress": None} == {
        "id": vid, "status": "ready", "status_label": "готова", "progress": None, "error": None, "active": True,
        "n_passages": 3, "n_sections": 3, "filename": CYRILLIC_NAME, "done": True}

    # The original file comes back under its own name.
    download = admin_client.get(f"/logs-ui/kb/versions/{vid}/file")
    assert download.data == kb_a_cp1251()
    assert "filename*=UTF-8''" in download.headers["Content-Disposition"]


def test_kb_text_is_searchable_by_word_forms(app, admin_client):
    uploaded(app, admin_client, kb_a_cp1251(), "a.txt")
    html = admin_client.get("/logs-ui/kb?q=калибровки датчика").get_data(as_text=True)
    assert "Найдено фрагментов: 1." in html
    assert "<mark>Калибровку</mark> <mark>датчиков</mark>" in html
    assert "Нижний Тагил" not in html.split('id="content"')[1]
    html = admin_client.get("/logs-ui/kb?q=слоны").get_data(as_text=True)
    assert "Найдено фрагментов: 0." in html and "В действующей базе ничего не найдено." in html


@pytest.mark.parametrize("data, filename, message", [
    (b"", "empty.txt", "Файл пустой"),
    (b" \r\n\t \n", "blank.md", "Файл пустой"),
    (EXE, "setup.exe", "Неподдерживаемый тип файла (.exe)"),
    (b"text", "README", "Неподдерживаемый тип файла (без расширения)"),
])
def test_refused_at_once_and_nothing_stored(app, admin_client, data, filename, message):
    before = uploaded(app, admin_client, kb_a_cp1251(), "a.txt")
    response = upload_kb(admin_client, data, filename)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html and "upload-error" in html
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(KBVersion.id))) == 1
    assert sorted(p.name for p in (Path(app.config["DATA_DIR"]) / "kb" / "uploads").iterdir()) == \
        [Path(before.stored_path).name]
    assert PRICE_A in spoken_answer(app)


@pytest.mark.parametrize("data, filename, message", [
    (BINARY_TXT, "dump.txt", "двоичные данные"),
    (FAKE_PDF, "каталог.pdf", "не является PDF-документом"),
    ("# Меню\n\n© 2024 Все права защищены\n".encode(), "menu.md", "не найдено текста"),
])
def test_refused_in_the_background_and_the_kb_in_force_stays(app, admin_client, data, filename, message):
    good = uploaded(app, admin_client, kb_a_cp1251(), "a.txt")
    bad = uploaded(app, admin_client, data, filename)
    assert bad.status == "failed" and not bad.active
    assert message in bad.error
    assert not Path(bad.stored_path).exists()  # nothing to retry from an unusable file
    assert kb_version(app, good.id).active
    assert PRICE_A in spoken_answer(app)
    html = admin_client.get(f"/logs-ui/kb?upload={bad.id}").get_data(as_text=True)
    assert f"Файл «{filename}» не принят" in html and message in html
    assert admin_client.get(f"/logs-ui/kb/versions/{bad.id}/status").get_json()["error"] == bad.error


def test_too_big_files(tmp_path, database_url):
    app = make_app(tmp_path / "d", database_url, KB_MAX_UPLOAD_BYTES=2000)
    try:
        make_admin(app)
        client = app.test_client()
        sign_in(client)
        # Over the KB limit but within the request limit: the view stops copying and says so.
        response = upload_kb(client, b"a" * 2001, "big.txt")
        assert response.status_code == 413
        assert "Файл слишком большой: можно загрузить не больше 2 КБ." in response.get_data(as_text=True)
        # Over the request limit (MAX_CONTENT_LENGTH): Flask's 413, with the same Russian page.
        token = csrf_token(client.get("/logs-ui/kb").get_data(as_text=True))
        response = upload_kb(client, b"a" * (app.config["MAX_CONTENT_LENGTH"] + 10), "huge.txt", token)
        assert response.status_code == 413
        assert "Файл слишком большой" in response.get_data(as_text=True)
        assert not list((Path(app.config["DATA_DIR"]) / "kb" / "uploads").iterdir())
        assert upload_id(upload_kb(client, kb_a_cp1251(), "a.txt"))  # within the limit: accepted
        kb_jobs.wait()
    finally:
        dispose(app)


def test_rollback_and_back_to_the_original_kb(app, admin_client):
    a = uploaded(app, admin_client, kb_a_cp1251(), "a.txt")
    b = uploaded(app, admin_client, kb_b_markdown(), "b.md")
    assert kb_version(app, b.id).active and not kb_version(app, a.id).active
    assert PRICE_B in spoken_answer(app)

    html = admin_client.get("/logs-ui/kb").get_data(as_text=True)
    response = admin_client.post(f"/logs-ui/kb/versions/{a.id}/activate", data={"csrf_token": csrf_token(html)})
    assert response.status_code == 303
    assert kb_version(app, a.id).active and not kb_version(app, b.id).active
    assert PRICE_A in spoken_answer(app)
    html = admin_client.get("/logs-ui/kb").get_data(as_text=True)
    assert f"Действует версия №{a.id} («a.txt»)" in html
    with app.app_context():
        audit = db.session.scalars(db.select(AuditLog).where(AuditLog.action == "kb_activate")).all()
        assert [(x.username, x.details["version"], x.details["previous"]) for x in audit] == [("admin", a.id, b.id)]

    admin_client.post("/logs-ui/kb/default", data={"csrf_token": csrf_token(html)})
    assert "исходная (файл KB_PATH)" in admin_client.get("/logs-ui/kb").get_data(as_text=True)
    assert PRICE_A not in spoken_answer(app) and PRICE_B not in spoken_answer(app)


def test_actions_need_csrf(app, admin_client):
    a = uploaded(app, admin_client, kb_a_cp1251(), "a.txt")
    uploaded(app, admin_client, kb_b_markdown(), "b.md")
    assert admin_client.post(f"/logs-ui/kb/versions/{a.id}/activate").status_code == 400
    assert admin_client.post("/logs-ui/kb/upload", data={"file": (io.BytesIO(kb_a_cp1251()), "x.txt")},
                             content_type="multipart/form-data").status_code == 400
    assert not kb_version(app, a.id).active


def test_missing_file_and_not_ready_version(app, admin_client):
    token = csrf_token(admin_client.get("/logs-ui/kb").get_data(as_text=True))
    response = admin_client.post("/logs-ui/kb/upload", data={"csrf_token": token})
    assert response.status_code == 400 and "Выберите файл" in response.get_data(as_text=True)
    bad = uploaded(app, admin_client, BINARY_TXT, "x.txt")
    response = admin_client.post(f"/logs-ui/kb/versions/{bad.id}/activate", data={"csrf_token": token},
                                 follow_redirects=True)
    assert "Эту версию нельзя сделать действующей" in response.get_data(as_text=True)
    assert admin_client.get("/logs-ui/kb/versions/999/status").status_code == 404


def test_a_job_lost_with_its_worker_is_marked_failed_and_can_be_retried(app, admin_client):
    good = uploaded(app, admin_client, kb_a_cp1251(), "a.txt")
    # What a worker restart leaves behind: a row in "indexing" that nobody updates any more.
    stored = Path(app.config["DATA_DIR"]) / "kb" / "uploads" / "lost.md"
    stored.write_bytes(kb_b_markdown())
    with app.app_context():
        old = utcnow() - timedelta(seconds=app.config["KB_JOB_STALE_SECONDS"] + 5)
        lost = KBVersion(filename="новая база.md", stored_path=str(stored), size_bytes=stored.stat().st_size,
                         status="indexing", progress=0.4, created_at=old, heartbeat_at=old, created_by="admin")
        fresh = KBVersion(filename="идёт.md", stored_path=str(stored), status="indexing", progress=0.1,
                          created_at=old, heartbeat_at=utcnow(), created_by="admin")
        db.session.add_all([lost, fresh])
        db.session.commit()
        lost_id, fresh_id = lost.id, fresh.id

    status = admin_client.get(f"/logs-ui/kb/versions/{lost_id}/status").get_json()
    assert status["status"] == "failed" and "Индексация прервалась" in status["error"]
    assert kb_version(app, fresh_id).status == "indexing"  # still beating: left alone
    assert kb_version(app, good.id).active and PRICE_A in spoken_answer(app)

    html = admin_client.get("/logs-ui/kb").get_data(as_text=True)
    assert "Повторить" in html
    response = admin_client.post(f"/logs-ui/kb/versions/{lost_id}/retry", data={"csrf_token": csrf_token(html)})
    assert response.status_code == 303
    kb_jobs.wait(lost_id)
    row = kb_version(app, lost_id)
    assert (row.status, row.active, row.error) == ("ready", True, None)
    assert PRICE_B in spoken_answer(app)


def test_a_version_put_in_force_meanwhile_is_not_overridden(app, admin_client):
    """An upload that finishes after the admin chose another version does not switch behind their back."""
    a = uploaded(app, admin_client, kb_a_cp1251(), "a.txt")
    stored = Path(app.config["DATA_DIR"]) / "kb" / "uploads" / "slow.md"
    stored.write_bytes(kb_b_markdown())
    with app.app_context():
        slow = KBVersion(filename="slow.md", stored_path=str(stored), status="pending",
                         created_at=utcnow() - timedelta(seconds=5), heartbeat_at=utcnow(), created_by="admin")
        db.session.add(slow)
        db.session.commit()
        slow_id = slow.id
        kb_jobs.run(app, slow_id)
    row = kb_version(app, slow_id)
    assert row.status == "ready" and not row.active
    assert kb_version(app, a.id).active
    html = admin_client.get(f"/logs-ui/kb?upload={slow_id}").get_data(as_text=True)
    assert "но не включён" in html


def test_display_names():
    assert kb_jobs.display_name("C:\\Users\\Иван\\Прайс 2025.txt") == "Прайс 2025.txt"
    assert kb_jobs.display_name("../../etc/passwd") == "passwd"
    assert kb_jobs.display_name("a\x00b\u202e.txt") == "ab.txt"
    assert kb_jobs.display_name("") == "без имени"
    assert len(kb_jobs.display_name("я" * 300 + ".pdf")) == 200
