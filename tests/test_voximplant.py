"""The Voximplant scenario, run unmodified in the VoxEngine emulator (Node).

The node tests live in voximplant/test/: scenario.test.js checks the protocol
against a scripted stand-in; platform.test.js the Silero VAD barge-in, progressive
playback and the recording frame; live_server.test.js calls the real server that
this module starts, and leaves the call ids in a results file so the call log
can be checked here.
"""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from metrotest_bot.bot_settings import BotSettings, save_bot_settings
from metrotest_bot.extensions import db
from metrotest_bot.admin.labels import outcome_label
from metrotest_bot.models import (OUTCOME_COMPLETED, OUTCOME_HANGUP, OUTCOME_LOST, OUTCOME_TRANSFER_FAILED,
                                  OUTCOME_TRANSFERRED, Call, Turn)
from metrotest_bot.rag.speech import speech_form

ROOT = Path(__file__).resolve().parents[1]
VOX = ROOT / "voximplant"
OPERATOR = "+73430001212"
# What the (local, OpenAI-compatible) LLM streams for every question: three sentences,
# so an answer arrives piece by piece and can be interrupted after its first piece.
LLM_ANSWER = (
    "Разрывная машина РМ-50 стоит от одного миллиона двухсот пятидесяти тысяч рублей с НДС. "
    "В комплект входят захваты и программа для протоколов испытаний. "
    "Доставка по России занимает от трёх до десяти рабочих дней."
)
# The panel's silence phrases on the live server: the caller must hear these, not the scenario's own.
REPROMPT = "Алло, вы на связи? Спросите, пожалуйста, что вас интересует."
GOODBYE = "Не слышу вас. Всего доброго, до свидания."


def run_node(test_file: str, env: dict | None = None, timeout: int = 240) -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node 20 runs the VoxEngine emulator)")
    if not (VOX / "node_modules" / "ws").is_dir():
        pytest.fail("voximplant/node_modules is missing: run `make node-deps`")
    proc = subprocess.run(
        [node, "--test", "--test-reporter=spec", test_file],
        cwd=VOX, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
    )
    output = proc.stdout + proc.stderr
    print(output)
    assert proc.returncode == 0, f"node --test {test_file} failed:\n{output}"
    assert "# fail 0" in output or "ℹ fail 0" in output, output
    return output


def test_scenario_protocol_against_scripted_server():
    out = run_node("test/scenario.test.js")
    assert "skipped 0" in out


def test_scenario_on_todays_platform():
    """Silero VAD barge-in and its fallback, progressive playback, the recording frame, API misuse."""
    out = run_node("test/platform.test.js")
    assert "skipped 0" in out


def wait_for_call(app, vox_call_id: str, done, timeout: float = 15.0) -> Call:
    """The call row once `done(call)` holds: the server finalizes a call just after the socket closes."""
    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            call = db.session.execute(db.select(Call).filter_by(vox_call_id=vox_call_id)).scalar_one_or_none()
            if call is not None and done(call):
                db.session.expunge(call)
                return call
            db.session.remove()
        if time.monotonic() > deadline:
            pytest.fail(f"call {vox_call_id}: not in the expected state in time (row: {call and vars(call)})")
        time.sleep(0.2)


def turns_of(app, call_pk: int) -> list[Turn]:
    with app.app_context():
        turns = db.session.execute(db.select(Turn).filter_by(call_id=call_pk).order_by(Turn.seq)).scalars().all()
        for t in turns:
            db.session.expunge(t)
        return turns


