"""A KB loaded aside gives way to the questions answered meanwhile (issue #16: on a big KB several
calls' questions queued behind each other for ~0.4 s while the load took half the CPU), for a
bounded time, and a load on the question's own thread never waits for itself.
`python -m bench bigkb` measures the effect on other calls' round trips."""
import threading
import time

from metrotest_bot.rag import pacing
from metrotest_bot.rag.engine import collector_paused


def _load_aside(items: int, seen: list):
    """A loading loop in a thread of its own, noting when it passed each item."""
    def load():
        for i in range(items):
            pacing.give_way(i)
            seen.append((i, time.monotonic()))

    thread = threading.Thread(target=collector_paused, args=(load,))
    thread.start()
    return thread


def test_a_load_aside_pauses_while_a_question_is_answered():
    seen: list = []
    with pacing.question():
        thread = _load_aside(pacing.STEP * 20, seen)
        time.sleep(0.03)
        answered_at = time.monotonic()
    thread.join(5)
    assert len(seen) == pacing.STEP * 20  # it went on once the question was answered
    assert all(at >= answered_at for i, at in seen)  # and did nothing meanwhile: it waited at its first item


def test_the_pause_is_bounded_so_a_load_always_goes_on():
    seen: list = []
    with pacing.question():
        thread = _load_aside(pacing.STEP * 200, seen)
        time.sleep(10 * pacing.WAIT_S)
        during = len(seen)
    thread.join(10)
    # ~one step per WAIT_S while questions never stop (a busy worker still gets its KB switched).
    assert pacing.STEP * 3 <= during < pacing.STEP * 200


def test_a_load_with_no_question_in_flight_does_not_wait():
    seen: list = []
    started = time.monotonic()
    _load_aside(pacing.STEP * 20, seen).join(5)
    assert len(seen) == pacing.STEP * 20 and time.monotonic() - started < pacing.WAIT_S


def test_a_load_on_the_questions_own_thread_never_waits_for_itself():
    started = time.monotonic()
    with pacing.question():
        for i in range(pacing.STEP * 20):
            pacing.give_way(i)  # not marked aside: the first question's own load, say
    assert time.monotonic() - started < pacing.WAIT_S


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
