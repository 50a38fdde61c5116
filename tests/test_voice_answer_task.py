"""Barge-in without a socket: a real CallSession, its answer state machine, sender and recorder, a real
call log on the test database (SQLite, or PostgreSQL with TEST_DATABASE_URL), frames collected by
a list instead of a WebSocket.

The answer engine's stream is scripted here (ScriptedStream): in this process gevent does not patch
threads or sockets, so the real LLM stream would block the hub and no barge-in could land in the
middle of it. The scripted stream waits on a gevent queue, so each state of an answer (waiting for
the model, speaking a piece, all sent) is reached on purpose. The same barge-ins against the real
engine, `openai` client and socket are in tests/test_voice_streaming.py.
"""
import json

import gevent
import gevent.queue
import pytest
from sqlalchemy import select

from metrotest_bot.extensions import db
from metrotest_bot.models import Call
from metrotest_bot.rag.speech import speech_form
from metrotest_bot.rag.types import Timings
from metrotest_bot.voice import answer_task
from metrotest_bot.voice.answer_task import State
from metrotest_bot.voice.logwriter import writer_for
from metrotest_bot.voice.sender import FrameSender
from metrotest_bot.voice.session import CallSession
from tests.support.apps import dispose, make_app

OPERATOR = "+73430001210"
QUESTION = "Сколько стоит доставка?"
PIECES = ["Доставка по городу стоит 500 рублей.", "По области 1200 рублей.", "Срок два дня."]
HEARD = speech_form(PIECES[0])  # the scenario reports what it played, in speech form


class ListOutlet:
    """Where the frames go instead of a socket."""

    def __init__(self):
        self.frames: list[dict] = []

    def put(self, frame: str) -> bool:
        self.frames.append(json.loads(frame))
        return True

    def of(self, answer_id: str) -> list[dict]:
        return [f for f in self.frames if f.get("answerId") == answer_id]


class ScriptedStream:
    """An answer stream (rag/types.AnswerStream) whose pieces the test hands over one by one."""

    _END = object()

    def __init__(self):
        self.answered, self.source, self.passages, self.query = True, "llm", [], None
        self.planned_text = ""
        self.timings = Timings(retrieval_ms=1.0)
        self.closed = False
        self._queue = gevent.queue.Queue()

    def say(self, *pieces):
        """Pieces for the answer to take; an exception is raised where it takes it."""
        for piece in pieces:
            self._queue.put(piece)

    def end(self):
        self._queue.put(self._END)

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is self._END or self.closed:
                return
            if isinstance(item, Exception):
                raise item
            self.planned_text = f"{self.planned_text} {item}".strip()
            yield item

    def close(self):
        self.closed = True
        self._queue.put(self._END)


class ScriptedEngine:
    def __init__(self):
        self.streams: list[ScriptedStream] = []
        self.questions: list[str] = []

    def answer(self, question, settings, caller=None, dialogue=None):
        self.questions.append(question)
        stream = ScriptedStream()
        self.streams.append(stream)
        return stream


def settle(until, rounds: int = 200):
    """Let the answer greenlets run until `until()` holds."""
    for _ in range(rounds):
        if until():
            return
        gevent.sleep(0.001)
    raise AssertionError("the answer did not get there")


@pytest.fixture
def operator():
    return OPERATOR


@pytest.fixture
def app(tmp_path, database_url, operator):
    app = make_app(tmp_path / "data", database_url, OPERATOR_PHONE=operator)
    yield app
    dispose(app)


@pytest.fixture
def call(app):
    outlet, engine = ListOutlet(), ScriptedEngine()
    session = CallSession(None, app, outlet=outlet, engine=engine)
    session.handle(json.dumps({"type": "setup", "callId": "unit-1", "from": "+79120000000", "to": "+73430000000"}))
    assert outlet.frames[-1]["answerId"] == "greeting" and outlet.frames[-1]["last"] is True
    yield session
    session.end("lost", "test over")


def send(session, **frame):
    session.handle(json.dumps(frame, ensure_ascii=False))


def ask(session, text=QUESTION) -> tuple[answer_task.AnswerTask, ScriptedStream]:
    send(session, type="prompt", text=text, last=True)
    task = session.current
    settle(lambda: task.state is State.WAITING)
    return task, session.engine.streams[-1]


def turn_of(app, answer_id):
    """The bot turn of that answer: (answer_id, text, spoken, planned_text, interrupted)."""
    _, turns = turns_of(app)
    [turn] = [t for t in turns if t[2] == answer_id]
    return turn[2:]


