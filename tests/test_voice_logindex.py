"""The call log writer's transcript index (voice/logindex.py): an answer saved at every piece has
its words read once, from the last word of the text read before (issue #16), and none is lost: not
a word cut between two saves, not the words of a save whose indexing failed."""
import pytest

from metrotest_bot.extensions import db
from metrotest_bot.search import DateRange, get_index
from metrotest_bot.search.sql import SqlTranscriptIndex, TranscriptTerm
from metrotest_bot.search.lemmas import WORD_RE
from metrotest_bot.voice import logindex
from metrotest_bot.voice.calllog import BotTurn, CallLog


def start(app, vox) -> CallLog:
    log = CallLog(app)
    log.start(vox_call_id=vox, vox_session_id=None, caller="+79120000000", dialled="+73430000000")
    return log


def found(app, query) -> list[int]:
    with app.app_context():
        try:
            return get_index().search(query, DateRange(), 10, 0).call_ids
        finally:
            db.session.remove()


def lemmas(app, call_id) -> set[str]:
    with app.app_context():
        try:
            return set(db.session.scalars(db.select(TranscriptTerm.lemma).where(TranscriptTerm.call_id == call_id)))
        finally:
            db.session.remove()


@pytest.mark.parametrize("text", ["", "слово", "слово ", "два слова.", "пресс-фор", "пресс-", "a_b", "№ 5",
                                  "Ёлка", "цена: 920 000"])
def test_no_word_of_a_longer_text_straddles_the_last_word_start(text):
    cut = logindex.last_word_start(text)
    for tail in ("", "ма", "-2", " и ещё", ".", "x"):
        longer = text + tail
        assert all(not (m.start() < cut < m.end()) for m in WORD_RE.finditer(longer)), (text, tail)
        whole = [m.group() for m in WORD_RE.finditer(longer)]
        assert whole == [m.group() for m in WORD_RE.finditer(text[:cut])] + \
            [m.group() for m in WORD_RE.finditer(longer[cut:])]


def test_an_answer_saved_at_every_piece_is_read_once(app, monkeypatch):
    read = []
    real = logindex.said_words
    monkeypatch.setattr(logindex, "said_words", lambda text: read.append(len(text)) or real(text))
    log = start(app, "vox-grow")
    turn = BotTurn(kind="answer", answer_id="a", seq=log.next_seq(), text="Доставка беспл", answered=True)
    log.save_bot_turn(turn)
    assert log.flush()
    pieces = ["Доставка бесплатная.", "Пресс-форма стоит 920 000 рублей.", "Отгружаем за пять рабочих дней."]
    pieces += [f"Предложение номер {i} про гарантию и сервис." for i in range(30)]
    for i in range(2, len(pieces) + 1):  # the first save's cut word goes on in the second
        turn.text = " ".join(pieces[:i])
        log.save_bot_turn(turn)
        assert log.flush()
    # Each save read its new piece (and the word before it), not the whole answer again.
    assert sum(read) < 2 * len(turn.text), (sum(read), len(turn.text))
    for query in ("бесплатный", "пресс-форма", "отгружать", "рабочий", "гарантия", "сервис"):
        assert found(app, query) == [log.call_id], query
    assert {"бесплатный", "пресс-форма", "рубль", "гарантия"} <= lemmas(app, log.call_id)


def test_the_words_of_a_save_not_indexed_are_read_again_with_the_next(app, monkeypatch):
    log = start(app, "vox-retry")
    turn = BotTurn(kind="answer", answer_id="a", seq=log.next_seq(), text="Доставка бесплатная.", answered=True)
    log.save_bot_turn(turn)
    assert log.flush()
    real = SqlTranscriptIndex.index_turns
    failing = [True]

    def index_turns(self, session, turns):
        if failing.pop() if failing else False:
            raise RuntimeError("index down")
        return real(self, session, turns)

    monkeypatch.setattr(SqlTranscriptIndex, "index_turns", index_turns)
    turn.text += " Отгружаем за пять рабочих дней."
    log.save_bot_turn(turn)
    assert log.flush()
    assert found(app, "отгружать") == []  # the turn is logged; its new words are not indexed
    turn.text += " Гарантия два года."
    log.save_bot_turn(turn)
    assert log.flush()
    for query in ("отгружать", "рабочий", "гарантия", "доставка"):
        assert found(app, query) == [log.call_id], query
