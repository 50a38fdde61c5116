"""The passages' order is learned (rag/ranking.py), and the gate knows which model a fact is about."""
import json

import pytest

from metrotest_bot.rag import get_engine
from metrotest_bot.rag.ranking import RANK_FEATURES, RANKER_MODEL, RankModel, load_ranker
from metrotest_bot.rag.scoring import features


def test_the_shipped_ranker_weighs_exactly_the_features_computed():
    data = json.loads(RANKER_MODEL.read_text(encoding="utf-8"))
    assert tuple(data["features"]) == RANK_FEATURES and len(data["weights"]) == len(RANK_FEATURES)
    assert load_ranker().features == RANK_FEATURES


def test_weights_are_read_by_feature_name_and_a_missing_one_is_an_error():
    names = list(RANK_FEATURES)
    data = {"features": names[::-1], "weights": list(range(len(names)))[::-1], "bias": 0.0}
    assert RankModel.from_dict(data).weights == tuple(float(i) for i in range(len(names)))
    with pytest.raises(ValueError, match="train-gate"):
        RankModel.from_dict({"features": names[:-1], "weights": [0.0] * (len(names) - 1), "bias": 0.0})


def test_scores_are_shares_of_the_best_candidate_in_the_models_order():
    model = RankModel(("a", "b"), (2.0, -1.0), 0.0)
    scores = model.scores([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    assert scores[1] == 1.0 and scores[0] < scores[2] < scores[1]


def test_the_best_passage_is_the_one_the_learned_order_puts_first(app):
    with app.app_context():
        found, _ = get_engine().search("сколько стоит поверка пресса")
        docs = found.retrieved.documents
        assert len(docs) > 1 and docs[1].score < 1.0 == docs[0].score
        assert "12 000" in docs[0].meta["text"] and "12 000" not in docs[1].meta["text"]


def test_a_price_of_another_model_does_not_answer_for_the_named_one(app):
    """«сколько стоит РМ-10» over «Цена разрывной машины РМ-50 — …»: the sentence with the price names
    another model, so the named model's price is not there (the gate's feature `named_fact`)."""
    with app.app_context():
        engine = get_engine()
        values = {}
        for question in ("сколько стоит разрывная машина рм десять", "сколько стоит разрывная машина рм пятьдесят"):
            found, _ = engine.search(question)
            values[question] = features(found.query, found.retrieved.documents, engine.current().stats)["named_fact"]
        assert values == {"сколько стоит разрывная машина рм десять": 0.0,
                          "сколько стоит разрывная машина рм пятьдесят": 1.0}
