"""The ranker's weights, learned: which candidate passages hold the expected fact, question by question.

Part of `python -m bench train-gate` (the gate's features are computed on the passages this ranker
orders, so the ranker is fitted first). A pairwise logistic model: for each labelled question, every
(passage holding the fact, passage not holding it) pair among its candidates asks for the first to
score higher; no intercept, so only the order is learned. Written to metrotest_bot/rag/ranker_model.json.
"""
from __future__ import annotations

import json

from . import retrieval as r

MODEL_PATH = r.REPO / "metrotest_bot" / "rag" / "ranker_model.json"
C = 1.0  # the regularisation chosen by cross-validation (0.1–10 within 0.001 of top-1)
FOLDS = 5


def collect(questions: list[dict], intents=None):
    """(features, holds the fact, question number) for every candidate of every answerable question;
    each question's kinds asked found by intents[i] when given (bench/train_intent.py)."""
    import numpy as np

    from metrotest_bot.rag.pipeline import fetch
    from metrotest_bot.rag.ranking import candidates, rank_features

    rows, labels, groups = [], [], []
    for number, index, previous, _ in r.asked(questions, intents):
        q = questions[number]
        parsed, docs, titles = fetch(index.pipeline, q["question"], previous)
        if not q.get("answerable") or parsed.is_empty():
            continue
        found_now = candidates(parsed, docs, index.stats)
        for cand, row in zip(found_now, rank_features(parsed, found_now, set(titles), index.stats)):
            rows.append(row)
            labels.append(r._hit(q["any_of"], [cand.doc.meta.get("text", "")]))
            groups.append(number)
    return np.array(rows, dtype=float), np.array(labels, dtype=bool), np.array(groups)


def _pairs(X, y, groups, idx):
    import numpy as np

    diffs = []
    for g in np.unique(groups[idx]):
        members = idx[groups[idx] == g]
        pos, neg = members[y[members]], members[~y[members]]
        diffs += [X[i] - X[j] for i in pos for j in neg]
    if not diffs:
        return np.zeros((0, X.shape[1])), np.zeros(0)
    diffs = np.array(diffs)
    return np.vstack([diffs, -diffs]), np.r_[np.ones(len(diffs)), np.zeros(len(diffs))]


def fit(X, y, groups, idx=None):
    """Weights of the pairwise model on the questions idx (all by default)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    idx = np.arange(len(X)) if idx is None else idx
    A, b = _pairs(X, y, groups, idx)
    return LogisticRegression(C=C, max_iter=5000, fit_intercept=False).fit(A, b).coef_[0]


def top_hits(scores, y, groups) -> dict:
    """Share of questions (with a candidate holding the fact) whose best 1 / 3 passages hold it."""
    import numpy as np

    hits1 = hits3 = n = 0
    for g in np.unique(groups):
        m = groups == g
        if not y[m].any():
            continue
        order = np.argsort(-scores[m], kind="stable")
        n += 1
        hits1 += bool(y[m][order[:1]].any())
        hits3 += bool(y[m][order[:3]].any())
    return {"top-1": hits1 / (n or 1), "top-3": hits3 / (n or 1), "questions": n}


def cross_validate(X, y, groups) -> dict:
    """Each question's candidates ordered by weights fitted on the other folds."""
    import numpy as np
    from sklearn.model_selection import GroupKFold

    scores = np.zeros(len(X))
    for train, test in GroupKFold(FOLDS).split(X, y, groups):
        scores[test] = X[test] @ fit(X, y, groups, train)
    return top_hits(scores, y, groups)


def train(questions: list[dict], write: bool = True, intents=None) -> dict:
    from metrotest_bot.rag.ranking import RANK_FEATURES, load_ranker

    X, y, groups = collect(questions, intents)
    shipped = top_hits(_shipped_scores(X), y, groups)  # in-sample for sets it was trained on: not a CV figure
    cv = cross_validate(X, y, groups)
    weights = fit(X, y, groups)
    data = {"features": list(RANK_FEATURES), "weights": [round(float(w), 6) for w in weights], "bias": 0.0,
            "cv": cv, "shipped_in_sample": shipped}
    if write:
        MODEL_PATH.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        load_ranker.cache_clear()
    return data


def _shipped_scores(X):
    """The order the shipped weights give (the model before this training, on questions it may have seen)."""
    import numpy as np

    from metrotest_bot.rag.ranking import load_ranker

    model = load_ranker()
    return np.array([model.raw(list(row)) for row in X])
