"""How the bench judges an answer: a KB quote must be in the text; a quoted table row by its cells."""
import json
import re
from types import SimpleNamespace

import pytest

from bench import retrieval as r


def test_a_plain_quote_must_be_there_whatever_its_case():
    assert r._hit(["Гарантия 24 месяца"], ["Срок: гарантия 24 месяца на всё."])
    assert not r._hit(["Гарантия 24 месяца"], ["Гарантия 12 месяцев."])


def test_a_table_row_is_held_by_its_cells_in_order():
    # Ingest reads a row as a sentence: the pipes of the KB's table never reach a passage.
    row = "Соляной туман NSS по ISO 9227, 96 часов | 11 000 ₽ | 5 рабочих дней"
    said = "Соляной туман NSS по ISO 9227, 96 часов: цена — 11 000 ₽, срок выполнения — 5 рабочих дней."
    assert r._hit([row], [said])
    assert not r._hit([row], ["Соляной туман NSS по ISO 9227, 96 часов: цена — 11 000 ₽."])  # a cell missing
    assert not r._hit(["11 000 ₽ | Соляной туман"], [said])  # cells out of order
    # A cell is whole words: level II is not level III, 64 000 ₽ is not 164 000 ₽; nothing quoted holds nothing.
    assert not r._hit(["(УК) | II | 80 часов | 64 000 ₽"], ["(УК), уровень III: 80 часов, 164 000 ₽"])
    assert r._hit(["(УК) | III | 80 часов | 164 000 ₽"], ["(УК), уровень III: 80 часов, 164 000 ₽"])
    assert not r._hit(["|"], [said])


def test_every_quote_of_the_other_kbs_sets_is_in_its_kb():
    """A quote that is not in the KB could never be hit: the set would count a right answer as wrong. A quote of
    a table row's cells («ШЦЦ-200 | 6 300 ₽») is in the KB when one of its lines holds them in order. The KB is
    read as ingest reads it: a tab or a run of spaces within a line is one space (a tab-separated table row)."""
    for kb, path in r.other_kb_sets():
        text = re.sub(r"[ \t]+", " ", kb.read_text(encoding="utf-8")).lower()
        rows = [row for row in text.splitlines() if "|" in row]
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            for turn in item.get("turns", [item]):
                for quote in turn.get("any_of", []):
                    q = quote.lower()
                    assert q in text or ("|" in q and any(r._holds(q, row) for row in rows)), (path.name, quote)


def test_the_speed_table_times_a_cold_pass_apart_from_the_warm_ones(monkeypatch):
    """One pass of eval_dev puts p95 on its third-slowest question; the warm figure pools four passes after it.
    The bench's clock is a fake one the engine advances: wall time on a shared machine would make this flaky."""
    now = [0.0]
    monkeypatch.setattr(r, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    questions = len(r.load_eval())

    class Engine:
        calls = 0

        def retrieve(self, question):
            Engine.calls += 1
            # the warm-up and the first pass take 5 ms each, the warm passes 1 ms
            now[0] += 0.005 if Engine.calls <= 1 + questions else 0.001

    timing = r.timed(Engine(), passes=2)
    assert Engine.calls == 1 + 3 * questions
    assert timing["p95_first"] == pytest.approx(5.0) and timing["p95"] == pytest.approx(1.0)
    assert timing["p50"] == pytest.approx(1.0)
