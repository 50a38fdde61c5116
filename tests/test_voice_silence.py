"""Silence is the server's: a `silence` frame gets the panel's reprompt, the next one its goodbye and `end`."""
import pytest

from metrotest_bot.bot_settings import BotSettings, save_bot_settings
from metrotest_bot.rag.speakable import split_text
from metrotest_bot.rag.speech import speech_form
from tests.support.call_log import finished_call
from tests.support.live_server import serving
from tests.support.ws_client import set_up_call

REPROMPT = "Алло, вы на связи? Спросите, пожалуйста, что вас интересует."
GOODBYE = "Не слышу вас. Всего доброго, до свидания."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("voice-silence"), SHARED_STATE_TTL=0, GUNICORN_GRACEFUL_TIMEOUT=3) as srv:
        with srv.app.app_context():
            save_bot_settings({**BotSettings().to_dict(), "reprompt": REPROMPT, "goodbye": GOODBYE}, "test")
        yield srv


@pytest.fixture
def call(server):
    with set_up_call(server, timeout=20) as client:
        yield client


def _reprompt_frames(call):
    frames = call.recv_until(lambda f: f["type"] == "text" and f["last"])
    assert [f["text"] for f in frames] == [speech_form(p) for p in split_text(REPROMPT)]
    assert len({f["answerId"] for f in frames}) == 1 and frames[0]["answerId"] != "greeting"
    return frames


def test_silence_gets_the_reprompt_then_the_goodbye_and_end(server, call):
    call.send({"type": "silence", "durationMs": 10000})
    _reprompt_frames(call)
    call.send({"type": "silence", "durationMs": 10000})
    end = call.recv_until(lambda f: f["type"] == "end")[-1]
    assert end == {"type": "end", "reason": "silence", "text": GOODBYE}
    call.hangup("silence")  # the scenario says the goodbye, hangs up and reports why
    snap = finished_call(server, call.call_id)
    assert (snap.outcome, snap.end_reason) == ("completed", "silence")
    assert [(t.kind, t.text) for t in snap.turns if t.role == "bot"][1:] == [("reprompt", REPROMPT),
                                                                             ("goodbye", GOODBYE)]


def test_the_caller_speaking_resets_the_count(server, call):
    call.send({"type": "silence"})
    _reprompt_frames(call)
    call.ask("Сколько стоит доставка?", timeout=20)
    call.send({"type": "silence"})
    _reprompt_frames(call)  # a reprompt again, not the goodbye
    call.dtmf("5")
    call.send({"type": "silence"})
    _reprompt_frames(call)


def test_a_barge_in_over_the_reprompt_is_logged_on_it(server, call):
    call.send({"type": "silence"})
    first = _reprompt_frames(call)[0]
    call.interrupt(first["answerId"], first["text"])
    call.hangup()
    snap = finished_call(server, call.call_id)  # turns are written before the hangup is handled
    reprompt = next(t for t in snap.turns if t.kind == "reprompt")
    assert reprompt.interrupted and snap.n_interrupted == 1
    assert reprompt.text == split_text(REPROMPT)[0] and reprompt.spoken == first["text"]


def test_a_bad_silence_frame_is_an_error_and_changes_nothing(server, call):
    call.send({"type": "silence", "durationMs": -5})
    error = call.recv_until(lambda f: f["type"] == "error")[-1]
    assert error["code"] == "bad_field"
    call.send({"type": "silence"})
    _reprompt_frames(call)  # still the first silence of the call