def test_scenario_against_live_server(live_server_factory, fake_openai, tmp_path):
    fake_openai.answer = LLM_ANSWER
    fake_openai.token_delay = 0.02  # a streamed answer: pieces go out while the rest is generated
    srv = live_server_factory(OPERATOR_PHONE=OPERATOR, OPENAI_API_KEY="test-key", OPENAI_BASE_URL=fake_openai.base_url,
                              SHARED_STATE_TTL=0)
    with srv.app.app_context():
        save_bot_settings({**BotSettings(operator_phone=OPERATOR).to_dict(), "reprompt": REPROMPT,
                           "goodbye": GOODBYE}, "test")
    results_file = tmp_path / "results.json"
    run_node(
        "test/live_server.test.js",
        env={"SERVER_URL": srv.ws_url, "TOKEN": srv.token, "OPERATOR_PHONE": OPERATOR, "RESULTS_FILE": str(results_file),
             "REPROMPT": REPROMPT, "GOODBYE": GOODBYE},
    )
    results = json.loads(results_file.read_text())
    app = srv.app

    # The greeting is in the log as it was spoken.
    greeting = results["greeting"]
    call = wait_for_call(app, greeting["callId"], lambda c: c.ended_at is not None)
    assert call.caller == "+79990001122" and call.dialled == "+73430000000"
    bot = [t for t in turns_of(app, call.id) if t.role == "bot"]
    assert bot and bot[0].answer_id == "greeting"
    assert bot[0].spoken == " ".join(greeting["texts"])  # the speech form, as the scenario got it
    assert speech_form(bot[0].spoken_text) == bot[0].spoken

    # Barge-in over the greeting: the log keeps the greeting's sentences the caller heard.
    g = results["greeting_barge_in"]
    call = wait_for_call(app, g["callId"], lambda c: c.ended_at is not None)
    assert call.n_interrupted == 1
    turns = turns_of(app, call.id)
    assert [t.kind for t in turns[:3]] == ["greeting", "speech", "answer"]
    greeting_turn = turns[0]
    assert greeting_turn.interrupted is True and g["utterance"]
    assert greeting_turn.spoken == g["utterance"]
    assert greeting_turn.spoken_text == greeting_turn.text and speech_form(greeting_turn.text) == g["utterance"]
    assert greeting_turn.planned_text.startswith(greeting_turn.text + " ")

    # The question and its answer, both logged.
    q = results["question"]
    call = wait_for_call(app, q["callId"], lambda c: c.ended_at is not None)
    turns = turns_of(app, call.id)
    assert any(t.role == "caller" and t.text == q["question"] for t in turns)
    answer = next(t for t in turns if t.role == "bot" and t.answer_id == q["answerId"])
    assert not answer.interrupted
    # The scenario spoke the speech form («эр эм пятьдесят», «с эн дэ эс»); the log keeps both.
    assert answer.spoken == " ".join(q["texts"]) and "РМ-50" not in answer.spoken and "НДС" not in answer.spoken
    assert answer.spoken_text == answer.text == LLM_ANSWER
    assert len(q["texts"]) == 3  # one piece per sentence of the streamed answer

    # Barge-in: the answer is stored as interrupted, with what the caller actually heard.
    b = results["barge_in"]
    call = wait_for_call(app, b["callId"], lambda c: c.ended_at is not None)
    assert call.n_interrupted >= 1
    turn = next(t for t in turns_of(app, call.id) if t.role == "bot" and t.answer_id == b["answerId"])
    assert turn.interrupted is True
    assert turn.spoken == b["utterance"]
    assert speech_form(turn.spoken_text) == b["utterance"]  # the written pieces the caller heard
    assert turn.planned_text.startswith(turn.spoken_text) and len(turn.planned_text) > len(turn.spoken_text)
    assert LLM_ANSWER.startswith(turn.planned_text)

    # Transfers, by key and by voice.
    for key in ("transfer_key", "transfer_spoken"):
        call = wait_for_call(app, results[key]["callId"], lambda c: c.ended_at is not None)
        assert call.outcome == OUTCOME_TRANSFERRED, key
        assert call.transferred_to == OPERATOR, key

    # The caller's hang-up finalizes the call.
    call = wait_for_call(app, results["caller_hangup"]["callId"], lambda c: c.ended_at is not None)
    assert call.outcome == OUTCOME_HANGUP
    assert call.duration_s is not None

    # A transfer nobody answered: not logged as a successful transfer.
    call = wait_for_call(app, results["transfer_no_answer"]["callId"], lambda c: c.ended_at is not None)
    assert (call.outcome, call.end_reason, call.transferred_to) == (OUTCOME_TRANSFER_FAILED, "transfer_failed", OPERATOR)
    assert outcome_label(call.outcome) == "перевод не удался"

    # The silent caller, reprompted and then said goodbye to with the panel's phrases: a completed call.
    call = wait_for_call(app, results["silence"]["callId"], lambda c: c.ended_at is not None)
    assert (call.outcome, call.end_reason) == (OUTCOME_COMPLETED, "silence")
    bot = [(t.kind, t.text) for t in turns_of(app, call.id) if t.role == "bot"]
    assert bot[1:] == [("reprompt", REPROMPT), ("goodbye", GOODBYE)]

    # The socket cut mid-call: the server closes the call as lost.
    call = wait_for_call(app, results["dropped"]["callId"], lambda c: c.ended_at is not None)
    assert call.outcome == OUTCOME_LOST
