"""The try page with the Flask test client: the answer streamed as Server-Sent Events."""
import json

import pytest

from metrotest_bot.bot_settings import BotSettings, save_bot_settings
from metrotest_bot.rag import get_engine

from .support.admin_data import csrf_token, make_admin, sign_in
from .support.apps import dispose, make_app

QUESTION = "До скольки работает отдел продаж?"


def events(response) -> list[tuple[str, dict]]:
    """The SSE stream parsed: (event, data) in order."""
    out = []
    for block in response.get_data(as_text=True).split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def ask(client, question: str, token: str | None = None):
    token = token if token is not None else csrf_token(client.get("/logs-ui/try").get_data(as_text=True))
    return client.post("/logs-ui/try/stream", data={"csrf_token": token, "question": question})


def test_passages_then_pieces_then_done_same_as_a_call(app, admin_client):
    response = ask(admin_client, QUESTION)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    got = events(response)
    kinds = [k for k, _ in got]
    assert kinds[0] == "passages" and kinds[-1] == "done" and set(kinds[1:-1]) == {"piece"}
    first = got[0][1]
    assert first["answered"] is True and first["source"] == "offline"
    assert first["passages"] and all(isinstance(p["score"], float) for p in first["passages"])
    assert first["passages"][0]["section"] == "Часы работы"
    pieces = [d["text"] for k, d in got if k == "piece"]
    done = got[-1][1]
    assert " ".join(pieces) == done["answer"]
    assert "8:30 до 17:30" in done["answer"]
    assert done["timings"]["first_piece_ms"] is not None
    # The same pipeline a call uses gives the same words.
    with app.app_context():
        from metrotest_bot.bot_settings import get_bot_settings

        assert get_engine().answer(QUESTION, get_bot_settings()).text() == done["answer"]


def test_refusal_uses_the_settings_in_force(app, admin_client):
    with app.app_context():
        save_bot_settings({**BotSettings().to_dict(), "refusal": "Этого я не знаю. Соединить с инженером?"}, "admin")
    got = events(ask(admin_client, "Продаёте ли вы слонов?"))
    assert got[0][1]["answered"] is False
    assert got[-1][1]["answer"] == "Этого я не знаю. Соединить с инженером?"
    assert got[-1][1]["source"] == "refusal"


def test_llm_answer_streams_piece_by_piece(tmp_path, database_url, fake_openai):
    fake_openai.answer = "Отдел продаж работает по будням с 8:30 до 17:30. В выходные офис закрыт."
    app = make_app(tmp_path / "d", database_url, OPENAI_API_KEY="sk-local-test", OPENAI_BASE_URL=fake_openai.base_url)
    try:
        make_admin(app)
        client = app.test_client()
        sign_in(client)
        got = events(ask(client, QUESTION))
        assert [d["text"] for k, d in got if k == "piece"] == [
            "Отдел продаж работает по будням с 8:30 до 17:30.", "В выходные офис закрыт."]
        assert got[-1][1]["source"] == "llm" and got[-1][1]["error"] is None
        sent = json.dumps(fake_openai.requests[-1]["messages"], ensure_ascii=False)
        assert "8:30 до 17:30" in sent  # the retrieved passages went to the LLM
    finally:
        dispose(app)


def test_without_javascript_the_whole_answer_is_rendered(app, admin_client):
    token = csrf_token(admin_client.get("/logs-ui/try").get_data(as_text=True))
    html = admin_client.post("/logs-ui/try", data={"csrf_token": token, "question": QUESTION}).get_data(as_text=True)
    assert "8:30 до 17:30" in html and "оценка" in html and "Часы работы" in html


@pytest.mark.parametrize("question, token, status", [("", None, 400), ("   ", None, 400), ("x" * 501, None, 400),
                                                     (QUESTION, "", 400)])
def test_invalid_or_forged_requests(admin_client, question, token, status):
    response = ask(admin_client, question, token)
    assert response.status_code == status
    if token is None:
        assert events(response)[0][0] == "invalid"
