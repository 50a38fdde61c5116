"""The offline answer's sentence model, learned: which sentence of the top passages holds the expected fact.

Part of `python -m bench train-gate`, after the ranker (the sentences are those of the passages it puts
first). For every labelled answerable question whose top three passages hold the fact in some sentence,
each of their sentences is a row (rag/sentences.py's features) labelled by whether it holds the fact; a
pairwise logistic model fits them (as the ranker's). Cross-validated with the gate's folds (whole sets apart): the share of
answerable questions whose offline answer holds the fact when the fact is in the top three passages.
Written to metrotest_bot/rag/sentence_model.json.
"""
from __future__ import annotations

import json

from . import retrieval as r

MODEL_PATH = r.REPO / "metrotest_bot" / "rag" / "sentence_model.json"
C = 1.0
# The fitted weights are divided by SCALE before shipping. A pairwise fit makes the gaps between sentences
# steep, and the offline answer keeps a second sentence by its share of the best one's score
# (offline.SECOND_CLOSE, SECOND_PART): chosen by cross-validation so that replies are as long as with the
# hand-set weights this model replaced (5,438 questions, mean 141 vs 140 characters on the demo KB's sets,
# 155-158 vs 154-160 on other KBs'), at which the fact is held for 0.967 vs 0.967 (demo, lone), 0.923 vs 0.919
# (demo, follow-ups), 0.851 vs 0.843 (other KBs, lone), 0.792 vs 0.774 (other KBs, follow-ups); the best
# sentence alone holds it for 0.865 vs 0.848. SCALE 1 / 3 / 5: shorter / shorter / longer replies.
SCALE = 4.0


def collect(questions: list[dict], intents=None) -> list[tuple]:
    """(question number, parsed question, top passages, KB statistics, sentences, labels) for every answerable
    question with at least one sentence of its top three passages holding the fact."""
    from metrotest_bot.rag.sentences import sentences_of

    out = []
    for number, index, _, result in r.asked(questions, intents):
        q = questions[number]
        if not q.get("answerable") or result is None or not result.passages:
            continue
        found = sentences_of(result.query, result.passages[:3], index.stats)
        labels = [r._hit(q["any_of"], [s.text]) for s in found]
        if any(labels):
            out.append((number, result.query, result.passages, index.stats, found, labels))
    return out


def fit(items) -> list[float]:
    """Pairwise, as the ranker is (bench/train_ranker.py): within a question, a sentence holding the fact should
    score above one that does not."""
    import numpy as np

    from .train_ranker import fit as fit_pairs

    X = np.array([s.row for item in items for s in item[4]], dtype=float)
    y = np.array([label for item in items for label in item[5]], dtype=bool)
    groups = np.array([k for k, item in enumerate(items) for _ in item[4]])
    return [float(w) / SCALE for w in fit_pairs(X, y, groups)]


def held(items, questions, weights) -> float:
    """Share of the items whose offline answer, composed with these weights, holds the fact."""
    from metrotest_bot.rag.offline import compose
    from metrotest_bot.rag.sentences import SentenceModel

    model = SentenceModel(tuple(weights))
    return sum(r._hit(questions[n]["any_of"], [compose(parsed, passages, stats, model=model)])
               for n, parsed, passages, stats, _, _ in items) / (len(items) or 1)


def train(questions: list[dict], folds, write: bool = True, intents=None) -> dict:
    """Cross-validate on the gate's folds (by question number), fit on all, write."""
    from metrotest_bot.rag.sentences import SENTENCE_FEATURES, load_sentence_model

    items = collect(questions, intents)
    fold_of = {int(i): k for k, (_, test) in enumerate(folds) for i in test}
    hits = 0
    for k in range(len(folds)):
        test = [it for it in items if fold_of[it[0]] == k]
        weights = fit([it for it in items if fold_of[it[0]] != k])
        hits += held(test, questions, weights) * len(test)
    weights = fit(items)
    data = {"features": list(SENTENCE_FEATURES), "weights": [round(w, 6) for w in weights],
            "cv": {"answer holds the fact": hits / (len(items) or 1), "questions": len(items)}}
    if write:
        MODEL_PATH.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        load_sentence_model.cache_clear()
    return data
