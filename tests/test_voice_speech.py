"""The speech form over the call WebSocket, on the demo KB: the caller hears words, the log keeps both."""
import html as html_lib
import re

import pytest

from metrotest_bot.rag.speech import speech_form
from tests.support.admin_data import make_admin, sign_in
from tests.support.apps import SHARED_KB
from tests.support.call_log import call_snapshot, eventually
from tests.support.live_server import serving
from tests.support.ws_client import CallClient

# (question, what the spoken answer must say, the written shorthand it must not carry)
QUESTIONS = [
    ("Какой у вас адрес?", ["город Екатеринбург", "улица Испытателей", "дом двенадцать"], ["г.", "ул.", "д. 12", "12"]),
    ("Какой телефон сервисного отдела?", ["плюс семь, три четыре три, ноль ноль ноль, двенадцать, двадцать"],
     ["+7", "(343)", "000-12-20"]),
    ("Какой бесплатный номер?", ["восемь, восемьсот, ноль ноль ноль, двенадцать, двенадцать"], ["8 800", "000-12-12"]),
    ("На какую почту писать в сервис?", ["service собака metrotest точка example"], ["@", ".example"]),
    ("На какую нагрузку пресс ПИ-2000?", ["пэ и две тысячи", "две тысячи килоньютонов"], ["кН", "ПИ-", "2000"]),
    ("Сколько весит портативный твердомер?", ["четыреста пятьдесят граммов", "до двенадцати часов"], ["450", "12"]),
    ("Сколько стоит пресс ПИ-500?", ["от шестисот сорока тысяч рублей", "эн дэ эс"], ["640 000", "НДС"]),
    ("Сколько стоит УИМ-50?", ["от двух миллионов четырёхсот тысяч рублей"], ["2 400 000", "УИМ"]),
    ("До скольки вы работаете по московскому времени?",
     ["до семнадцати тридцати", "по московскому времени плюс два часа"], ["МСК", "17:30", "(", "+"]),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not SHARED_KB.exists():
        pytest.skip(f"{SHARED_KB} is not here (the demo KB lives in ../shared)")
    # Nine questions asked back to back, faster than anyone speaks: the per-socket prompt rate is off here.
    with serving(tmp_path_factory.mktemp("voice-speech"), KB_PATH=SHARED_KB, GUNICORN_GRACEFUL_TIMEOUT=3,
                 VOICE_MAX_PROMPTS_PER_SECOND=0) as srv:
        yield srv


@pytest.fixture(scope="module")
def answers(server):
    """Every question asked in one call: {question: (frames, call id)}."""
    call = CallClient.connect(server, timeout=30)
    try:
        call.setup()
        out = {q: call.ask(q) for q, _, _ in QUESTIONS}
        call.hangup()
    finally:
        call.close()
    return out, call.call_id


@pytest.mark.parametrize("question, says, never", QUESTIONS, ids=[q for q, _, _ in QUESTIONS])
def test_the_caller_hears_words_not_written_shorthand(answers, question, says, never):
    frames = answers[0][question]
    pieces = [f["text"] for f in frames if f["type"] == "text" and f["text"]]
    spoken = " ".join(pieces)
    for phrase in says:
        # Whole within one piece: a cut never falls inside a number or a phone group.
        assert any(phrase in p for p in pieces), (phrase, pieces)
    for shorthand in never:
        assert shorthand not in spoken, (shorthand, spoken)
    assert not re.search(r"\d", spoken), spoken


def test_the_log_keeps_the_written_answer_and_what_tts_read(server, answers):
    by_question, call_id = answers

    def answered():
        snap = call_snapshot(server, call_id)
        bots = [t for t in (snap.turns if snap else []) if t.kind == "answer" and t.total_ms is not None]
        return bots if len(bots) == len(QUESTIONS) else None

    turns = {t.question: t for t in eventually(answered)}
    for question, _, _ in QUESTIONS:
        turn = turns[question]
        frames = by_question[question]
        assert turn.spoken == " ".join(f["text"] for f in frames if f["text"])
        assert turn.text == turn.planned_text and speech_form(turn.text) == turn.spoken
    address = turns["Какой у вас адрес?"]
    assert "ул. Испытателей, д. 12" in address.text and "улица Испытателей, дом двенадцать" in address.spoken


def test_the_call_page_shows_the_written_form_with_the_spoken_one_on_hover(server, answers):
    _, vox_call_id = answers
    make_admin(server.app)
    client = server.app.test_client()
    sign_in(client)
    call_id = call_snapshot(server, vox_call_id).id
    page = html_lib.unescape(client.get(f"/logs-ui/calls/{call_id}").get_data(as_text=True))
    assert "ул. Испытателей, д. 12" in page  # the written form is the text
    assert re.search(r'title="Синтезатор прочитал: [^"]*улица Испытателей, дом двенадцать', page)
    assert "Как прочитал синтезатор" in page
