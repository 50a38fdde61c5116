"""The call WebSocket served for real (gunicorn, gevent worker) against a real WebSocket client:
every rule of shared/PROTOCOL.md that does not need an LLM. Answers here are the offline ones.

One server for the module (gunicorn start-up costs a second or two); each test makes its own call.
"""
import json
import signal
import time

import pytest

from metrotest_bot.bot_settings import BotSettings, invalidate, save_bot_settings
from metrotest_bot.rag.speakable import split_text
from metrotest_bot.rag.speech import speech_form
from tests.support.call_log import call_count, call_snapshot, eventually, finished_call
from tests.support.live_server import serving
from tests.support.ws_client import CallClient, Closed, text_of

OPERATOR = "+73430001210"
IDLE_TIMEOUT = 3.0
ANSWERED_QUESTION = "Сколько стоит доставка?"
UNANSWERED_QUESTION = "Какая сейчас погода на Марсе?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("voice-protocol"), OPERATOR_PHONE=OPERATOR,
                 VOICE_IDLE_TIMEOUT=IDLE_TIMEOUT, VOICE_PING_INTERVAL=1, SHARED_STATE_TTL=0,
                 GUNICORN_GRACEFUL_TIMEOUT=3) as srv:
        yield srv


@pytest.fixture
def call(server):
    client = CallClient.connect(server)
    yield client
    client.close()


@pytest.fixture
def settings_override(server):
    """Change the bot's words in the database for one test (the server re-reads them every time)."""
    def apply(**changes):
        with server.app.app_context():
            save_bot_settings({**BotSettings(operator_phone=OPERATOR).to_dict(), **changes}, "test")

    yield apply
    with server.app.app_context():
        save_bot_settings(BotSettings(operator_phone=OPERATOR).to_dict(), "test")
        invalidate()


def final_turns(server, call, n):
    """The call's turns once there are n and the last bot answer is finished (it is updated at its end)."""
    def ready():
        snap = call_snapshot(server, call.call_id)
        if snap is None or len(snap.turns) < n:
            return None
        answers = [t for t in snap.turns if t.kind == "answer"]
        return snap if all(t.total_ms is not None for t in answers) else None

    return eventually(ready)


def barrier(call):
    """Send a frame the server must refuse and wait for its error: every frame sent before is handled."""
    call.send({"type": "no-such-type"})
    frames = call.recv_until(lambda f: f["type"] == "error")
    assert frames[-1]["code"] == "unknown_type"
    return frames[:-1]


# -- connection -----------------------------------------------------------------------------


@pytest.mark.parametrize("query", [None, "token=", "token=wrong-token", "token=live-test-token-and-more",
                                   "token=%D0%BA%D0%BB%D1%8E%D1%87", "TOKEN=live-test-token"])
def test_missing_or_wrong_token_closes_1008_and_logs_nothing(server, query):
    before = call_count(server)
    client = CallClient.connect(server, token=None, query=query)
    try:
        try:  # the server may close before this arrives; either way it must create nothing
            client.send({"type": "setup", "callId": "intruder", "from": "+7999", "to": "+7343"})
        except Exception:
            pass
        closed = client.expect_closed(timeout=5)
    finally:
        client.close()
    assert closed.code == 1008
    assert call_count(server) == before
    assert call_snapshot(server, "intruder") is None


def test_subprotocol_chat_is_echoed(server):
    client = CallClient.connect(server)
    try:
        assert client.subprotocol == "chat"
    finally:
        client.close()


def test_token_is_kept_out_of_the_access_log(server):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError):  # a plain GET, not a WebSocket upgrade: refused
        urllib.request.urlopen(f"{server.url}/voice/ws?token={server.token}", timeout=5)
    eventually(lambda: "/voice/ws" in server.log())
    assert server.token not in server.log()


# -- setup and greeting -----------------------------------------------------------------------


def assert_phrase_frames(frames, answer_id, phrase):
    """A fixed phrase goes out as an answer does: a frame per sentence (in speech form), seq 0..n,
    `last` on the final one."""
    pieces = split_text(phrase)
    assert len(pieces) > 1  # else this would not show the split
    assert frames == [{"type": "text", "answerId": answer_id, "seq": i, "text": speech_form(piece),
                       "last": i == len(pieces) - 1} for i, piece in enumerate(pieces)]


