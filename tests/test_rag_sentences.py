"""The offline answer's sentence is chosen by a learned model (rag/sentences.py)."""
import json

import pytest

from metrotest_bot.rag import get_engine
from metrotest_bot.rag.offline import compose
from metrotest_bot.rag.sentences import (SENTENCE_FEATURES, SENTENCE_MODEL, SentenceModel, load_sentence_model,
                                         sentences_of)


def test_the_shipped_model_weighs_exactly_the_features_computed(app):
    data = json.loads(SENTENCE_MODEL.read_text(encoding="utf-8"))
    assert tuple(data["features"]) == SENTENCE_FEATURES and len(data["weights"]) == len(SENTENCE_FEATURES)
    with app.app_context():
        engine = get_engine()
        found, _ = engine.search("сколько стоит поверка пресса")
        rows = [s.row for s in sentences_of(found.query, found.passages, engine.current().stats)]
    assert rows and all(len(row) == len(SENTENCE_FEATURES) for row in rows)


def test_weights_are_read_by_feature_name_and_a_missing_one_is_an_error():
    names = list(SENTENCE_FEATURES)
    data = {"features": names[::-1], "weights": list(range(len(names)))[::-1]}
    assert SentenceModel.from_dict(data).weights == tuple(float(i) for i in range(len(names)))
    with pytest.raises(ValueError, match="train-gate"):
        SentenceModel.from_dict({"features": names[:-1], "weights": [0.0] * (len(names) - 1)})


def test_scores_are_shares_of_the_best_sentence():
    model = SentenceModel((1.0, -1.0) + (0.0,) * (len(SENTENCE_FEATURES) - 2))
    zeros = (0.0,) * (len(SENTENCE_FEATURES) - 2)
    scores = model.scores([(0.0, 0.0) + zeros, (1.0, 0.0) + zeros, (1.0, 1.0) + zeros])
    assert scores[1] == 1.0 and scores[0] == scores[2] < 1.0


def test_the_model_decides_which_sentence_is_spoken(app):
    """The same passages, two models: the shipped one speaks the sentence with the asked price; one that
    weighs nothing but a sentence's place in its passage speaks the last sentences instead."""
    with app.app_context():
        engine = get_engine()
        found, _ = engine.search("сколько стоит поверка пресса")
        stats = engine.current().stats
        found_sentences = sentences_of(found.query, found.passages[:3], stats)
        assert len(found_sentences) > 2
        shipped = compose(found.query, found.passages, stats)
        assert "12 000" in shipped
        last_first = SentenceModel(tuple(10.0 if f == "position" else 0.0 for f in SENTENCE_FEATURES))
        other = compose(found.query, found.passages, stats, model=last_first)
        assert other and "12 000" not in other
        assert load_sentence_model().scores([s.row for s in found_sentences])[0] <= 1.0
