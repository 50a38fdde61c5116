"""GET /healthz reports the KB passages, the search backend and the LLM mode."""
from tests.support.apps import dispose, make_app


def test_healthz_reports_kb_and_offline_mode(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "ok"
    assert body["kb_passages"] > 5
    assert body["search_backend"] == "embedded"
    assert body["llm_mode"] == "offline"
    assert body["transcript_search"] == {"backend": "sql", "degraded": False, "outbox_pending": None,
                                         "outbox_last_error": None}  # no Elasticsearch: nothing to lag behind


def test_healthz_names_the_model_when_a_key_is_set(tmp_path, database_url):
    app = make_app(tmp_path / "data", database_url, OPENAI_API_KEY="sk-test", LLM_MODEL="gpt-4o-mini")
    try:
        body = app.test_client().get("/healthz").get_json()
        assert body["llm_mode"] == "gpt-4o-mini"
    finally:
        dispose(app)


def test_healthz_degraded_when_the_kb_file_is_missing(tmp_path, database_url):
    app = make_app(tmp_path / "data", database_url, KB_PATH=tmp_path / "nope.txt")
    try:
        resp = app.test_client().get("/healthz")
        assert resp.status_code == 503
        assert resp.get_json()["kb_passages"] == 0
    finally:
        dispose(app)
