"""Streaming and barge-in against a slow local OpenAI-compatible server (tests/support/openai_server.py),
through the real `openai` client inside the gunicorn gevent worker, with a real WebSocket client.
"""
import time

import pytest

from metrotest_bot.rag.speech import speech_form
from tests.support.call_log import call_snapshot, eventually, finished_call
from tests.support.live_server import serving
from tests.support.ws_client import set_up_call, text_of

QUESTION = "Сколько стоит доставка?"  # the sample KB answers it, so the LLM is asked
LONG_ANSWER = " ".join(
    f"Это предложение номер {i} длинного ответа про доставку и оплату оборудования." for i in range(1, 16))
SENTENCES = LONG_ANSWER.split(". ")  # «номер 1» written; the `text` frames say «номер один»
TOKEN_DELAY = 0.05  # ~12 tokens a sentence: a sentence every ~0.6 s, the whole answer ~9 s


@pytest.fixture(scope="module")
def server(tmp_path_factory, _fake_openai_server):
    with serving(tmp_path_factory.mktemp("voice-streaming"), OPENAI_API_KEY="test-key",
                 OPENAI_BASE_URL=_fake_openai_server.base_url, LLM_TOTAL_TIMEOUT=60, OPERATOR_PHONE="+73430001210",
                 GUNICORN_GRACEFUL_TIMEOUT=3) as srv:
        yield srv


@pytest.fixture
def slow_llm(fake_openai):
    fake_openai.answer = LONG_ANSWER
    fake_openai.token_delay = TOKEN_DELAY
    return fake_openai


@pytest.fixture
def call(server):
    with set_up_call(server, timeout=15) as client:
        yield client


def answer_turn(server, call, answer_id, final=True):
    def ready():
        snap = call_snapshot(server, call.call_id)
        turns = [t for t in (snap.turns if snap else []) if t.answer_id == answer_id]
        if turns and (not final or turns[0].total_ms is not None):
            return snap, turns[0]
        return None

    return eventually(ready)


def test_first_piece_goes_out_while_the_llm_is_still_generating(server, call, slow_llm):
    slow_llm.answer = ". ".join(LONG_ANSWER.split(". ")[:3]) + "."
    call.prompt(QUESTION)
    first = call.recv()
    assert first["type"] == "text" and first["seq"] == 0 and first["last"] is False
    assert first["text"] == "Это предложение номер один длинного ответа про доставку и оплату оборудования."
    assert slow_llm.completed_streams == 0  # the LLM has not finished: the caller already hears it
    rest = call.answer(timeout=30)
    frames = [first] + rest
    assert [f["seq"] for f in frames] == list(range(len(frames)))
    assert frames[-1]["last"] is True
    assert text_of(frames) == speech_form(slow_llm.answer)
    assert len(frames) == 4  # three sentences, then the closing `last`
    assert slow_llm.stream_completed.wait(5)
    assert slow_llm.completed_streams == 1
    snap, turn = answer_turn(server, call, first["answerId"])
    assert turn.source == "llm" and turn.answered is True and turn.interrupted is False
    assert turn.planned_text == turn.spoken_text == turn.text == slow_llm.answer  # the log keeps the written form
    assert turn.spoken == speech_form(slow_llm.answer)  # and what TTS read beside it
    assert turn.llm_first_token_ms is not None and turn.first_piece_ms < turn.total_ms


def test_interrupt_stops_the_answer_closes_the_llm_stream_and_logs_what_was_heard(server, call, slow_llm):
    call.prompt(QUESTION)
    first = call.recv()
    second = call.recv()
    answer_id = first["answerId"]
    heard = first["text"]  # the scenario reports the pieces it played, as it got them: in speech form
    call.interrupt(answer_id, heard, duration_ms=4200)
    # Frames after this barrier's error were sent after the interrupt was handled: none may be of that answer.
    call.send({"type": "no-such-type"})
    call.recv_until(lambda f: f["type"] == "error")
    with pytest.raises(TimeoutError):
        call.recv(timeout=1.0)  # ~20 more tokens' time: the answer would have gone on
    assert slow_llm.stream_closed.wait(5), "the LLM's HTTP stream was left open"
    assert slow_llm.closed_streams == 1 and slow_llm.completed_streams == 0

    snap, turn = answer_turn(server, call, answer_id)
    assert turn.interrupted is True
    assert turn.spoken == heard
    assert turn.spoken_text == turn.text == SENTENCES[0] + "."  # mapped back to the written piece
    # Everything generated before the cut is kept: at least the two pieces sent, less than the whole.
    assert turn.planned_text.startswith(f"{SENTENCES[0]}. {SENTENCES[1]}.")
    assert speech_form(f"{SENTENCES[0]}. {SENTENCES[1]}.") == f'{first["text"]} {second["text"]}'

    assert len(turn.planned_text) < len(LONG_ANSWER)
    assert snap.n_interrupted == 1

    # The call goes on with a new answer.
    slow_llm.reset()
    frames = call.ask(QUESTION)
    assert frames[-1]["last"] is True and frames[0]["answerId"] != answer_id
    assert text_of(frames) == speech_form(slow_llm.answer)


