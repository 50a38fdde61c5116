"""Replay through the LLM when one is configured (issue 15, point 1): the real `openai` client
against the local OpenAI-compatible server, at most REPLAY_LLM_CONCURRENCY answers at once, the
model's «no answer» marker counted as a refusal, its failures answered offline as on the phone."""
from __future__ import annotations

import pytest

from metrotest_bot.admin import replay
from metrotest_bot.rag import get_engine

from .support.admin_data import make_admin, sign_in
from .support.apps import dispose, make_app
from .test_admin_replay import asked, last_run, sample_without, upload

pytestmark = pytest.mark.timeout(240)

WARRANTY_Q = "Какая гарантия на оборудование?"
WARRANTY_ANSWER = "Гарантия на оборудование — двадцать четыре месяца."
OTHER_ANSWER = "Да, это есть в базе знаний, сейчас расскажу."
QUESTIONS = [WARRANTY_Q, "До скольки работает отдел продаж?", "Где вы находитесь?", "Сколько стоит доставка?",
             "Какие прессы для бетона вы делаете?", "Есть ли поверка оборудования?", "Как с вами связаться?",
             "Какие разрывные машины у вас есть?", "Как оплатить заказ?", "Чем занимается компания?"]


def model_reply(body) -> str:
    """A model that answers from the passages it is given, and says «no answer» otherwise."""
    system, question = body["messages"][0]["content"], body["messages"][-1]["content"]
    if question == WARRANTY_Q:
        return WARRANTY_ANSWER if "24 месяца" in system else "НЕТ_ОТВЕТА"
    return OTHER_ANSWER


@pytest.fixture
def llm_client(tmp_path, database_url, fake_openai):
    # Not inside an app context: the test client's requests need their own (CSRF token in `g`).
    app = make_app(tmp_path / "data", database_url, OPENAI_API_KEY="sk-local", OPENAI_BASE_URL=fake_openai.base_url,
                   LLM_MODEL="local-model", KB_HOLD_UPLOADS=True, REPLAY_LLM_CONCURRENCY=3, FIRST_SPEECH_DEADLINE=10)
    try:
        make_admin(app)
        client = app.test_client()
        assert sign_in(client).status_code == 302
        yield app, client
    finally:
        dispose(app)


def test_a_kb_candidate_is_replayed_through_the_model_never_more_than_the_bound_at_once(llm_client, fake_openai):
    app, client = llm_client
    asked(app, *QUESTIONS)
    fake_openai.reply = model_reply
    fake_openai.token_delay = 0.01  # each answer streams for a while: the workers overlap
    vid = upload(client, sample_without("Гарантия"), "без гарантии.txt")
    run = last_run(app, vid)
    assert run.status == "done", run.error
    result = run.result

    streams = [r for r in fake_openai.requests if r.get("stream")]
    assert len(streams) >= 12, sorted(r["messages"][-1]["content"] for r in streams)  # the screen keeps the off-topic out
    assert fake_openai.max_active == 3  # the bound, reached and never passed
    assert result["llm"] == {"model": "local-model", "concurrency": 3, "errors": 0}

    # The warranty question: answered by the model from the KB in force; the candidate lacks the
    # section (and so refuses before asking the model) — newly refused.
    [row] = [r for r in result["rows"] if r["question"] == WARRANTY_Q]
    assert row["kind"] == "newly_refused"
    assert row["old"]["text"] == WARRANTY_ANSWER and row["old"]["source"] == "llm"
    assert not row["new"]["answered"] and row["new"]["source"] == "refusal" and not row["new"]["llm_error"]
    assert result["counts"]["newly_refused"] == 1 and result["refused"]["candidate"] == result["refused"]["in_force"] + 1

    page = client.get(f"/logs-ui/kb/versions/{vid}/replay").get_data(as_text=True)
    assert "через LLM, как в звонке" in page and "Ответы модели local-model" in page
    assert WARRANTY_ANSWER in page and 'data-kind="newly_refused"' in page


def test_when_the_model_fails_the_replay_answers_as_a_call_would_offline(llm_client, fake_openai):
    app, client = llm_client
    asked(app, *QUESTIONS[:4])
    fake_openai.mode = "error500"
    vid = upload(client, sample_without("Гарантия"), "без гарантии.txt")
    result = last_run(app, vid).result
    assert result["llm"]["errors"] >= 6 and len(fake_openai.requests) == result["llm"]["errors"]
    [row] = [r for r in result["rows"] if r["question"] == WARRANTY_Q]
    assert row["old"]["source"] == "offline" and "24 месяца" in row["old"]["text"]
    page = client.get(f"/logs-ui/kb/versions/{vid}/replay").get_data(as_text=True)
    assert "без ответа модели (ошибка или задержка)" in page


def test_the_models_no_answer_marker_counts_as_a_refusal(llm_client, fake_openai):
    from metrotest_bot.bot_settings import BotSettings

    app, _ = llm_client
    fake_openai.chunks = ["НЕТ", "_ОТ", "ВЕТА"]  # split across chunks, as a model streams it
    questions = [("Сколько стоит доставка?", False)]
    with app.app_context():
        index = get_engine().current()
        settings = BotSettings()
        result = replay.compare(index, index, questions, settings, app.config,
                                candidate_settings=BotSettings(system_prompt="Отвечай только про доставку."))
    assert len(fake_openai.requests) == 2  # both sides asked the model
    assert result["refused"] == {"in_force": 1, "candidate": 1} and result["counts"]["same"] == 1
    prompts = sorted(r["messages"][0]["content"][:20] for r in fake_openai.requests)
    assert prompts == sorted([settings.system_prompt[:20], "Отвечай только про д"])  # each side its prompt


def test_offline_the_replay_never_asks_a_model(app, fake_openai):
    from metrotest_bot.bot_settings import BotSettings

    with app.app_context():
        engine = get_engine()
        result = replay.compare(engine.current(), engine.current(), [(WARRANTY_Q, False)], BotSettings(),
                                {**app.config, "OPENAI_BASE_URL": fake_openai.base_url})
    assert result["llm"] is None and result["counts"]["same"] == 1 and fake_openai.requests == []


def test_through_the_model_a_rewording_from_the_same_passages_is_not_a_change():
    from metrotest_bot.admin.replay_ask import kind_of

    old = {"answered": True, "text": "Гарантия на прессы — 24 месяца с даты ввода в эксплуатацию.",
           "sections": ["Гарантия"]}
    reworded = {**old, "text": "На прессы гарантия 24 месяца с даты ввода в эксплуатацию."}
    other_text = {**old, "text": "Доставка по Екатеринбургу бесплатная, в другие города — транспортной компанией."}
    other_sections = {**reworded, "sections": ["Доставка"]}
    assert kind_of(old, reworded, llm=True) == "same"
    assert kind_of(old, reworded) == "changed"  # offline the answer is deterministic: any difference counts
    assert kind_of(old, other_text, llm=True) == "changed"
    assert kind_of(old, other_sections, llm=True) == "changed"
    assert kind_of(old, {**old, "answered": False}, llm=True) == "newly_refused"