def test_setup_creates_the_call_and_greets(server, call):
    greeting = call.setup(caller="+79125550011", dialled="+73432000000", sessionId="sess-1")
    assert_phrase_frames(greeting["frames"], "greeting", BotSettings().greeting)
    assert greeting["text"] == BotSettings().greeting
    snap = eventually(lambda: (s := call_snapshot(server, call.call_id)) and s.turns and s)
    assert (snap.caller, snap.dialled, snap.vox_session_id, snap.outcome) == (
        "+79125550011", "+73432000000", "sess-1", "in_progress")
    assert snap.started_at is not None and snap.ended_at is None
    [turn] = snap.turns
    assert (turn.role, turn.kind, turn.answer_id, turn.text, turn.source) == (
        "bot", "greeting", "greeting", BotSettings().greeting, "phrase")
    assert turn.planned_text == turn.spoken_text == BotSettings().greeting and turn.interrupted is False
    assert snap.n_turns == 1


def test_greeting_comes_from_the_bot_settings(settings_override, call):
    settings_override(greeting="Метротест, добрый день! Слушаю вас.")
    assert call.setup()["text"] == "Метротест, добрый день! Слушаю вас."


def test_frames_before_setup_are_errors_and_a_second_setup_too(server, call):
    call.prompt(ANSWERED_QUESTION)
    assert call.recv()["code"] == "no_setup"
    call.send({"type": "hangup"})
    assert call.recv()["code"] == "no_setup"
    assert call.setup()["answerId"] == "greeting"  # the socket is still usable
    first_id = call.call_id
    call.send({"type": "setup", "callId": "second-setup", "from": "+7000", "to": "+7001"})
    error = call.recv()
    assert error["type"] == "error" and error["code"] == "duplicate_setup"
    frames = call.ask(ANSWERED_QUESTION)  # the call goes on
    assert frames[-1]["last"] is True and text_of(frames)
    assert call_snapshot(server, "second-setup") is None
    snap = final_turns(server, call, 3)
    assert snap.vox_call_id == first_id
    assert [t.kind for t in snap.turns] == ["greeting", "speech", "answer"]


# -- answers ------------------------------------------------------------------------------------


def test_answer_is_streamed_in_numbered_pieces_and_logged(server, call):
    call.setup()
    frames = call.ask(ANSWERED_QUESTION)
    answer_ids = {f["answerId"] for f in frames}
    assert len(answer_ids) == 1 and "greeting" not in answer_ids
    assert [f["seq"] for f in frames] == list(range(len(frames)))
    assert [f["last"] for f in frames] == [False] * (len(frames) - 1) + [True]
    assert all(f["text"] for f in frames[:-1])
    spoken = text_of(frames)
    assert "Доставка" in spoken

    snap = final_turns(server, call, 3)
    greeting, question, answer = snap.turns
    assert (question.role, question.kind, question.text) == ("caller", "speech", ANSWERED_QUESTION)
    assert (answer.role, answer.kind, answer.answer_id) == ("bot", "answer", frames[0]["answerId"])
    assert answer.question == ANSWERED_QUESTION
    assert answer.planned_text == answer.spoken_text == answer.text == spoken
    assert answer.interrupted is False and answer.answered is True and answer.source == "offline"
    assert answer.passages and all({"text", "score", "section", "id"} <= set(p) for p in answer.passages)
    assert answer.retrieval_ms is not None and answer.first_piece_ms > 0 and answer.total_ms >= answer.first_piece_ms
    assert (snap.n_turns, snap.n_unanswered, snap.n_interrupted, snap.first_piece_n) == (3, 0, 0, 1)
    assert snap.first_piece_ms_sum == pytest.approx(answer.first_piece_ms)


def test_the_question_is_written_to_the_log_before_its_answer(server, call):
    """The answer starts before the caller's turn is written (the caller waits for no commit), yet
    the log gets the question first: in seq and in the order the rows were written (their ids),
    so whoever reads the log meanwhile never sees an answer without its question."""
    call.setup()
    for question in (ANSWERED_QUESTION, UNANSWERED_QUESTION, ANSWERED_QUESTION):
        assert call.ask(question)[-1]["last"] is True
    snap = final_turns(server, call, 7)
    by_seq = [(t.kind, t.text if t.role == "caller" else t.question) for t in snap.turns]
    assert by_seq[1:] == [("speech", ANSWERED_QUESTION), ("answer", ANSWERED_QUESTION),
                          ("speech", UNANSWERED_QUESTION), ("answer", UNANSWERED_QUESTION),
                          ("speech", ANSWERED_QUESTION), ("answer", ANSWERED_QUESTION)]
    assert [t.seq for t in sorted(snap.turns, key=lambda t: t.id)] == [t.seq for t in snap.turns]