def test_new_final_prompt_cuts_the_streaming_answer(server, call, slow_llm):
    call.prompt(QUESTION)
    first = call.recv()
    old_id = first["answerId"]
    call.prompt("А сколько стоит поверка пресса?")
    # Text of the old answer may still be in flight until the new answer begins; none after that.
    frames = call.recv_until(lambda f: f["answerId"] != old_id)
    new_id = frames[-1]["answerId"]
    rest = call.recv_until(lambda f: f["seq"] >= 2)  # a few more pieces of the new answer, none of the old
    assert all(f["answerId"] == new_id for f in rest)
    assert slow_llm.stream_closed.wait(5)
    _, old = answer_turn(server, call, old_id)
    sent_of_old = " ".join(f["text"] for f in [first] + frames[:-1] if f["answerId"] == old_id and f["text"])
    assert old.interrupted is True and old.spoken == sent_of_old and speech_form(old.spoken_text) == sent_of_old
    snap = call_snapshot(server, call.call_id)
    answers = [t for t in snap.turns if t.kind == "answer"]
    assert [t.answer_id for t in answers] == [old_id, new_id]  # one answer at a time, in order


def test_asking_for_a_person_mid_answer_cuts_it_and_transfers(server, call, slow_llm):
    call.prompt(QUESTION)
    answer_id = call.recv()["answerId"]
    call.prompt("соедините с оператором")
    frames = call.recv_until(lambda f: f["type"] == "transfer")
    assert frames[-1]["to"] == "+73430001210"
    with pytest.raises(TimeoutError):
        call.recv(timeout=0.8)
    assert slow_llm.stream_closed.wait(5)
    _, turn = answer_turn(server, call, answer_id)
    assert turn.interrupted is True


def test_socket_dropped_mid_answer_loses_no_turn(server, call, slow_llm):
    call.prompt(QUESTION)
    first = call.recv()
    call.drop()
    snap = finished_call(server, call.call_id)
    assert snap.outcome == "lost"
    assert [(t.role, t.kind) for t in snap.turns] == [("bot", "greeting"), ("caller", "speech"), ("bot", "answer")]
    _, turn = answer_turn(server, call, first["answerId"])
    assert turn.interrupted is True and turn.spoken.startswith(first["text"])
    assert turn.spoken_text.startswith(SENTENCES[0])
    assert slow_llm.stream_closed.wait(5)


def test_interrupt_after_the_answer_was_sent_records_what_was_played(server, call, fake_openai):
    frames = call.ask(QUESTION)  # a fast answer: all sent, the caller's TTS still speaking it
    answer_id = frames[0]["answerId"]
    answer_turn(server, call, answer_id)
    call.interrupt(answer_id, "Мы работаем с понедельника")
    call.send({"type": "no-such-type"})
    call.recv_until(lambda f: f["type"] == "error")
    snap, turn = eventually(lambda: (r := answer_turn(server, call, answer_id)) and r[1].interrupted and r)
    assert turn.interrupted is True and turn.spoken_text == "Мы работаем с понедельника"
    assert turn.planned_text == fake_openai.answer
    assert snap.n_interrupted == 1


def test_an_answer_cut_after_it_was_sent_is_remembered_as_heard(server, call, fake_openai):
    """The next turn's model gets what the caller heard of the answer, not what was planned."""
    fake_openai.answer = "Мы работаем с понедельника по пятницу. В субботу и воскресенье выходной."
    frames = call.ask("когда вы работаете")
    answer_id = frames[0]["answerId"]
    answer_turn(server, call, answer_id)  # all sent, over and remembered
    call.interrupt(answer_id, "Мы работаем с понедельника")
    eventually(lambda: (r := answer_turn(server, call, answer_id)) and r[1].interrupted and r)
    call.ask("а до скольки")
    assert {"role": "assistant", "content": "Мы работаем с понедельника"} in fake_openai.requests[-1]["messages"]
    assert fake_openai.answer not in str(fake_openai.requests[-1]["messages"][1:])


def test_many_interrupts_in_a_row_leave_one_answer_at_a_time(server, call, slow_llm):
    ids = []
    for _ in range(4):
        call.prompt(QUESTION)
        frame = call.recv_until(lambda f: f["type"] == "text" and f["answerId"] not in ids)[-1]
        ids.append(frame["answerId"])
        call.interrupt(frame["answerId"], "")
    call.send({"type": "no-such-type"})
    call.recv_until(lambda f: f["type"] == "error")
    with pytest.raises(TimeoutError):
        call.recv(timeout=0.8)
    eventually(lambda: slow_llm.closed_streams == 4)
    snap = eventually(lambda: (s := call_snapshot(server, call.call_id))
                      and sum(t.kind == "answer" and t.total_ms is not None for t in s.turns) == 4 and s)
    assert snap.n_interrupted == 4


def test_server_log_has_no_tracebacks(server):
    time.sleep(0.2)
    assert "Traceback" not in server.log(), server.log()[-5000:]


def test_a_follow_up_in_a_call_reads_what_the_model_read_for_the_turn_before(server, call, fake_openai):
    """The call's session keeps the passages each answer read; a follow-up's model reads them after its own."""
    fake_openai.answer = "Поверка стоит от 18 000 рублей."
    call.prompt("сколько стоит поверка")
    first = call.answer(timeout=15)
    answer_turn(server, call, first[0]["answerId"])  # over and remembered
    fake_openai.answer = "Примерно неделю."
    call.prompt("а сколько по времени")
    second = call.answer(timeout=15)
    earlier, now = ([line.split("] ", 1)[1] for line in req["messages"][0]["content"].splitlines()
                     if line.startswith("[") and "] " in line] for req in fake_openai.requests)
    # «а сколько по времени» finds 4 passages of its own, 1 of the 6 read for the price: the model reads all 9
    assert set(earlier) <= set(now) and len(now) > len(earlier)
    assert fake_openai.requests[1]["messages"][1:3] == [
        {"role": "user", "content": "сколько стоит поверка"},
        {"role": "assistant", "content": "Поверка стоит от 18 000 рублей."}]
    _, turn = answer_turn(server, call, second[0]["answerId"])
    assert len(turn.passages) == len(now)  # the log keeps what the model read