def turns_of(app):
    assert writer_for(app).flush()  # the call log's writer commits within CALLLOG_FLUSH_MS: wait for it
    with app.app_context():
        call = db.session.execute(select(Call)).scalar_one()
        turns = sorted(call.turns, key=lambda t: t.seq)
        out = (call, [(t.role, t.kind, t.answer_id, t.text, t.spoken, t.planned_text, t.interrupted) for t in turns])
        db.session.remove()
    return out


def test_an_interrupt_mid_stream_kills_the_waiting_answer_and_logs_what_was_heard(call, app):
    task, stream = ask(call)
    stream.say(PIECES[0], PIECES[1])
    settle(lambda: len(call.outlet.of(task.id)) == 2 and task.state is State.WAITING)

    send(call, type="interrupt", answerId=task.id, utteranceUntilInterrupt=HEARD, durationUntilInterruptMs=900)

    assert task.state is State.FINISHED and stream.closed
    assert isinstance(task.greenlet.value, gevent.GreenletExit)  # killed where it waited on the model
    stream.say(PIECES[2])
    gevent.sleep(0.01)
    sent = call.outlet.of(task.id)
    assert [(f["seq"], f["text"], f["last"]) for f in sent] == [(0, HEARD, False), (1, speech_form(PIECES[1]), False)]
    assert call.current is None
    row, turns = turns_of(app)
    assert turns[-2:] == [("caller", "speech", None, QUESTION, None, None, False),
                          ("bot", "answer", task.id, PIECES[0], HEARD, f"{PIECES[0]} {PIECES[1]}", True)]
    assert row.n_interrupted == 1


def test_a_new_prompt_cuts_the_answer_before_the_next_one_starts(call, app):
    first, first_stream = ask(call)
    first_stream.say(PIECES[0])
    settle(lambda: len(call.outlet.of(first.id)) == 1)

    second, second_stream = ask(call, "А по области?")

    assert first.state is State.FINISHED and first_stream.closed and second.id != first.id
    assert call.current is second
    first_stream.say(PIECES[1])
    second_stream.say(PIECES[1])
    second_stream.end()
    settle(lambda: second.state is State.FINISHED)
    assert [f["seq"] for f in call.outlet.of(first.id)] == [0]  # nothing of it after the cut
    assert [(f["seq"], f["last"]) for f in call.outlet.of(second.id)] == [(0, False), (1, True)]
    _, turns = turns_of(app)
    assert [(t[0], t[1], t[2], t[3], t[6]) for t in turns[1:]] == [
        ("caller", "speech", None, QUESTION, False), ("bot", "answer", first.id, PIECES[0], True),
        ("caller", "speech", None, "А по области?", False), ("bot", "answer", second.id, PIECES[1], False)]


def test_a_cut_during_a_log_write_closes_the_stream_and_never_kills(call, app):
    """The first piece's log write waits for the question's: the answer is SPEAKING, inside the log."""
    task = call.start_answer(QUESTION, received_at=0.0)  # its question is not written yet
    settle(lambda: task.state is State.WAITING)
    call.engine.streams[-1].say(PIECES[0])
    settle(lambda: task.state is State.SPEAKING)

    call.stop_answer(heard=HEARD)
    assert task.state is State.CUT and call.engine.streams[-1].closed
    with call.recorder.question_first(task.record):
        call.recorder.caller_said(QUESTION, None, call.recorder.next_seq())
    settle(lambda: task.state is State.FINISHED)

    assert not isinstance(task.greenlet.value, gevent.GreenletExit)  # it ran to its end
    assert turn_of(app, task.id) == (task.id, PIECES[0], HEARD, PIECES[0], True)


def test_an_interrupt_after_the_answer_was_all_sent_marks_the_finished_turn(call, app):
    task, stream = ask(call)
    stream.say(*PIECES)
    stream.end()
    settle(lambda: task.state is State.FINISHED)
    assert call.outlet.of(task.id)[-1] == {"type": "text", "answerId": task.id, "seq": 3, "text": "",
                                                  "last": True}

    send(call, type="interrupt", answerId=task.id, utteranceUntilInterrupt=HEARD)

    assert turn_of(app, task.id) == (task.id, PIECES[0], HEARD, " ".join(PIECES), True)
    assert turns_of(app)[0].n_interrupted == 1