def test_a_question_the_kb_cannot_answer_is_logged_unanswered(server, call):
    call.setup()
    frames = call.ask(UNANSWERED_QUESTION)
    assert text_of(frames) == BotSettings().refusal
    snap = eventually(lambda: (s := call_snapshot(server, call.call_id)) and s.n_unanswered == 1 and s)
    answer = snap.turns[-1]
    assert answer.answered is False and answer.source == "refusal"


def test_partial_prompts_start_nothing_and_confidence_is_kept(server, call):
    call.setup()
    call.prompt("Сколько", last=False, confidence=0.4)
    call.prompt("Сколько стоит", last=False)
    assert barrier(call) == []  # no answer began
    call.prompt(ANSWERED_QUESTION, confidence=87)
    assert call.answer()[-1]["last"] is True
    snap = final_turns(server, call, 3)
    caller_turns = [t for t in snap.turns if t.role == "caller"]
    assert [(t.text, t.confidence) for t in caller_turns] == [(ANSWERED_QUESTION, pytest.approx(0.87))]


def test_empty_final_prompt_is_ignored(server, call):
    call.setup()
    call.prompt("   ")
    assert barrier(call) == []
    eventually(lambda: (s := call_snapshot(server, call.call_id)) and s.turns)  # the greeting is logged
    time.sleep(0.5)  # longer than the call log's flush interval: a turn would be in by now
    assert len(call_snapshot(server, call.call_id).turns) == 1


# -- malformed frames ----------------------------------------------------------------------------

