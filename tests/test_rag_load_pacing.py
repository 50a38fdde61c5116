"""A KB loaded aside gives way to the questions answered meanwhile (issue #16: on a big KB several
calls' questions queued behind each other for ~0.4 s while the load took half the CPU), for a
bounded time, and a load on the question's own thread never waits for itself.
`python -m bench bigkb` measures the effect on other calls' round trips."""
import threading

import pytest

from metrotest_bot.rag import pacing
from metrotest_bot.rag.engine import collector_paused


@pytest.fixture
def pauses(monkeypatch):
    """Each pause of a load (one poll of its wait), counted; `waiting` is set at the first."""
    real = pacing._real_sleep()
    record = {"n": 0, "waiting": threading.Event()}

    def sleep(seconds):
        record["n"] += 1
        record["waiting"].set()
        real(seconds)

    monkeypatch.setattr(pacing, "_real_sleep", lambda: sleep)
    return record


def _load_aside(items: int, seen: list) -> threading.Thread:
    """A loading loop in a thread of its own (as engine loads a KB aside), noting each item it passed."""
    def load():
        for i in range(items):
            pacing.give_way(i)
            seen.append(i)

    thread = threading.Thread(target=collector_paused, args=(load,))
    thread.start()
    return thread


def test_a_load_aside_pauses_while_a_question_is_answered(pauses, monkeypatch):
    monkeypatch.setattr(pacing, "WAIT_S", 30.0)  # no check gives up within this test
    seen: list = []
    with pacing.question():
        thread = _load_aside(pacing.STEP * 20, seen)
        assert pauses["waiting"].wait(10)
        assert seen == []  # waiting at its first item while the question is answered
    thread.join(10)
    assert seen == list(range(pacing.STEP * 20))  # and on once it was answered


def test_the_pauses_are_bounded_so_a_load_always_goes_on(pauses, monkeypatch):
    monkeypatch.setattr(pacing, "WAIT_S", 0.01)
    monkeypatch.setattr(pacing, "PAUSE_BUDGET_S", 0.1)
    seen: list = []
    with pacing.question():  # questions never stop: a busy worker still gets its KB switched
        thread = _load_aside(pacing.STEP * 1000, seen)
        thread.join(30)
        assert not thread.is_alive() and len(seen) == pacing.STEP * 1000
    # Each check waited at most WAIT_S, and once PAUSE_BUDGET_S was spent the load no longer paused.
    assert 0 < pauses["n"] <= 0.1 / 0.001 + 1000 // 100


def test_a_load_with_no_question_in_flight_does_not_pause(pauses):
    seen: list = []
    _load_aside(pacing.STEP * 20, seen).join(10)
    assert len(seen) == pacing.STEP * 20 and pauses["n"] == 0


def test_a_load_on_the_questions_own_thread_never_waits_for_itself(pauses):
    with pacing.question():
        for i in range(pacing.STEP * 20):
            pacing.give_way(i)  # not marked aside: the first question's own load, say
    assert pauses["n"] == 0


def test_a_load_aside_gives_way_even_with_the_collector_already_paused(pauses, monkeypatch):
    """Two loads aside at once (a rollback while a version loads): the second finds the collector
    paused by the first and must give way all the same."""
    import gc

    monkeypatch.setattr(pacing, "WAIT_S", 30.0)
    gc.disable()
    try:
        seen: list = []
        with pacing.question():
            thread = _load_aside(pacing.STEP, seen)
            assert pauses["waiting"].wait(10) and seen == []
        thread.join(10)
    finally:
        gc.enable()


def test_a_question_is_marked_while_it_is_retrieved(monkeypatch, tmp_path, database_url):
    from metrotest_bot.rag import engine as engine_module, get_engine
    from tests.support.apps import dispose, make_app

    app = make_app(tmp_path, database_url)
    try:
        with app.app_context():
            engine = get_engine()
            engine.passage_count()
            real, asking = engine_module.find, []

            def find(*args):
                asking.append(pacing._asking)
                return real(*args)

            monkeypatch.setattr(engine_module, "find", find)
            engine.search("сколько стоит доставка")
            assert asking == [1] and pacing._asking == 0
    finally:
        dispose(app)
