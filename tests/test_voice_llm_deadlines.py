"""The LLM's deadlines inside the gunicorn gevent worker, where the answer's greenlet reads the model's
stream itself (rag/answer.py, _GreenletReader: one timer per piece, not a reader greenlet and a queue).

A real WebSocket call against the live server, the real `openai` client against the local
OpenAI-compatible server (tests/support/openai_server.py) in its slow modes.
"""
import time

import pytest

from tests.support.live_server import serving
from tests.support.ws_client import set_up_call, text_of

DEADLINE = 1.0  # FIRST_SPEECH_DEADLINE here
STALL = 1.0  # LLM_STALL_TIMEOUT here
QUESTION = "во сколько вы открываетесь"  # the sample KB answers it (8:30), so the LLM is asked


def llm_server(tmp_path_factory, fake, name, **settings):
    """The live server asking the local model, its read timeout out of the way, the stall deadline STALL."""
    return serving(tmp_path_factory.mktemp(name), OPENAI_API_KEY="test-key", OPENAI_BASE_URL=fake.base_url,
                   LLM_FIRST_TOKEN_TIMEOUT=30, LLM_STALL_TIMEOUT=STALL, **settings)


@pytest.fixture(scope="module")
def server(tmp_path_factory, _fake_openai_server):
    with llm_server(tmp_path_factory, _fake_openai_server, "voice-llm-deadlines", LLM_TOTAL_TIMEOUT=6,
                    FIRST_SPEECH_DEADLINE=DEADLINE) as srv:
        yield srv


@pytest.fixture
def call(server):
    with set_up_call(server, timeout=15) as client:
        yield client


def ask_timed(call, question=QUESTION):
    """(the answer's frames, seconds to its first frame, seconds to its last)."""
    started = time.monotonic()
    frames = call.ask(question)
    first = call.times[len(call.received) - len(frames)]
    return frames, first - started, call.times[-1] - started


@pytest.mark.parametrize("mode", ["ping", "hang"])
def test_a_model_that_never_speaks_is_replaced_by_the_offline_answer_in_time(call, fake_openai, mode):
    fake_openai.mode = mode  # keep-alives only, or not a byte
    frames, first_s, _ = ask_timed(call)
    assert first_s < DEADLINE + 2.0  # not the read timeout (30 s here); a margin for a loaded machine
    assert "восьми тридцати" in text_of(frames)  # the offline answer (8:30), in speech form
    if mode == "ping":
        assert fake_openai.stream_closed.wait(5)  # the model's stream was given up


def test_a_stall_after_a_sentence_ends_with_the_phrase_not_a_stray_word(call, fake_openai):
    fake_openai.answer = "Мы работаем с понедельника по пятницу. А в субботу и воскресенье"
    fake_openai.stall_after = 8  # the first sentence, then « А в» and keep-alives only
    fake_openai.stall_seconds = 30
    frames, first_s, last_s = ask_timed(call)
    texts = [f["text"] for f in frames if f.get("text")]
    assert texts[0] == "Мы работаем с понедельника по пятницу."
    assert "ответ прервался" in texts[1] and "А в" not in text_of(frames)
    assert last_s - first_s < STALL + 2.0  # not the 30 s stall; a margin for a loaded machine


@pytest.fixture(scope="module")
def roomy_server(tmp_path_factory, _fake_openai_server):
    # The first sentence needs a few tokens: with the 1 s first-speech deadline of the tests above, a slow
    # machine speaks the offline answer instead. This test is about the stall deadline, not that one.
    with llm_server(tmp_path_factory, _fake_openai_server, "voice-llm-roomy", LLM_TOTAL_TIMEOUT=10,
                    FIRST_SPEECH_DEADLINE=3.0) as srv:
        yield srv


def test_words_keep_flowing_across_pieces_under_the_stall_deadline(roomy_server, fake_openai):
    # The whole answer takes longer than LLM_STALL_TIMEOUT from the first piece would allow if the timer
    # were never re-armed: the deadline moves with every spoken piece.
    fake_openai.answer = " ".join(f"Предложение номер {i} про часы работы." for i in range(1, 10))
    fake_openai.token_delay = 0.07  # ~7 tokens a sentence: a piece every ~0.5 s, the whole ~4.4 s
    with set_up_call(roomy_server, timeout=15) as call:
        frames, _, last_s = ask_timed(call)
    texts = [f["text"] for f in frames if f.get("text")]
    assert len(texts) == 9 and "прервался" not in text_of(frames)
    assert last_s > 3 * STALL  # longer than one stall deadline: it was re-armed piece by piece


@pytest.fixture(scope="module")
def paced_server(tmp_path_factory, _fake_openai_server):
    # Read at most every 1.5 s once a piece is spoken: longer than the stall deadline, so without the pace's
    # allowance every answer would be cut. The first sentence takes ~0.85 s to come: with the 1 s first-speech
    # deadline of the first tests, a slow machine spoke the offline answer instead (seen twice in CI) — this
    # test is about the stall deadline, not that one.
    with llm_server(tmp_path_factory, _fake_openai_server, "voice-llm-paced", LLM_TOTAL_TIMEOUT=10,
                    FIRST_SPEECH_DEADLINE=3.0, LLM_READ_PACE_MS=1500) as srv:
        yield srv


def test_the_read_pace_is_not_taken_for_the_models_silence(paced_server, fake_openai):
    """A model that speaks a sentence every ~0.85 s never falls silent for LLM_STALL_TIMEOUT (1 s); read at a
    1.5 s pace, its pieces reach the answer ~1.5 s apart. The stall deadline allows for the pace (1 + 1.5 s),
    so the whole answer is spoken, not cut short with the phrase."""
    fake_openai.answer = " ".join(f"Предложение номер {i} про часы работы." for i in range(1, 6))
    fake_openai.token_delay = 0.12
    with set_up_call(paced_server, timeout=15) as call:
        frames, _, _ = ask_timed(call)
    texts = [f["text"] for f in frames if f.get("text")]
    assert len(texts) == 5 and "прервался" not in text_of(frames)
