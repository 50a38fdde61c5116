"""The Call counters the call log's writer recomputes from the turns (voice/logcalls.py): the one-pass
row-value UPDATE of SQLite and PostgreSQL gives what the portable statement gives, NULLs included."""
from sqlalchemy import select, update

from metrotest_bot.extensions import db
from metrotest_bot.models import Call
from metrotest_bot.voice.logcalls import ROW_COUNTERS, counters_statement

from .support.admin_data import make_call

COUNTERS = (Call.n_turns, Call.n_interrupted, Call.n_unanswered, Call.first_piece_ms_sum, Call.first_piece_n)


def bot(**cols):
    return {"role": "bot", "text": "…", **cols}


CALLS = [
    [],  # no turns: zeros
    [("caller", "Алло")],
    [bot(answered=True, interrupted=True, first_piece_ms=310.5), bot(answered=False, interrupted=False),
     bot(answered=None, interrupted=True, first_piece_ms=120.0), ("caller", "Спасибо"),
     bot(answered=False, interrupted=True, first_piece_ms=None)],
]


def read(app, cids):
    with app.app_context():
        return [tuple(r) for r in db.session.execute(select(*COUNTERS).where(Call.id.in_(cids)).order_by(Call.id))]


def recount(app, cids, stmt, reset=None):
    with app.app_context():
        db.session.execute(update(Call).where(Call.id.in_(reset or cids)).values(
            n_turns=99, n_interrupted=99, n_unanswered=99, first_piece_ms_sum=99.0, first_piece_n=99))
        db.session.connection().execute(stmt, {"cids_": cids})
        db.session.commit()
    return read(app, cids)


def test_the_row_value_counters_are_those_of_the_portable_statement(app):
    cids = [make_call(app, turns=turns) for turns in CALLS]
    with app.app_context():
        assert counters_statement(db.engine.dialect.name) is ROW_COUNTERS  # what the writer runs here
    portable = recount(app, cids, counters_statement(""))
    assert portable == [(0, 0, 0, 0.0, 0), (1, 0, 0, 0.0, 0), (5, 3, 2, 430.5, 2)]
    assert recount(app, cids, ROW_COUNTERS) == portable
    assert recount(app, cids[1:2], ROW_COUNTERS, reset=cids) == portable[1:2]
    assert read(app, cids)[2] == (99, 99, 99, 99.0, 99)  # only the calls named are touched
