"""A KB upload reaches every machine: the file's bytes live in SQL, each machine builds its own index.

Apps with separate DATA_DIRs on one database stand for machines (without
Elasticsearch, each keeps its KB index under its DATA_DIR); apps sharing a
DATA_DIR stand for workers of one machine.
"""
import threading
from pathlib import Path

import pytest

from metrotest_bot.admin import kb_jobs
from metrotest_bot.extensions import db
from metrotest_bot.models import KBFile, KBVersion
from metrotest_bot.rag import engine as engine_module
from metrotest_bot.rag import get_engine
from metrotest_bot.rag.sources import keep_file
from metrotest_bot.rag.versions import activate_version, build_version

from .support.admin_data import csrf_token, make_admin, sign_in, upload_id, upload_kb
from .support.apps import dispose, make_app
from .support.call_log import eventually
from .support.kb_samples import PRICE_A, PRICE_B, kb_a_cp1251, kb_b_markdown, spoken_answer

TTL = 0.2
HOURS = "во сколько вы открываетесь"  # the sample KB answers 8:30


def upload(client, data: bytes, filename: str) -> int:
    vid = upload_id(upload_kb(client, data, filename))
    kb_jobs.wait(vid)
    return vid


def stored_path(app, vid: int) -> Path:
    with app.app_context():
        return Path(db.session.get(KBVersion, vid).stored_path)


def signed_in(app):
    client = app.test_client()
    assert sign_in(client).status_code == 302
    return client


@pytest.fixture
def machines(tmp_path, database_url):
    """Machine A (where admins upload) and machine B, one database."""
    a = make_app(tmp_path / "machine-a", database_url, SHARED_STATE_TTL=TTL)
    b = make_app(tmp_path / "machine-b", database_url, SHARED_STATE_TTL=TTL)
    make_admin(a)
    yield a, b
    for app in (a, b):
        with app.app_context():
            get_engine().wait_builds()
        dispose(app)


def test_an_upload_on_one_machine_is_served_by_another_built_from_the_database(machines, tmp_path, database_url):
    a, b = machines
    assert PRICE_A not in spoken_answer(b)  # B serves the sample KB

    vid = upload(signed_in(a), kb_a_cp1251(), "Прайс выездов.txt")
    on_a = stored_path(a, vid)
    assert on_a.is_relative_to(Path(a.config["DATA_DIR"]))
    with a.app_context():
        kept = db.session.get(KBFile, vid)
        assert kept.content == kb_a_cp1251() and len(kept.sha256) == 64
    assert PRICE_A in spoken_answer(a)
    on_a.unlink()  # machine A's disk is not B's: B must do without this file

    # B follows within the TTL plus its own build, from the bytes in the database.
    eventually(lambda: PRICE_A in spoken_answer(b), timeout=20)
    copy = Path(b.config["DATA_DIR"]) / "kb" / "uploads" / on_a.name
    assert copy.read_bytes() == kb_a_cp1251()
    assert (Path(b.config["DATA_DIR"]) / "kb" / "indexes" / f"v{vid}" / "manifest.json").is_file()
    with b.app_context():
        assert get_engine().kb_info()["version_id"] == vid

    # Its admin pages work there too: the KB in force, and the original file, from the database.
    client_b = signed_in(b)  # the admin users are in the shared database
    assert f"составляет {PRICE_A} рублей" in client_b.get("/logs-ui/kb").get_data(as_text=True)
    assert client_b.get(f"/logs-ui/kb/versions/{vid}/file").data == kb_a_cp1251()

    # A new machine that joins later builds the KB in force at its first start.
    c = make_app(tmp_path / "machine-c", database_url, SHARED_STATE_TTL=TTL)
    try:
        assert PRICE_A in spoken_answer(c)
    finally:
        dispose(c)

    # The next upload and a rollback made on B, reach A and B the same way.
    second = upload(signed_in(a), kb_b_markdown(), "b.md")
    stored_path(a, second).unlink()
    eventually(lambda: PRICE_B in spoken_answer(b), timeout=20)
    html = client_b.get("/logs-ui/kb").get_data(as_text=True)
    assert client_b.post(f"/logs-ui/kb/versions/{vid}/activate", data={"csrf_token": csrf_token(html)}).status_code == 303
    assert PRICE_A in spoken_answer(b)  # its index is here already: at once
    eventually(lambda: PRICE_A in spoken_answer(a), timeout=5)


def test_workers_of_one_machine_build_once_and_serve_the_old_kb_meanwhile(tmp_path, database_url, monkeypatch):
    a = make_app(tmp_path / "machine-a", database_url)
    # Two workers of machine B: one DATA_DIR.
    workers = [make_app(tmp_path / "machine-b", database_url, SHARED_STATE_TTL=0) for _ in range(2)]
    builds, gate = [], threading.Event()
    try:
        before = [spoken_answer(w) for w in workers]
        assert all(PRICE_A not in text and "8:30" in spoken_answer(w, HOURS) for w, text in zip(workers, before))
        source = tmp_path / "upload-on-a.txt"
        source.write_bytes(kb_a_cp1251())
        with a.app_context():
            row = KBVersion(filename="a.txt", stored_path=str(source), status="pending")
            db.session.add(row)
            db.session.flush()
            keep_file(db.session, row.id, source.read_bytes())
            db.session.commit()
            vid = row.id
            build_version(vid, source)  # on A's disk only

        real_build = engine_module.build_index

        def slow_build(config, src, name, progress=None):
            builds.append((config["DATA_DIR"], name))
            assert gate.wait(20)
            return real_build(config, src, name, progress)

        monkeypatch.setattr(engine_module, "build_index", slow_build)
        with a.app_context():
            activate_version(vid)

        # Both workers see the switch; while one builds, both keep answering from the KB they had.
        for w in workers:
            assert "8:30" in spoken_answer(w, HOURS) and PRICE_A not in spoken_answer(w)
        eventually(lambda: builds)
        for w in workers:
            assert "8:30" in spoken_answer(w, HOURS)
        gate.set()
        for w in workers:
            eventually(lambda: PRICE_A in spoken_answer(w), timeout=20)
        assert builds == [(workers[0].config["DATA_DIR"], f"v{vid}")]  # once for the machine
    finally:
        gate.set()
        for app in (a, *workers):
            with app.app_context():
                get_engine().wait_builds()
            dispose(app)


def test_an_interrupted_upload_is_retried_on_another_machine_from_the_database(app, admin_client):
    with app.app_context():
        row = KBVersion(filename="b.md", stored_path="/elsewhere/machine-a/kb/uploads/20250101-000000-abc.md",
                        status="failed", error="Индексация прервалась", created_by="admin")
        db.session.add(row)
        db.session.flush()
        keep_file(db.session, row.id, kb_b_markdown())
        db.session.commit()
        vid = row.id
    html = admin_client.get("/logs-ui/kb").get_data(as_text=True)
    assert "Повторить" in html
    assert admin_client.post(f"/logs-ui/kb/versions/{vid}/retry",
                             data={"csrf_token": csrf_token(html)}).status_code == 303
    kb_jobs.wait(vid)
    with app.app_context():
        row = db.session.get(KBVersion, vid)
        assert (row.status, row.active) == ("ready", True)
    assert PRICE_B in spoken_answer(app)


def test_an_unusable_upload_keeps_no_bytes(app, admin_client):
    vid = upload(admin_client, bytes(range(256)) * 16, "dump.txt")
    with app.app_context():
        assert db.session.get(KBVersion, vid).status == "failed"
        assert db.session.get(KBFile, vid) is None