MALFORMED = {
    "not_json": ("это не JSON", "bad_json"),
    "json_array": ("[]", "bad_json"),
    "no_type": (json.dumps({"text": "Алло", "last": True}), "missing_field"),
    "unknown_type": (json.dumps({"type": "media", "payload": "AAAA"}), "unknown_type"),
    "prompt_without_text": (json.dumps({"type": "prompt", "last": True}), "missing_field"),
    "prompt_without_last": (json.dumps({"type": "prompt", "text": "Алло"}), "missing_field"),
    "interrupt_without_answer_id": (json.dumps({"type": "interrupt", "utteranceUntilInterrupt": "x"}),
                                    "missing_field"),
    "dtmf_bad_digit": (json.dumps({"type": "dtmf", "digit": "A"}), "bad_field"),
    "recording_without_url": (json.dumps({"type": "recording"}), "missing_field"),
    "binary": (b"\x00\x01binary", "binary_frame"),
    "one_megabyte": (json.dumps({"type": "prompt", "text": "а" * 1_000_000, "last": True}, ensure_ascii=False),
                     "frame_too_large"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_frame_gets_error_and_the_call_goes_on(server, call, name):
    raw, code = MALFORMED[name]
    call.setup()
    call.send_raw(raw)
    error = call.recv()
    assert error["type"] == "error" and error["code"] == code and error["message"]
    frames = call.ask(ANSWERED_QUESTION)
    assert frames[-1]["last"] is True and "Доставка" in text_of(frames)
    snap = final_turns(server, call, 3)
    assert [t.kind for t in snap.turns] == ["greeting", "speech", "answer"]  # the bad frame changed nothing
    assert snap.outcome == "in_progress"


def test_unknown_answer_id_in_interrupt_is_an_error(call):
    call.setup()
    call.interrupt("no-such-answer", "")
    assert call.recv()["code"] == "unknown_answer"
    assert call.ask(ANSWERED_QUESTION)[-1]["last"] is True


def test_interrupting_the_greeting_keeps_what_was_heard(server, call):
    """The scenario reports the greeting's pieces played in full before the caller spoke."""
    greeting = call.setup()
    heard = " ".join(f["text"] for f in greeting["frames"][:2])
    call.interrupt("greeting", heard)
    barrier(call)
    snap = eventually(lambda: (s := call_snapshot(server, call.call_id)) and s.turns and s.turns[0].interrupted and s)
    turn = snap.turns[0]
    assert (turn.kind, turn.interrupted, turn.spoken_text, turn.text) == ("greeting", True, heard, heard)
    assert turn.planned_text == BotSettings().greeting and len(heard) < len(turn.planned_text)
    assert snap.n_interrupted == 1
    assert "Доставка" in text_of(call.ask(ANSWERED_QUESTION))  # the caller's words are answered next


# -- transfer and goodbye ----------------------------------------------------------------------------


def test_key_zero_transfers_to_the_operator(server, call):
    call.setup()
    call.dtmf("0")
    frame = call.recv()
    assert frame == {"type": "transfer", "to": OPERATOR, "text": BotSettings().transfer_phrase}
    call.hangup()
    assert call.expect_closed().code == 1000
    snap = finished_call(server, call.call_id)
    assert snap.outcome == "transferred" and snap.transferred_to == OPERATOR
    assert [(t.role, t.kind, t.text) for t in snap.turns[1:]] == [
        ("caller", "dtmf", "0"), ("bot", "transfer", BotSettings().transfer_phrase)]


@pytest.mark.parametrize("reason, outcome", [("transferred", "transferred"), ("transfer_failed", "transfer_failed"),
                                             ("caller_hangup", "hangup"), ("caller hung up", "transferred")])
def test_the_scenarios_hangup_reason_tells_whether_the_transfer_happened(server, call, reason, outcome):
    """After `transfer` the scenario rings the operator: "transfer_failed" when nobody answers,
    "transferred" once bridged, "caller_hangup" when the caller gave up while it rang. A failed
    transfer is not logged as a successful one."""
    call.setup()
    call.dtmf("0")
    assert call.recv()["type"] == "transfer"
    call.hangup(reason=reason)
    assert call.expect_closed().code == 1000
    snap = finished_call(server, call.call_id)
    assert (snap.outcome, snap.end_reason, snap.transferred_to) == (outcome, reason, OPERATOR)


def test_a_caller_silent_until_the_scenarios_goodbye_is_completed(server, call):
    call.setup()
    call.hangup(reason="silence")  # the scenario reprompted, then said goodbye and hung up
    call.expect_closed()
    snap = finished_call(server, call.call_id)
    assert (snap.outcome, snap.end_reason, snap.transferred_to) == ("completed", "silence", None)


@pytest.mark.parametrize("words", ["Соедините с оператором", "хочу поговорить с человеком",
                                   "Позовите менеджера, пожалуйста"])
def test_asking_for_a_person_transfers(server, call, words):
    call.setup()
    call.prompt(words)
    assert call.recv() == {"type": "transfer", "to": OPERATOR, "text": BotSettings().transfer_phrase}
    call.close()  # the scenario bridges the call and drops the socket
    snap = finished_call(server, call.call_id)
    assert snap.outcome == "transferred"
    assert [t.kind for t in snap.turns] == ["greeting", "speech", "transfer"]
    assert snap.turns[1].text == words


def test_other_keys_do_nothing_but_are_logged(server, call):
    call.setup()
    call.dtmf("5")
    assert barrier(call) == []
    logged = eventually(lambda: (s := call_snapshot(server, call.call_id)) and [(t.kind, t.text) for t in s.turns[1:]])
    assert logged == [("dtmf", "5")]


def test_without_an_operator_number_the_bot_says_how_to_reach_the_office(server, settings_override, call):
    settings_override(operator_phone="")
    call.setup()
    call.dtmf("0")
    frames = call.answer()
    assert_phrase_frames(frames, frames[0]["answerId"], BotSettings().no_operator_phrase)
    assert call.ask(ANSWERED_QUESTION)[-1]["last"] is True  # the call goes on
    call.hangup()
    call.expect_closed()
    snap = finished_call(server, call.call_id)
    # An outcome of its own (issue #15): the caller wanted a person and could not get one.
    assert snap.outcome == "no_operator" and snap.transferred_to is None
    assert [t.kind for t in snap.turns] == ["greeting", "dtmf", "transfer", "speech", "answer"]
    phrase = snap.turns[2]
    assert (phrase.answer_id, phrase.text, phrase.planned_text) == (
        frames[0]["answerId"], BotSettings().no_operator_phrase, BotSettings().no_operator_phrase)


def test_operator_number_from_the_admin_settings_wins(settings_override, call):
    settings_override(operator_phone="+73439998877")
    call.setup()
    call.prompt("соедините с оператором")
    assert call.recv()["to"] == "+73439998877"


def test_goodbye_ends_the_call_as_completed(server, call):
    call.setup()
    call.prompt("Спасибо, до свидания")
    assert call.recv() == {"type": "end", "reason": "goodbye", "text": BotSettings().goodbye}
    call.close()  # no hangup frame: still completed, not lost
    snap = finished_call(server, call.call_id)
    assert snap.outcome == "completed" and snap.duration_s >= 0
    assert [(t.role, t.kind) for t in snap.turns] == [("bot", "greeting"), ("caller", "speech"), ("bot", "goodbye")]


# -- the end of a call ------------------------------------------------------------------------------


def test_hangup_finalizes_the_call(server, call):
    call.setup()
    call.ask(ANSWERED_QUESTION)
    call.send({"type": "recording", "url": "https://records.example/rec-1.mp3"})
    call.hangup(reason="caller hung up")
    assert call.expect_closed().code == 1000
    snap = finished_call(server, call.call_id)
    assert snap.outcome == "hangup" and snap.end_reason == "caller hung up"
    assert snap.recording_url == "https://records.example/rec-1.mp3"
    assert snap.ended_at is not None and snap.duration_s >= 0
    assert snap.n_turns == 3


def test_socket_closed_without_hangup_is_lost_and_keeps_its_turns(server, call):
    call.setup()
    call.ask(ANSWERED_QUESTION)
    call.drop()
    snap = finished_call(server, call.call_id)
    assert snap.outcome == "lost"
    assert [t.kind for t in snap.turns] == ["greeting", "speech", "answer"]


def test_silent_socket_is_pinged_then_closed_at_the_idle_timeout(server):
    import websocket

    call = CallClient.connect(server)
    try:
        call.setup()
        started = time.monotonic()
        pings = 0
        call.ws.settimeout(IDLE_TIMEOUT + 5)
        while True:  # answer pings (websocket-client pongs by itself) but send nothing
            opcode, frame = call.ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_PING:
                pings += 1
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                break
        waited = time.monotonic() - started
    finally:
        call.close()
    assert pings >= 1  # VOICE_PING_INTERVAL=1
    assert waited >= IDLE_TIMEOUT - 0.5  # pings and pongs do not count as activity... but nothing before the timeout
    snap = finished_call(server, call.call_id)
    assert snap.outcome == "lost" and snap.end_reason == "idle timeout"


def test_error_frames_never_reach_the_log_of_other_calls(server):
    """Two calls at once keep their own state: one's bad frame and hangup do not touch the other."""
    a, b = CallClient.connect(server), CallClient.connect(server)
    try:
        a.setup()
        b.setup()
        a.send_raw("{")
        assert a.recv()["code"] == "bad_json"
        a.hangup()
        a.expect_closed()
        frames = b.ask(ANSWERED_QUESTION)
        assert frames[-1]["last"] is True
        assert finished_call(server, a.call_id).outcome == "hangup"
        assert eventually(lambda: call_snapshot(server, b.call_id)).outcome == "in_progress"
    finally:
        a.close()
        b.close()


def test_a_call_open_at_server_shutdown_is_finalized(live_server_factory):
    srv = live_server_factory(GUNICORN_GRACEFUL_TIMEOUT=1)
    call = CallClient.connect(srv)
    try:
        call.setup()
        call.ask(ANSWERED_QUESTION)
        srv.proc.send_signal(signal.SIGTERM)  # the call would outlive the graceful timeout
        assert call.expect_closed().code == 1001  # going away: the server ends it first
        assert srv.proc.wait(timeout=20) == 0
    finally:
        call.close()
    snap = call_snapshot(srv, call.call_id)
    assert snap.outcome == "lost" and snap.end_reason == "server shut down"
    assert [t.kind for t in snap.turns] == ["greeting", "speech", "answer"]


def test_server_log_has_no_tracebacks(server):
    """Last in the module: nothing above made the server raise."""
    assert "Traceback" not in server.log(), server.log()[-5000:]
