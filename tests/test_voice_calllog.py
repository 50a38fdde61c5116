"""voice.calllog: turns committed one by one, counters kept in step, a database hiccup survived."""
import pytest
from flask_sqlalchemy.session import Session
from sqlalchemy.exc import OperationalError

from metrotest_bot.extensions import db
from metrotest_bot.models import Call, Turn
from metrotest_bot.voice import calllog
from metrotest_bot.voice.calllog import BotTurn, CallLog


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(calllog, "RETRY_DELAY_S", 0)


def start(app) -> CallLog:
    log = CallLog(app)
    log.start(vox_call_id="vox-1", vox_session_id=None, caller="+79120000000", dialled="+73430000000")
    return log


def read_call(app, call_id):
    with app.app_context():
        call = db.session.get(Call, call_id)
        return call, list(call.turns)


class FlakyCommit:
    """Makes the next `failures` commits of the app's session fail like a dropped database connection."""

    def __init__(self, monkeypatch, failures):
        self.failures = failures
        self.calls = 0
        real_commit = Session.commit

        def commit(session):
            self.calls += 1
            if self.failures > 0:
                self.failures -= 1
                raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
            return real_commit(session)

        monkeypatch.setattr(Session, "commit", commit)


def test_turns_and_counters(app):
    log = start(app)
    log.caller_turn("Сколько стоит доставка?", confidence=0.9, seq=log.next_seq())
    turn = BotTurn(kind="answer", answer_id="a1", question="Сколько стоит доставка?", seq=log.next_seq(),
                   text="Доставка бесплатная.", planned_text="Доставка бесплатная.", answered=True,
                   source="offline", first_piece_ms=120.0)
    log.save_bot_turn(turn)
    assert turn.turn_id is not None
    # The same turn, updated at its end: interrupted now; counted once, not twice.
    turn.interrupted, turn.spoken_text, turn.total_ms = True, "Доставка", 900.0
    log.save_bot_turn(turn)
    refusal = BotTurn(kind="answer", answer_id="a2", seq=log.next_seq(), answered=False, source="refusal",
                      first_piece_ms=80.0)
    log.save_bot_turn(refusal)
    log.set_recording("https://rec.example/1.mp3")
    log.finish("hangup", reason="caller hung up")

    call, turns = read_call(app, log.call_id)
    assert [(t.seq, t.role, t.kind) for t in turns] == [(1, "caller", "speech"), (2, "bot", "answer"),
                                                          (3, "bot", "answer")]
    assert turns[1].interrupted is True and turns[1].spoken_text == "Доставка" and turns[1].total_ms == 900.0
    assert (call.n_turns, call.n_interrupted, call.n_unanswered, call.first_piece_n) == (3, 1, 1, 2)
    assert call.first_piece_ms_sum == pytest.approx(200.0)
    assert call.outcome == "hangup" and call.recording_url == "https://rec.example/1.mp3"
    assert call.ended_at is not None and call.duration_s >= 0


def test_a_failed_commit_is_retried_once(app, monkeypatch):
    log = start(app)
    flaky = FlakyCommit(monkeypatch, failures=1)
    log.caller_turn("Алло", seq=log.next_seq())
    assert flaky.calls == 2
    call, turns = read_call(app, log.call_id)
    assert [t.text for t in turns] == ["Алло"] and call.n_turns == 1


def test_a_database_outage_loses_the_row_but_not_the_call(app, monkeypatch):
    log = start(app)
    flaky = FlakyCommit(monkeypatch, failures=2)
    log.caller_turn("Алло", seq=log.next_seq())  # both attempts fail: logged, not raised
    assert flaky.calls == 2
    log.caller_turn("Вы меня слышите?", seq=log.next_seq())  # the database is back
    call, turns = read_call(app, log.call_id)
    assert [t.text for t in turns] == ["Вы меня слышите?"] and call.n_turns == 1


def test_the_call_row_is_created_later_when_setup_could_not_write_it(app, monkeypatch):
    flaky = FlakyCommit(monkeypatch, failures=2)
    log = start(app)
    assert log.call_id is None and flaky.calls == 2
    log.caller_turn("Алло", seq=log.next_seq())
    assert log.call_id is not None
    call, turns = read_call(app, log.call_id)
    assert call.vox_call_id == "vox-1" and [t.text for t in turns] == ["Алло"]
    with app.app_context():
        assert db.session.query(Call).count() == 1 and db.session.query(Turn).count() == 1


def test_a_bot_turn_whose_insert_failed_is_inserted_at_its_update(app, monkeypatch):
    log = start(app)
    flaky = FlakyCommit(monkeypatch, failures=2)
    turn = BotTurn(kind="answer", answer_id="a1", seq=log.next_seq(), text="Первое.", answered=True)
    log.save_bot_turn(turn)
    assert turn.turn_id is None and flaky.calls == 2
    turn.text = "Первое. Второе."
    log.save_bot_turn(turn)
    call, turns = read_call(app, log.call_id)
    assert [t.text for t in turns] == ["Первое. Второе."] and call.n_turns == 1


def test_turns_written_with_core_statements_are_in_the_transcript_index(app):
    from metrotest_bot.search import DateRange, get_index

    log = start(app)
    log.caller_turn("Сколько стоит доставка в Казань?", seq=log.next_seq())
    turn = BotTurn(kind="answer", answer_id="a1", seq=log.next_seq(), text="Доставка бесплатная.", answered=True)
    log.save_bot_turn(turn)
    turn.text = "Доставка бесплатная. Отгружаем за пять рабочих дней."  # words only the update brings
    log.save_bot_turn(turn)
    with app.app_context():
        index = get_index()
        for query in ("казани", "доставку", "отгружать", "рабочий"):
            assert index.search(query, DateRange(), 10, 0).call_ids == [log.call_id], query
        assert index.search("погода", DateRange(), 10, 0).call_ids == []