@pytest.mark.parametrize("operator", [OPERATOR, ""], ids=["operator", "no-operator"])
def test_an_engine_failure_before_a_word_is_never_silence(call, app, operator):
    task, stream = ask(call)
    stream.say(RuntimeError("the engine broke"))
    settle(lambda: task.state is State.FINISHED)
    phrases = call.phrasebook().settings
    if operator:  # a person takes over
        assert call.outlet.frames[-1] == {"type": "transfer", "to": OPERATOR,
                                                 "text": speech_form(phrases.error_phrase)}
        assert call.outlet.of(task.id) == [] and call.outcome == "transferred"
    else:  # how to reach the office, as the answer's end
        sent = call.outlet.of(task.id)
        assert " ".join(f["text"] for f in sent) == speech_form(phrases.no_operator_phrase)
        assert [f["last"] for f in sent] == [False] * (len(sent) - 1) + [True]
    _, turns = turns_of(app)
    assert turns[-1][:2] == (("bot", "transfer") if operator else ("bot", "answer"))


def test_the_sender_numbers_each_answer_and_closes_one_for_good():
    outlet = ListOutlet()
    sender = FrameSender(outlet)
    a, b = sender.answer(), sender.answer("greeting")
    assert a.piece("раз") and b.piece("два") and a.piece("три", last=True)
    b.close()
    assert not b.piece("четыре")
    assert [(f["answerId"], f["seq"]) for f in outlet.frames] == [(a.id, 0), ("greeting", 0), (a.id, 1)]
    assert b.whole(["пять", "шесть"]) == 0
    sender.stop()
    assert not sender.error("bad", "message") and len(outlet.frames) == 3


def test_only_the_transitions_in_the_table_are_taken():
    task = answer_task.AnswerTask.__new__(answer_task.AnswerTask)
    task.id, task.state = "x", State.FINISHED
    with pytest.raises(answer_task.IllegalTransition):
        task._move(State.CUT)
    # Every state can end, and none comes back from an end.
    for state, nexts in answer_task.TRANSITIONS.items():
        assert state is State.FINISHED or nexts & {State.FINISHED, State.CUT, State.DELIVERED}
    assert all(State.PLANNED not in nexts for nexts in answer_task.TRANSITIONS.values())


def test_the_voice_modules_import_one_way():
    """Inside voice/: the session drives answers, answers use the sender, recorder and phrases, and
    none of these reaches back up (the layers of tests/test_architecture.py, one package down)."""
    from tests.test_architecture import import_graph

    order = ["frames", "limits", "intents", "caller", "calllog", "sender", "phrases", "recorder", "answer_task",
             "session", "routes"]
    graph = import_graph()
    back = sorted(f"{m} -> {t}" for m, targets in graph.items() if m.startswith("metrotest_bot.voice.")
                  for t in targets if t.startswith("metrotest_bot.voice.")
                  and m.rsplit(".", 1)[1] in order and t.rsplit(".", 1)[1] in order
                  and order.index(t.rsplit(".", 1)[1]) >= order.index(m.rsplit(".", 1)[1]))
    assert back == []
    assert "metrotest_bot.voice.calllog" not in graph["metrotest_bot.voice.session"]  # the recorder's alone
    assert "metrotest_bot.voice.calllog" not in graph["metrotest_bot.voice.answer_task"]


def test_an_interrupt_while_the_finished_answer_is_being_logged_marks_it(call, app, monkeypatch):
    """The answer is all sent; its final log write is slow (a busy database). The caller barges in then,
    while the speech still plays: the interrupt names a known answer, never `unknown_answer`."""
    import gevent.event

    slow = gevent.event.Event()
    save = call.recorder.log.save_bot_turn

    def slow_final_save(turn):
        if turn.total_ms is not None:  # the answer's final write
            slow.wait(5)
        return save(turn)

    monkeypatch.setattr(call.recorder.log, "save_bot_turn", slow_final_save)
    task, stream = ask(call)
    stream.say(*PIECES)
    stream.end()
    settle(lambda: call.outlet.of(task.id) and call.outlet.of(task.id)[-1]["last"])

    send(call, type="interrupt", answerId=task.id, utteranceUntilInterrupt=HEARD)
    slow.set()
    settle(lambda: task.state is State.FINISHED)

    assert not [f for f in call.outlet.frames if f.get("type") == "error"]
    assert turn_of(app, task.id) == (task.id, PIECES[0], HEARD, " ".join(PIECES), True)
