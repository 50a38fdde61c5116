"""Train the question-kind model (metrotest_bot/rag/intent.py) and cross-validate it.

Labels come from the labelled questions themselves: the kinds of fact (price, term, hours,
address, phone, e-mail) that the expected answer span shows, or when it shows none the KB sentence
holding it, found by the same patterns that mark the KB's passages (analysis.text_markers), so a question is taught to ask
for what its answer gives. Only answerable questions teach it (an unanswerable one has no answer to read the kind
from).

Part of `python -m bench train-gate`, fitted first: the ranker and the gate read the kinds it
finds. For their cross-validation every question's kinds come from a model that never saw its
set (out of fold), so the gate is judged, and fitted, on kinds as good as a new set's.
"""
from __future__ import annotations

import json
import re

from . import retrieval as r

C = 16.0  # chosen by cross-validation grouped by set (exact match 0.918 at 0.5, 0.933 at 2, 0.943 at 16, 0.941 at 32)
_SENTENCE_END = re.compile(r"[.!?]\s|\n")


def answer_sentences(span: str, kb: str) -> list[str]:
    """The KB sentences holding a span: spans are cut short («ПИ-2000 — от 920 000»), its sentence says
    «рублей» and so shows the kind asked as the passage's own markers do."""
    out, low, key = [], kb.lower(), span.lower()
    start = low.find(key)
    while start >= 0 and len(out) < 3:
        begin = max((m.end() for m in _SENTENCE_END.finditer(kb, 0, start)), default=0)
        end = _SENTENCE_END.search(kb, start + len(key))
        out.append(kb[begin:end.start() + 1 if end else len(kb)])
        start = low.find(key, start + 1)
    return out or [span]


def labels(questions: list[dict]):
    """Kinds asked (one column per kind) and which questions teach the model (answerable, with a span)."""
    import numpy as np

    from metrotest_bot.rag.analysis import text_markers
    from metrotest_bot.rag.intent import KINDS

    kbs = {path: path.read_text(encoding="utf-8") for path in {r.kb_of(q) for q in questions}}

    def kinds(span: str, kb: str) -> set[str]:
        # The span's own kinds when it shows any («+7 (383) 000-45-10» in a sentence that also gives an
        # e-mail asks a phone only); else its sentence's («ПИ-2000 — от 920 000» is a price by «рублей»).
        own = set(text_markers(span)) & set(KINDS)
        return own or {k for sentence in answer_sentences(span, kb) for k in text_markers(sentence)}

    Y = np.array([[any(k in kinds(s, kbs[r.kb_of(q)]) for s in q.get("any_of") or []) for k in KINDS]
                  for q in questions])
    teach = np.array([bool(q.get("answerable") and q.get("any_of")) for q in questions])
    return Y, teach


def fit(questions: list[dict], idx=None) -> dict:
    """The model's data (as intent_model.json holds it), fitted on the questions idx (all by default)."""
    import numpy as np
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    from metrotest_bot.rag.intent import KINDS, THRESHOLD, features

    Y, teach = labels(questions)
    idx = np.arange(len(questions)) if idx is None else np.asarray(idx)
    idx = idx[teach[idx]]
    vec = DictVectorizer()
    X = vec.fit_transform([dict.fromkeys(features(questions[i]["question"]), 1) for i in idx])
    names = vec.get_feature_names_out()
    weights = np.zeros((len(names), len(KINDS)))
    intercepts = []
    for j in range(len(KINDS)):
        if len(set(Y[idx, j])) < 2:  # a kind no question (or every one) asks: a constant, no weights
            intercepts.append(10.0 if Y[idx, j].all() else -10.0)
            continue
        model = LogisticRegression(C=C, max_iter=5000).fit(X, Y[idx, j])
        weights[:, j] = model.coef_[0]
        intercepts.append(round(float(model.intercept_[0]), 5))
    keep = np.abs(weights).max(axis=1) >= 1e-3  # a feature that moves no kind is not shipped
    return {"kinds": list(KINDS), "threshold": THRESHOLD, "intercepts": intercepts,
            "weights": {str(f): [round(float(w), 5) for w in row] for f, row, k in zip(names, weights, keep) if k}}


def out_of_fold(questions: list[dict], folds) -> list:
    """For each question, the model fitted without its fold (folds: a list of (train, test) index arrays)."""
    from metrotest_bot.rag.intent import IntentModel

    models = [None] * len(questions)
    for train, test in folds:
        model = IntentModel.from_dict(fit(questions, train))
        for i in test:
            models[i] = model
    return models


def scores(questions: list[dict], models) -> dict:
    """Per kind precision and recall of the kinds found (each question by its own model) against the labels."""
    import numpy as np

    from metrotest_bot.rag.intent import KINDS

    Y, teach = labels(questions)
    P = np.array([[k in m.kinds_asked(q["question"]) for k in KINDS] for q, m in zip(questions, models)])
    Y, P = Y[teach], P[teach]
    out = {"exact": float((P == Y).all(axis=1).mean()), "questions": int(teach.sum())}
    for j, k in enumerate(KINDS):
        tp, fp, fn = int((P[:, j] & Y[:, j]).sum()), int((P[:, j] & ~Y[:, j]).sum()), int((~P[:, j] & Y[:, j]).sum())
        out[k] = {"precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn), "asked": int(Y[:, j].sum())}
    return out


def write(data: dict) -> None:
    from metrotest_bot.rag.intent import INTENT_MODEL, load_intents

    INTENT_MODEL.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    load_intents.cache_clear()
