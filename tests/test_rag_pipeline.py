"""The retrieval path that hands outputs on without copies gives what Haystack's Pipeline.run() gives."""
import json
from pathlib import Path

import pytest

from metrotest_bot.rag import get_engine
from metrotest_bot.rag.pipeline import run_haystack, run_pipeline

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "kb"
QUESTIONS = ["во сколько вы открываетесь", "почём пресс на двести тонн", "какая гарантия на оборудование",
             "можно заказать пиццу", "расскажите о компании", "сколько весит пресс ПИ-2000", "а сколько она стоит"]


def questions():
    path = SHARED / "eval_dev.jsonl"
    extra = [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines()] \
        if path.exists() else []
    return QUESTIONS + extra


def test_direct_path_equals_pipeline_run(app):
    with app.app_context():
        pipe = get_engine().current().pipeline
        previous = None
        for question in questions():
            a, b = run_pipeline(pipe, question, previous), run_haystack(pipe, question, previous)
            assert [(d.id, d.score, d.meta.get("coverage")) for d in a.documents] == \
                   [(d.id, d.score, d.meta.get("coverage")) for d in b.documents], question
            assert (a.answered, a.off_topic, a.probability) == (b.answered, b.off_topic, b.probability), question
            assert a.query == b.query, question
            previous = a.query  # follow-ups too
